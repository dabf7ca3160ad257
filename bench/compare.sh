#!/usr/bin/env bash
# Runs the agent and its Python peer (OpenTelemetry Python's system-metrics
# instrumentation, bench/py_system_metrics_agent.py) side by side, in the
# same window on the same host, each against its own byte-counting sink,
# and prints both with the ratios the budgets are written in.
#
#   bash bench/compare.sh                      # 60 s at 5 s, builds release
#   DURATION=120 AGENT_BIN=target/release/unamentis-agent bash bench/compare.sh
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
VENV=${VENV:-$BENCH_DIR/.venv}
PYTHON=${PYTHON:-python3}
export DURATION=${DURATION:-60} INTERVAL=${INTERVAL:-5s}

log() { printf '[compare] %s\n' "$*" >&2; }

# Prepare the shared venv once, before two overhead.sh runs share it.
req="$BENCH_DIR/requirements.txt"
[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
if [[ $(cat "$VENV/.requirements.sha256" 2>/dev/null || true) != "$(sha256sum "$req" | cut -d' ' -f1)" ]]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
    sha256sum "$req" | cut -d' ' -f1 >"$VENV/.requirements.sha256"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$BENCH_DIR/requirements-peer.txt" >&2

if [[ -z ${AGENT_BIN:-} ]]; then
    log "cargo build --release"
    (cd "$REPO_DIR" && cargo build --release) >&2
    AGENT_BIN="$REPO_DIR/target/release/unamentis-agent"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
peer="$work/python-system-metrics"
printf '#!/bin/sh\nexec "%s" "%s"\n' "$VENV/bin/python" "$BENCH_DIR/py_system_metrics_agent.py" >"$peer"
chmod +x "$peer"

log "running both for ${DURATION}s at ${INTERVAL}"
RESULTS_DIR="$work/agent" AGENT_BIN="$AGENT_BIN" bash "$BENCH_DIR/overhead.sh" >"$work/agent.txt" 2>"$work/agent.err" &
a=$!
RESULTS_DIR="$work/peer" AGENT_BIN="$peer" bash "$BENCH_DIR/overhead.sh" >"$work/peer.txt" 2>"$work/peer.err" &
p=$!
wait "$a" || { cat "$work/agent.err" >&2; exit 1; }
wait "$p" || { cat "$work/peer.err" >&2; exit 1; }

mkdir -p "$BENCH_DIR/results"
out="$BENCH_DIR/results/compare-$(date -u +%Y%m%dT%H%M%SZ).json"
"$VENV/bin/python" - "$work/agent"/overhead-*.json "$work/peer"/overhead-*.json "$out" <<'PY'
import json, sys
agent, peer = (json.load(open(f)) for f in sys.argv[1:3])
def cpu(r):  # the budget's basis: the larger of ticks and schedstat
    return max(v for v in (r["cpu_seconds_per_minute"], r["cpu_seconds_per_minute_schedstat"]) if v is not None)
rows = [
    ("CPU s per minute", cpu(agent), cpu(peer)),
    ("  after the warm-up", agent["cpu_seconds_per_minute_after_warmup_schedstat"], peer["cpu_seconds_per_minute_after_warmup_schedstat"]),
    ("peak RSS KiB", agent["peak_rss_kib"], peer["peak_rss_kib"]),
    ("threads (max)", agent["max_threads"], peer["max_threads"]),
    ("context switches / s", agent["ctx_switches_per_s"], peer["ctx_switches_per_s"]),
    ("wire bytes / export", agent["wire_bytes_per_export"]["steady_state"], peer["wire_bytes_per_export"]["steady_state"]),
    ("first export s", agent["first_export_latency_s"], peer["first_export_latency_s"]),
]
print(f"{'figure':<24} {'unamentis-agent':>16} {'python peer':>14} {'agent/peer':>11}")
for name, a, p in rows:
    ratio = f"{a / p:.3f}" if a is not None and p else "-"
    print(f"{name:<24} {a!s:>16} {p!s:>14} {ratio:>11}")
c = cpu(agent) / cpu(peer) if cpu(peer) else None
print(f"\nCPU budget (agent <= 1/10 of the peer): {'PASS' if c is not None and c <= 0.1 else 'FAIL'}"
      + (f" (1/{1 / c:.0f})" if c else ""))
wa, wp = agent["cpu_seconds_per_minute_after_warmup_schedstat"], peer["cpu_seconds_per_minute_after_warmup_schedstat"]
if wa and wp:
    print(f"after the warm-up (WARMUP_S, default 5 s): 1/{wp / wa:.0f}")
json.dump({"agent": agent, "peer": peer, "cpu_ratio": c, "rows": rows}, open(sys.argv[3], "w"), indent=2)
print(f"result: {sys.argv[3]}")
PY
