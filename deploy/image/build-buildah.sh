#!/usr/bin/env bash
# Builds the Dockerfile's runtime image layout without a container engine:
# buildah from scratch (vfs storage, no daemon, no user namespaces needed as
# root), the locally built glibc binary, exactly the shared libraries it links
# (ldd: libc, libm, libgcc_s, the loader; NVML is dlopen'ed at run time from
# the driver the NVIDIA toolkit mounts), a nonroot user 65532, the Dockerfile's
# labels, user and entrypoint. Writes an OCI archive.
#
#   bash deploy/image/build-buildah.sh [BINARY] [OUT.oci.tar]
#
# Needs root (buildah mount) and buildah (Debian: apt-get install buildah).
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=${1:-target/release/unamentis-agent}
out=${2:-target/image/unamentis-agent.oci.tar}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
[ -x "$bin" ] || { echo "no binary at $bin (cargo build --release first)" >&2; exit 2; }
command -v buildah >/dev/null || { echo "buildah is not installed" >&2; exit 2; }

store=$(mktemp -d)
bah() { buildah --storage-driver vfs --root "$store/root" --runroot "$store/run" "$@"; }
ctr=
cleanup() {
    if [ -n "$ctr" ]; then bah umount "$ctr" >/dev/null 2>&1 || true; bah rm "$ctr" >/dev/null 2>&1 || true; fi
    rm -rf "$store"
}
trap cleanup EXIT

ctr=$(bah from scratch)
mnt=$(bah mount "$ctr")

install -D -m 0755 "$bin" "$mnt/usr/local/bin/unamentis-agent"
# The libraries and the loader, at the paths the binary asks for.
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u | while read -r lib; do
    cp -L --parents "$lib" "$mnt/"
done
mkdir -p "$mnt/etc" "$mnt/tmp"
chmod 1777 "$mnt/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$mnt/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$mnt/etc/group"
printf 'hosts: files dns\n' > "$mnt/etc/nsswitch.conf"

bah config \
    --entrypoint '["unamentis-agent", "run"]' \
    --cmd '' \
    --user 65532:65532 \
    --env PATH=/usr/local/bin:/usr/bin:/bin \
    --env NVIDIA_VISIBLE_DEVICES=all \
    --env NVIDIA_DRIVER_CAPABILITIES=utility \
    --port 8767 \
    --label org.opencontainers.image.title=unamentis-agent \
    --label "org.opencontainers.image.description=OpenTelemetry-native host agent for a local AI server stack: host, service, GPU, power and idle metrics over OTLP" \
    --label "org.opencontainers.image.version=$version" \
    --label org.opencontainers.image.licenses=Apache-2.0 \
    "$ctr"
bah umount "$ctr" >/dev/null

mkdir -p "$(dirname "$out")"
rm -f "$out"
bah commit --quiet --format oci --disable-compression=false --rm "$ctr" "oci-archive:$out:unamentis-agent:$version" >/dev/null
ctr=
echo "$out"
