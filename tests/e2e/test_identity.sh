#!/usr/bin/env bash
# Sender identity with the real binary against provider_emulator.py (which refuses, as SES
# does, an unverified MAIL FROM or From header, and a To header without a domain):
#   1. cron's exact command line (Debian cron, do_command.c MAILARGS:
#      sendmail -FCronDaemon -i -B8BITMIME -oem root) leaves from the identity verified at the
#      provider, with To: qualified through [aliases]; without [rewrite] the same mail is refused;
#   2. a SendGrid -> Mailgun chain with SendGrid down delivers from Mailgun's own identity;
#   3. the maildrop path: mail dropped while no daemon runs is rewritten when it is picked up.
# In each, [aliases] maps cron's recipient (root) at RCPT: the envelope recipient the
# provider gets is the alias target, not root@<this host>.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

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

mkdir -p "$WORK/bin"
ln -s "$PORTRELAY" "$WORK/bin/sendmail"
SENDMAIL="$WORK/bin/sendmail"
cron_mail() {  # what cron pipes into sendmail, then cron's command line; sets STATUS
  STATUS=0
  printf '%s\n' 'From: root (Cron Daemon)' 'To: root' 'Subject: Cron <root@vm1> /usr/local/bin/nightly' \
    '' 'nightly: 3 files rotated' |
    PORTRELAY_CONFIG="$1" "$SENDMAIL" -FCronDaemon -i -B8BITMIME -oem root 2>"$WORK/sendmail.err" ||
    STATUS=$?
}
envelope() { "$PY" -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["mail_from"])' "$1"; }
recipients() { "$PY" -c 'import json,sys; print(",".join(json.load(open(sys.argv[1]))["rcpt_tos"]))' "$1"; }
header() { tr -d '\r' <"$1" | sed -n '/^$/q;p' | grep -i "^$2:" || true; }

start_provider ses --identity '*=alerts@example.com' --require-qualified-to
SES_PORT=$UPSTREAM_PORT

# 0. The control: without [rewrite], SES refuses cron's mail (so the checks below can fail).
SMTP_PORT=$(free_port)
base_config() {
  printf '[server]\nlisten = ["127.0.0.1:%s"]\nhostname = "vm1.e2e.test"\n' "$1"
  printf '[metrics]\nenabled = false\n'
}
{ base_config "$SMTP_PORT"
  printf '[rewrite]\nmail_domain = "vm1.e2e.test"\n'
  printf '[[upstream]]\nname = "ses"\nhost = "127.0.0.1"\nport = %s\ntls = "none"\n' "$SES_PORT"
} >"$WORK/plain.toml"
start_portrelay "$WORK/plain.toml" "$SMTP_PORT"
cron_mail "$WORK/plain.toml"
[[ $STATUS -ne 0 ]] || fail "without [rewrite] the emulator took root@vm1.e2e.test: the control is broken"
grep -q "Email address is not verified" "$WORK/sendmail.err" || fail "sendmail did not report SES's refusal: $(cat "$WORK/sendmail.err")"
stop_pid "$PORTRELAY_PID"
note "control: without [rewrite], cron's mail is refused (sendmail exit $STATUS)"

# 1. The three lines of the README.
SMTP_PORT=$(free_port)
{ base_config "$SMTP_PORT"
  printf '[[upstream]]\nname = "ses"\nhost = "127.0.0.1"\nport = %s\ntls = "none"\n' "$SES_PORT"
  printf '[rewrite]\nmail_domain = "vm1.e2e.test"\nsender = "alerts@example.com"\n[aliases]\nroot = "ops@example.com"\n'
} >"$WORK/ses.toml"
start_portrelay "$WORK/ses.toml" "$SMTP_PORT"
cron_mail "$WORK/ses.toml"
[[ $STATUS -eq 0 ]] || { cat "$WORK/sendmail.err" "$WORK/portrelay.log" >&2; fail "cron's mail with [rewrite]: sendmail exited $STATUS"; }
wait_for_file "$WORK/mail/ses-1.json" 10
MSG="$WORK/mail/ses-1.eml"
[[ $(envelope "$WORK/mail/ses-1.json") == alerts@example.com ]] || fail "MAIL FROM is $(envelope "$WORK/mail/ses-1.json")"
[[ $(header "$MSG" From) == 'From: alerts@example.com (Cron Daemon)' ]] || fail "From is '$(header "$MSG" From)'"
[[ $(recipients "$WORK/mail/ses-1.json") == ops@example.com ]] || fail "RCPT TO is $(recipients "$WORK/mail/ses-1.json")"
[[ $(header "$MSG" To) == 'To: ops@example.com' ]] || fail "To is '$(header "$MSG" To)'"
[[ $(header "$MSG" Reply-To) == 'Reply-To: ops@example.com (Cron Daemon)' ]] || fail "Reply-To is '$(header "$MSG" Reply-To)'"
grep -q 'event=message.*from=alerts@example.com original_from=root@vm1.e2e.test' "$WORK/portrelay.log" ||
  fail "the message line does not show both senders: $(grep 'event=message' "$WORK/portrelay.log")"
stop_pid "$PORTRELAY_PID"
note "cron on SES: MAIL FROM alerts@example.com, RCPT TO ops@example.com, $(header "$MSG" From), $(header "$MSG" To)"

# 2. SendGrid (down) then Mailgun, each with its own verified identity.
start_provider mailgun --identity '*=alerts@mg.example.com' --require-qualified-to
MG_PORT=$UPSTREAM_PORT
DOWN_PORT=$(free_port)  # nothing listens: connection refused
SMTP_PORT=$(free_port)
{ base_config "$SMTP_PORT"
  printf '[[upstream]]\nname = "sendgrid"\nhost = "127.0.0.1"\nport = %s\ntls = "none"\n' "$DOWN_PORT"
  printf 'sender = "alerts@sg.example.com"\n'
  printf '[[upstream]]\nname = "mailgun"\nhost = "127.0.0.1"\nport = %s\ntls = "none"\n' "$MG_PORT"
  printf 'sender = "alerts@mg.example.com"\n'
  printf '[aliases]\nroot = "ops@example.com"\n'
} >"$WORK/chain.toml"
start_portrelay "$WORK/chain.toml" "$SMTP_PORT"
cron_mail "$WORK/chain.toml"
[[ $STATUS -eq 0 ]] || { cat "$WORK/portrelay.log" >&2; fail "chain: sendmail exited $STATUS"; }
wait_for_file "$WORK/mail/mailgun-1.json" 10
MSG="$WORK/mail/mailgun-1.eml"
[[ $(envelope "$WORK/mail/mailgun-1.json") == alerts@mg.example.com ]] || fail "Mailgun's MAIL FROM is $(envelope "$WORK/mail/mailgun-1.json")"
[[ $(header "$MSG" From) == 'From: alerts@mg.example.com (Cron Daemon)' ]] || fail "Mailgun's From is '$(header "$MSG" From)'"
[[ $(recipients "$WORK/mail/mailgun-1.json") == ops@example.com ]] || fail "Mailgun's RCPT TO is $(recipients "$WORK/mail/mailgun-1.json")"
grep -q "sg.example.com" "$MSG" && fail "SendGrid's identity leaked into the message Mailgun got"
stop_pid "$PORTRELAY_PID"
note "SendGrid down -> Mailgun: MAIL FROM alerts@mg.example.com, $(header "$MSG" From)"

# 3. The maildrop: sendmail while no daemon runs, then the daemon picks it up.
SMTP_PORT=$(free_port)
{ base_config "$SMTP_PORT"
  printf '[relay]\nmode = "spool"\n[spool]\ndir = "%s/spool"\n' "$WORK"
  printf '[[upstream]]\nname = "ses"\nhost = "127.0.0.1"\nport = %s\ntls = "none"\n' "$SES_PORT"
  printf '[rewrite]\nmail_domain = "vm1.e2e.test"\nsender = "alerts@example.com"\n[aliases]\nroot = "ops@example.com"\n'
} >"$WORK/drop.toml"
start_portrelay "$WORK/drop.toml" "$SMTP_PORT"  # creates the spool and its maildrop
stop_pid "$PORTRELAY_PID"
cron_mail "$WORK/drop.toml"
[[ $STATUS -eq 0 ]] || fail "maildrop: sendmail exited $STATUS"
start_portrelay "$WORK/drop.toml" "$SMTP_PORT"
wait_for_file "$WORK/mail/ses-2.json" 15
MSG="$WORK/mail/ses-2.eml"
[[ $(envelope "$WORK/mail/ses-2.json") == alerts@example.com ]] || fail "maildrop MAIL FROM is $(envelope "$WORK/mail/ses-2.json")"
[[ $(header "$MSG" From) == 'From: alerts@example.com (Cron Daemon)' ]] || fail "maildrop From is '$(header "$MSG" From)'"
[[ $(recipients "$WORK/mail/ses-2.json") == ops@example.com ]] || fail "maildrop RCPT TO is $(recipients "$WORK/mail/ses-2.json")"
grep -q 'event=queued.*origin="maildrop.* from=alerts@example.com .*original_from=root@vm1.e2e.test' "$WORK/portrelay.log" ||
  fail "the queued line does not show both senders: $(grep 'event=queued' "$WORK/portrelay.log")"
stop_pid "$PORTRELAY_PID"
note "maildrop: picked up as alerts@example.com, $(header "$MSG" From)"
note "PASS"
