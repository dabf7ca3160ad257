#!/usr/bin/env bash
# Soak: runs the release agent at a 1 s interval for SOAK_SECONDS (default
# 1800) against a local sink while two watched services start and stop every
# FLAP_SECONDS (default 10), and reports whether RSS, open files and threads
# stay flat (RSS slope by least squares over the run, after a warm-up).
#
#   bash bench/soak.sh                       # 30 minutes
#   SOAK_SECONDS=120 AGENT_BIN=target/release/unamentis-agent bash bench/soak.sh
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
VENV=${VENV:-$BENCH_DIR/.venv}
SOAK_SECONDS=${SOAK_SECONDS:-1800}
FLAP_SECONDS=${FLAP_SECONDS:-10}
SAMPLE_SECONDS=${SAMPLE_SECONDS:-5}
WARMUP_SECONDS=${WARMUP_SECONDS:-30}

log() { printf '[soak] %s\n' "$*" >&2; }

[[ -x $VENV/bin/python ]] || { python3 -m venv "$VENV"; "$VENV/bin/pip" install -q -r "$BENCH_DIR/requirements.txt"; }
if [[ -z ${AGENT_BIN:-} ]]; then
    (cd "$REPO_DIR" && cargo build --release) >&2
    AGENT_BIN="$REPO_DIR/target/release/unamentis-agent"
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    [[ -n ${svc_a:-} ]] && kill "$svc_a" 2>/dev/null || true
    [[ -n ${svc_b:-} ]] && kill "$svc_b" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$VENV/bin/python" "$BENCH_DIR/otlp_sink.py" --port 0 --out "$work/exports.jsonl" --port-file "$work/port" >"$work/sink.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s $work/port ]] && break; sleep 0.1; done
port=$(cat "$work/port")

tag="soak-$$"
cat >"$work/agent.toml" <<TOML
interval = "1s"
default_services = false
[[service]]
name = "soak-a"
cmdline = "$tag-a"
[[service]]
name = "soak-b"
cmdline = "$tag-b"
TOML

OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$port" "$AGENT_BIN" --config "$work/agent.toml" run 2>"$work/agent.log" &
agent=$!
pids+=("$agent")
log "agent pid $agent, ${SOAK_SECONDS}s, services flap every ${FLAP_SECONDS}s"

# Output closed, or $(...) would wait for the background child.
start_svc() { python3 -c 'import sys, time; time.sleep(1e9)' "$1" >/dev/null 2>&1 & echo $!; }
svc_a=$(start_svc "$tag-a")
svc_b=""
printf 't_s\trss_kib\tfds\tthreads\tanon_kib\n' >"$work/samples.tsv"
t0=$SECONDS
next_flap=$FLAP_SECONDS
while (( SECONDS - t0 < SOAK_SECONDS )); do
    kill -0 "$agent" 2>/dev/null || { cat "$work/agent.log" >&2; log "agent died"; exit 1; }
    el=$(( SECONDS - t0 ))
    if (( el >= next_flap )); then
        # Alternate: one service stops, the other starts (new pids each time).
        if [[ -n $svc_a ]]; then kill "$svc_a"; wait "$svc_a" 2>/dev/null || true; svc_a=""; svc_b=$(start_svc "$tag-b")
        else kill "$svc_b"; wait "$svc_b" 2>/dev/null || true; svc_b=""; svc_a=$(start_svc "$tag-a"); fi
        next_flap=$(( next_flap + FLAP_SECONDS ))
    fi
    rss=$(awk '/^VmRSS:/{print $2}' "/proc/$agent/status")
    thr=$(awk '/^Threads:/{print $2}' "/proc/$agent/status")
    # RssAnon is the heap and stacks (a leak shows there); the rest of RSS
    # is file pages, the binary's code paged in as paths first run.
    anon=$(awk '/^RssAnon:/{print $2}' "/proc/$agent/status")
    fds=$(ls "/proc/$agent/fd" | wc -l)
    printf '%s\t%s\t%s\t%s\t%s\n' "$el" "$rss" "$fds" "$thr" "$anon" >>"$work/samples.tsv"
    sleep "$SAMPLE_SECONDS"
done

mkdir -p "$BENCH_DIR/results"
out="$BENCH_DIR/results/soak-$(date -u +%Y%m%dT%H%M%SZ).json"
cp "$work/samples.tsv" "${out%.json}.samples.tsv"
"$VENV/bin/python" - "$work/samples.tsv" "$WARMUP_SECONDS" "$out" "$work/exports.jsonl" <<'PY'
import json, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n")[1:] if l]
rows = [tuple(int(x) for x in r) for r in rows]
warm = [r for r in rows if r[0] >= int(sys.argv[2])] or rows

def slope(rs, col):
    """Least squares, KiB per hour."""
    n = len(rs)
    mt = sum(r[0] for r in rs) / n
    mv = sum(r[col] for r in rs) / n
    den = sum((r[0] - mt) ** 2 for r in rs)
    return round(sum((r[0] - mt) * (r[col] - mv) for r in rs) / den * 3600, 1) if den else 0.0

# A plateau reached early reads as a slope over the whole run; the second
# half tells growth that goes on from growth that stopped.
half = [r for r in warm if r[0] >= (warm[0][0] + warm[-1][0]) / 2] or warm
exports = sum(1 for l in open(sys.argv[4]) if '"summary"' not in l)
res = {
    "seconds": rows[-1][0], "samples": len(rows), "exports": exports,
    "rss_kib": {"first": warm[0][1], "last": warm[-1][1], "max": max(r[1] for r in rows),
                "slope_kib_per_hour_after_warmup": slope(warm, 1),
                "slope_kib_per_hour_second_half": slope(half, 1)},
    "anon_kib": {"first": warm[0][4], "last": warm[-1][4],
                 "slope_kib_per_hour_after_warmup": slope(warm, 4),
                 "slope_kib_per_hour_second_half": slope(half, 4)},
    "fds": {"min": min(r[2] for r in warm), "max": max(r[2] for r in warm)},
    "threads": {"min": min(r[3] for r in warm), "max": max(r[3] for r in warm)},
}
json.dump(res, open(sys.argv[3], "w"), indent=2)
print(json.dumps(res, indent=2))
print(f"result: {sys.argv[3]}")
PY
