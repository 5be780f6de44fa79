#!/usr/bin/env bash
# Issue #18 items 3 and 4 with the real binary against the provider emulator.
# Sizes (spool mode): the emulator advertises SIZE 5000; portrelay learns it from its probe,
# advertises SIZE 5000 itself, refuses MAIL ... SIZE=6000 and an 8000-octet body without
# SIZE= with 552 5.3.4 before anything is queued (queue/ stays empty, the emulator never
# has to refuse), and relays a message that fits.
# Client certificates: an implicit-TLS emulator that requires a client certificate from a CA
# made here; portrelay's [[upstream]] tls_client_cert/tls_client_key gets the message
# through, the emulator records the certificate's CN, and portrelay's upstream_ready log
# line and `probe` name the certificate (CN and SHA-256 fingerprint). `check`: a key others
# can read is warned about; a missing key is an error with file:line:col.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd openssl

# ---- sizes -----------------------------------------------------------------------------
start_provider small --size 5000 --stats-file "$WORK/small.stats"
SMALL_PORT=$UPSTREAM_PORT
SMTP_PORT=$(free_port)
SPOOL="$WORK/spool"
cat >"$WORK/size.toml" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
hostname = "relay.e2e.test"

[relay]
mode = "spool"
probe_interval = "1s"

[spool]
dir = "$SPOOL"

[[upstream]]
name = "small"
host = "127.0.0.1"
port = $SMALL_PORT
tls = "none"

[metrics]
enabled = false
TOML
start_portrelay "$WORK/size.toml" "$SMTP_PORT"
RELAY_PID=$PORTRELAY_PID

"$PY" - "$SMTP_PORT" "$SPOOL" "$WORK/small.stats" "$WORK/mail" <<'PYEOF' || fail "sizes (above)"
import json, os, smtplib, sys, time
port, spool, stats_file, maildir = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

def size_advertised():
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    s.ehlo("client.test")
    size = s.esmtp_features.get("size")
    s.quit()
    return size

deadline = time.monotonic() + 10
while size_advertised() != "5000":
    assert time.monotonic() < deadline, f"portrelay still advertises SIZE {size_advertised()}"
    time.sleep(0.2)
print("portrelay advertises the upstream's SIZE 5000")

def message(octets):
    text = "From: a@example.com\r\nTo: b@example.net\r\nSubject: size\r\n\r\n"
    while len(text) + 80 <= octets:
        text += "x" * 78 + "\r\n"
    return text

s = smtplib.SMTP("127.0.0.1", port, timeout=10)
s.ehlo("client.test")
code, text = s.docmd("MAIL FROM:<a@example.com> SIZE=6000")
assert code == 552 and text.startswith(b"5.3.4"), (code, text)
code, text = s.docmd("MAIL FROM:<a@example.com>")
assert code == 250, (code, text)
assert s.docmd("RCPT TO:<b@example.net>")[0] == 250
assert s.docmd("DATA")[0] == 354
s.send(message(8000).encode() + b".\r\n")
code, text = s.getreply()
assert code == 552 and text.startswith(b"5.3.4"), (code, text)
queued = os.listdir(os.path.join(spool, "queue"))
assert queued == [], f"a refused message was stored: {queued}"
try:
    s.sendmail("a@example.com", ["b@example.net"], message(1000))
except smtplib.SMTPException as e:
    raise AssertionError(f"a message that fits was refused: {e}")
s.quit()
deadline = time.monotonic() + 10
while not os.path.exists(os.path.join(maildir, "small-1.json")):
    assert time.monotonic() < deadline, "the message that fits was not delivered"
    time.sleep(0.1)
stats = json.load(open(stats_file))
assert stats["messages_accepted"] == 1 and "552" not in stats["replies"], stats
print("552 5.3.4 at MAIL SIZE= and at the final dot, nothing queued; 1000 octets relayed")
PYEOF
stop_pid "$RELAY_PID"
note "sizes: learned SIZE advertised, larger refused with 552 5.3.4 before the spool"

# ---- client certificates ---------------------------------------------------------------
make_pki "$WORK/pki"
(
  cd "$WORK/pki"
  openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=relay-client.e2e.test"
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=clientAuth" >client.ext
  openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem \
    -days 2 -extfile client.ext
) >"$WORK/pki/client-openssl.log" 2>&1 || fail "openssl could not make the client certificate"
chmod 600 "$WORK/pki/client.key"
FINGERPRINT=$(openssl x509 -in "$WORK/pki/client.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')

start_provider connector --tls implicit --cert "$WORK/pki/server.pem" --key "$WORK/pki/server.key" \
  --require-client-cert "$WORK/pki/ca.pem"
CONNECTOR_PORT=$UPSTREAM_PORT
SMTP_PORT=$(free_port)
write_cert_config() {
  local key=$1
  cat >"$WORK/cert.toml" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
hostname = "relay.e2e.test"

[[upstream]]
name = "connector"
host = "127.0.0.1"
port = $CONNECTOR_PORT
tls = "implicit"
ca_file = "$WORK/pki/ca.pem"
tls_server_name = "localhost"
tls_client_cert = "$WORK/pki/client.pem"
tls_client_key = "$key"

[metrics]
enabled = false
TOML
}
write_cert_config "$WORK/pki/client.key"
"$PORTRELAY" check --config "$WORK/cert.toml" >"$WORK/check.out" 2>&1 || { cat "$WORK/check.out" >&2; fail "check refused the client certificate config"; }
grep -q "readable by group or others" "$WORK/check.out" && fail "check warned about a 0600 key: $(cat "$WORK/check.out")"

"$PORTRELAY" probe --config "$WORK/cert.toml" >"$WORK/probe.out" 2>&1 || { cat "$WORK/probe.out" >&2; fail "probe: the connector refused portrelay"; }
grep -q "client certificate CN=relay-client.e2e.test sha256=$FINGERPRINT" "$WORK/probe.out" ||
  fail "probe does not name the client certificate: $(cat "$WORK/probe.out")"
"$PORTRELAY" probe --config "$WORK/cert.toml" --json >"$WORK/probe.json" 2>&1 || true
"$PY" -c 'import json,sys; e=json.load(open(sys.argv[1]))["endpoints"][0]; assert e["client_certificate"]=="CN=relay-client.e2e.test sha256="+sys.argv[2], e' \
  "$WORK/probe.json" "$FINGERPRINT" || fail "probe --json: $(cat "$WORK/probe.json")"
note "probe names the certificate it presented (CN and SHA-256)"

start_portrelay "$WORK/cert.toml" "$SMTP_PORT"
printf 'From: a@example.com\r\nTo: b@example.net\r\nSubject: certificate\r\n\r\nbody\r\n' >"$WORK/message.eml"
"$PY" "$E2E_DIR/submit.py" 127.0.0.1 "$SMTP_PORT" a@example.com b@example.net "$WORK/message.eml" >"$WORK/submit.out" 2>&1 ||
  { cat "$WORK/submit.out" "$WORK/portrelay.log" >&2; fail "the message did not get through the certificate-authenticated connector"; }
wait_for_file "$WORK/mail/connector-1.json"
"$PY" -c 'import json,sys; m=json.load(open(sys.argv[1])); assert m["client_cert_cn"]=="relay-client.e2e.test" and m["client_cert_sha256"]==sys.argv[2], m' \
  "$WORK/mail/connector-1.json" "$FINGERPRINT" || fail "the connector did not see portrelay's certificate"
grep 'upstream_ready' "$WORK/portrelay.log" | grep -q "client_cert=\"CN=relay-client.e2e.test sha256=$FINGERPRINT\"" ||
  fail "no upstream_ready line names the client certificate: $(grep upstream_ready "$WORK/portrelay.log")"
stop_pid "$PORTRELAY_PID"
note "relayed through a connector that requires a client certificate; log names it"

# check: a key others can read is warned; a missing key is a positioned error.
cp "$WORK/pki/client.key" "$WORK/pki/shared.key"
chmod 644 "$WORK/pki/shared.key"
write_cert_config "$WORK/pki/shared.key"
"$PORTRELAY" check --config "$WORK/cert.toml" >"$WORK/check.out" 2>&1 || fail "check failed on a readable key: $(cat "$WORK/check.out")"
grep -q "upstream.tls_client_key: \"$WORK/pki/shared.key\" (the TLS client private key) is readable by group or others" "$WORK/check.out" ||
  fail "no permission warning: $(cat "$WORK/check.out")"
write_cert_config "$WORK/pki/missing.key"
if "$PORTRELAY" check --config "$WORK/cert.toml" >"$WORK/check.out" 2>&1; then
  fail "check accepted a missing client key"
fi
grep -Eq "cert.toml:13:18: upstream.tls_client_key: cannot read \"$WORK/pki/missing.key\"" "$WORK/check.out" ||
  fail "missing key error without file:line:col: $(cat "$WORK/check.out")"
note "check: key permissions warned, missing key is file:line:col"
