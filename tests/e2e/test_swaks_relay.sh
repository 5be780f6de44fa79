#!/usr/bin/env bash
# swaks -> portrelay -> aiosmtpd (plain SMTP upstream, tls = "none"): the body arrives byte-exact
# (dot-stuffing both ways), /metrics counts the message, SIGTERM stops the daemon cleanly.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd swaks curl

start_upstream plain --tls none
SMTP_PORT=$(free_port)
METRICS_PORT=$(free_port)
METRICS_URL="http://127.0.0.1:$METRICS_PORT/metrics"
cat >"$WORK/portrelay.toml" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
hostname = "relay.e2e.test"
# The bytes must arrive exactly as sent: no Date/Message-ID added (test_identity.sh has them).
add_missing_headers = false

[relay]
connect_timeout = "2s"

[[upstream]]
name = "plain"
host = "127.0.0.1"
port = $UPSTREAM_PORT
tls = "none"

[metrics]
listen = "127.0.0.1:$METRICS_PORT"
TOML
start_portrelay "$WORK/portrelay.toml" "$SMTP_PORT"
wait_for_port 127.0.0.1 "$METRICS_PORT"
note "portrelay on :$SMTP_PORT (metrics :$METRICS_PORT), upstream aiosmtpd on :$UPSTREAM_PORT"

# The body, with CRLF line ends as it travels. Lines starting with '.' must survive the
# client's stuffing, portrelay's unstuffing and re-stuffing, and the upstream's unstuffing.
printf '%s\r\n' \
  "Subject: e2e swaks relay" \
  "From: app@vm.e2e.test" \
  "To: someone@example.test" \
  "" \
  "first line" \
  ".a line starting with a dot" \
  ".." \
  "." \
  "  indented line with trailing spaces  " \
  "last line" >"$WORK/expected.eml"
# swaks ends the DATA with "\r\n.\r\n" itself, so it gets the message without its last CRLF.
head -c -2 "$WORK/expected.eml" >"$WORK/message.eml"

if ! swaks --server 127.0.0.1 --port "$SMTP_PORT" --ehlo app.e2e.test \
  --from app@vm.e2e.test --to someone@example.test \
  --data @"$WORK/message.eml" --timeout 20 >"$WORK/swaks.out" 2>&1; then
  cat "$WORK/swaks.out" >&2
  cat "$WORK/portrelay.log" >&2
  fail "swaks submission through portrelay failed"
fi
note "swaks submission accepted, final reply: $(awk 'prev { print; exit } /^ -> \.$/ { prev = 1 }' "$WORK/swaks.out")"

received="$WORK/mail/plain-1.eml"
wait_for_file "$WORK/mail/plain-1.json" 10
if ! cmp -s "$WORK/expected.eml" "$received"; then
  echo "--- sent" >&2; od -c "$WORK/expected.eml" | tail -20 >&2
  echo "--- received" >&2; od -c "$received" | tail -20 >&2
  fail "upstream did not receive the message byte-exact"
fi
note "upstream received the message byte-exact ($(wc -c <"$received") bytes, dot lines included)"
"$PY" - "$WORK/mail/plain-1.json" <<'PYEOF' || fail "envelope at the upstream is wrong: $(cat "$WORK/mail/plain-1.json")"
import json, sys
meta = json.load(open(sys.argv[1]))
assert meta["mail_from"] == "app@vm.e2e.test", meta
assert meta["rcpt_tos"] == ["someone@example.test"], meta
PYEOF
note "envelope at the upstream: MAIL FROM app@vm.e2e.test, RCPT TO someone@example.test"
[[ ! -e "$WORK/mail/plain-2.json" ]] || fail "upstream received the message more than once"

relayed=$(metric_value 'portrelay_messages_total{result="relayed",route="default"}')
[[ "$relayed" == "1" ]] || { curl -s "$METRICS_URL" | grep messages_total >&2; fail "portrelay_messages_total{result=\"relayed\"} is $relayed, want 1"; }
note "metrics: portrelay_messages_total{result=\"relayed\"} 1"

kill -TERM "$PORTRELAY_PID"
for _ in $(seq 1 50); do kill -0 "$PORTRELAY_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PORTRELAY_PID" 2>/dev/null; then
  cat "$WORK/portrelay.log" >&2
  fail "portrelay still running 5s after SIGTERM"
fi
status=0
wait "$PORTRELAY_PID" || status=$?
[[ $status -eq 0 ]] || { cat "$WORK/portrelay.log" >&2; fail "portrelay exited with status $status after SIGTERM, want 0"; }
note "SIGTERM: portrelay exited 0 within 5s"
note "PASS"
