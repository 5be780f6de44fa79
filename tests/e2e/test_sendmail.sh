#!/usr/bin/env bash
# `portrelay sendmail` / `mailq` with the real programs that call /usr/sbin/sendmail: mail(1)
# from bsd-mailx, cron's exact MAILTO command line, PHP's mail(); sysexits.h exit statuses
# when the relay is down, defers or refuses; the config found through PORTRELAY_CONFIG, -C
# and --config. Each caller reaches a link named `sendmail` (argv[0] decides) in $WORK/bin.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd bsd-mailx php

start_upstream up --tls none --refuse-rcpt nobody@ --defer-rcpt busy@
SMTP_PORT=$(free_port)
cat >"$WORK/portrelay.toml" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
hostname = "vm1.e2e.test"

[[upstream]]
host = "127.0.0.1"
port = $UPSTREAM_PORT
tls = "none"

# root@vm1.e2e.test goes out as it is: this test is about sendmail itself, not [aliases]
# (which would refuse an unmapped local recipient; test_routes.sh covers them).
[rewrite]
local_domains = ["localhost"]
mail_domain = "vm1.e2e.test"

[metrics]
enabled = false
TOML
start_portrelay "$WORK/portrelay.toml" "$SMTP_PORT"
mkdir -p "$WORK/bin"
ln -s "$PORTRELAY" "$WORK/bin/sendmail"
ln -s "$PORTRELAY" "$WORK/bin/mailq"
export PORTRELAY_CONFIG="$WORK/portrelay.toml"
SENDMAIL="$WORK/bin/sendmail"

# Each delivered message is up-N.eml/.json; N counts across the whole test.
delivered=0
expect_delivery() {  # expect_delivery WHAT: the next message reached the upstream
  delivered=$((delivered + 1))
  wait_for_file "$WORK/mail/up-$delivered.json" 10
  MSG="$WORK/mail/up-$delivered.eml"
  META="$WORK/mail/up-$delivered.json"
  note "$1: delivered as up-$delivered, envelope $(cat "$META")"
}
envelope() { "$PY" -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["mail_from"], *m["rcpt_tos"])' "$META"; }
header() { tr -d '\r' <"$MSG" | sed -n '/^$/q;p' | grep -i "^$1:" || true; }
body() { tr -d '\r' <"$MSG" | sed '1,/^$/d'; }

# 1. cron's MAILTO path: Debian's cron runs exactly this (do_command.c, MAILARGS).
status=0
printf '%s\n' 'From: root (Cron Daemon)' 'To: root' 'Subject: Cron <root@vm1> /usr/local/bin/nightly' \
  'MIME-Version: 1.0' 'Content-Type: text/plain; charset=UTF-8' 'Content-Transfer-Encoding: 8bit' \
  'X-Cron-Env: <SHELL=/bin/sh>' '' 'nightly: 3 files rotated' 'price: 5 €' '.' 'after a lone dot' |
  "$SENDMAIL" -FCronDaemon -i -B8BITMIME -oem root || status=$?
[[ $status -eq 0 ]] || fail "cron's command line exited $status"
expect_delivery "cron (sendmail -FCronDaemon -i -B8BITMIME -oem root)"
[[ $(envelope) == "root@vm1.e2e.test root@vm1.e2e.test" ]] || fail "cron envelope is '$(envelope)', want root@vm1.e2e.test (qualified with server.hostname) twice"
[[ $(header From) == 'From: root (Cron Daemon)' ]] || fail "cron's own From: was changed: $(header From)"
header Date | grep -qE '^Date: [A-Z][a-z]{2}, [0-9]{1,2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} [+-][0-9]{4}$' || fail "no RFC 5322 Date: added: '$(header Date)'"
header Message-ID | grep -qE '^Message-ID: <[0-9]{14}\.[0-9a-f]{16}@vm1\.e2e\.test>$' || fail "no Message-ID added: '$(header Message-ID)'"
body | grep -qx 'after a lone dot' || fail "-i: the lone '.' line ended the message"
body | grep -qx 'price: 5 €' || fail "8-bit body line lost"
grep -q "$(printf 'price: 5 \xe2\x82\xac\r')" "$MSG" || fail "8-bit body not byte-exact with CRLF"
note "cron: envelope root@vm1.e2e.test, From: kept, Date: and Message-ID: added, -i keeps the lone dot, UTF-8 intact"

# 2. mail(1) from bsd-mailx, pointed at the link with its `sendmail` variable.
printf 'set sendmail=%s\n' "$SENDMAIL" >"$WORK/mailrc"
status=0
echo "disk /dev/vda 91% full" | MAILRC="$WORK/mailrc" HOME="$WORK" timeout 30 bsd-mailx \
  -s "smartd warning" -c ops@example.test admin@example.test || status=$?
[[ $status -eq 0 ]] || fail "bsd-mailx exited $status"
expect_delivery "mail -s 'smartd warning' -c ops@example.test admin@example.test"
want="$(id -un)@vm1.e2e.test admin@example.test ops@example.test"
[[ $(envelope) == "$want" ]] || fail "mailx envelope is '$(envelope)', want '$want'"
[[ $(header Subject) == 'Subject: smartd warning' ]] || fail "mailx Subject: is '$(header Subject)'"
header From | grep -qF "<$(id -un)@vm1.e2e.test>" || fail "From: for mailx is '$(header From)'"
body | grep -qx 'disk /dev/vda 91% full' || fail "mailx body lost"
note "bsd-mailx: envelope '$want', $(header From)"

# 3. PHP's mail(): sendmail_path "sendmail -t -i" (php.ini's default), Bcc: must not show.
status=0
php -n -d "sendmail_path=$SENDMAIL -t -i" -r '
  $ok = mail("web@example.test", "Order 42", "Thanks for your order.\n.\nsee you",
             "From: shop@example.test\r\nCc: Sales Team <sales@example.test>\r\nBcc: audit@example.test");
  exit($ok ? 0 : 1);' || status=$?
[[ $status -eq 0 ]] || fail "PHP mail() returned false (exit $status)"
expect_delivery "PHP mail() with sendmail_path='sendmail -t -i'"
# PHP passes the To: argument as a header, so -t finds To/Cc/Bcc. The envelope sender is the
# login (the From: header sets it only with sendmail -f).
[[ $(envelope | cut -d' ' -f2-) == "web@example.test sales@example.test audit@example.test" ]] || fail "PHP recipients are '$(envelope)'"
[[ -z $(header Bcc) ]] || fail "Bcc: was passed on: $(header Bcc)"
[[ $(header To) == 'To: web@example.test' ]] || fail "PHP To: is '$(header To)'"
body | grep -qx 'see you' || fail "PHP body after the lone dot lost (-i)"
note "PHP mail(): To/Cc/Bcc recipients, Bcc: removed, body intact"

# 4. Without -i a lone '.' ends the message (sendmail's rule); -f sets the sender.
printf '%s\n' 'Subject: dot' '' 'before' '.' 'after' | "$SENDMAIL" -f reports@example.test 'Ops <ops@example.test>' ||
  fail "sendmail -f exited non-zero"
expect_delivery "sendmail -f reports@example.test 'Ops <ops@example.test>'"
[[ $(envelope) == "reports@example.test ops@example.test" ]] || fail "envelope is '$(envelope)'"
body | grep -qx 'before' || fail "text before the dot lost"
if body | grep -qx 'after'; then fail "text after a lone '.' was sent without -i"; fi
[[ $(header From) == 'From: <reports@example.test>' || $(header From) == From:*'<reports@example.test>' ]] || fail "added From: is '$(header From)'"
note "lone '.' ends the message without -i; -f sets envelope and added From:"

# 5. A message without any header, recipients as "a, b" in one argument, -F full name.
echo "just a body line" | "$SENDMAIL" -F "Backup Job" "a@example.test, b@example.test" || fail "headerless message failed"
expect_delivery "headerless message, two recipients in one argument"
[[ $(envelope | cut -d' ' -f2-) == "a@example.test b@example.test" ]] || fail "recipients are '$(envelope)'"
[[ $(header From) == "From: Backup Job <$(id -un)@vm1.e2e.test>" ]] || fail "From: with -F is '$(header From)'"
body | grep -qx 'just a body line' || fail "headerless body lost"
note "headerless input: headers added above it; $(header From)"

# 6. Exit statuses (sysexits.h) and nothing delivered on failure.
run_sendmail() {  # run_sendmail NAME ARGS...: status in $WORK/NAME.status, stderr in NAME.err
  local name=$1 status=0
  shift
  printf 'Subject: %s\n\nbody\n' "$name" | timeout 60 "$SENDMAIL" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || status=$?
  echo "$status" >"$WORK/$name.status"
}
expect_exit() {
  local name=$1 want=$2
  [[ $(cat "$WORK/$name.status") == "$want" ]] || { cat "$WORK/$name.err" >&2; fail "$name: exit $(cat "$WORK/$name.status"), want $want"; }
  note "$name: exit $want: $(head -1 "$WORK/$name.err")"
}
run_sendmail refused-recipient nobody@example.test
expect_exit refused-recipient 67
run_sendmail partly-refused nobody@example.test someone@example.test
expect_exit partly-refused 67
expect_delivery "partly refused: the accepted recipient still gets it"
[[ $(envelope | cut -d' ' -f2-) == "someone@example.test" ]] || fail "partly refused envelope is '$(envelope)'"
run_sendmail deferred-recipient someone@example.test busy@example.test
expect_exit deferred-recipient 75
run_sendmail no-recipient -oi
expect_exit no-recipient 64
run_sendmail missing-value -oi -f
expect_exit missing-value 64
run_sendmail unsupported-mode -bs
expect_exit unsupported-mode 64
run_sendmail many-options -oi -oem -odi -odb -oQ/var/spool/x -N never -R hdrs -V env1 -X /dev/null -U -m -n -bm -v x@example.test
expect_exit many-options 0
expect_delivery "every common sendmail option at once (-oi -oem -odi -odb -N -R -V -X -U -m -n -bm -v)"
grep -q '^C: MAIL FROM:' "$WORK/many-options.err" || fail "-v did not show the SMTP dialogue"
printf '[server\n' >"$WORK/broken.toml"
run_sendmail broken-config -C "$WORK/broken.toml" x@example.test
expect_exit broken-config 78
grep -qE "broken.toml:1:[0-9]+: " "$WORK/broken-config.err" || fail "broken config error has no position"

# PHP's mail() fifth parameter: an -f with CR/LF would smuggle a second transaction (another
# recipient, another body) behind MAIL FROM. Refused with 64; nothing reaches the upstream.
run_sendmail smuggled-sender -f $'a@x>\r\nRCPT TO:<evil@x>\r\nDATA\r\nSubject: smuggled\r\n\r\nhi\r\n.\r\nMAIL FROM:<b@x' ok@example.test
expect_exit smuggled-sender 64
grep -q "CR, LF or NUL" "$WORK/smuggled-sender.err" || fail "smuggled sender refused without saying why"
run_sendmail smuggled-recipient ok@example.test $'evil@x>\nDATA'
expect_exit smuggled-recipient 64
run_sendmail parameter-in-sender -f 'a@x> SIZE=1 AUTH=<b@y' ok@example.test
expect_exit parameter-in-sender 64
[[ ! -e "$WORK/mail/up-$((delivered + 1)).json" ]] || fail "a smuggled or invalid envelope reached the upstream"

# The config order: --config beats -C beats PORTRELAY_CONFIG. A closed port: exit 75.
closed=$(free_port)
sed "s/127.0.0.1:$SMTP_PORT/127.0.0.1:$closed/" "$WORK/portrelay.toml" >"$WORK/down.toml"
run_sendmail relay-down -C "$WORK/down.toml" x@example.test
expect_exit relay-down 75
grep -q "127.0.0.1:$closed" "$WORK/relay-down.err" || fail "relay-down error does not name the address"
run_sendmail config-order --config "$WORK/portrelay.toml" -C "$WORK/down.toml" x@example.test
expect_exit config-order 0
expect_delivery "--config wins over -C"
PORTRELAY_CONFIG="$WORK/down.toml" run_sendmail env-config x@example.test
expect_exit env-config 75
PORTRELAY_CONFIG="$WORK/down.toml" run_sendmail c-over-env -C "$WORK/portrelay.toml" x@example.test
expect_exit c-over-env 0
expect_delivery "-C wins over PORTRELAY_CONFIG"

# The daemon stops (as during a restart): 75, the caller keeps the message and retries.
stop_pid "$PORTRELAY_PID" TERM
run_sendmail daemon-stopped x@example.test
expect_exit daemon-stopped 75
[[ ! -e "$WORK/mail/up-$((delivered + 1)).json" ]] || fail "a message was delivered although sendmail failed"

# A user who may not read the config (0640 root:portrelay; a cron job, the web server) still
# submits: to the default listener 127.0.0.1:2525. Checked in a network namespace of this test's
# own, where an aiosmtpd on 127.0.0.1:2525 plays the daemon.
if [[ $(id -u) -eq 0 ]] && command -v unshare >/dev/null && command -v setpriv >/dev/null; then
  chmod 0600 "$WORK/portrelay.toml"
  # A copy of the binary nobody may run: the build tree may be under /root (0700).
  mkdir -m 0755 "$WORK/public"
  install -m 0755 "$PORTRELAY" "$WORK/public/sendmail"
  chmod 0711 "$WORK"
  mkdir -m 0777 "$WORK/ns-mail"
  cat >"$WORK/in-netns.sh" <<INNER
set -eu
ip link set lo up
"$PY" "$E2E_DIR/smtp_upstream.py" --label ns --port 2525 --outdir "$WORK/ns-mail" --port-file "$WORK/ns.port" 2>"$WORK/ns.log" &
for i in \$(seq 100); do [ -s "$WORK/ns.port" ] && break; sleep 0.1; done
status=0
echo 'hello from nobody' | setpriv --reuid=nobody --regid=nogroup --clear-groups \
  env PORTRELAY_CONFIG="$WORK/portrelay.toml" "$WORK/public/sendmail" -i ops@example.test 2>"$WORK/nobody.err" || status=\$?
kill %1
exit \$status
INNER
  status=0
  timeout 60 unshare --net bash "$WORK/in-netns.sh" || status=$?
  [[ $status -eq 0 ]] || { cat "$WORK/nobody.err" "$WORK/ns.log" >&2; fail "sendmail as nobody with an unreadable config exited $status"; }
  META="$WORK/ns-mail/ns-1.json"
  [[ -s $META ]] || fail "nothing reached 127.0.0.1:2525 for sendmail as nobody"
  [[ $(envelope) == "nobody@$(hostname) ops@example.test" ]] || fail "nobody's envelope is '$(envelope)'"
  note "config unreadable for nobody: submitted to the default 127.0.0.1:2525 (in a private netns), envelope '$(envelope)'"
else
  fail "needs root, unshare and setpriv for the unreadable-config case"
fi

# mailq, through its link and as -bp.
out=$("$WORK/bin/mailq") || fail "mailq exited non-zero"
grep -q 'Mail queue is empty' <<<"$out" || fail "mailq printed: $out"
out=$("$SENDMAIL" -bp) || fail "sendmail -bp exited non-zero"
grep -q 'Mail queue is empty' <<<"$out" || fail "sendmail -bp printed: $out"
note "mailq and sendmail -bp: '$out'"
note "PASS"
