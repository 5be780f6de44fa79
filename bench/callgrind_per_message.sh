#!/usr/bin/env bash
# Instructions per relayed message, counted by valgrind's callgrind, on 127.0.0.1 only:
#
#   bash bench/callgrind_per_message.sh BINARY OUT_FILE [MESSAGES [SESSIONS]]
#
# smtp-source -> portrelay under callgrind (passthrough, the config of compare_builds.sh)
# -> smtp-sink; 4 KiB messages, a new session per message. Collection is off during start-up
# and a warm-up of 50 messages (config, OpenSSL init, first upstream connections), on for
# MESSAGES (default 300) messages at SESSIONS (default 20) (BENCH_MODE=spool: mode = "spool");
# (BENCH_CONFIG_EXTRA: more config lines, below) then callgrind dumps the counts
# to OUT_FILE (read it with callgrind_annotate). Prints "IR_PER_MESSAGE <n>".
# Unlike msgs/s and CPU time, the count does not depend on what else the machine is doing,
# so two builds can be compared to well under 1%.
set -euo pipefail

if [ $# -lt 2 ] || [ ! -x "$1" ]; then
  echo "usage: bash bench/callgrind_per_message.sh BINARY OUT_FILE [MESSAGES [SESSIONS]]" >&2
  exit 2
fi
BINARY=$(realpath "$1")
OUT=$(realpath -m "$2")
MSGS=${3:-300}
SESSIONS=${4:-20}
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
SMTP_SOURCE=/usr/sbin/smtp-source
SMTP_SINK=/usr/sbin/smtp-sink
RUN_TIMEOUT=300  # seconds, per load (callgrind runs the relay about 50 times slower)
for tool in "$PY" "$SMTP_SOURCE" "$SMTP_SINK" valgrind callgrind_control; do
  command -v "$tool" >/dev/null || { echo "callgrind_per_message: missing $tool" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/portrelay-callgrind.XXXXXX)
RESULTS=$WORK/results.tsv
PIDS=()

# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
stop_on_exit

run_load() {  # COUNT SESSIONS PORT
  local out
  out=$("$PY" "$BENCH_DIR/throughput.py" --smtp-source "$SMTP_SOURCE" --port "$3" \
    --sink-output "$WORK/sink.out" --count "$1" --sessions "$2" --size 4096 \
    --timeout "$RUN_TIMEOUT")
  [[ "$out" == OK* ]] || { echo "callgrind_per_message: load failed: $out" >&2; return 1; }
  log "  $1 messages, $2 sessions: $out"
}

sink_port=$(free_port)
start_smtp_sink sink "$sink_port"
relay_port=$(free_port)
passthrough_config "$BINARY" "$WORK/relay.toml" "$relay_port" "$sink_port"
# BENCH_MODE=spool: the same relay with mode = "spool" (a message counts once it reached the
# sink, so the figure covers store, delivery and removal).
if [ "${BENCH_MODE:-passthrough}" = spool ]; then
  sed -i 's/^mode = "passthrough"/mode = "spool"/' "$WORK/relay.toml"
  printf '[spool]\ndir = "%s/spool"\n' "$WORK" >>"$WORK/relay.toml"
fi
# BENCH_CONFIG_EXTRA: lines appended to the config, whose last table is the [[upstream]]:
# keys first go into it ('sender = "a@example.com"': a per-upstream identity), then tables
# ('[rewrite]' ...: the acceptance rewrite).
if [ -n "${BENCH_CONFIG_EXTRA:-}" ]; then
  printf '%s\n' "$BENCH_CONFIG_EXTRA" >>"$WORK/relay.toml"
fi
start_bg relay valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT" \
  "$BINARY" run -c "$WORK/relay.toml" --shutdown-grace "$(shutdown_grace_arg "$BINARY" 2)"
relay_pid=$LAST_PID
wait_port "$relay_port" 120
log "callgrind: $BINARY, warm-up (not counted)"
run_load 50 "$SESSIONS" "$relay_port"
callgrind_control -i on "$relay_pid" >/dev/null
log "callgrind: counting $MSGS messages"
run_load "$MSGS" "$SESSIONS" "$relay_port"
# Dump now, so that the shutdown is not counted (the dump goes to OUT.1; the one callgrind
# writes at exit, with the shutdown only, is dropped).
callgrind_control -d "$relay_pid" >/dev/null
stop_pid "$relay_pid"
mv "$OUT.1" "$OUT"
total=$(awk '/^(summary|totals):/ { print $2; exit }' "$OUT")
echo "IR_PER_MESSAGE $((total / MSGS)) (total $total over $MSGS messages)"
