#!/usr/bin/env bash
# "Never downgrade silently" with real peers: a certificate that does not match
# tls_server_name, a certificate from an unknown CA, and a STARTTLS-required endpoint whose
# server does not offer STARTTLS all fail the endpoint; the client gets a 4xx and no upstream
# receives the message in any form.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd openssl curl

make_pki "$WORK/pki"
make_pki "$WORK/other-ca"  # a second, unrelated CA: its certificate must not verify against the first
start_upstream wrongname --tls implicit --cert "$WORK/pki/server.pem" --key "$WORK/pki/server.key"
WRONGNAME_PORT=$UPSTREAM_PORT
start_upstream unknownca --tls implicit --cert "$WORK/other-ca/server.pem" --key "$WORK/other-ca/server.key"
UNKNOWNCA_PORT=$UPSTREAM_PORT
start_upstream nostarttls --tls none
NOSTARTTLS_PORT=$UPSTREAM_PORT

SMTP_PORT=$(free_port)
METRICS_PORT=$(free_port)
METRICS_URL="http://127.0.0.1:$METRICS_PORT/metrics"
cat >"$WORK/portrelay.toml" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
hostname = "relay.e2e.test"

[relay]
connect_timeout = "2s"
greeting_timeout = "5s"

[[upstream]]
name = "wrongname"
host = "127.0.0.1"
port = $WRONGNAME_PORT
tls = "implicit"
ca_file = "$WORK/pki/ca.pem"
tls_server_name = "smtp.not-this-certificate.test"

[[upstream]]
name = "unknownca"
host = "127.0.0.1"
port = $UNKNOWNCA_PORT
tls = "implicit"
ca_file = "$WORK/pki/ca.pem"
tls_server_name = "localhost"

[[upstream]]
name = "nostarttls"
host = "127.0.0.1"
port = $NOSTARTTLS_PORT
tls = "starttls"
ca_file = "$WORK/pki/ca.pem"
tls_server_name = "localhost"

[metrics]
listen = "127.0.0.1:$METRICS_PORT"
TOML
start_portrelay "$WORK/portrelay.toml" "$SMTP_PORT"
wait_for_port 127.0.0.1 "$METRICS_PORT"
note "chain: wrong name :$WRONGNAME_PORT, unknown CA :$UNKNOWNCA_PORT, plain server for a STARTTLS endpoint :$NOSTARTTLS_PORT"

printf 'Subject: must not leak\r\n\r\nsecret body\r\n' >"$WORK/m.eml"
status=0
"$PY" "$E2E_DIR/submit.py" 127.0.0.1 "$SMTP_PORT" app@vm.e2e.test someone@example.test "$WORK/m.eml" >"$WORK/submit.out" || status=$?
[[ $status -ne 0 ]] || fail "submission succeeded although every endpoint is untrustworthy: $(cat "$WORK/submit.out")"
grep -qE '^4[0-9][0-9] 4\.' "$WORK/submit.out" || { cat "$WORK/portrelay.log" >&2; fail "client did not get a 4xx with an enhanced status code: $(cat "$WORK/submit.out")"; }
note "client reply: $(cat "$WORK/submit.out")"

sleep 0.3
if compgen -G "$WORK/mail/*.json" >/dev/null; then
  ls "$WORK/mail" >&2
  fail "an upstream received the message"
fi
note "no upstream received the message"

check_failure() {
  local upstream=$1 reason=$2 value
  value=$(curl -fsS --max-time 5 "$METRICS_URL" | awk -v u="upstream=\"$upstream\"" -v r="reason=\"$reason\"" \
    '$1 ~ /^portrelay_upstream_connect_failures_total\{/ && index($1, u) && index($1, r) { print $2 }')
  [[ "$value" == "1" ]] || { curl -s "$METRICS_URL" | grep "upstream=\"$upstream\"" | grep -v ' 0$' >&2; fail "$upstream: failures{reason=\"$reason\"} is '${value:-absent}', want 1"; }
  note "$upstream: portrelay_upstream_connect_failures_total{reason=\"$reason\"} 1"
}
check_failure wrongname tls_verify
check_failure unknownca tls_verify
check_failure nostarttls starttls_unavailable
deferred=$(metric_value 'portrelay_messages_total{result="deferred",route="default"}')
[[ "$deferred" == "1" ]] || fail "portrelay_messages_total{result=\"deferred\"} is $deferred, want 1"
note "portrelay_messages_total{result=\"deferred\"} 1"
note "PASS"
