#!/usr/bin/env bash
# The durable spool against passthrough and Postfix, measured side by side in one run, on
# 127.0.0.1 only.
#
#   bash bench/spool_throughput.sh <path-to-portrelay>
#
# 1. throughput, 4 KiB messages at 20 and 100 sessions (smtp-source): direct to smtp-sink,
#    portrelay passthrough, portrelay mode = "spool", a private Postfix (if installed and
#    root). The clock stops when every message is acknowledged AND counted by the sink.
#    Also fsync-class calls per message at 20 sessions: the delta of
#    portrelay_spool_sync_seconds_count divided by the messages of that run.
# 2. acknowledgement -> delivery latency at low load: 1 client, BENCH_LATENCY_MSGS
#    messages one after the other, the sink (stamp_sink.py) timestamps arrival.
# 3. memory: VmRSS of a spool daemon empty and with BENCH_QUEUED queued messages (the
#    upstream port refuses connections, retry_min = "1h", so they stay queued), and how
#    long a restart on that queue takes until it listens again.
#
# Knobs: BENCH_MSGS (2000), BENCH_REPEAT (3; the median is reported), BENCH_LATENCY_MSGS (200),
# BENCH_QUEUED (100000), BENCH_SKIP (any of: throughput latency memory postfix), BENCH_KEEP=1.
# Targets (issue): spool >= 5x Postfix msgs/s, >= 0.5x passthrough; median ack->delivery
# <= 20 ms at low load; fsyncs/msg < 0.5 at 20 sessions. The summary prints each with its
# measured value; the script does not fail on a missed target (numbers, not a test).
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: bash bench/spool_throughput.sh <path-to-portrelay>" >&2
  exit 2
fi
PORTRELAY=$(realpath "$1")
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
SMTP_SOURCE=/usr/sbin/smtp-source
SMTP_SINK=/usr/sbin/smtp-sink
MSGS=${BENCH_MSGS:-2000}
REPEAT=${BENCH_REPEAT:-3}
LATENCY_MSGS=${BENCH_LATENCY_MSGS:-200}
QUEUED=${BENCH_QUEUED:-100000}
SKIP=" ${BENCH_SKIP:-} "
RUN_TIMEOUT=120  # seconds, per single load

for tool in "$PY" "$SMTP_SOURCE" "$SMTP_SINK" curl; do
  command -v "$tool" >/dev/null || { echo "bench: missing $tool (Debian: postfix curl)" >&2; exit 2; }
done
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/portrelay-spool-bench.XXXXXX)
chmod 755 "$WORK"  # the private Postfix drops privileges and must reach its queue in here
RESULTS=$WORK/results.tsv
: >"$RESULTS"
PIDS=()
POSTFIX_CONF=""

cleanup() {
  set +e
  if [ -n "$POSTFIX_CONF" ]; then postfix -c "$POSTFIX_CONF" stop >/dev/null 2>&1; fi
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
skipped() { [[ "$SKIP" == *" $1 "* ]]; }

# relay_config FILE LISTEN_PORT METRICS_PORT UPSTREAM_PORT MODE [SPOOL_TOML]
relay_config() {
  {
    echo "[server]"
    echo "listen = [\"127.0.0.1:$2\"]"
    echo "hostname = \"relay.bench.test\""
    echo "max_sessions = 2000"
    echo "max_sessions_per_address = 2000"
    echo "max_sessions_before_mail = 2000"
    echo "[relay]"
    echo "mode = \"$5\""
    echo "pool_max_per_endpoint = 32"
    echo "[metrics]"
    echo "listen = \"127.0.0.1:$3\""
    echo "[[upstream]]"
    echo "name = \"sink\""
    echo "host = \"127.0.0.1\""
    echo "port = $4"
    echo "tls = \"none\""
    if [ "$5" = spool ]; then
      echo "[spool]"
      echo "dir = \"$WORK/spool-$2\""
      printf '%b\n' "${6:-}"
    fi
  } >"$1"
  "$PORTRELAY" check -c "$1" >/dev/null
}

start_relay() {  # NAME CONFIG LISTEN_PORT -> pid in LAST_PID
  start_bg "$1" "$PORTRELAY" run -c "$2" --shutdown-grace 2s
  wait_port "$3" 30
}

metric() {  # METRICS_PORT SERIES -> value (0 if absent)
  curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" |
    awk -v s="$2" '$1 == s { v = $2 } END { printf "%d\n", v }'
}

# ---------------------------------------------------------------------------------------------
bench_throughput() {
  log "throughput: $MSGS x 4 KiB at 20 and 100 sessions, $REPEAT runs each, targets interleaved"
  local pt_port pt_metrics sp_port sp_metrics
  pt_port=$(free_port) pt_metrics=$(free_port) sp_port=$(free_port) sp_metrics=$(free_port)
  relay_config "$WORK/passthrough.toml" "$pt_port" "$pt_metrics" "$TP_SINK_PORT" passthrough
  relay_config "$WORK/spool.toml" "$sp_port" "$sp_metrics" "$TP_SINK_PORT" spool \
    "max_messages = 1000000"
  start_relay passthrough "$WORK/passthrough.toml" "$pt_port"
  local pt_pid=$LAST_PID
  start_relay spool "$WORK/spool.toml" "$sp_port"
  local sp_pid=$LAST_PID
  local targets="direct passthrough spool"
  [ "$POSTFIX_OK" = 1 ] && targets="$targets postfix"

  local sessions rep target port cpu_pid out status seconds rate cpu acked syncs_before syncs_after
  local deadline
  for sessions in 20 100; do
    for rep in $(seq 1 "$REPEAT"); do
      for target in $targets; do
        cpu_pid=0
        case $target in
          direct) port=$TP_SINK_PORT ;;
          passthrough) port=$pt_port cpu_pid=$pt_pid ;;
          spool) port=$sp_port cpu_pid=$sp_pid ;;
          postfix) port=$POSTFIX_PORT ;;
        esac
        [ "$target" = spool ] && syncs_before=$(metric "$sp_metrics" portrelay_spool_sync_seconds_count)
        out=$("$PY" "$BENCH_DIR/throughput.py" --smtp-source "$SMTP_SOURCE" --port "$port" \
          --sink-output "$WORK/tp-sink.out" --count "$MSGS" --sessions "$sessions" \
          --size 4096 --timeout "$RUN_TIMEOUT" --cpu-pid "$cpu_pid" --ack-seconds) || true
        read -r status seconds rate cpu acked <<<"$out"
        if [ "$status" = OK ]; then
          log "  $sessions sessions, run $rep, $target: $rate msgs/s ($seconds s, all acknowledged after $acked s, cpu $cpu ms/msg)"
          record tp "$sessions" "$target" "$rep" "$seconds" "$rate" "$cpu" "$acked"
        else
          log "  $sessions sessions, run $rep, $target: $out"
          record tp_fail "$sessions" "$target" "$rep" "$out"
        fi
        if [ "$target" = spool ]; then
          syncs_after=$(metric "$sp_metrics" portrelay_spool_sync_seconds_count)
          record syncs "$sessions" "$rep" "$((syncs_after - syncs_before))" "$MSGS"
          # The next load starts on an empty queue.
          deadline=$((SECONDS + 60))
          while [ -n "$(ls -A "$WORK/spool-$sp_port/queue" 2>/dev/null)" ] && [ $SECONDS -lt $deadline ]; do
            sleep 0.1
          done
        fi
        if [ "$target" = postfix ]; then
          deadline=$((SECONDS + 30))
          until postfix_queue_empty || [ $SECONDS -ge $deadline ]; do sleep 0.1; done
        fi
      done
    done
  done
  record info spool_peak_rss_kib_throughput "$(rss_kib "$sp_pid" VmHWM)"
  stop_pid "$pt_pid"
  stop_pid "$sp_pid"
}

# ---------------------------------------------------------------------------------------------
bench_latency() {
  log "latency: 1 client, $LATENCY_MSGS messages, acknowledgement -> arrival at the sink"
  start_bg stamp-sink "$PY" "$BENCH_DIR/stamp_sink.py"
  local stamp_pid=$LAST_PID
  wait_for "$WORK/stamp-sink.out" '^PORT '
  local stamp_port sp_port sp_metrics out first=1 target port
  stamp_port=$(awk '/^PORT/ { print $2; exit }' "$WORK/stamp-sink.out")
  sp_port=$(free_port) sp_metrics=$(free_port)
  relay_config "$WORK/latency.toml" "$sp_port" "$sp_metrics" "$stamp_port" spool
  start_relay latency-spool "$WORK/latency.toml" "$sp_port"
  local sp_pid=$LAST_PID
  local targets=spool
  if [ "$POSTFIX_OK" = 1 ]; then
    postfix_set "relayhost = [127.0.0.1]:$stamp_port"
    targets="spool postfix"
  fi
  for target in $targets; do
    port=$sp_port
    [ "$target" = postfix ] && port=$POSTFIX_PORT
    out=$("$PY" "$BENCH_DIR/ack_latency.py" --port "$port" --sink-log "$WORK/stamp-sink.out" \
      --first "$first" --count "$LATENCY_MSGS") || true
    log "  $target: $out (median p90 max ms, delivered)"
    # shellcheck disable=SC2086  # one field per word of the output
    record latency "$target" $out
    first=$((first + 100000))
  done
  [ "$POSTFIX_OK" = 1 ] && postfix_set "relayhost = [127.0.0.1]:$TP_SINK_PORT"
  stop_pid "$sp_pid"
  stop_pid "$stamp_pid"
}

# ---------------------------------------------------------------------------------------------
bench_memory() {
  log "memory: $QUEUED queued messages (upstream refuses connections, retry_min = 1h)"
  local refused_port sp_port sp_metrics empty_rss queued_rss status started elapsed queued
  refused_port=$(free_port)  # nothing listens there: connections are refused
  sp_port=$(free_port) sp_metrics=$(free_port)
  relay_config "$WORK/memory.toml" "$sp_port" "$sp_metrics" "$refused_port" spool \
    "max_messages = $((QUEUED * 2))\nretry_min = \"1h\"\nretry_max = \"2h\""
  start_relay memory-spool "$WORK/memory.toml" "$sp_port"
  local sp_pid=$LAST_PID
  sleep 0.5
  empty_rss=$(rss_kib "$sp_pid" VmRSS)
  started=$(date +%s.%N)
  status=0
  timeout 400 "$SMTP_SOURCE" -m "$QUEUED" -s 50 -l 512 -M bench.test -f app@bench.test \
    -t rcpt@bench.test "127.0.0.1:$sp_port" >/dev/null 2>"$WORK/memory-source.err" || status=$?
  elapsed=$("$PY" -c "import time; print(f'{time.time() - $started:.1f}')")
  sleep 2
  # Messages whose first attempt found the upstream refusing count as deferred.
  queued=$(($(metric "$sp_metrics" 'portrelay_queue_messages{state="queued"}') + \
    $(metric "$sp_metrics" 'portrelay_queue_messages{state="deferred"}')))
  log "  files in queue/: $(find "$WORK/spool-$sp_port/queue" -type f ! -name '*.state' | wc -l)"
  queued_rss=$(rss_kib "$sp_pid" VmRSS)
  log "  smtp-source status $status in $elapsed s; queued (metric): $queued; RSS empty $empty_rss KiB, with the queue $queued_rss KiB, peak $(rss_kib "$sp_pid" VmHWM) KiB"
  record mem "$QUEUED" "$queued" "$empty_rss" "$queued_rss" "$(rss_kib "$sp_pid" VmHWM)" "$elapsed"
  stop_pid "$sp_pid"
  # Restart on the full queue: how long until it listens, and its RSS then.
  started=$(date +%s.%N)
  start_relay memory-spool-restart "$WORK/memory.toml" "$sp_port"
  sp_pid=$LAST_PID
  elapsed=$("$PY" -c "import time; print(f'{time.time() - $started:.2f}')")
  sleep 1
  log "  restart on $queued queued messages: listening after $elapsed s, RSS $(rss_kib "$sp_pid" VmRSS) KiB"
  record restart "$queued" "$elapsed" "$(rss_kib "$sp_pid" VmRSS)"
  stop_pid "$sp_pid"
}

# ---------------------------------------------------------------------------------------------
summarize() {
  "$PY" - "$RESULTS" <<'PYEOF'
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
rates, syncs = {}, {}
print("\n== spool benchmark ==")
for row in rows:
    if row[0] in ("info", "note"):
        print(f"{row[0]}: {' '.join(row[1:])}")
    elif row[0] == "tp":
        rates.setdefault((int(row[1]), row[2]), []).append(float(row[5]))
    elif row[0] == "syncs":
        syncs.setdefault(int(row[1]), []).append(int(row[3]) / int(row[4]))
    elif row[0] == "tp_fail":
        print(f"FAILED run: {' '.join(row[1:])}")
med = {k: statistics.median(v) for k, v in rates.items()}
print("\nmsgs/s end to end (acknowledged and at the sink), 4 KiB, median of runs:")
print(f"{'sessions':>8} {'direct':>9} {'passthru':>9} {'spool':>9} {'postfix':>9}"
      f" {'spool/pt':>9} {'spool/pf':>9}")
for s in sorted({k[0] for k in med}):
    g = lambda t: med.get((s, t))
    f = lambda v: f"{v:9.0f}" if v else f"{'-':>9}"
    r = lambda a, b: f"{a / b:9.2f}" if a and b else f"{'-':>9}"
    print(f"{s:>8} {f(g('direct'))} {f(g('passthrough'))} {f(g('spool'))} {f(g('postfix'))}"
          f" {r(g('spool'), g('passthrough'))} {r(g('spool'), g('postfix'))}")
for s, v in sorted(syncs.items()):
    print(f"sync calls per message at {s} sessions: {statistics.median(v):.3f} "
          f"(runs: {', '.join(f'{x:.3f}' for x in v)})")
for row in rows:
    if row[0] == "latency":
        print(f"ack -> delivery, {row[1]}: " + (f"median {row[3]} ms, p90 {row[4]} ms, max {row[5]} ms,"
              f" delivered {row[6]}" if row[2] == "OK" else " ".join(row[2:])))
    elif row[0] == "mem":
        print(f"RSS: empty {row[3]} KiB; {row[2]} queued (of {row[1]} sent in {row[6]} s) "
              f"{row[4]} KiB (peak {row[5]} KiB); per queued message "
              f"{(int(row[4]) - int(row[3])) * 1024 / max(1, float(row[2])):.0f} bytes")
    elif row[0] == "restart":
        print(f"restart with {row[1]} queued: listening after {row[2]} s, RSS {row[3]} KiB")
PYEOF
}

main() {
  log "spool benchmark: $PORTRELAY; work directory $WORK"
  record info nproc "$(nproc)"
  record info loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
  record info portrelay "$("$PORTRELAY" version)"
  record info spool_filesystem "$(df -T "$WORK" | awk 'NR == 2 { print $2 " on " $1 }')"
  TP_SINK_PORT=$(free_port)
  start_smtp_sink tp-sink "$TP_SINK_PORT"
  if ! skipped postfix; then
    if command -v postfix >/dev/null && [ "$(id -u)" -eq 0 ]; then
      record info postfix "$(postconf -d -h mail_version 2>/dev/null)"
      postfix_setup "$(free_port)" "$TP_SINK_PORT" || record note postfix "private instance failed to start"
    else
      log "postfix: skipped (needs the postfix package and root for a private instance)"
      record note postfix "not available (needs the postfix package and root)"
    fi
  fi
  skipped throughput || bench_throughput
  skipped latency || bench_latency
  skipped memory || bench_memory
  record info loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
  summarize
}

main
