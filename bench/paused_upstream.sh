#!/usr/bin/env bash
# The spool scheduler's cost behind a paused upstream (issue #18), on 127.0.0.1 only.
#
#   bash bench/paused_upstream.sh <path-to-portrelay>
#
# 1. A provider emulator that answers every MAIL with SES's "454 Throttling failure"
#    (tests/e2e/provider_emulator.py, an empty token bucket) pauses the only upstream for
#    `throttle_backoff` (BENCH_PAUSE, default 240s).
# 2. BENCH_QUEUED (100000) messages of 512 octets are submitted (smtp-source, 50 sessions) and
#    wait in the queue behind the pause.
# 3. Idle wait: the daemon's CPU time (utime + stime from /proc) over BENCH_IDLE (20) seconds,
#    with the whole queue waiting. Target: no measurable CPU. The same is measured for an
#    empty daemon first, as the baseline.
# 4. The throttling emulator is replaced by Postfix's smtp-sink on the same port. When the
#    pause ends: the time from its end (log line upstream_paused: its time + pause_ms) to the
#    first relayed message, and until every queued message is relayed.
#
# Numbers, not a test: the script prints them and does not fail on a missed target.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: bash bench/paused_upstream.sh <path-to-portrelay>" >&2
  exit 2
fi
PORTRELAY=$(realpath "$1")
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
EMULATOR=$BENCH_DIR/../tests/e2e/provider_emulator.py
PY=/usr/bin/python3
SMTP_SOURCE=/usr/sbin/smtp-source
SMTP_SINK=/usr/sbin/smtp-sink
QUEUED=${BENCH_QUEUED:-100000}
PAUSE=${BENCH_PAUSE:-240}
IDLE=${BENCH_IDLE:-20}
for tool in "$PY" "$SMTP_SOURCE" "$SMTP_SINK" curl; do
  command -v "$tool" >/dev/null || { echo "bench: missing $tool (Debian: postfix curl)" >&2; exit 2; }
done
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/portrelay-paused-bench.XXXXXX)
RESULTS=$WORK/results.tsv
: >"$RESULTS"
PIDS=()
cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
metric() {  # SERIES-PREFIX -> sum of matching samples (0 if absent)
  curl -fsS --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" |
    awk -v s="$1" 'index($1, s) == 1 { v += $2 } END { printf "%d\n", v }'
}
relayed() { metric 'portrelay_messages_total{result="relayed"'; }
idle_cpu() {  # PID SECONDS -> CPU milliseconds used in that time
  local before after hz
  hz=$(getconf CLK_TCK)
  before=$(cpu_ticks "$1")
  sleep "$2"
  after=$(cpu_ticks "$1")
  echo $(((after - before) * 1000 / hz))
}

UPSTREAM_PORT=$(free_port)
LISTEN_PORT=$(free_port)
METRICS_PORT=$(free_port)
cat >"$WORK/relay.toml" <<EOF
[server]
listen = ["127.0.0.1:$LISTEN_PORT"]
hostname = "relay.bench.test"
max_sessions = 2000
max_sessions_per_address = 2000
max_sessions_before_mail = 2000
[relay]
mode = "spool"
throttle_backoff = "${PAUSE}s"
throttle_backoff_max = "${PAUSE}s"
probe_interval = "0s"
[metrics]
listen = "127.0.0.1:$METRICS_PORT"
[spool]
dir = "$WORK/spool"
max_messages = 1000000
[[upstream]]
name = "ses"
host = "127.0.0.1"
port = $UPSTREAM_PORT
tls = "none"
EOF
"$PORTRELAY" check -c "$WORK/relay.toml" >/dev/null

log "emulator on :$UPSTREAM_PORT throttles every message (454); pause = ${PAUSE}s"
mkdir -p "$WORK/mail"
start_bg emulator "$PY" "$EMULATOR" --port "$UPSTREAM_PORT" --port-file "$WORK/emulator.port" \
  --outdir "$WORK/mail" --rate 1/min --rate-burst 0.5
EMULATOR_PID=$LAST_PID
wait_port "$UPSTREAM_PORT" 20
start_bg relay "$PORTRELAY" run -c "$WORK/relay.toml" --shutdown-grace 2s
RELAY_PID=$LAST_PID
wait_port "$LISTEN_PORT" 30
sleep 2
base_ms=$(idle_cpu "$RELAY_PID" "$IDLE")
log "baseline, empty queue: ${base_ms} ms CPU in ${IDLE} s"
record idle_empty "$IDLE" "$base_ms"

log "submitting $QUEUED messages (50 sessions)"
started=$SECONDS
timeout 900 "$SMTP_SOURCE" -m "$QUEUED" -s 50 -l 512 -M bench.test -f app@bench.test \
  -t to@bench.test "127.0.0.1:$LISTEN_PORT" >/dev/null 2>&1 || log "smtp-source ended with an error"
submitted_s=$((SECONDS - started))
queued=$(metric portrelay_queue_messages)
grep -q 'event=upstream_paused' "$WORK/relay.err" || { log "no upstream_paused line: the upstream never paused"; exit 1; }
pause_line=$(grep 'event=upstream_paused' "$WORK/relay.err" | tail -1)
log "  $queued queued after ${submitted_s} s; $pause_line"
record submitted "$QUEUED" "$submitted_s" "$queued"

# The pause's end, in epoch milliseconds, from the line's own time and pause_ms.
pause_end_ms=$("$PY" - "$pause_line" <<'PYEOF'
import datetime, re, sys
line = sys.argv[1]
ts = re.search(r'ts=(\S+)', line).group(1).replace('Z', '+00:00')
pause = int(re.search(r'pause_ms=(\d+)', line).group(1))
print(int(datetime.datetime.fromisoformat(ts).timestamp() * 1000) + pause)
PYEOF
)
now_ms() { date +%s%3N; }
left_s=$(((pause_end_ms - $(now_ms)) / 1000))
if [ "$left_s" -le $((IDLE + 5)) ]; then
  log "the pause ends in ${left_s} s: too soon to measure ${IDLE} s of idle; raise BENCH_PAUSE"
  exit 1
fi

kill "$EMULATOR_PID"; wait "$EMULATOR_PID" 2>/dev/null || true
SINK_USER=()
[ "$(id -u)" -eq 0 ] && SINK_USER=(-u nobody)
start_bg sink "$SMTP_SINK" "${SINK_USER[@]}" -c "127.0.0.1:$UPSTREAM_PORT" 1000
wait_port "$UPSTREAM_PORT" 10
busy_ms=$(idle_cpu "$RELAY_PID" "$IDLE")
log "idle behind the pause, $queued queued: ${busy_ms} ms CPU in ${IDLE} s (empty: ${base_ms} ms)"
record idle_queued "$IDLE" "$busy_ms" "$queued"

before=$(relayed)
log "waiting for the pause to end (in $(((pause_end_ms - $(now_ms)) / 1000)) s)"
until [ "$(relayed)" -gt "$before" ]; do
  [ "$(now_ms)" -lt $((pause_end_ms + 120000)) ] || { log "nothing relayed 120 s after the pause"; exit 1; }
  sleep 0.05
done
first_ms=$(($(now_ms) - pause_end_ms))
log "first message relayed ${first_ms} ms after the pause ended (poll 50 ms)"
until [ "$(metric portrelay_queue_messages)" -eq 0 ]; do
  [ "$(now_ms)" -lt $((pause_end_ms + 900000)) ] || { log "queue not empty 15 min after the pause"; break; }
  sleep 0.5
done
drain_ms=$(($(now_ms) - pause_end_ms))
log "queue empty ${drain_ms} ms after the pause ended ($((queued * 1000 / (drain_ms > 0 ? drain_ms : 1))) msgs/s)"
record resume "$first_ms" "$drain_ms" "$queued"

echo
echo "== paused upstream, $QUEUED queued (2 cores, loopback)"
printf 'idle CPU, empty queue:        %6s ms in %s s\n' "$base_ms" "$IDLE"
printf 'idle CPU, %6s queued:       %6s ms in %s s   (target: no measurable CPU)\n' "$queued" "$busy_ms" "$IDLE"
printf 'first delivery after pause:   %6s ms\n' "$first_ms"
printf 'queue drained after pause:    %6s ms\n' "$drain_ms"
