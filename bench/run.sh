#!/usr/bin/env bash
# portrelay benchmarks, measured side by side in one run, on 127.0.0.1 only.
#
#   bash bench/run.sh <path-to-portrelay>          (scripts/dev bench does this after installing
#                                                   swaks python3-aiosmtpd openssl curl postfix)
#
# 1. throughput: smtp-source -> {smtp-sink directly | portrelay | a private Postfix} -> smtp-sink
# 2. failover:   first endpoint silently dropping SYNs; portrelay vs Postfix fallback relay
# 3. memory:     portrelay peak RSS with 1,000 idle client sessions
# 4. TLS:        portrelay -> implicit-TLS sink, with the default upstream connection pool and
#                without one (pool 0); handshakes per 1,000 messages
#
# Every load is bounded in count and time; every process started here is stopped on exit.
# Knobs (environment): BENCH_REPEAT (3), BENCH_MSGS_4K (2000), BENCH_MSGS_100K (500),
# BENCH_SESSIONS ("1 20 100"), BENCH_IDLE_SESSIONS (1000), BENCH_TLS_MSGS (1000),
# BENCH_SKIP ("" or any of: throughput failover memory tls postfix), BENCH_KEEP=1 (keep the
# work directory), BENCH_SINK_TOOL (path of portrelay_bench_sink).
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: bash bench/run.sh <path-to-portrelay>" >&2
  exit 2
fi
PORTRELAY=$(realpath "$1")
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
SINK_TOOL=${BENCH_SINK_TOOL:-$(dirname "$PORTRELAY")/bench/portrelay_bench_sink}
PY=/usr/bin/python3
SMTP_SOURCE=/usr/sbin/smtp-source
SMTP_SINK=/usr/sbin/smtp-sink
REPEAT=${BENCH_REPEAT:-3}
MSGS_4K=${BENCH_MSGS_4K:-2000}
MSGS_100K=${BENCH_MSGS_100K:-500}
SESSIONS=${BENCH_SESSIONS:-"1 20 100"}
IDLE_SESSIONS=${BENCH_IDLE_SESSIONS:-1000}
TLS_MSGS=${BENCH_TLS_MSGS:-1000}
SKIP=" ${BENCH_SKIP:-} "
RUN_TIMEOUT=120  # seconds, per single load

for tool in "$PY" "$SMTP_SOURCE" "$SMTP_SINK" curl; do
  command -v "$tool" >/dev/null || { echo "bench: missing $tool (scripts/dev bench installs it)" >&2; exit 2; }
done
# 1,000 idle sessions plus 100-session loads need more descriptors than the usual 1024.
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/portrelay-bench.XXXXXX)
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

# portrelay_config FILE LISTEN_PORT METRICS_PORT(0=off) EXTRA_RELAY_TOML UPSTREAM_TOML
portrelay_config() {
  {
    echo "[server]"
    echo "listen = [\"127.0.0.1:$2\"]"
    echo "hostname = \"relay.bench.test\""
    echo "max_sessions = 2000"
    # Every benchmark client comes from 127.0.0.1, and the memory scenario holds 1,000
    # sessions that never send MAIL: lift the per-address and before-MAIL limits.
    echo "max_sessions_per_address = 2000"
    echo "max_sessions_before_mail = 2000"
    echo "[relay]"
    printf '%b\n' "$4"
    echo "[metrics]"
    if [ "$3" = 0 ]; then echo "enabled = false"; else echo "listen = \"127.0.0.1:$3\""; fi
    printf '%b\n' "$5"
  } >"$1"
  "$PORTRELAY" check -c "$1" >/dev/null
}

start_portrelay() {  # NAME CONFIG LISTEN_PORT -> pid in LAST_PID
  start_bg "$1" "$PORTRELAY" run -c "$2" --shutdown-grace 2s
  wait_port "$3"
}

machine_notes() {
  record info nproc "$(nproc)"
  record info cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  record info kernel "$(uname -r)"
  record info loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
  record info portrelay "$("$PORTRELAY" version)"
  if command -v postconf >/dev/null; then record info postfix "$(postconf -d -h mail_version 2>/dev/null)"; fi
  record info repeat "$REPEAT"
}

# ---------------------------------------------------------------------------------------------
# 1. Throughput
# ---------------------------------------------------------------------------------------------
bench_throughput() {
  log "throughput: ${MSGS_4K} x 4 KiB and ${MSGS_100K} x 100 KiB; sessions: $SESSIONS; $REPEAT repetitions"
  local relay_port
  relay_port=$(free_port)
  portrelay_config "$WORK/throughput.toml" "$relay_port" 0 "" \
    "[[upstream]]\nname = \"sink\"\nhost = \"127.0.0.1\"\nport = $TP_SINK_PORT\ntls = \"none\""
  start_portrelay tp-portrelay "$WORK/throughput.toml" "$relay_port"
  local relay_pid=$LAST_PID
  local targets="direct portrelay"
  [ "$POSTFIX_OK" = 1 ] && targets="$targets postfix"

  local size count sessions rep target port out status seconds rate cpu cpu_pid deadline
  for size in 4096 102400; do
    count=$MSGS_4K
    [ "$size" = 102400 ] && count=$MSGS_100K
    for sessions in $SESSIONS; do
      for rep in $(seq 1 "$REPEAT"); do
        # Targets interleaved, so load from other processes on the machine hits all alike.
        for target in $targets; do
          cpu_pid=0
          case $target in
            direct) port=$TP_SINK_PORT ;;
            portrelay) port=$relay_port cpu_pid=$relay_pid ;;
            postfix) port=$POSTFIX_PORT ;;
          esac
          out=$("$PY" "$BENCH_DIR/throughput.py" --smtp-source "$SMTP_SOURCE" --port "$port" \
            --sink-output "$WORK/tp-sink.out" --count "$count" --sessions "$sessions" \
            --size "$size" --timeout "$RUN_TIMEOUT" --cpu-pid "$cpu_pid") || true
          read -r status seconds rate cpu <<<"$out"
          if [ "$status" = OK ]; then
            log "  $((size / 1024)) KiB, $sessions sessions, run $rep, $target: $rate msgs/s ($seconds s)"
            record tp "$size" "$sessions" "$target" "$rep" "$seconds" "$rate" "$cpu"
          else
            log "  $((size / 1024)) KiB, $sessions sessions, run $rep, $target: $out"
            record tp_fail "$size" "$sessions" "$target" "$rep" "$out"
          fi
          if [ "$target" = postfix ]; then
            # Let Postfix's queue drain completely before the next load.
            deadline=$((SECONDS + 30))
            until postfix_queue_empty || [ $SECONDS -ge $deadline ]; do sleep 0.1; done
          fi
        done
      done
    done
  done
  record info portrelay_peak_rss_kib_throughput "$(rss_kib "$relay_pid" VmHWM)"
  stop_pid "$relay_pid"
}

# ---------------------------------------------------------------------------------------------
# 2. Failover with a silently blocked first endpoint
# ---------------------------------------------------------------------------------------------
record_failover() {  # WHO PHASE CLIENT-OUTPUT
  local tag seq latency
  while read -r tag seq latency; do
    [ "$tag" = MSG ] && record fo "$1" "$2" "$seq" "$latency"
  done <<<"$3"
  return 0
}

bench_failover() {
  log "failover: the first endpoint drops SYNs silently"
  start_bg blackhole "$PY" "$BENCH_DIR/blackhole.py"
  wait_for "$WORK/blackhole.out" '^[0-9]+$'
  local blocked_port sink_port relay_port metrics_port out attempts
  blocked_port=$(head -1 "$WORK/blackhole.out")
  start_bg stamp-sink "$PY" "$BENCH_DIR/stamp_sink.py"
  wait_for "$WORK/stamp-sink.out" '^PORT '
  sink_port=$(awk '/^PORT/ { print $2; exit }' "$WORK/stamp-sink.out")

  relay_port=$(free_port)
  metrics_port=$(free_port)
  portrelay_config "$WORK/failover.toml" "$relay_port" "$metrics_port" 'stagger = "250ms"' \
    "[[upstream]]\nname = \"blocked\"\nhost = \"127.0.0.1\"\nport = $blocked_port\ntls = \"none\"\n\n[[upstream]]\nname = \"sink\"\nhost = \"127.0.0.1\"\nport = $sink_port\ntls = \"none\""
  start_portrelay fo-portrelay "$WORK/failover.toml" "$relay_port"
  local relay_pid=$LAST_PID
  out=$("$PY" "$BENCH_DIR/failover_client.py" --port "$relay_port" \
    --sink-log "$WORK/stamp-sink.out" --first 1 --count 1 --wait 30) || true
  record_failover portrelay first "$out"
  out=$("$PY" "$BENCH_DIR/failover_client.py" --port "$relay_port" \
    --sink-log "$WORK/stamp-sink.out" --first 2 --count 10 --wait 30) || true
  record_failover portrelay next "$out"
  curl -sf "http://127.0.0.1:$metrics_port/metrics" >"$WORK/failover-metrics.txt" || true
  attempts=$(awk -v port="port=\"$blocked_port\"" \
    '/^portrelay_upstream_connect_attempts_total/ && index($0, port) { print $NF }' \
    "$WORK/failover-metrics.txt")
  record fo_attempts portrelay "${attempts:-?}"
  log "  portrelay: metrics that moved:"
  grep -E '^portrelay_(upstream_connect_attempts_total|failovers_total|messages_total)' \
    "$WORK/failover-metrics.txt" | grep -v ' 0$' | sed 's/^/    /' >&2 || true
  stop_pid "$relay_pid"

  [ "$POSTFIX_OK" = 1 ] || return 0
  local timeout wait first=100 previous_attempts=0
  for timeout in 30s 5s; do
    log "failover: Postfix relayhost = blocked, smtp_fallback_relay = sink, smtp_connect_timeout = $timeout"
    postfix_set "relayhost = [127.0.0.1]:$blocked_port" \
      "smtp_fallback_relay = [127.0.0.1]:$sink_port" "smtp_connect_timeout = $timeout"
    wait=$((${timeout%s} * 4 + 30))
    out=$("$PY" "$BENCH_DIR/failover_client.py" --port "$POSTFIX_PORT" \
      --sink-log "$WORK/stamp-sink.out" --first "$first" --count 1 --wait "$wait") || true
    record_failover "postfix_$timeout" first "$out"
    out=$("$PY" "$BENCH_DIR/failover_client.py" --port "$POSTFIX_PORT" \
      --sink-log "$WORK/stamp-sink.out" --first $((first + 1)) --count 10 --wait "$wait") || true
    record_failover "postfix_$timeout" next "$out"
    # Postfix logs every failed connect; count those to the blocked port in this phase.
    attempts=$(grep -c "connect to 127.0.0.1\[127.0.0.1\]:$blocked_port: Connection timed out" \
      "$WORK/postfix/maillog" || true)
    record fo_attempts "postfix_$timeout" "$((attempts - ${previous_attempts:-0}))"
    previous_attempts=$attempts
    first=$((first + 100))
  done
  postfix_set "relayhost = [127.0.0.1]:$TP_SINK_PORT" "smtp_fallback_relay =" \
    "smtp_connect_timeout = 30s"
}

# ---------------------------------------------------------------------------------------------
# 3. Memory with idle client sessions
# ---------------------------------------------------------------------------------------------
bench_memory() {
  log "memory: $IDLE_SESSIONS idle client sessions (greeting + EHLO, then held 5 s)"
  local relay_port baseline out hwm rss upstream_conns
  relay_port=$(free_port)
  portrelay_config "$WORK/memory.toml" "$relay_port" 0 "" \
    "[[upstream]]\nname = \"sink\"\nhost = \"127.0.0.1\"\nport = $TP_SINK_PORT\ntls = \"none\""
  start_portrelay mem-portrelay "$WORK/memory.toml" "$relay_port"
  local relay_pid=$LAST_PID
  sleep 0.5
  baseline=$(rss_kib "$relay_pid" VmRSS)
  start_bg idle "$PY" "$BENCH_DIR/idle_sessions.py" --port "$relay_port" --count "$IDLE_SESSIONS" --hold 5
  local idle_pid=$LAST_PID
  wait_for "$WORK/idle.out" '^OPEN ' 60 || true
  sleep 1
  rss=$(rss_kib "$relay_pid" VmRSS)
  upstream_conns=$(ss -Htn state established "( dport = :$TP_SINK_PORT )" | wc -l)
  wait_for "$WORK/idle.out" '^DONE' 30 || true
  hwm=$(rss_kib "$relay_pid" VmHWM)
  out=$(awk '/^OPEN/ { print $2, $3 }' "$WORK/idle.out")
  log "  sessions open/failed: $out; RSS before $baseline KiB, while held $rss KiB, peak $hwm KiB; upstream connections while idle: $upstream_conns"
  record mem "$IDLE_SESSIONS" "${out% *}" "$baseline" "$rss" "$hwm" "$upstream_conns"
  stop_pid "$idle_pid"
  stop_pid "$relay_pid"
}

# ---------------------------------------------------------------------------------------------
# 4. TLS upstream: default pool / pool 0, plaintext vs implicit TLS
# ---------------------------------------------------------------------------------------------
sink_counters() {  # NAME PID -> "messages handshakes" (the sink prints them on SIGUSR1)
  local before
  before=$(grep -c '^messages=' "$WORK/$1.out" || true)
  kill -USR1 "$2"
  local deadline=$((SECONDS + 5))
  while [ "$(grep -c '^messages=' "$WORK/$1.out" || true)" -le "$before" ] && [ $SECONDS -lt $deadline ]; do
    sleep 0.02
  done
  grep '^messages=' "$WORK/$1.out" | tail -1 | sed 's/messages=\([0-9]*\) handshakes=\([0-9]*\)/\1 \2/'
}

bench_tls() {
  if [ ! -x "$SINK_TOOL" ]; then
    log "tls: skipped, $SINK_TOOL not built (ninja -C build portrelay_bench_sink)"
    record note tls "portrelay_bench_sink not built"
    return 0
  fi
  log "tls: $TLS_MSGS x 4 KiB through portrelay to an implicit-TLS sink; default pool vs 0; plaintext"
  start_bg tls-sink "$SINK_TOOL" --tls --dir "$WORK/pki"
  local tls_sink_pid=$LAST_PID
  wait_for "$WORK/tls-sink.out" '^PORT ' 20
  local tls_port ca_file
  read -r _ tls_port _ ca_file < <(grep '^PORT ' "$WORK/tls-sink.out")
  start_bg plain-sink "$SINK_TOOL"
  local plain_sink_pid=$LAST_PID
  wait_for "$WORK/plain-sink.out" '^PORT '
  local plain_port
  plain_port=$(awk '/^PORT/ { print $2; exit }' "$WORK/plain-sink.out")

  local variant pool sink_name sink_pid upstream port relay_pid sessions rep
  local before after started elapsed rate status messages handshakes
  # "default": no pool key, so the run measures what an unconfigured relay does.
  for variant in tls_pool_default tls_pool0 plain_pool_default; do
    case $variant in
      tls_pool_default) pool="" sink_name=tls-sink sink_pid=$tls_sink_pid ;;
      tls_pool0) pool="pool_max_per_endpoint = 0" sink_name=tls-sink sink_pid=$tls_sink_pid ;;
      plain_pool_default) pool="" sink_name=plain-sink sink_pid=$plain_sink_pid ;;
    esac
    if [ "$sink_name" = tls-sink ]; then
      upstream="[[upstream]]\nname = \"tlssink\"\nhost = \"127.0.0.1\"\nport = $tls_port\ntls = \"implicit\"\nca_file = \"$ca_file\"\ntls_server_name = \"localhost\""
    else
      upstream="[[upstream]]\nname = \"plainsink\"\nhost = \"127.0.0.1\"\nport = $plain_port\ntls = \"none\""
    fi
    port=$(free_port)
    portrelay_config "$WORK/$variant.toml" "$port" 0 "$pool" "$upstream"
    start_portrelay "$variant-portrelay" "$WORK/$variant.toml" "$port"
    relay_pid=$LAST_PID
    for sessions in 4 20; do
      for rep in $(seq 1 "$REPEAT"); do
        before=$(sink_counters "$sink_name" "$sink_pid")
        started=$(date +%s.%N)
        status=0
        timeout "$RUN_TIMEOUT" "$SMTP_SOURCE" -m "$TLS_MSGS" -s "$sessions" -l 4096 -M bench.test \
          -f app@bench.test -t rcpt@bench.test "127.0.0.1:$port" >/dev/null 2>"$WORK/tls-source.err" || status=$?
        elapsed=$("$PY" -c "import time; print(f'{time.time() - $started:.3f}')")
        after=$(sink_counters "$sink_name" "$sink_pid")
        if [ "$status" != 0 ]; then
          log "  $variant sessions=$sessions run $rep: smtp-source failed: $(tail -1 "$WORK/tls-source.err")"
          record tls_fail "$variant" "$sessions" "$rep"
          continue
        fi
        rate=$("$PY" -c "print(f'{$TLS_MSGS / $elapsed:.1f}')")
        set -- $before $after
        messages=$(($3 - $1)) handshakes=$(($4 - $2))
        log "  $variant, $sessions sessions, run $rep: $rate msgs/s, $messages messages, $handshakes TLS handshakes ($("$PY" -c "print(f'{$handshakes * 1000 / max(1, $messages):.1f}')") per 1,000 messages)"
        record tls "$variant" "$sessions" "$rep" "$elapsed" "$rate" "$messages" "$handshakes"
      done
    done
    stop_pid "$relay_pid"
  done
  stop_pid "$tls_sink_pid"
  stop_pid "$plain_sink_pid"
}

# ---------------------------------------------------------------------------------------------
main() {
  log "portrelay benchmarks: $PORTRELAY; work directory $WORK"
  machine_notes
  TP_SINK_PORT=$(free_port)
  start_smtp_sink tp-sink "$TP_SINK_PORT"
  if ! skipped postfix; then
    if command -v postfix >/dev/null && [ "$(id -u)" -eq 0 ]; then
      postfix_setup "$(free_port)" "$TP_SINK_PORT" || record note postfix "private instance failed to start"
    else
      log "postfix: skipped (needs the postfix package and root for a private instance)"
      record note postfix "not available (needs the postfix package and root)"
    fi
  fi
  skipped throughput || bench_throughput
  skipped failover || bench_failover
  skipped memory || bench_memory
  skipped tls || bench_tls
  record info loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
  "$PY" "$BENCH_DIR/summarize.py" "$RESULTS"
  if [ -n "${BENCH_RESULTS_COPY:-}" ]; then cp "$RESULTS" "$BENCH_RESULTS_COPY"; fi
}

main
