#!/usr/bin/env bash
# Issue #19 item 4: does a spool acknowledgement wait for other programs' writes?
#
#   bash bench/ack_under_writer.sh BINARY [WRITE_MIB]
#
# portrelay in spool mode (its spool in a directory on the file system of $BENCH_TMP, default
# /var/tmp) relays to smtp-sink on 127.0.0.1. One client sends BENCH_ACK_MSGS (100) 4 KiB
# messages one after another and times each dot -> 250: first on a quiet file system, then
# while `dd` writes WRITE_MIB (3072) MiB of zeroes into a file on the same file system
# without syncing it (a backup, a database, a log rotation on the same VM), which leaves
# gigabytes of dirty pages for the kernel to write back. Prints median, p90 and max of both
# runs and the ratio of the p90s (target: <= 3). The writer's file is removed at the end;
# each run is bounded (BENCH_ACK_DEADLINE seconds, default 120). Loopback only.
set -euo pipefail

if [ $# -lt 1 ] || [ ! -x "$1" ]; then
  echo "usage: bash bench/ack_under_writer.sh BINARY [WRITE_MIB]" >&2
  exit 2
fi
BINARY=$(realpath "$1")
WRITE_MIB=${2:-3072}
MSGS=${BENCH_ACK_MSGS:-100}
DEADLINE=${BENCH_ACK_DEADLINE:-120}
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
SMTP_SOURCE=/usr/sbin/smtp-source
SMTP_SINK=/usr/sbin/smtp-sink
command -v "$SMTP_SINK" >/dev/null || { echo "ack_under_writer: needs $SMTP_SINK (postfix)" >&2; exit 2; }

WORK=$(mktemp -d "${BENCH_TMP:-/var/tmp}/portrelay-ack.XXXXXX")
RESULTS=$WORK/results.tsv
PIDS=()
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
stop_on_exit

avail_mib=$(df -Pm "$WORK" | awk 'NR == 2 { print $4 }')
if [ "$avail_mib" -lt $((WRITE_MIB + 1024)) ]; then
  echo "ack_under_writer: $WORK has ${avail_mib} MiB free; needs $((WRITE_MIB + 1024))" >&2
  exit 2
fi

sink_port=$(free_port)
start_smtp_sink sink "$sink_port"
relay_port=$(free_port)
passthrough_config "$BINARY" "$WORK/relay.toml" "$relay_port" "$sink_port"
sed -i 's/^mode = "passthrough"/mode = "spool"/' "$WORK/relay.toml"
printf '[spool]\ndir = "%s/spool"\n' "$WORK" >>"$WORK/relay.toml"
start_bg relay "$BINARY" run -c "$WORK/relay.toml"
wait_port "$relay_port" 60

measure() {  # LABEL
  local out
  out=$("$PY" "$BENCH_DIR/ack_under_writer.py" --port "$relay_port" --count "$MSGS" \
    --deadline "$DEADLINE")
  [[ "$out" == OK* ]] || { echo "ack_under_writer: $1: $out" >&2; exit 1; }
  log "$1: $out"
  echo "$1 $out" >>"$RESULTS"
}

"$PY" "$BENCH_DIR/ack_under_writer.py" --port "$relay_port" --count 20 >/dev/null  # warm-up
sync
measure quiet
log "writer: dd of ${WRITE_MIB} MiB to $WORK/writer.bin (no sync)"
dd if=/dev/zero of="$WORK/writer.bin" bs=1M count="$WRITE_MIB" status=none &
writer=$!
PIDS+=("$writer")
sleep 2  # let the dirty pages pile up
measure writer
kill "$writer" 2>/dev/null || true
wait "$writer" 2>/dev/null || true
rm -f "$WORK/writer.bin"

awk '
  { p90[$1] = $4; line[$1] = $0 }
  END {
    printf "%-7s %10s %10s %10s %6s\n", "run", "median_ms", "p90_ms", "max_ms", "msgs"
    for (run in line) { split(line[run], f, " "); printf "%-7s %10s %10s %10s %6s\n", f[1], f[3], f[4], f[5], f[6] }
    if (p90["quiet"] > 0) printf "p90 with the writer / quiet: %.2f (target <= 3)\n", p90["writer"] / p90["quiet"]
  }' "$RESULTS"
