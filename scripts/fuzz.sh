#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets/) for a bounded time.
# Not part of scripts/test.sh: it takes minutes.
#
#   scripts/fuzz.sh                 # every target, 20 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh meminfo net_tcp
#
# Seeds come from the fixture trees (tests/fixtures); the corpus grows in
# fuzz/corpus/<target> and crashes land in fuzz/artifacts/<target> (both
# git-ignored). Exit status 1 when any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${FUZZ_SECONDS:-20}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address); this lets the
# stable toolchain accept them instead of requiring a nightly one.
export RUSTC_BOOTSTRAP=1

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# Seed file patterns per target, relative to tests/fixtures.
seeds_for() {
    case "$1" in
        proc_stat) echo "*/proc/stat" ;;
        pid_stat) echo "*/proc/[0-9]*/stat */proc/[0-9]*/cmdline */proc/[0-9]*/io" ;;
        meminfo) echo "*/proc/meminfo" ;;
        loadavg) echo "*/proc/loadavg" ;;
        cpu_list) echo "*/sys/devices/system/cpu/online */topology/core_cpus_list" ;;
        sysfs_values) echo "*/sys/class/thermal/*/type */sys/class/hwmon/*/name */powercap/*/name" ;;
        net_tcp) echo "*/proc/net/tcp */proc/net/tcp6" ;;
        nvidia_smi_csv) echo "*nvidia-smi* *.csv" ;;
        powermetrics) echo "*powermetrics* *.plist" ;;
        ioreg) echo "*ioreg*" ;;
        ollama_json) echo "*ollama* *.json" ;;
        config_toml) echo "*.toml" ;;
        mounts) echo "*/proc/[0-9]*/mounts */proc/self/mounts" ;;
        cgroup) echo "*/cgroup/mountinfo-*" ;;
        amdgpu_uevent) echo "*/device/uevent" ;;
        power_thermal) echo "*/thermal_zone*/temp */thermal_zone*/trip_point_*_type */powercap/*/energy_uj */power_supply/*/status */proc/cpuinfo" ;;
        *) echo "" ;;
    esac
}

seed() {
    local target=$1 dir=fuzz/corpus/$1 pattern
    mkdir -p "$dir"
    for pattern in $(seeds_for "$target"); do
        find tests/fixtures examples -path "*/$pattern" -type f -size -64k 2>/dev/null |
            while read -r f; do cp "$f" "$dir/seed-$(echo "$f" | tr '/' '_')"; done
    done
    # This host's own files are real samples too.
    case "$target" in
        config_toml) cp examples/unamentis-agent.toml "$dir/seed-example.toml" ;;
        net_tcp) cp /proc/net/tcp "$dir/seed-host-tcp" 2>/dev/null || true ;;
        pid_stat)
            cp /proc/self/stat "$dir/seed-host-stat" 2>/dev/null || true
            cp /proc/self/io "$dir/seed-host-io" 2>/dev/null || true ;;
        meminfo) cp /proc/meminfo "$dir/seed-host-meminfo" 2>/dev/null || true ;;
        snmp_tcp) cp /proc/net/snmp "$dir/seed-host-snmp" 2>/dev/null || true ;;
        mounts) cp /proc/self/mounts "$dir/seed-host-mounts" 2>/dev/null || true ;;
        cgroup) cp /proc/self/mountinfo "$dir/seed-host-mountinfo" 2>/dev/null || true ;;
        # Inputs no file on this host holds, written as the other side sends them.
        activity_push)
            printf '{"service":"ollama","kind":"inference","count":3}' >"$dir/seed-full"
            printf '{"service":"web"}' >"$dir/seed-short"
            ;;
        netstat)
            printf '%s\n' "Proto Recv-Q Send-Q  Local Address          Foreign Address        (state)" \
                "tcp4       0      0  127.0.0.1.11434        127.0.0.1.52731        ESTABLISHED" \
                "tcp6       0      0  fe80::1%lo0.3000       fe80::1%lo0.52733      ESTABLISHED" >"$dir/seed-netstat"
            ;;
        http_response)
            printf 'HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{"models":[]}' >"$dir/seed-length"
            printf 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{"a\r\n4;x=y\r\n":1}\r\n0\r\n\r\n' >"$dir/seed-chunked"
            ;;
        config_env) printf '\016signoz-ingestion-key=abc%%20def,x=1' >"$dir/seed-headers" ;;
    esac
}

# -a: debug assertions on, so an integer overflow on hostile numbers is a
# crash here rather than a silently wrapped value in the release build.
echo "== building the fuzz targets"
cargo fuzz build -a
mkdir -p fuzz/target/logs

failed=()
for t in "${targets[@]}"; do
    seed "$t"
    echo "== $t (${secs}s, $(ls "fuzz/corpus/$t" | wc -l) inputs in the corpus)"
    if ! cargo fuzz run -a "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -max_len=65536 \
        -print_final_stats=1 >"fuzz/target/logs/$t.log" 2>&1; then
        failed+=("$t")
        tail -n 40 "fuzz/target/logs/$t.log"
    else
        grep -E "^(stat::number_of_executed_units|stat::new_units_added|Done)" "fuzz/target/logs/$t.log" || true
    fi
done

echo
if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashed: ${failed[*]} (inputs in fuzz/artifacts/<target>, logs in fuzz/target/logs)"
    exit 1
fi
echo "no crash in ${#targets[@]} targets (${secs}s each)"
