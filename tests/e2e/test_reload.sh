#!/usr/bin/env bash
# Configuration reload with the real binary: `portrelay run`, a message to the first aiosmtpd
# upstream, the file rewritten to point at a second one, `kill -HUP` (what `systemctl reload`
# sends), a message that reaches the second upstream, the reload metrics; then an invalid
# file and HUP: the error is logged with its file:line:col, the metric says 0, and the relay
# keeps serving on the configuration it had.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd curl

start_upstream first --tls none
FIRST_PORT=$UPSTREAM_PORT
start_upstream second --tls none
SECOND_PORT=$UPSTREAM_PORT
SMTP_PORT=$(free_port)
METRICS_PORT=$(free_port)
METRICS_URL="http://127.0.0.1:$METRICS_PORT/metrics"
CONFIG="$WORK/portrelay.toml"

write_config() {  # write_config NAME PORT
  cat >"$CONFIG.new" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
hostname = "relay.e2e.test"

[relay]
connect_timeout = "2s"

[[upstream]]
name = "$1"
host = "127.0.0.1"
port = $2
tls = "none"

[metrics]
listen = "127.0.0.1:$METRICS_PORT"
TOML
  mv "$CONFIG.new" "$CONFIG"  # as editors and config management do: never half a file
}

send() {  # send SUBJECT
  printf 'Subject: %s\r\nFrom: app@vm.e2e.test\r\nTo: someone@example.test\r\n\r\nbody\r\n' "$1" \
    >"$WORK/message.eml"
  "$PY" "$E2E_DIR/submit.py" 127.0.0.1 "$SMTP_PORT" app@vm.e2e.test someone@example.test \
    "$WORK/message.eml" --timeout 20
}

# wait_for_log PATTERN COUNT: until the log has COUNT lines matching PATTERN (10 s).
wait_for_log() {
  local i
  for ((i = 0; i < 200; i++)); do
    [[ $(grep -c -- "$1" "$WORK/portrelay.log" || true) -ge $2 ]] && return 0
    sleep 0.05
  done
  cat "$WORK/portrelay.log" >&2
  fail "no $2 log line(s) matching '$1' within 10s"
}

write_config first "$FIRST_PORT"
start_portrelay "$CONFIG" "$SMTP_PORT"
wait_for_port 127.0.0.1 "$METRICS_PORT"
note "portrelay on :$SMTP_PORT, upstreams aiosmtpd first :$FIRST_PORT and second :$SECOND_PORT"

reply=$(send "before the reload") || { cat "$WORK/portrelay.log" >&2; fail "first message refused: $reply"; }
[[ "$reply" == *"relayed via first:"* ]] || fail "first message not relayed via first: $reply"
wait_for_file "$WORK/mail/first-1.json" 10
[[ "$(metric_value portrelay_config_last_reload_success)" == "1" ]] || fail "reload success metric is not 1 at start"
started_at=$(metric_value portrelay_config_last_reload_timestamp_seconds)
note "message 1 reached first; portrelay_config_last_reload_success 1 at start"

write_config second "$SECOND_PORT"
kill -HUP "$PORTRELAY_PID"
wait_for_log 'event=reload ' 1
grep 'event=reload ' "$WORK/portrelay.log" | grep -q 'endpoints=1 added=1 removed=1' ||
  { cat "$WORK/portrelay.log" >&2; fail "the reload log line does not say what changed"; }
note "HUP: $(grep 'event=reload ' "$WORK/portrelay.log" | tail -1 | sed 's/.*event=reload //')"

reply=$(send "after the reload") || { cat "$WORK/portrelay.log" >&2; fail "message after the reload refused: $reply"; }
[[ "$reply" == *"relayed via second:"* ]] || fail "message after the reload not relayed via second: $reply"
wait_for_file "$WORK/mail/second-1.json" 10
[[ ! -e "$WORK/mail/first-2.json" ]] || fail "the first upstream got the message sent after the reload"
[[ "$(metric_value portrelay_config_last_reload_success)" == "1" ]] || fail "reload success metric is not 1"
reloaded_at=$(metric_value portrelay_config_last_reload_timestamp_seconds)
awk -v a="$started_at" -v b="$reloaded_at" 'BEGIN { exit !(b >= a && b > 1.6e9) }' ||
  fail "reload timestamp did not move forward: $started_at -> $reloaded_at"
# The endpoint the reload added is probed at once ([relay] probe_interval), whether or not
# message 2 then used the probe's pooled connection or a connect of its own.
[[ "$(metric_value "portrelay_upstream_probes_total{port=\"$SECOND_PORT\",result=\"success\",upstream=\"second\"}")" == "1" ]] ||
  { curl -s "$METRICS_URL" | grep -E 'connect_attempts|probes_total' >&2; fail "no probe series for the endpoint the reload added"; }
note "message 2 reached second; metrics: reload success 1, timestamp $reloaded_at"

# An invalid file: the error with its position, the metric at 0, still relaying via second.
printf '[server]\nlisten = ["127.0.0.1:%s"]\nmax_recipients = "lots"\n' "$SMTP_PORT" >"$CONFIG"
kill -HUP "$PORTRELAY_PID"
wait_for_log 'event=reload_failed' 1
grep 'event=reload_failed' "$WORK/portrelay.log" | grep -q "$CONFIG:3:" ||
  { cat "$WORK/portrelay.log" >&2; fail "reload_failed does not give file:line:col"; }
kill -0 "$PORTRELAY_PID" 2>/dev/null || fail "an invalid file on reload ended portrelay"
[[ "$(metric_value portrelay_config_last_reload_success)" == "0" ]] || fail "reload success metric is not 0 after an invalid file"
reply=$(send "after the failed reload") || { cat "$WORK/portrelay.log" >&2; fail "message after the failed reload refused: $reply"; }
[[ "$reply" == *"relayed via second:"* ]] || fail "after a failed reload, not relayed via second: $reply"
wait_for_file "$WORK/mail/second-2.json" 10
note "invalid file: $(grep 'event=reload_failed' "$WORK/portrelay.log" | tail -1 | sed 's/.*event=reload_failed //')"
note "metric portrelay_config_last_reload_success 0; message 3 still reached second"

kill -TERM "$PORTRELAY_PID"
for _ in $(seq 1 100); do kill -0 "$PORTRELAY_PID" 2>/dev/null || break; sleep 0.1; done
grep -q 'event=stopped' "$WORK/portrelay.log" || { cat "$WORK/portrelay.log" >&2; fail "portrelay did not stop cleanly"; }
note "stopped cleanly"
