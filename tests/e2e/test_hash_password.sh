#!/usr/bin/env bash
# Client AUTH end to end: `portrelay hash-password` makes a users-file line; a relay with
# tls_cert/tls_key + users_file + require_auth accepts swaks with the right password over
# STARTTLS, rejects a wrong one with 535, and refuses mail without AUTH.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd swaks openssl

line=$(echo secret | "$PORTRELAY" hash-password alice) || fail "hash-password alice exited non-zero"
[[ "$line" == alice:* ]] || fail "hash-password printed '$line', want 'alice:<hash>'"
[[ "$line" != *secret* ]] || fail "hash-password output contains the password: $line"
[[ $(wc -l <<<"$line") -eq 1 ]] || fail "hash-password printed more than one line"
line2=$(echo secret | "$PORTRELAY" hash-password alice)
[[ "$line2" != "$line" ]] || fail "two hashes of the same password are identical (no salt?): $line"
note "hash-password: '${line:0:40}...' (salted: a second run differs)"
if echo -n "" | "$PORTRELAY" hash-password alice >/dev/null 2>&1; then fail "hash-password accepted an empty password"; fi
if echo secret | "$PORTRELAY" hash-password 'al:ice' >/dev/null 2>&1; then fail "hash-password accepted a user name with ':'"; fi
note "hash-password rejects an empty password and a user name containing ':'"

# On a terminal: asked twice, echo off while typing, the line still goes to stdout.
"$PY" "$E2E_DIR/on_terminal.py" --type tty-secret --type tty-secret --transcript "$WORK/tty.shown" \
  -- "$PORTRELAY" hash-password bob >"$WORK/tty.driver" || { cat "$WORK/tty.shown" >&2; fail "hash-password on a terminal exited non-zero"; }
grep -q 'Password: ' "$WORK/tty.shown" || { cat "$WORK/tty.shown" >&2; fail "hash-password on a terminal did not prompt"; }
grep -q 'Repeat the password: ' "$WORK/tty.shown" || { cat "$WORK/tty.shown" >&2; fail "hash-password on a terminal did not ask twice"; }
if grep -q 'tty-secret' "$WORK/tty.shown"; then cat "$WORK/tty.shown" >&2; fail "the password was echoed on the terminal"; fi
grep -qx 'echo while waiting for each line: off off' "$WORK/tty.driver" || { cat "$WORK/tty.driver" >&2; fail "terminal echo was not off at both prompts"; }
tty_line=$(tr -d '\r' <"$WORK/tty.shown" | grep -E '^bob:\$scrypt\$') || { cat "$WORK/tty.shown" >&2; fail "no 'bob:' line on the terminal"; }
note "on a terminal: two prompts, echo off at both, password not shown, line '${tty_line:0:30}...'"
status=0
"$PY" "$E2E_DIR/on_terminal.py" --type one --type two --transcript "$WORK/tty-mismatch.shown" \
  -- "$PORTRELAY" hash-password bob >/dev/null || status=$?
[[ $status -eq 1 ]] || { cat "$WORK/tty-mismatch.shown" >&2; fail "hash-password with two different passwords exited $status, want 1"; }
grep -q 'do not match' "$WORK/tty-mismatch.shown" || { cat "$WORK/tty-mismatch.shown" >&2; fail "mismatch not reported"; }
if grep -q 'bob:' "$WORK/tty-mismatch.shown"; then fail "hash-password printed a line although the passwords differ"; fi
note "on a terminal, two different passwords: exit 1, 'do not match', no line"

make_pki "$WORK/pki"
printf '%s\n' "$line" "$tty_line" >"$WORK/users"
chmod 600 "$WORK/users"
start_upstream plain --tls none
SMTP_PORT=$(free_port)
cat >"$WORK/portrelay.toml" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
hostname = "relay.e2e.test"
tls_cert = "$WORK/pki/server.pem"
tls_key = "$WORK/pki/server.key"
users_file = "$WORK/users"
require_auth = true

[[upstream]]
name = "plain"
host = "127.0.0.1"
port = $UPSTREAM_PORT
tls = "none"

[metrics]
enabled = false
TOML
start_portrelay "$WORK/portrelay.toml" "$SMTP_PORT"
note "relay with require_auth on :$SMTP_PORT, upstream aiosmtpd on :$UPSTREAM_PORT"

# swaks_auth NAME ARGS...: swaks STARTTLS submission; output in $WORK/NAME.out, status in SWAKS_STATUS.
swaks_run() {
  local name=$1
  shift
  SWAKS_STATUS=0
  swaks --server 127.0.0.1 --port "$SMTP_PORT" --ehlo app.e2e.test --from app@vm.e2e.test \
    --to someone@example.test --header "Subject: $name" --body "auth test $name" --timeout 20 \
    "$@" >"$WORK/$name.out" 2>&1 || SWAKS_STATUS=$?
}

swaks_run good -tls -au alice -ap secret
[[ $SWAKS_STATUS -eq 0 ]] || { cat "$WORK/good.out" "$WORK/portrelay.log" >&2; fail "swaks -tls -au alice -ap secret failed (exit $SWAKS_STATUS)"; }
grep -qE '^<~ +250[ -]AUTH .*PLAIN' "$WORK/good.out" || { cat "$WORK/good.out" >&2; fail "AUTH PLAIN not advertised after STARTTLS"; }
grep -qE '^<~ +235 ' "$WORK/good.out" || { cat "$WORK/good.out" >&2; fail "AUTH with the right password did not get 235"; }
wait_for_file "$WORK/mail/plain-1.json"
grep -q 'Subject: good' "$WORK/mail/plain-1.eml" || fail "upstream message 1 is not the authenticated submission"
note "right password: 235 over STARTTLS, message relayed to the upstream"

swaks_run bob -tls -au bob -ap tty-secret
[[ $SWAKS_STATUS -eq 0 ]] || { cat "$WORK/bob.out" "$WORK/portrelay.log" >&2; fail "AUTH as bob (line made on a terminal) failed (exit $SWAKS_STATUS)"; }
wait_for_file "$WORK/mail/plain-2.json"
note "the line made on a terminal works: bob gets 235 and the message is relayed"

swaks_run wrong -tls -au alice -ap wrong-password
[[ $SWAKS_STATUS -ne 0 ]] || { cat "$WORK/wrong.out" >&2; fail "swaks with a wrong password succeeded"; }
grep -qE '^<~\* +535 ' "$WORK/wrong.out" || { cat "$WORK/wrong.out" >&2; fail "AUTH with a wrong password did not get 535"; }
note "wrong password: swaks exit $SWAKS_STATUS, $(grep -E '^<~\* +535 ' "$WORK/wrong.out" | head -1 | sed 's/^<~\* *//')"

swaks_run unknown -tls -au mallory -ap secret
[[ $SWAKS_STATUS -ne 0 ]] || { cat "$WORK/unknown.out" >&2; fail "swaks with an unknown user succeeded"; }
grep -qE '^<~\* +535 ' "$WORK/unknown.out" || { cat "$WORK/unknown.out" >&2; fail "AUTH as an unknown user did not get 535"; }
note "unknown user: 535"

swaks_run noauth -tls
[[ $SWAKS_STATUS -ne 0 ]] || { cat "$WORK/noauth.out" >&2; fail "mail without AUTH was accepted although require_auth = true"; }
grep -qE '^<~\* +530 ' "$WORK/noauth.out" || { cat "$WORK/noauth.out" >&2; fail "MAIL without AUTH did not get 530"; }
note "no AUTH: $(grep -E '^<~\* +530 ' "$WORK/noauth.out" | head -1 | sed 's/^<~\* *//')"

# AUTH is not offered before STARTTLS (credentials never in clear text).
swaks_run cleartext -au alice -ap secret
[[ $SWAKS_STATUS -ne 0 ]] || { cat "$WORK/cleartext.out" >&2; fail "AUTH without TLS succeeded"; }
if grep -qE '^<- +250[ -]AUTH' "$WORK/cleartext.out"; then
  cat "$WORK/cleartext.out" >&2
  fail "AUTH advertised on the unencrypted connection"
fi
grep -q 'did not advertise authentication' "$WORK/cleartext.out" || { cat "$WORK/cleartext.out" >&2; fail "swaks without TLS failed for another reason than AUTH not being offered"; }
note "without STARTTLS: AUTH not advertised, submission refused (swaks exit $SWAKS_STATUS)"

[[ ! -e "$WORK/mail/plain-3.json" ]] || fail "a rejected submission reached the upstream"
note "only the authenticated message reached the upstream"
note "PASS"
