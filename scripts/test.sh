#!/usr/bin/env bash
# Runs every check of the project: formatting, clippy, all tests, and the
# macOS build check. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
        rustup component add "$component"
    fi
done
if ! rustup target list --installed | grep -qx aarch64-apple-darwin; then
    rustup target add aarch64-apple-darwin
fi

step "prometheus (promtool and the server, for the /metrics and alert-rule tests)"
# tests/prometheus.rs and tests/e2e_prometheus.rs run Debian's promtool and
# prometheus; under CI=true they fail rather than skip without them.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
prometheus --version 2>&1 | sed -n 1p

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test"
cargo test --locked --all-targets

step "cargo clippy --target aarch64-apple-darwin --lib --bins (a check of the macOS build, linted; TLS off: aws-lc-sys cannot cross-build; the tests need it)"
cargo clippy --locked --target aarch64-apple-darwin --no-default-features --lib --bins -- -D warnings

step "deployment artefacts (scripts/validate-deploy.sh)"
bash scripts/validate-deploy.sh

echo
echo "all checks passed"
