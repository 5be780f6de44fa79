#!/usr/bin/env bash
# The provider emulator (provider_emulator.py) answers as the providers do, over real loopback
# sockets, driven by smtplib: SES identities per credential (554 at MAIL and after end of data),
# SES's unqualified To, SES's 454 rate throttle (token bucket), M365's 432 for the 4th
# concurrent connection, Gmail's 550 5.4.5 and SES's 454 daily quota, SIZE with 552 5.3.4,
# and a required TLS client certificate (its CN recorded) over implicit TLS and STARTTLS.
# Its stats file counts what the tests of the relay assert on. portrelay itself is not run.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd openssl

make_pki "$WORK/pki"
(
  cd "$WORK/pki"
  openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=relay-client.e2e.test"
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=clientAuth" >client.ext
  openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem \
    -days 2 -extfile client.ext
) >"$WORK/pki/client-openssl.log" 2>&1 || fail "openssl could not make the client certificate"

TLS_ARGS=(--cert "$WORK/pki/server.pem" --key "$WORK/pki/server.key")
start_provider ses --tls starttls "${TLS_ARGS[@]}" --auth "app1:pw1" --auth "app2:pw2,app3:pw3" \
  --identity "app1=alerts@example.com" --identity "app2=example.org" --require-qualified-to \
  --stats-file "$WORK/ses.stats"
SES_PORT=$UPSTREAM_PORT
start_provider rate --rate 5 --stats-file "$WORK/rate.stats"
RATE_PORT=$UPSTREAM_PORT
start_provider m365 --max-connections 3 --stats-file "$WORK/m365.stats"
M365_PORT=$UPSTREAM_PORT
start_provider gmail --daily-recipients 3 --stats-file "$WORK/gmail.stats"
GMAIL_PORT=$UPSTREAM_PORT
start_provider sesquota --daily-recipients 1 --quota-style ses --quota-at mail --quota-window 1
SESQUOTA_PORT=$UPSTREAM_PORT
start_provider small --size 1000 --stats-file "$WORK/small.stats"
SMALL_PORT=$UPSTREAM_PORT
start_provider certimplicit --tls implicit "${TLS_ARGS[@]}" --require-client-cert "$WORK/pki/ca.pem" \
  --stats-file "$WORK/certimplicit.stats"
CERTI_PORT=$UPSTREAM_PORT
start_provider certstarttls --tls starttls "${TLS_ARGS[@]}" --require-client-cert "$WORK/pki/ca.pem"
CERTS_PORT=$UPSTREAM_PORT
note "emulators up: ses :$SES_PORT rate :$RATE_PORT m365 :$M365_PORT gmail :$GMAIL_PORT small :$SMALL_PORT"

"$PY" - "$WORK" "$SES_PORT" "$RATE_PORT" "$M365_PORT" "$GMAIL_PORT" "$SESQUOTA_PORT" "$SMALL_PORT" \
  "$CERTI_PORT" "$CERTS_PORT" <<'PYEOF' || fail "emulator behaviour (above)"
import json, os, smtplib, ssl, sys, time
work = sys.argv[1]
ses, rate, m365, gmail, sesquota, small, certi, certs = map(int, sys.argv[2:10])
pki = os.path.join(work, "pki")

def stats(name):
    return json.load(open(os.path.join(work, name + ".stats")))

def expect(got, code, text=None):
    assert got[0] == code, f"expected {code}, got {got}"
    if text is not None:
        assert text in got[1].decode(), f"expected {text!r} in {got}"

def tls_client(cert=False):
    ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.pem"))
    if cert:
        ctx.load_cert_chain(os.path.join(pki, "client.pem"), os.path.join(pki, "client.key"))
    return ctx

def message(frm, to, extra=""):
    return f"From: {frm}\r\nTo: {to}\r\nSubject: t\r\n{extra}\r\nbody\r\n"

def data(s, body):
    code, reply = s.docmd("DATA")
    assert code == 354, (code, reply)
    s.send(body.replace("\r\n.", "\r\n..").encode() + b".\r\n")
    return s.getreply()

def transaction(s, mail_from, rcpts, body, mail_args=""):
    got = s.docmd(f"MAIL FROM:<{mail_from}>{mail_args}")
    if got[0] != 250:
        s.rset()
        return ("MAIL",) + got
    for r in rcpts:
        got = s.docmd(f"RCPT TO:<{r}>")
        if got[0] != 250:
            s.rset()
            return ("RCPT",) + got
    return ("DATA",) + data(s, body)

def plain(port):
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    s.ehlo("client.test")
    return s

def ses_session(user, password):
    s = smtplib.SMTP("127.0.0.1", ses, timeout=10)
    s.starttls(context=tls_client())
    s.ehlo("client.test")
    s.login(user, password)
    return s

# --- SES identities, one per credential; unqualified To --------------------------------------
S = "Message rejected: Email address is not verified. The following identities failed the check in region US-EAST-1: "
s = ses_session("app1", "pw1")
expect(transaction(s, "alerts@example.com", ["ops@example.net"], message("alerts@example.com", "ops@example.net"))[1:], 250)
got = transaction(s, "root@vm-1234.internal", ["ops@example.net"], message("alerts@example.com", "ops@example.net"))
assert got[0] == "MAIL", got; expect(got[1:], 554, S + "root@vm-1234.internal")
got = transaction(s, "alerts@example.com", ["ops@example.net"], message("root@vm-1234.internal", "ops@example.net"))
assert got[0] == "DATA", got; expect(got[1:], 554, S + "root@vm-1234.internal")
got = transaction(s, "alerts@example.com", ["ops@example.net"], message("alerts@example.com", "ops@example.net", "Sender: x@example.org\r\n"))
assert got[0] == "DATA", got; expect(got[1:], 554, S + "x@example.org")
# app1's identity is not app2's domain
got = transaction(s, "news@example.org", ["ops@example.net"], message("news@example.org", "ops@example.net"))
expect(got[1:], 554, S + "news@example.org")
got = transaction(s, "alerts@example.com", ["ops@example.net"], message("alerts@example.com", "root"))
assert got[0] == "DATA", got; expect(got[1:], 554, "Transaction failed: Missing final '@domain'")
got = transaction(s, "alerts@example.com", ["ops@example.net"], message("alerts@example.com", "ops@example.net", "Cc: Root <root>\r\n"))
expect(got[1:], 554, "Missing final '@domain'")
# the null sender passes at MAIL
expect(transaction(s, "", ["ops@example.net"], message("alerts@example.com", "ops@example.net"))[1:], 250)
s.quit()
s = ses_session("app2", "pw2")  # a verified domain
expect(transaction(s, "news@example.org", ["ops@example.net"], message("News <news@example.org>", "ops@example.net"))[1:], 250)
expect(transaction(s, "alerts@example.com", ["a@example.net"], "x")[1:], 554, S + "alerts@example.com")
s.quit()
s = ses_session("app3", "pw3")  # a credential with no identity: nothing is verified
expect(transaction(s, "news@example.org", ["ops@example.net"], "x")[1:], 554, S + "news@example.org")
s.quit()
try:
    ses_session("app1", "wrong")
    raise AssertionError("wrong password accepted")
except smtplib.SMTPAuthenticationError as e:
    assert e.smtp_code == 535, e
accepted = sorted(f for f in os.listdir(os.path.join(work, "mail")) if f.startswith("ses-") and f.endswith(".json"))
assert len(accepted) == 3, accepted
meta = json.load(open(os.path.join(work, "mail", "ses-3.json")))
assert meta["auth_user"] == "app2" and meta["encrypted"] and meta["mail_from"] == "news@example.org", meta
st = stats("ses")
assert st["messages_accepted"] == 3 and st["refusals"] == {"identity": 6, "unqualified": 2}, st
assert st["replies"]["554"] == 8 and st["replies"]["535"] >= 1, st
print("ses identities: ok")

# --- SES rate: token bucket of 5, refilled at 5/s ------------------------------------------
s = plain(rate)
codes = []
for i in range(10):
    got = transaction(s, "a@example.com", ["b@example.net"], message("a@example.com", "b@example.net"))
    codes.append((got[0], got[1]))
    if got[1] == 454:
        assert got[0] == "MAIL" and got[2] == b"Throttling failure: Maximum sending rate exceeded.", got
assert codes.count(("DATA", 250)) in (5, 6) and codes.count(("MAIL", 454)) == 10 - codes.count(("DATA", 250)), codes
time.sleep(1.1)
expect(transaction(s, "a@example.com", ["b@example.net"], message("a@example.com", "b@example.net"))[1:], 250)
s.quit()
st = stats("rate")
assert st["replies"]["454"] == codes.count(("MAIL", 454)) and st["refusals"]["rate"] == st["replies"]["454"], st
print("rate:", codes.count(("DATA", 250)), "accepted of 10 at once, then 1 after 1.1 s: ok")

# --- M365: the 4th concurrent connection gets 432 and is closed --------------------------
held = [smtplib.SMTP("127.0.0.1", m365, timeout=10) for _ in range(3)]
try:
    smtplib.SMTP("127.0.0.1", m365, timeout=10)
    raise AssertionError("4th connection accepted")
except smtplib.SMTPConnectError as e:
    assert e.smtp_code == 432 and b"4.3.2" in e.smtp_error and b"concurrent connection limit exceeded" in e.smtp_error, e
held.pop().quit()
time.sleep(0.2)
extra = smtplib.SMTP("127.0.0.1", m365, timeout=10)  # room again
expect(extra.noop(), 250)
extra.quit()
for h in held:
    h.quit()
time.sleep(0.2)
st = stats("m365")
assert st["connections"] == 5 and st["max_concurrent_connections"] == 4 and st["connections_open"] == 0, st
assert st["replies"]["432"] == 1 and st["refusals"] == {"connections": 1}, st
print("m365 connections: ok")

# --- Gmail daily recipients (3), at RCPT; SES's quota at MAIL in a 1 s window ------------
s = plain(gmail)
expect(transaction(s, "a@example.com", ["b@example.net", "c@example.net"], message("a@example.com", "b@example.net"))[1:], 250)
got = transaction(s, "a@example.com", ["d@example.net", "e@example.net"], message("a@example.com", "b@example.net"))
assert got[0] == "RCPT", got; expect(got[1:], 550, "5.4.5 Daily user sending limit exceeded.")
s.quit()
st = stats("gmail")
assert st["recipients_accepted"] == 3 and st["refusals"] == {"quota": 1}, st
s = plain(sesquota)
expect(transaction(s, "a@example.com", ["b@example.net"], message("a@example.com", "b@example.net"))[1:], 250)
got = transaction(s, "a@example.com", ["b@example.net"], "x")
assert got[0] == "MAIL", got; expect(got[1:], 454, "Throttling failure: Daily message quota exceeded.")
time.sleep(1.1)  # the rolling window has passed
expect(transaction(s, "a@example.com", ["b@example.net"], message("a@example.com", "b@example.net"))[1:], 250)
s.quit()
print("daily quotas: ok")

# --- SIZE 1000 ---------------------------------------------------------------------------
s = plain(small)
assert s.esmtp_features.get("size") == "1000", s.esmtp_features
got = transaction(s, "a@example.com", ["b@example.net"], "x", " SIZE=2000")
assert got[0] == "MAIL", got; expect(got[1:], 552, "5.3.4")
got = transaction(s, "a@example.com", ["b@example.net"], message("a@example.com", "b@example.net") + ("y" * 70 + "\r\n") * 25)
assert got[0] == "DATA", got; expect(got[1:], 552, "5.3.4")
expect(transaction(s, "a@example.com", ["b@example.net"], message("a@example.com", "b@example.net"), " SIZE=500")[1:], 250)
s.quit()
st = stats("small")
assert st["replies"]["552"] == 2 and st["refusals"] == {"size": 2} and st["messages_accepted"] == 1, st
meta = json.load(open(os.path.join(work, "mail", "small-1.json")))
assert meta["mail_options"] == ["SIZE=500"] and meta["size"] > 0, meta
print("size: ok")

# --- client certificates: required, verified, CN recorded --------------------------------
try:
    s = smtplib.SMTP_SSL("127.0.0.1", certi, timeout=10, context=tls_client(cert=False))
    s.noop()
    raise AssertionError("implicit TLS without a client certificate accepted")
except (ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionResetError):
    pass
s = smtplib.SMTP_SSL("127.0.0.1", certi, timeout=10, context=tls_client(cert=True))
s.ehlo("client.test")
expect(transaction(s, "a@example.com", ["b@example.net"], message("a@example.com", "b@example.net"))[1:], 250)
s.quit()
meta = json.load(open(os.path.join(work, "mail", "certimplicit-1.json")))
assert meta["client_cert_cn"] == "relay-client.e2e.test" and len(meta["client_cert_sha256"]) == 64, meta
assert stats("certimplicit")["client_certs"] == ["relay-client.e2e.test"], stats("certimplicit")
s = smtplib.SMTP("127.0.0.1", certs, timeout=10)
s.starttls(context=tls_client(cert=True))
s.ehlo("client.test")
expect(transaction(s, "a@example.com", ["b@example.net"], message("a@example.com", "b@example.net"))[1:], 250)
s.quit()
meta = json.load(open(os.path.join(work, "mail", "certstarttls-1.json")))
assert meta["client_cert_cn"] == "relay-client.e2e.test" and meta["encrypted"], meta
print("client certificates: ok")
PYEOF
note "provider emulator: every option behaves as the providers do"
