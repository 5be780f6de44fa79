#!/usr/bin/env bash
# [[route]], [aliases] and require_route with the real binary against provider_emulator.py:
# two provider accounts, each verifying one domain for one credential (as SES and Mailgun
# do), and a route per domain; a sender no route matches is refused at MAIL; a local
# recipient reaches its alias or is refused at RCPT; `check` prints each route's chain and
# `probe --route` probes one. Then, in spool mode, a bounce for a local sender goes to that
# sender's alias. (The sender is not rewritten here: [rewrite] sender is another change's;
# the bounce goes to the envelope sender the spool holds, mapped through [aliases].)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd openssl

# start_provider LABEL [provider_emulator.py options...]: as start_upstream, with the emulator.
start_provider() {
  local label=$1 i
  shift
  mkdir -p "$WORK/mail"
  start_bg "$WORK/$label.log" "$PY" "$E2E_DIR/provider_emulator.py" --label "$label" \
    --outdir "$WORK/mail" --port-file "$WORK/$label.port" "$@"
  for ((i = 0; i < 200; i++)); do
    [[ -s "$WORK/$label.port" ]] && break
    sleep 0.05
  done
  [[ -s "$WORK/$label.port" ]] || { cat "$WORK/$label.log" >&2; fail "provider $label did not start"; }
  UPSTREAM_PORT=$(cat "$WORK/$label.port")
}

make_pki "$WORK/pki"
TLS=(--tls starttls --cert "$WORK/pki/server.pem" --key "$WORK/pki/server.key")
start_provider sg "${TLS[@]}" --auth "sg-user:sg-secret" --identity "sg-user=example.com"
SG_PORT=$UPSTREAM_PORT
start_provider mg "${TLS[@]}" --auth "mg-user:mg-secret" --identity "mg-user=shop.example.com"
MG_PORT=$UPSTREAM_PORT
export E2E_SG_PASSWORD=sg-secret E2E_MG_PASSWORD=mg-secret

SMTP_PORT=$(free_port)
upstream() {  # upstream NAME PORT USER ENV
  printf '[[upstream]]\nname = "%s"\nhost = "127.0.0.1"\nport = %s\ntls = "starttls"\n' "$1" "$2"
  printf 'ca_file = "%s"\ntls_server_name = "localhost"\nusername = "%s"\npassword_env = "%s"\n\n' \
    "$WORK/pki/ca.pem" "$3" "$4"
}
{
  printf '[server]\nlisten = ["127.0.0.1:%s"]\nhostname = "vm1.e2e.test"\n\n' "$SMTP_PORT"
  printf '[relay]\nrequire_route = true\nprobe_interval = "0s"\n\n'
  printf '[rewrite]\nlocal_domains = ["vm1.e2e.test"]\nmail_domain = "vm1.e2e.test"\n\n'
  printf '[aliases]\nroot = "admin@example.com"\npostmaster = "root"\n\n'
  upstream sendgrid "$SG_PORT" sg-user E2E_SG_PASSWORD
  upstream mailgun "$MG_PORT" mg-user E2E_MG_PASSWORD
  printf '[[route]]\nname = "shop"\nsenders = ["*@shop.example.com"]\nupstreams = ["mailgun"]\n\n'
  printf '[[route]]\nname = "main"\nsenders = ["*@example.com"]\nupstreams = ["sendgrid"]\n\n'
  printf '[metrics]\nenabled = false\n'
} >"$WORK/routes.toml"

# check: each route's chain, and what becomes of other senders.
"$PORTRELAY" check --config "$WORK/routes.toml" >"$WORK/check.out" 2>"$WORK/check.err" ||
  { cat "$WORK/check.err" >&2; fail "check refused the routes config"; }
grep -q "^  shop  senders=\*@shop.example.com$" "$WORK/check.out" || { cat "$WORK/check.out"; fail "check does not list route shop"; }
grep -q "chain: mailgun:$MG_PORT$" "$WORK/check.out" || { cat "$WORK/check.out"; fail "check does not print shop's chain"; }
grep -q "refused at MAIL with 550 5.7.1 (relay.require_route)" "$WORK/check.out" || { cat "$WORK/check.out"; fail "check does not say unrouted senders are refused"; }
# probe --route: that chain only.
status=0
"$PORTRELAY" probe --config "$WORK/routes.toml" --route shop >"$WORK/probe.out" 2>&1 || status=$?
[[ $status -eq 0 ]] || { cat "$WORK/probe.out"; fail "probe --route shop exited $status"; }
grep -q "mailgun" "$WORK/probe.out" || { cat "$WORK/probe.out"; fail "probe --route shop did not probe mailgun"; }
if grep -q "sendgrid" "$WORK/probe.out"; then cat "$WORK/probe.out"; fail "probe --route shop probed sendgrid"; fi
status=0
"$PORTRELAY" probe --config "$WORK/routes.toml" --route nosuch >"$WORK/probe-bad.out" 2>&1 || status=$?
[[ $status -eq 1 ]] && grep -q 'no \[\[route\]\] named "nosuch"' "$WORK/probe-bad.out" || { cat "$WORK/probe-bad.out"; fail "probe --route nosuch: status $status"; }
note "check prints each route's chain; probe --route probes only that chain"

start_portrelay "$WORK/routes.toml" "$SMTP_PORT"
printf 'From: %s\r\nTo: x@example.net\r\nSubject: route test\r\n\r\nbody\r\n' orders@shop.example.com >"$WORK/shop.eml"
printf 'From: %s\r\nTo: x@example.net\r\nSubject: route test\r\n\r\nbody\r\n' app@example.com >"$WORK/main.eml"
submit() { "$PY" "$E2E_DIR/submit.py" 127.0.0.1 "$SMTP_PORT" "$@"; }
meta() { "$PY" -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["mail_from"], m.get("auth_user"), *m["rcpt_tos"])' "$1"; }

# Two routes, two credentials: each message leaves through the account that verified its
# sender's domain (either would refuse the other's with SES's 554).
submit orders@shop.example.com x@example.net "$WORK/shop.eml" >"$WORK/submit-shop.out" || { cat "$WORK/submit-shop.out"; fail "shop message refused"; }
wait_for_file "$WORK/mail/mg-1.json" 10
[[ $(meta "$WORK/mail/mg-1.json") == "orders@shop.example.com mg-user x@example.net" ]] || fail "shop message at mailgun: $(meta "$WORK/mail/mg-1.json")"
submit app@example.com x@example.net "$WORK/main.eml" >"$WORK/submit-main.out" || { cat "$WORK/submit-main.out"; fail "main message refused"; }
wait_for_file "$WORK/mail/sg-1.json" 10
[[ $(meta "$WORK/mail/sg-1.json") == "app@example.com sg-user x@example.net" ]] || fail "main message at sendgrid: $(meta "$WORK/mail/sg-1.json")"
note "two routes with different credentials: each message left through its own account"

# require_route: a sender no route matches is refused at MAIL, before any upstream.
status=0
submit someone@elsewhere.test x@example.net "$WORK/main.eml" >"$WORK/submit-none.out" || status=$?
[[ $status -ne 0 ]] && grep -q "550" "$WORK/submit-none.out" && grep -q "5.7.1" "$WORK/submit-none.out" ||
  { cat "$WORK/submit-none.out"; fail "unrouted sender was not refused with 550 5.7.1"; }
note "require_route: an unrouted sender gets 550 5.7.1 at MAIL"

# A local recipient reaches its alias (postmaster -> root -> admin@example.com); an unmapped
# one is refused at RCPT and never reaches a provider.
submit app@example.com postmaster@vm1.e2e.test "$WORK/main.eml" >"$WORK/submit-alias.out" || { cat "$WORK/submit-alias.out"; fail "aliased recipient refused"; }
wait_for_file "$WORK/mail/sg-2.json" 10
[[ $(meta "$WORK/mail/sg-2.json") == "app@example.com sg-user admin@example.com" ]] || fail "alias not applied: $(meta "$WORK/mail/sg-2.json")"
status=0
submit app@example.com www-data@vm1.e2e.test "$WORK/main.eml" >"$WORK/submit-local.out" || status=$?
[[ $status -ne 0 ]] && grep -q "550" "$WORK/submit-local.out" && grep -q "5.1.1" "$WORK/submit-local.out" ||
  { cat "$WORK/submit-local.out"; fail "unmapped local recipient was not refused with 550 5.1.1"; }
sleep 0.5
[[ ! -e "$WORK/mail/sg-3.json" ]] || fail "the unmapped local recipient's message reached the provider"
note "aliases: postmaster reached admin@example.com; www-data was refused at RCPT"
stop_pid "$PORTRELAY_PID"

# Spool mode: a recipient refused for good makes a bounce; the local sender's bounce goes to
# its alias (default), not to cron@vm1.e2e.test at the provider.
start_upstream plain --tls none --refuse-rcpt nobody@
PLAIN_PORT=$UPSTREAM_PORT
SMTP_PORT=$(free_port)
cat >"$WORK/bounce.toml" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
hostname = "vm1.e2e.test"

[relay]
mode = "spool"
probe_interval = "0s"

[spool]
dir = "$WORK/spool"

[rewrite]
local_domains = ["vm1.e2e.test"]
mail_domain = "vm1.e2e.test"

[aliases]
default = "admin@example.com"

[[upstream]]
name = "plain"
host = "127.0.0.1"
port = $PLAIN_PORT
tls = "none"

[metrics]
enabled = false
TOML
start_portrelay "$WORK/bounce.toml" "$SMTP_PORT"
printf 'From: cron@vm1.e2e.test\r\nTo: nobody@example.net\r\nSubject: will bounce\r\n\r\nbody\r\n' >"$WORK/bounce.eml"
submit cron@vm1.e2e.test nobody@example.net "$WORK/bounce.eml" >"$WORK/submit-bounce.out" || { cat "$WORK/submit-bounce.out"; fail "spool refused the message"; }
wait_for_file "$WORK/mail/plain-1.json" 15
[[ $(meta "$WORK/mail/plain-1.json") == "<> None admin@example.com" ]] || fail "the bounce went to '$(meta "$WORK/mail/plain-1.json")', want <> to admin@example.com"
grep -q "Subject: Undelivered\|Delivery Status Notification\|nobody@example.net" "$WORK/mail/plain-1.eml" || fail "plain-1 is not the bounce"
note "bounce for local sender cron@vm1.e2e.test went to its alias admin@example.com"

# `sendmail root` with nothing but [aliases] (here `default`) reaches the admin address:
# over SMTP while the daemon runs, and through the maildrop while it does not.
mkdir -p "$WORK/bin"
ln -sf "$PORTRELAY" "$WORK/bin/sendmail"
export PORTRELAY_CONFIG="$WORK/bounce.toml"
printf 'Subject: cron output\n\nhello root\n' | "$WORK/bin/sendmail" -i root || fail "sendmail root exited $?"
wait_for_file "$WORK/mail/plain-2.json" 15
[[ $(meta "$WORK/mail/plain-2.json") == "root@vm1.e2e.test None admin@example.com" ]] || fail "sendmail root (daemon up) went to '$(meta "$WORK/mail/plain-2.json")'"
stop_pid "$PORTRELAY_PID"
printf 'Subject: cron output\n\nhello again\n' | "$WORK/bin/sendmail" -i root || fail "sendmail root (no daemon) exited $?"
start_portrelay "$WORK/bounce.toml" "$SMTP_PORT"
wait_for_file "$WORK/mail/plain-3.json" 15
[[ $(meta "$WORK/mail/plain-3.json") == "root@vm1.e2e.test None admin@example.com" ]] || fail "sendmail root (maildrop) went to '$(meta "$WORK/mail/plain-3.json")'"
note "sendmail root reached admin@example.com over SMTP and through the maildrop"
stop_pid "$PORTRELAY_PID"
