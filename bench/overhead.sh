#!/usr/bin/env bash
# Measures the resource overhead of `unamentis-agent run` against its budgets.
#
#   bash bench/overhead.sh                      # build, run 60 s at a 5 s interval
#   DURATION=300 INTERVAL=10s bash bench/overhead.sh
#   AGENT_BIN=/path/to/unamentis-agent bash bench/overhead.sh   # skip the build
#   STRICT=1 bash bench/overhead.sh             # exit 2 if a budget FAILs
#
# See bench/README.md for what each figure means and how it is measured.
#
# Environment (all optional):
#   AGENT_BIN     agent binary; default: `cargo build --release` and use
#                 target/release/unamentis-agent
#   DURATION      seconds the agent runs before the final reading (default 60)
#   INTERVAL      UNAMENTIS_AGENT_INTERVAL given to the agent (default 5s)
#   STRICT        1: exit 2 when a budget FAILs or the agent did not exit 0
#   WARMUP_S      seconds excluded from the "after warm-up" CPU figure (default 5)
#   STOP_TIMEOUT  seconds to wait for an exit after SIGTERM before SIGKILL (10)
#   RESULTS_DIR   where results go (default bench/results)
#   VENV          Python venv for the sink (default bench/.venv)
#   PYTHON        interpreter used to create the venv (default python3)
#   BUDGET_CPU_S_PER_MIN (0.05), BUDGET_RSS_KIB (10240), BUDGET_THREADS (4),
#   BUDGET_FIRST_EXPORT_S (1), BUDGET_BYTES_PER_EXPORT (3000)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)

DURATION=${DURATION:-60}
INTERVAL=${INTERVAL:-5s}
STRICT=${STRICT:-0}
WARMUP_S=${WARMUP_S:-5}
STOP_TIMEOUT=${STOP_TIMEOUT:-10}
RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}
VENV=${VENV:-$BENCH_DIR/.venv}
PYTHON=${PYTHON:-python3}
BUDGET_CPU_S_PER_MIN=${BUDGET_CPU_S_PER_MIN:-0.05}
BUDGET_RSS_KIB=${BUDGET_RSS_KIB:-10240}
BUDGET_THREADS=${BUDGET_THREADS:-4}
BUDGET_FIRST_EXPORT_S=${BUDGET_FIRST_EXPORT_S:-1}
BUDGET_BYTES_PER_EXPORT=${BUDGET_BYTES_PER_EXPORT:-3000}

log() { printf '[overhead] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a whole number of seconds, got '$DURATION'"
[[ $STOP_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "STOP_TIMEOUT must be a whole number of seconds"
[[ -r /proc/self/status ]] || die "needs Linux /proc"

# Times are microseconds since the epoch from bash's own clock, with no fork:
# ${EPOCHREALTIME//[.,]/} (its radix character follows the locale, hence [.,]).

# ---------------------------------------------------------------- venv
req="$BENCH_DIR/requirements.txt"
req_sum=$(sha256sum "$req" | cut -d' ' -f1)
if [[ ! -x $VENV/bin/python ]]; then
    log "creating venv $VENV"
    "$PYTHON" -m venv "$VENV"
fi
if [[ $(cat "$VENV/.requirements.sha256" 2>/dev/null || true) != "$req_sum" ]]; then
    log "installing $(grep -v '^#' "$req" | tr '\n' ' ')into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
    printf '%s\n' "$req_sum" >"$VENV/.requirements.sha256"
fi
VPY="$VENV/bin/python"

# ---------------------------------------------------------------- agent binary
if [[ -z ${AGENT_BIN:-} ]]; then
    log "cargo build --release"
    (cd "$REPO_DIR" && cargo build --release) >&2
    AGENT_BIN="$REPO_DIR/target/release/unamentis-agent"
fi
[[ -x $AGENT_BIN ]] || die "agent binary '$AGENT_BIN' is missing or not executable"

# ---------------------------------------------------------------- housekeeping
work=$(mktemp -d "${TMPDIR:-/tmp}/unamentis-overhead.XXXXXX")
sink_pid=""
agent_pid=""

# Is $1 a live (non-zombie) process?
alive() {
    local st
    [[ -n $1 ]] || return 1
    read -r st 2>/dev/null <"/proc/$1/stat" || return 1
    st=${st##*) }
    [[ ${st:0:1} != Z ]]
}

# Wait up to $2 seconds for child $1 to exit, then SIGKILL it; reap it and put
# its exit status in REAP_RC.
REAP_RC=""
reap() {
    local pid=$1 deadline rc=0
    deadline=$((${EPOCHREALTIME//[.,]/} + $2 * 1000000))
    while alive "$pid"; do
        if ((${EPOCHREALTIME//[.,]/} >= deadline)); then
            log "pid $pid still running ${2}s after SIGTERM: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.05
    done
    wait "$pid" 2>/dev/null || rc=$?
    REAP_RC=$rc
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $agent_pid ]] && alive "$agent_pid"; then
        kill -TERM "$agent_pid" 2>/dev/null || true
        reap "$agent_pid" 5
    fi
    if [[ -n $sink_pid ]] && alive "$sink_pid"; then
        kill -TERM "$sink_pid" 2>/dev/null || true
        reap "$sink_pid" 5
    fi
    if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
result_json="$RESULTS_DIR/overhead-$stamp.json"
exports_file="$RESULTS_DIR/overhead-$stamp.exports.jsonl"
agent_log="$RESULTS_DIR/overhead-$stamp.agent.log"
sink_log="$RESULTS_DIR/overhead-$stamp.sink.log"
samples="$work/samples.tsv"
read -r loadavg_start _ </proc/loadavg

# ---------------------------------------------------------------- sink
"$VPY" "$BENCH_DIR/otlp_sink.py" --port 0 --out "$exports_file" \
    --port-file "$work/port" >"$sink_log" 2>&1 &
sink_pid=$!
for _ in $(seq 100); do
    [[ -s $work/port ]] && break
    alive "$sink_pid" || { cat "$sink_log" >&2; die "the sink exited"; }
    sleep 0.1
done
[[ -s $work/port ]] || die "the sink did not report its port within 10 s"
port=$(<"$work/port")
log "sink on 127.0.0.1:$port (pid $sink_pid)"

# ---------------------------------------------------------------- agent
# The subshell takes the time and then execs the agent, so $! is the agent's
# own pid and the start time is taken microseconds before its exec.
(
    export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$port"
    export UNAMENTIS_AGENT_INTERVAL="$INTERVAL"
    t0=$EPOCHREALTIME
    printf '%s\n' "$t0" >"$work/start"
    exec "$AGENT_BIN" run
) >"$agent_log" 2>&1 &
agent_pid=$!
until [[ -s $work/start ]]; do sleep 0.01; done
start=$(<"$work/start")
start_us=${start//[.,]/}
end_us=$((start_us + DURATION * 1000000))
clk_tck=$(getconf CLK_TCK)
log "agent pid $agent_pid: $AGENT_BIN run (INTERVAL=$INTERVAL, DURATION=${DURATION}s)"

# ---------------------------------------------------------------- sampling
# One row per sample, all read with bash builtins (no fork):
# t_us rss_kib hwm_kib threads vol_main nonvol_main vol_all nonvol_all cpu_ticks cpu_ns_all
# *_all: summed over every thread ever seen (the last value read for each).
# cpu_ns_all: nanosecond CPU time from each thread's schedstat (finer than
# the clock ticks of cpu_ticks, but blind to threads that exit unsampled).
declare -A tvol=() tnvol=() tcpu=()
printf 't_us\trss_kib\thwm_kib\tthreads\tvol_main\tnonvol_main\tvol_all\tnonvol_all\tcpu_ticks\tcpu_ns_all\n' >"$samples"

sample() {
    local t key val _rest rss="" hwm="" thr="" vol="" nvol="" tdir tid st f sv=0 snv=0 sns=0 ns
    t=${EPOCHREALTIME//[.,]/}
    alive "$agent_pid" || return 1
    while read -r key val _rest; do
        case $key in
        VmRSS:) rss=$val ;;
        VmHWM:) hwm=$val ;;
        Threads:) thr=$val ;;
        voluntary_ctxt_switches:) vol=$val ;;
        nonvoluntary_ctxt_switches:) nvol=$val ;;
        esac
    done 2>/dev/null <"/proc/$agent_pid/status" || return 1
    [[ -n $rss && -n $thr ]] || return 1
    for tdir in "/proc/$agent_pid/task/"*; do
        tid=${tdir##*/}
        while read -r key val _rest; do
            case $key in
            voluntary_ctxt_switches:) tvol[$tid]=$val ;;
            nonvoluntary_ctxt_switches:) tnvol[$tid]=$val ;;
            esac
        done 2>/dev/null <"$tdir/status" || true
        if read -r ns _rest 2>/dev/null <"$tdir/schedstat"; then tcpu[$tid]=$ns; fi
    done
    for tid in "${!tvol[@]}"; do sv=$((sv + tvol[$tid])); done
    for tid in "${!tnvol[@]}"; do snv=$((snv + tnvol[$tid])); done
    for tid in "${!tcpu[@]}"; do sns=$((sns + tcpu[$tid])); done
    # /proc/<pid>/stat: utime and stime (fields 14, 15) cover every thread of
    # the process, exited ones included. Field 2 may hold spaces: cut at ") ".
    read -r st 2>/dev/null <"/proc/$agent_pid/stat" || return 1
    read -r -a f <<<"${st##*) }"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$rss" "$hwm" "$thr" \
        "$vol" "$nvol" "$sv" "$snv" "$((f[11] + f[12]))" "$sns" >>"$samples"
}

# A FIFO nobody writes to: `read -t` on it is a sleep without a fork.
mkfifo "$work/nap"
exec {nap_fd}<>"$work/nap"
agent_died=0
k=0
while :; do
    sample || { agent_died=1; break; }
    k=$((k + 1))
    next=$((start_us + k * 1000000))
    ((next > end_us)) && next=$end_us
    now=${EPOCHREALTIME//[.,]/}
    if ((next > now)); then
        nap=$((next - now))
        printf -v nap '%d.%06d' $((nap / 1000000)) $((nap % 1000000))
        # Not sleep(1): a fork a second would move the kernel's last pid,
        # which the agent watches to skip listing /proc on a quiet host.
        read -r -t "$nap" -u "$nap_fd" _ || true
    fi
    ((next >= end_us)) && break
done

# The final sample (VmHWM, threads, context switches and CPU time) is taken
# while the agent still runs, before SIGTERM, so shutdown work is not counted.
if ((agent_died == 0)); then
    sample || agent_died=1
fi
term_us=${EPOCHREALTIME//[.,]/}
if ((agent_died)); then
    log "WARNING: the agent exited before the end of the run; see $agent_log"
    tail -n 20 "$agent_log" >&2 || true
fi

kill -TERM "$agent_pid" 2>/dev/null || true
reap "$agent_pid" "$STOP_TIMEOUT"
agent_rc=$REAP_RC
exited_us=${EPOCHREALTIME//[.,]/}
agent_pid=""
kill -TERM "$sink_pid" 2>/dev/null || true
reap "$sink_pid" 10
sink_rc=$REAP_RC
sink_pid=""
read -r loadavg_end _ </proc/loadavg
[[ $sink_rc == 0 ]] || log "WARNING: the sink exited $sink_rc; see $sink_log"

# ---------------------------------------------------------------- report
nproc=$(nproc)
git_rev=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo none)
export START_US=$start_us TERM_US=$term_us EXITED_US=$exited_us CLK_TCK=$clk_tck \
    DURATION INTERVAL WARMUP_S AGENT_BIN AGENT_RC=$agent_rc AGENT_DIED=$agent_died \
    SINK_RC=$sink_rc SAMPLES=$samples EXPORTS_FILE=$exports_file RESULT_JSON=$result_json \
    AGENT_LOG=$agent_log SINK_LOG=$sink_log STAMP=$stamp STRICT \
    LOADAVG_START=$loadavg_start LOADAVG_END=$loadavg_end NPROC=$nproc GIT_REV=$git_rev \
    BUDGET_CPU_S_PER_MIN BUDGET_RSS_KIB BUDGET_THREADS BUDGET_FIRST_EXPORT_S BUDGET_BYTES_PER_EXPORT

report_rc=0
"$VPY" - <<'PY' || report_rc=$?
import csv, json, os, sys

E = os.environ
start = int(E["START_US"]) / 1e6
term = int(E["TERM_US"]) / 1e6
exited = int(E["EXITED_US"]) / 1e6
clk = int(E["CLK_TCK"])

with open(E["SAMPLES"]) as f:
    rows = [{k: int(v) for k, v in r.items()} for r in csv.DictReader(f, delimiter="\t")]
if not rows:
    sys.exit("no samples: the agent was gone before the first reading")
last = rows[-1]
t_end = last["t_us"] / 1e6
duration = t_end - start

cpu = last["cpu_ticks"] / clk
cpu_per_min = cpu / duration * 60 if duration > 0 else None
cpu_ns = last["cpu_ns_all"] / 1e9
cpu_ns_per_min = cpu_ns / duration * 60 if duration > 0 else None
warm = float(E["WARMUP_S"])
cpu_warm = cpu_ns_warm = None
wrows = [r for r in rows if r["t_us"] / 1e6 - start >= warm]
if wrows and t_end - wrows[0]["t_us"] / 1e6 >= 5:
    w = wrows[0]
    cpu_warm = (last["cpu_ticks"] - w["cpu_ticks"]) / clk / (t_end - w["t_us"] / 1e6) * 60
    # Steady state: start-up (loading, the first full /proc scan, the
    # first export) is a one-time cost that a 60 s run weighs heavily.
    cpu_ns_warm = (last["cpu_ns_all"] - w["cpu_ns_all"]) / 1e9 / (t_end - w["t_us"] / 1e6) * 60

exports_all, summary = [], None
try:
    with open(E["EXPORTS_FILE"]) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("summary"):
                summary = rec
            else:
                exports_all.append(rec)
except FileNotFoundError:
    pass
# Exports inside the measured window (the flush triggered by SIGTERM comes later).
exports = [e for e in exports_all if e["t"] <= term]
flush = [e for e in exports_all if e["t"] > term]
n = len(exports)
b = [e["bytes_total_so_far"] for e in exports]
bytes_mean_all = b[-1] / n if n else None
bytes_steady = (b[-1] - b[0]) / (n - 1) if n >= 2 else None
deltas = [y - x for x, y in zip(b, b[1:])]
first_latency = exports[0]["t"] - start if n else None
interval_s = None
try:
    iv = E["INTERVAL"].strip()
    for suf, mul in (("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)):
        if iv.endswith(suf):
            interval_s = float(iv[: -len(suf)]) * mul
            break
except ValueError:
    pass

ctx_all = last["vol_all"] + last["nonvol_all"]
ctx_main = last["vol_main"] + last["nonvol_main"]
max_threads = max(r["threads"] for r in rows)
peak_rss = last["hwm_kib"]

def verdict(value, limit, strict_less=False):
    if value is None:
        return "FAIL"
    ok = value < limit if strict_less else value <= limit
    return "PASS" if ok else "FAIL"

bpe_basis = "steady_state" if bytes_steady is not None else "mean_all"
bpe = bytes_steady if bytes_steady is not None else bytes_mean_all
budgets = {
    # Clock ticks (10 ms) round small figures down to 0, schedstat misses
    # threads that exited unsampled: judge on the larger of the two.
    "cpu_seconds_per_minute": {"value": max(x for x in (cpu_per_min, cpu_ns_per_min) if x is not None), "limit": float(E["BUDGET_CPU_S_PER_MIN"]), "rule": "<=", "basis": "max(ticks, schedstat)"},
    "peak_rss_kib": {"value": peak_rss, "limit": int(E["BUDGET_RSS_KIB"]), "rule": "<="},
    "max_threads": {"value": max_threads, "limit": int(E["BUDGET_THREADS"]), "rule": "<="},
    "first_export_latency_s": {"value": first_latency, "limit": float(E["BUDGET_FIRST_EXPORT_S"]), "rule": "<"},
    "wire_bytes_per_export": {"value": bpe, "limit": int(E["BUDGET_BYTES_PER_EXPORT"]), "rule": "<=", "basis": bpe_basis},
}
for v in budgets.values():
    v["verdict"] = verdict(v["value"], v["limit"], v["rule"] == "<")
    if isinstance(v["value"], float):
        v["value"] = round(v["value"], 4)
all_pass = all(v["verdict"] == "PASS" for v in budgets.values())

def rnd(x, nd):
    return None if x is None else round(x, nd)

agent_rc = int(E["AGENT_RC"]) if E["AGENT_RC"] not in ("", None) else None
le = exports[-1] if n else {}
result = {
    "timestamp": E["STAMP"],
    "agent_bin": E["AGENT_BIN"],
    "git_rev": E["GIT_REV"],
    "interval": E["INTERVAL"],
    "interval_s": interval_s,
    "duration_requested_s": int(E["DURATION"]),
    "duration_s": rnd(duration, 3),
    "cpu_seconds": rnd(cpu, 3),
    "cpu_seconds_per_minute": rnd(cpu_per_min, 4),
    "cpu_seconds_per_minute_after_warmup": rnd(cpu_warm, 4),
    "cpu_seconds_per_minute_after_warmup_schedstat": rnd(cpu_ns_warm, 6),
    "cpu_seconds_schedstat": rnd(cpu_ns, 6),
    "cpu_seconds_per_minute_schedstat": rnd(cpu_ns_per_min, 6),
    "warmup_s": warm,
    "clk_tck": clk,
    "peak_rss_kib": peak_rss,
    "max_sampled_rss_kib": max(r["rss_kib"] for r in rows),
    "final_rss_kib": last["rss_kib"],
    "max_threads": max_threads,
    "ctx_switches_per_s": rnd(ctx_all / duration, 3) if duration > 0 else None,
    "ctx_switches": {"voluntary": last["vol_all"], "nonvoluntary": last["nonvol_all"],
                     "main_thread_voluntary": last["vol_main"],
                     "main_thread_nonvoluntary": last["nonvol_main"],
                     "main_thread_per_s": rnd(ctx_main / duration, 3) if duration > 0 else None},
    "samples": len(rows),
    "exports": n,
    "exports_expected_max": (1 + int(duration // interval_s)) if interval_s else None,
    "first_export_latency_s": rnd(first_latency, 4),
    "wire_bytes_total": b[-1] if n else 0,
    "wire_bytes_first_export": b[0] if n else None,
    "wire_bytes_per_export": {"mean_all": rnd(bytes_mean_all, 1),
                              "steady_state": rnd(bytes_steady, 1),
                              "steady_state_min": min(deltas) if deltas else None,
                              "steady_state_max": max(deltas) if deltas else None},
    "export_times_s": [rnd(e["t"] - start, 3) for e in exports],
    "last_export": {k: le.get(k) for k in ("data_points", "metrics", "payload_bytes",
                                           "grpc_compressed", "grpc_message_bytes", "resource")},
    "gzip": {"compressed_messages": (summary or {}).get("grpc_messages_compressed"),
             "uncompressed_messages": (summary or {}).get("grpc_messages_uncompressed")},
    "connections": (summary or {}).get("connections"),
    "shutdown": {"agent_exit_code": agent_rc,
                 "agent_exited_early": E["AGENT_DIED"] == "1",
                 "sigterm_to_exit_s": rnd(exited - term, 3),
                 "flush_exports_after_sigterm": len(flush)},
    "sink_exit_code": int(E["SINK_RC"]) if E["SINK_RC"] else None,
    "machine": {"nproc": int(E["NPROC"]), "loadavg_1m_start": float(E["LOADAVG_START"]),
                "loadavg_1m_end": float(E["LOADAVG_END"])},
    "budgets": budgets,
    "all_budgets_pass": all_pass,
    "files": {"exports": E["EXPORTS_FILE"], "agent_log": E["AGENT_LOG"], "sink_log": E["SINK_LOG"]},
}
with open(E["RESULT_JSON"], "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")

def fmt(x, nd=3):
    if x is None:
        return "n/a"
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)

print(f"unamentis-agent overhead: {E['AGENT_BIN']} run, interval {E['INTERVAL']}, "
      f"{duration:.1f} s measured, load {E['LOADAVG_START']} -> {E['LOADAVG_END']} on {E['NPROC']} cpus")
print(f"{'figure':<38} {'value':>12}  {'budget':>10}  verdict")
rows_out = [
    ("cpu_seconds_per_minute", fmt(cpu_per_min, 4), "cpu_seconds_per_minute"),
    ("  cpu_seconds (total)", fmt(cpu, 2), None),
    ("  cpu_s/min after warm-up", fmt(cpu_warm, 4), None),
    ("  cpu_s/min after warm-up, schedstat", fmt(cpu_ns_warm, 5), None),
    ("  cpu_s/min, schedstat (ns)", fmt(cpu_ns_per_min, 5), None),
    ("peak_rss_kib (VmHWM)", fmt(peak_rss), "peak_rss_kib"),
    ("max_threads", fmt(max_threads), "max_threads"),
    ("first_export_latency_s", fmt(first_latency, 3), "first_export_latency_s"),
    (f"wire_bytes_per_export ({bpe_basis})", fmt(bpe, 1), "wire_bytes_per_export"),
    ("  mean over all exports", fmt(bytes_mean_all, 1), None),
    ("  first export (incl. setup)", fmt(b[0] if n else None), None),
    ("ctx_switches_per_s", fmt(result["ctx_switches_per_s"], 2), None),
    ("exports (at most expected)", f"{n} ({fmt(result['exports_expected_max'])})", None),
    ("gzip messages / plain", f"{fmt(result['gzip']['compressed_messages'])}/{fmt(result['gzip']['uncompressed_messages'])}", None),
    ("SIGTERM: exit code, flush exports", f"{fmt(agent_rc)}, {len(flush)}", None),
]
for label, val, key in rows_out:
    if key:
        bud = budgets[key]
        print(f"{label:<38} {val:>12}  {bud['rule'] + ' ' + str(bud['limit']):>10}  {bud['verdict']}")
    else:
        print(f"{label:<38} {val:>12}")
print(f"result: {E['RESULT_JSON']}")
print("all budgets PASS" if all_pass else "some budgets FAIL")
code = 0
if E["STRICT"] == "1" and (not all_pass or agent_rc != 0):
    code = 2
sys.exit(code)
PY

if ((agent_died)); then
    die "the agent exited before the end of the run (exit status $agent_rc); figures are partial"
fi
if [[ $agent_rc != 0 ]]; then
    log "WARNING: the agent exited $agent_rc after SIGTERM (expected 0)"
fi
exit "$report_rc"
