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

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test"
cargo test --locked --all-targets

step "cargo check --target aarch64-apple-darwin --lib --bins (TLS off: aws-lc-sys cannot cross-build; the tests need it)"
cargo check --locked --target aarch64-apple-darwin --no-default-features --lib --bins

step "deployment artefacts (scripts/validate-deploy.sh)"
bash scripts/validate-deploy.sh

echo
echo "all checks passed"
