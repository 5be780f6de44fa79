#!/usr/bin/env bash
# Two portrelay builds side by side, on 127.0.0.1 only:
#
#   bash bench/compare_builds.sh OLD_BINARY NEW_BINARY
#
# smtp-source -> {old portrelay | new portrelay} -> one shared smtp-sink; passthrough mode,
# 4 KiB messages, a new SMTP session per message, 20 concurrent sessions (the figure that
# decides) and 1 session (secondary). Both relays run for the whole comparison with the same
# config; the loads alternate between them, one at a time, and the order is swapped every
# round (old,new / new,old / ...). On a shared machine, background load then falls on both
# builds alike, which is what makes the comparison fair.
#
# Per build it prints the median and best msgs/s, the relay's CPU ms per message (utime +
# stime from /proc/PID/stat, as bench/throughput.py --cpu-pid reads it, and the same from
# /proc/PID/schedstat in ns, which is not rounded to 10 ms ticks), the user/system split of
# that CPU time (ticks summed over all runs), and its peak RSS; then the ratios new/old, each
# with PASS/MISS against a budget of COMPARE_BUDGET (5%) worse. Last, the instructions per
# message of each build under callgrind (bench/callgrind_per_message.sh): unlike the timed
# figures, these do not move with the machine's load.
#
# Bounded: COMPARE_ROUNDS rounds (default 11, at least 5), each load at most RUN_TIMEOUT s, no
# new round after COMPARE_MAX_SECONDS (default 1500). Every process started here is stopped
# on exit. Knobs: COMPARE_ROUNDS, COMPARE_MSGS_20 (4000), COMPARE_MSGS_1 (2000),
# COMPARE_MAX_SECONDS, COMPARE_BUDGET (0.05), COMPARE_CALLGRIND=0 (skip the instruction
# counts), COMPARE_CALLGRIND_RUNS (2), BENCH_KEEP=1 (keep the work directory),
# BENCH_RESULTS_COPY=file (save the raw TSV).
set -euo pipefail

if [ $# -ne 2 ] || [ ! -x "$1" ] || [ ! -x "$2" ]; then
  echo "usage: bash bench/compare_builds.sh OLD_BINARY NEW_BINARY (both executable)" >&2
  exit 2
fi
declare -A BINARY=([old]=$(realpath "$1") [new]=$(realpath "$2"))
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
SMTP_SOURCE=/usr/sbin/smtp-source
SMTP_SINK=/usr/sbin/smtp-sink
ROUNDS=${COMPARE_ROUNDS:-11}
MSGS_20=${COMPARE_MSGS_20:-4000}
MSGS_1=${COMPARE_MSGS_1:-2000}
MAX_SECONDS=${COMPARE_MAX_SECONDS:-1500}
BUDGET=${COMPARE_BUDGET:-0.05}
SIZE=4096
RUN_TIMEOUT=120  # seconds, per single load
WARMUP_MSGS=500  # per build before the first round; not recorded

if [ "$ROUNDS" -lt 5 ]; then
  echo "compare_builds: COMPARE_ROUNDS must be at least 5 (medians of fewer runs are noise here)" >&2
  exit 2
fi
for tool in "$PY" "$SMTP_SOURCE" "$SMTP_SINK"; do
  command -v "$tool" >/dev/null || { echo "compare_builds: missing $tool (Debian package postfix)" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/portrelay-compare.XXXXXX)
RESULTS=$WORK/results.tsv
: >"$RESULTS"
PIDS=()

cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "compare_builds: work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

# CPU time of PID in ns, from the scheduler's own account (first field of schedstat).
sched_ns() { cut -d' ' -f1 "/proc/$1/schedstat"; }
# "utime stime" of PID in clock ticks (fields 14 and 15 of /proc/PID/stat; the command name
# in field 2 has no spaces for portrelay).
user_sys_ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }

# start_relay LABEL PORT -> pid in LAST_PID
start_relay() {
  start_bg "relay-$1" "${BINARY[$1]}" run -c "$WORK/$1.toml" \
    --shutdown-grace "$(shutdown_grace_arg "${BINARY[$1]}" 2)"
  wait_port "$2" 10 || { echo "compare_builds: ${BINARY[$1]} did not start: $(tail -3 "$WORK/relay-$1.err")" >&2; return 1; }
}

# load LABEL SESSIONS COUNT ROUND: one smtp-source run through that build, recorded unless
# ROUND is "warmup".
load() {
  local label=$1 sessions=$2 count=$3 round=$4
  local pid=${RELAY_PID[$label]} port=${RELAY_PORT[$label]}
  local out status seconds rate cpu sched_before sched_after sched_cpu load1 ticks_before ticks_after
  load1=$(cut -d' ' -f1 /proc/loadavg)
  ticks_before=$(user_sys_ticks "$pid")
  sched_before=$(sched_ns "$pid")
  out=$("$PY" "$BENCH_DIR/throughput.py" --smtp-source "$SMTP_SOURCE" --port "$port" \
    --sink-output "$WORK/sink.out" --count "$count" --sessions "$sessions" --size "$SIZE" \
    --timeout "$RUN_TIMEOUT" --cpu-pid "$pid") || true
  sched_after=$(sched_ns "$pid")
  ticks_after=$(user_sys_ticks "$pid")
  read -r status seconds rate cpu <<<"$out"
  if [ "$status" != OK ]; then
    log "  round $round, $sessions sessions, $label: $out"
    [ "$round" = warmup ] || record fail "$label" "$sessions" "$round" "$out"
    return 0
  fi
  sched_cpu=$("$PY" -c "print(f'{($sched_after - $sched_before) / 1e6 / $count:.4f}')")
  log "  round $round, $sessions sessions, $label: $rate msgs/s, CPU $cpu ms/msg ($sched_cpu by schedstat), load $load1"
  local user_ticks sys_ticks
  read -r user_ticks sys_ticks <<<"$(paste -d' ' <(echo "$ticks_before") <(echo "$ticks_after") |
    awk '{ print $3 - $1, $4 - $2 }')"
  [ "$round" = warmup ] || record run "$label" "$sessions" "$round" "$seconds" "$rate" "$cpu" \
    "$sched_cpu" "$load1" "$count" "$user_ticks" "$sys_ticks"
}

# count_instructions: instructions per message of each build under callgrind
# (bench/callgrind_per_message.sh), COMPARE_CALLGRIND_RUNS (2) runs per build and session
# count. Skipped without valgrind (scripts/dev bench installs it) or with COMPARE_CALLGRIND=0.
count_instructions() {
  if [ "${COMPARE_CALLGRIND:-1}" = 0 ] || ! command -v valgrind >/dev/null; then
    record info callgrind "not measured (valgrind missing or COMPARE_CALLGRIND=0)"
    return 0
  fi
  local runs=${COMPARE_CALLGRIND_RUNS:-2} msgs=300 label sessions run out
  log "callgrind: $runs runs per build and session count, $msgs counted messages each"
  record info callgrind "$msgs messages x 4 KiB per run after a 50-message warm-up, $runs runs per build"
  for sessions in 20 1; do
    for run in $(seq 1 "$runs"); do
      for label in old new; do
        out=$(bash "$BENCH_DIR/callgrind_per_message.sh" "${BINARY[$label]}" \
          "$WORK/callgrind-$label-$sessions-$run.out" "$msgs" "$sessions" 2>>"$WORK/callgrind.err") ||
          { log "  callgrind $label, $sessions sessions: failed: $(tail -1 "$WORK/callgrind.err")"; continue; }
        log "  callgrind $label, $sessions sessions, run $run: $out"
        record ir "$label" "$sessions" "$run" "$(awk '{ print $2 }' <<<"$out")"
      done
    done
  done
}

main() {
  local label
  log "compare_builds: old ${BINARY[old]}, new ${BINARY[new]}; work directory $WORK"
  record info nproc "$(nproc)"
  record info uptime_before "$(uptime)"
  for label in old new; do
    record info "binary_$label" "${BINARY[$label]}"
    record info "version_$label" "$("${BINARY[$label]}" version 2>&1 | head -1)"
    # The commit checked out where the binary was built, if that is a git work tree.
    record info "head_$label" "$(git -C "$(dirname "${BINARY[$label]}")" rev-parse HEAD 2>/dev/null || echo -)"
  done
  record info rounds_wanted "$ROUNDS"
  record info msgs "20=$MSGS_20 1=$MSGS_1 size=$SIZE"
  record info clk_tck "$(getconf CLK_TCK)"

  local sink_port
  sink_port=$(free_port)
  start_smtp_sink sink "$sink_port"
  declare -gA RELAY_PID RELAY_PORT
  for label in old new; do
    RELAY_PORT[$label]=$(free_port)
    passthrough_config "${BINARY[$label]}" "$WORK/$label.toml" "${RELAY_PORT[$label]}" "$sink_port"
    start_relay "$label" "${RELAY_PORT[$label]}"
    RELAY_PID[$label]=$LAST_PID
  done

  log "warm-up: $WARMUP_MSGS messages through each build (not counted)"
  for label in old new; do load "$label" 20 "$WARMUP_MSGS" warmup; done

  log "$ROUNDS rounds: 20 sessions x $MSGS_20 and 1 session x $MSGS_1 messages of 4 KiB per build"
  local round order sessions count deadline=$((SECONDS + MAX_SECONDS)) done_rounds=0
  for round in $(seq 1 "$ROUNDS"); do
    if [ $SECONDS -ge $deadline ]; then
      log "time limit (${MAX_SECONDS}s) reached after $done_rounds rounds"
      break
    fi
    order="old new"
    [ $((round % 2)) = 0 ] && order="new old"
    for sessions in 20 1; do
      count=$MSGS_20
      [ "$sessions" = 1 ] && count=$MSGS_1
      for label in $order; do load "$label" "$sessions" "$count" "$round"; done
    done
    done_rounds=$round
  done
  record info rounds_done "$done_rounds"
  for label in old new; do
    record info "peak_rss_kib_$label" "$(rss_kib "${RELAY_PID[$label]}" VmHWM)"
  done
  record info uptime_after "$(uptime)"
  count_instructions
  "$PY" "$BENCH_DIR/compare_summary.py" "$RESULTS" "$BUDGET"
  if [ -n "${BENCH_RESULTS_COPY:-}" ]; then cp "$RESULTS" "$BENCH_RESULTS_COPY"; fi
}

main
