#!/usr/bin/env bash
# Instruction counts of `unamentis-agent run` over a fixed number of exports,
# under valgrind's callgrind, against a local OTLP sink; see bench/README.md.
#
# Instruction counts do not move with the machine's load the way CPU time
# does, so two builds can be compared on a busy machine. What the agent
# collects still depends on the host (process count, forks between cycles),
# so compare runs made one after the other, and look at the export
# functions' own counts as well as the total.
#
# Environment:
#   AGENT_BIN     binary to run (default: target-rel/release/unamentis-agent,
#                 built with line tables when missing)
#   PROTOCOL      grpc | http (default grpc)
#   COMPRESSION   gzip | none (default gzip)
#   CYCLES        exports to wait for before SIGTERM (default 40)
#   INTERVAL      UNAMENTIS_AGENT_INTERVAL (default 2s: a cycle under
#                 callgrind is ~50 times slower than native)
#   TOP           functions listed (default 25)
#   FOCUS         extended regex of the functions whose inclusive counts are
#                 listed apart (default: the export path's gzip and protobuf)
#   LABEL         name of the run in the result files (default PROTOCOL-COMPRESSION)
#   RESULTS_DIR   default bench/results
#   VENV, PYTHON  the gRPC sink's venv (bench/requirements.txt), as overhead.sh
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
PROTOCOL=${PROTOCOL:-grpc}
COMPRESSION=${COMPRESSION:-gzip}
CYCLES=${CYCLES:-40}
INTERVAL=${INTERVAL:-2s}
TOP=${TOP:-25}
FOCUS=${FOCUS:-'zlib_rs::deflate::deflate |client::Gzip::compress |otlp::Encoder::encode |Message>::encode_to_vec |CycleSampler::sample_now '}
LABEL=${LABEL:-$PROTOCOL-$COMPRESSION}
RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}
VENV=${VENV:-$BENCH_DIR/.venv}
PYTHON=${PYTHON:-python3}

# The summary of one run: bytes per export from the sink's record, then the
# profile's total and top functions. Needs $exports, $profile, $LABEL,
# $PROTOCOL, $COMPRESSION. `bash bench/callgrind.sh report RESULT_PREFIX`
# prints it again for an earlier run (RESULT_PREFIX: the path without
# .out; set PROTOCOL as for that run).
report() {
    echo "# $LABEL: ${AGENT_BIN:-?}, $PROTOCOL, $COMPRESSION, interval $INTERVAL"
    "$PYTHON" - "$exports" "$PROTOCOL" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
recs = [r for r in recs if "payload_bytes" in r]
wire_key = "grpc_message_bytes" if sys.argv[2] == "grpc" else "body_bytes"
n = len(recs)
payload = sum(r["payload_bytes"] for r in recs)
wire = sum(r[wire_key] or 0 for r in recs)
print(f"exports {n} (the shutdown flush included)")
print(f"protobuf bytes per export (mean) {payload / n:.0f}")
print(f"sent message bytes per export (mean, {wire_key}) {wire / n:.0f}")
print(f"sent / protobuf {wire / payload:.3f}")
EOF
    local excl incl
    excl=$(callgrind_annotate "$profile" 2>/dev/null)
    incl=$(callgrind_annotate --inclusive=yes "$profile" 2>/dev/null)
    echo
    grep -m1 'PROGRAM TOTALS' <<<"$excl"
    # The function table: between the dashed lines after "file:function".
    table() {
        awk -v n="$1" '/file:function/ {t = 1; next}
            /^-+$/ && t {t++; if (t > 2) exit; next}
            t == 2 && NF && n-- > 0'
    }
    echo
    echo "## inclusive, top $TOP"
    table "$TOP" <<<"$incl"
    echo
    echo "## exclusive, top $TOP"
    table "$TOP" <<<"$excl"
    echo
    echo "## inclusive, functions matching FOCUS"
    table 1000000 <<<"$incl" | grep -E "$FOCUS" | head -n "$TOP" || true
}

log() { printf 'callgrind.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

if [[ ${1:-} == report ]]; then
    [[ -n ${2:-} ]] || die "usage: bench/callgrind.sh report RESULT_PREFIX"
    exports=$2.exports.jsonl profile=$2.out
    report
    exit 0
fi

case $PROTOCOL in
grpc) otel_protocol=grpc ;;
http) otel_protocol=http/protobuf ;;
*) die "PROTOCOL must be grpc or http, not '$PROTOCOL'" ;;
esac
[[ $COMPRESSION == gzip || $COMPRESSION == none ]] || die "COMPRESSION must be gzip or none"
command -v valgrind >/dev/null || die "valgrind is missing (apt-get install -y valgrind)"

if [[ -z ${AGENT_BIN:-} ]]; then
    AGENT_BIN=$REPO_DIR/target-rel/release/unamentis-agent
    # Line tables name the functions and lines; the release profile strips
    # symbols, so both are overridden. A separate target dir keeps the
    # stripped release build apart.
    log "cargo build --release (line tables, not stripped) into target-rel/"
    (cd "$REPO_DIR" && CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
        CARGO_PROFILE_RELEASE_STRIP=none \
        cargo build --release --target-dir "$REPO_DIR/target-rel" --bin unamentis-agent) >&2
fi
[[ -x $AGENT_BIN ]] || die "agent binary '$AGENT_BIN' is missing"

if [[ $PROTOCOL == grpc ]]; then
    if [[ ! -x $VENV/bin/python ]]; then
        log "creating venv $VENV"
        "$PYTHON" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            -r "$BENCH_DIR/requirements.txt" >&2
    fi
    sink=("$VENV/bin/python" "$BENCH_DIR/otlp_sink.py")
else
    sink=("$PYTHON" "$BENCH_DIR/otlp_http_sink.py")
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/unamentis-callgrind.XXXXXX")
sink_pid=""
agent_pid=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n $agent_pid ]] && kill -TERM "$agent_pid" 2>/dev/null || true
    [[ -n $sink_pid ]] && kill -TERM "$sink_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
base="$RESULTS_DIR/callgrind-$LABEL-$stamp"
exports="$base.exports.jsonl"
profile="$base.out"
report="$base.txt"

"${sink[@]}" --port 0 --out "$exports" --port-file "$work/port" >"$base.sink.log" 2>&1 &
sink_pid=$!
for _ in $(seq 200); do
    [[ -s $work/port ]] && break
    sleep 0.05
done
[[ -s $work/port ]] || die "the sink did not start (see $base.sink.log)"
port=$(<"$work/port")
log "sink on 127.0.0.1:$port; agent under callgrind until $CYCLES exports"

OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$port \
    OTEL_EXPORTER_OTLP_PROTOCOL=$otel_protocol \
    OTEL_EXPORTER_OTLP_COMPRESSION=$COMPRESSION \
    UNAMENTIS_AGENT_INTERVAL=$INTERVAL \
    valgrind --tool=callgrind --callgrind-out-file="$profile" \
    "$AGENT_BIN" run >"$base.agent.log" 2>&1 &
agent_pid=$!

exports_so_far() {
    local n
    n=$(grep -c '"payload_bytes"' "$exports" 2>/dev/null) || true
    echo "${n:-0}"
}
while (($(exports_so_far) < CYCLES)); do
    kill -0 "$agent_pid" 2>/dev/null || die "the agent exited early (see $base.agent.log)"
    sleep 0.2
done
kill -TERM "$agent_pid"
wait "$agent_pid" || log "agent exit status $?"
agent_pid=""
kill -TERM "$sink_pid" 2>/dev/null || true
wait "$sink_pid" 2>/dev/null || true
sink_pid=""

report >"$report"
cat "$report"
log "profile $profile; report $report"
