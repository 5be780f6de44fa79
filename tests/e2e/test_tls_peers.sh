#!/usr/bin/env bash
# Upstream TLS with real peers: an implicit-TLS + AUTH aiosmtpd first in the chain, a STARTTLS
# (required) + AUTH aiosmtpd second, both verified against a CA made here with openssl.
# Mail goes via the implicit one; once it is killed, via the STARTTLS one. portrelay's own
# listeners (STARTTLS and implicit TLS) accept swaks submissions. The password never appears
# in portrelay's log.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd swaks openssl

make_pki "$WORK/pki"
note "test PKI made with openssl: CA + server certificate for localhost"

USER_NAME="relay-user"
PASSWORD="e2e-Secr3t-$RANDOM$RANDOM-pw"
start_upstream implicit --tls implicit --cert "$WORK/pki/server.pem" --key "$WORK/pki/server.key" \
  --auth "$USER_NAME:$PASSWORD"
IMPLICIT_PORT=$UPSTREAM_PORT IMPLICIT_PID=$UPSTREAM_PID
start_upstream starttls --tls starttls --cert "$WORK/pki/server.pem" --key "$WORK/pki/server.key" \
  --auth "$USER_NAME:$PASSWORD"
STARTTLS_PORT=$UPSTREAM_PORT
note "upstreams: implicit TLS + AUTH on :$IMPLICIT_PORT, STARTTLS + AUTH on :$STARTTLS_PORT"

SMTP_PORT=$(free_port)
SMTPS_PORT=$(free_port)
METRICS_PORT=$(free_port)
cat >"$WORK/portrelay.toml" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
listen_implicit_tls = ["127.0.0.1:$SMTPS_PORT"]
hostname = "relay.e2e.test"
tls_cert = "$WORK/pki/server.pem"
tls_key = "$WORK/pki/server.key"

[relay]
connect_timeout = "2s"
stagger = "200ms"

[[upstream]]
name = "implicit"
host = "127.0.0.1"
port = $IMPLICIT_PORT
tls = "implicit"
ca_file = "$WORK/pki/ca.pem"
tls_server_name = "localhost"
username = "$USER_NAME"
password_env = "E2E_UPSTREAM_PASSWORD"

[[upstream]]
name = "starttls"
host = "127.0.0.1"
port = $STARTTLS_PORT
tls = "starttls"
ca_file = "$WORK/pki/ca.pem"
tls_server_name = "localhost"
username = "$USER_NAME"
password_env = "E2E_UPSTREAM_PASSWORD"

[metrics]
listen = "127.0.0.1:$METRICS_PORT"
TOML
export E2E_UPSTREAM_PASSWORD="$PASSWORD"
start_portrelay "$WORK/portrelay.toml" "$SMTP_PORT"
wait_for_port 127.0.0.1 "$SMTPS_PORT"
note "portrelay: plain/STARTTLS listener :$SMTP_PORT, implicit TLS listener :$SMTPS_PORT"

# expect_delivery LABEL N SUBJECT: upstream LABEL stored message N, encrypted, authenticated,
# with this subject.
expect_delivery() {
  local label=$1 n=$2 subject=$3
  wait_for_file "$WORK/mail/$label-$n.json" 10
  "$PY" - "$WORK/mail/$label-$n.json" "$WORK/mail/$label-$n.eml" "$USER_NAME" "$subject" <<'PYEOF' ||
import json, sys
meta = json.load(open(sys.argv[1]))
body = open(sys.argv[2], "rb").read()
assert meta["encrypted"], f"not encrypted: {meta}"
assert meta["auth_user"] == sys.argv[3], f"not authenticated as {sys.argv[3]}: {meta}"
assert f"Subject: {sys.argv[4]}\r\n".encode() in body, f"subject {sys.argv[4]!r} missing: {body[:200]!r}"
PYEOF
    fail "message $n at upstream $label is not as expected"
}

message() { printf 'Subject: %s\r\nFrom: app@vm.e2e.test\r\nTo: someone@example.test\r\n\r\nbody of %s\r\n' "$1" "$1"; }

# 1. smtplib, plain submission: relayed over implicit TLS (first in the chain).
message "via implicit" >"$WORK/m1.eml"
"$PY" "$E2E_DIR/submit.py" 127.0.0.1 "$SMTP_PORT" app@vm.e2e.test someone@example.test "$WORK/m1.eml" >"$WORK/submit1.out" ||
  { cat "$WORK/submit1.out" "$WORK/portrelay.log" >&2; fail "smtplib submission 1 failed: $(cat "$WORK/submit1.out")"; }
expect_delivery implicit 1 "via implicit"
[[ ! -e "$WORK/mail/starttls-1.json" ]] || fail "message 1 was also delivered to the STARTTLS upstream"
note "smtplib -> portrelay -> implicit TLS upstream (verified cert, AUTH $USER_NAME): $(cat "$WORK/submit1.out")"

# 2. The implicit upstream dies: the same submission goes over STARTTLS.
stop_pid "$IMPLICIT_PID" KILL
message "via starttls" >"$WORK/m2.eml"
"$PY" "$E2E_DIR/submit.py" 127.0.0.1 "$SMTP_PORT" app@vm.e2e.test someone@example.test "$WORK/m2.eml" >"$WORK/submit2.out" ||
  { cat "$WORK/submit2.out" "$WORK/portrelay.log" >&2; fail "smtplib submission 2 (after killing the implicit upstream) failed: $(cat "$WORK/submit2.out")"; }
expect_delivery starttls 1 "via starttls"
note "implicit upstream killed; smtplib -> portrelay -> STARTTLS upstream: $(cat "$WORK/submit2.out")"

# 3. swaks over portrelay's own STARTTLS listener, then its implicit TLS listener.
swaks_submit() {
  local mode=$1 port=$2 subject=$3 out=$4
  message "$subject" | head -c -2 >"$WORK/$subject.eml"
  if ! swaks "$mode" --server 127.0.0.1 --port "$port" --ehlo app.e2e.test \
    --from app@vm.e2e.test --to someone@example.test --data @"$WORK/$subject.eml" \
    --timeout 20 >"$out" 2>&1; then
    cat "$out" "$WORK/portrelay.log" >&2
    fail "swaks $mode submission to portrelay :$port failed"
  fi
}
swaks_submit -tls "$SMTP_PORT" "swaks-starttls" "$WORK/swaks-tls.out"
if ! grep -qE '^ -> +STARTTLS' "$WORK/swaks-tls.out" || ! grep -q 'TLS started' "$WORK/swaks-tls.out"; then
  cat "$WORK/swaks-tls.out" >&2
  fail "swaks -tls did not negotiate STARTTLS"
fi
expect_delivery starttls 2 "swaks-starttls"
note "swaks -tls (STARTTLS to portrelay :$SMTP_PORT) relayed"

swaks_submit -tlsc "$SMTPS_PORT" "swaks-implicit" "$WORK/swaks-tlsc.out"
grep -q 'TLS started' "$WORK/swaks-tlsc.out" || { cat "$WORK/swaks-tlsc.out" >&2; fail "swaks -tlsc did not start TLS"; }
expect_delivery starttls 3 "swaks-implicit"
note "swaks -tlsc (implicit TLS to portrelay :$SMTPS_PORT) relayed"

# 4. The upstream password must never be logged, neither as is nor base64-encoded.
if grep -qF -- "$PASSWORD" "$WORK/portrelay.log"; then
  fail "the upstream password appears in portrelay's log"
fi
b64=$(printf '\0%s\0%s' "$USER_NAME" "$PASSWORD" | base64 -w0)
if grep -qF -- "$b64" "$WORK/portrelay.log"; then
  fail "the base64 AUTH PLAIN credentials appear in portrelay's log"
fi
note "password (plain and base64 AUTH PLAIN form) not in portrelay's log ($(wc -l <"$WORK/portrelay.log") lines)"
note "PASS"
