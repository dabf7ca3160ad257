#!/usr/bin/env bash
# Proves the OCI archive of build-buildah.sh works: unpacks it with umoci,
# checks the image config (entrypoint, non-root user, labels), then runs the
# binary from the unpacked rootfs with chroot as the image's user, with this
# host's /proc and /sys bind-mounted at /host/proc and /host/sys (in a private
# mount namespace), and checks `snapshot --json` read this host. Where bind
# mounts are not allowed, a fixture host tree is copied into the rootfs instead.
#
#   bash deploy/image/test-image.sh [IMAGE.oci.tar]
set -euo pipefail
cd "$(dirname "$0")/../.."

archive=${1:-target/image/unamentis-agent.oci.tar}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "image test FAILED: $*" >&2; exit 1; }

mkdir "$work/layout"
tar -xf "$archive" -C "$work/layout"
tag=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])' "$work/layout/index.json")
umoci unpack --image "$work/layout:$tag" "$work/bundle" >/dev/null
rootfs="$work/bundle/rootfs"

# The runtime config umoci derived from the image config.
python3 - "$work/bundle/config.json" <<'PY' || fail "runtime config"
import json, sys
c = json.load(open(sys.argv[1]))
p = c["process"]
assert p["args"] == ["unamentis-agent", "run"], p["args"]
assert p["user"]["uid"] == 65532 and p["user"]["gid"] == 65532, p["user"]
ann = c.get("annotations", {})
assert ann.get("org.opencontainers.image.title") == "unamentis-agent", ann
PY

[ -x "$rootfs/usr/local/bin/unamentis-agent" ] || fail "no binary in the rootfs"
run() { chroot --userspec=65532:65532 "$rootfs" /usr/local/bin/unamentis-agent "$@"; }
run --version | grep -q '^unamentis-agent ' || fail "--version from the rootfs"

mkdir -p "$rootfs/host/proc" "$rootfs/host/sys"
export UNAMENTIS_AGENT_HOST_PROC=/host/proc UNAMENTIS_AGENT_HOST_SYS=/host/sys
if unshare -m --propagation private true 2>/dev/null \
    && unshare -m --propagation private sh -c "mount --bind /proc '$rootfs/host/proc' && mount --bind /sys '$rootfs/host/sys'" 2>/dev/null; then
    mode=host
    unshare -m --propagation private sh -c "
        mount --bind /proc '$rootfs/host/proc' && mount --rbind /sys '$rootfs/host/sys' &&
        chroot --userspec=65532:65532 '$rootfs' /usr/local/bin/unamentis-agent snapshot --json --window 100ms
    " > "$work/snapshot.json" 2> "$work/stderr" || { cat "$work/stderr" >&2; fail "snapshot in the chroot"; }
    want_total=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
else
    mode=fixture
    cp -r tests/fixtures/hosts/compat-2cpu/proc/. "$rootfs/host/proc/"
    run snapshot --json --window 100ms > "$work/snapshot.json" 2> "$work/stderr" \
        || { cat "$work/stderr" >&2; fail "snapshot in the chroot"; }
    want_total=$(awk '/^MemTotal:/ {print $2}' tests/fixtures/hosts/compat-2cpu/proc/meminfo)
fi

python3 - "$work/snapshot.json" "$want_total" <<'PY' || fail "snapshot output"
import json, sys
snap = json.load(open(sys.argv[1]))
want = int(sys.argv[2]) / 1024
m = {x["name"]: x for x in snap["metrics"] if not x["attributes"]}
total = m["unamentis.server.memory.total_mb"]["value"]
assert abs(total - want) < 1e-6, (total, want)
assert snap["resource"]["service.name"] == "unamentis-agent", snap["resource"]
up = [x for x in snap["metrics"] if x["name"] == "unamentis.server.agent.source.up" and x["attributes"].get("source") == "memory"]
assert up and up[0]["value"] == 1, up
PY
size_tar=$(stat -c %s "$archive")
size_rootfs=$(du -sb "$rootfs" | cut -f1)
echo "image OK ($mode /proc): archive $size_tar bytes, unpacked rootfs $size_rootfs bytes"
