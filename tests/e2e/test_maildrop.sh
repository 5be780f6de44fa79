#!/usr/bin/env bash
# No mail is lost while the daemon is down: `sendmail` stores the message in the spool's
# maildrop (synced before exit 0), and the daemon queues and delivers it when it starts.
# Real users made with useradd: one user's dropped mail cannot be read, listed, removed or
# altered by another, nor can the rest of the spool. Hostile files planted in the maildrop
# (a symlink to a root-only file, a FIFO, a malformed file, a file with bare LFs that would
# smuggle SMTP) are refused and logged with the dropping user's uid; none hangs the daemon.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
[[ $(id -u) -eq 0 ]] || fail "needs root (useradd, files owned by other users)"
require_cmd useradd userdel setpriv

USER_A="prdropa$$"
USER_B="prdropb$$"
userdel_all() { userdel "$USER_A" 2>/dev/null || true; userdel "$USER_B" 2>/dev/null || true; }
trap 'st=$?; userdel_all; (exit $st); cleanup' EXIT
useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$USER_A"
useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$USER_B"
as_a() { setpriv --reuid="$USER_A" --regid="$USER_A" --clear-groups "$@"; }
as_b() { setpriv --reuid="$USER_B" --regid="$USER_B" --clear-groups "$@"; }

start_upstream up --tls none
SMTP_PORT=$(free_port)
SPOOL="$WORK/spool"
CONFIG="$WORK/portrelay.toml"
cat >"$CONFIG" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
hostname = "vm1.e2e.test"

[relay]
mode = "spool"

[spool]
dir = "$SPOOL"

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
# Users reach the binary, the (world-readable) config and the spool's maildrop; the build
# tree may be under /root (0700).
chmod 0711 "$WORK"
chmod 0644 "$CONFIG"
mkdir -m 0755 "$WORK/bin"
install -m 0755 "$PORTRELAY" "$WORK/bin/portrelay"
ln -s portrelay "$WORK/bin/sendmail"
SENDMAIL="$WORK/bin/sendmail"
export PORTRELAY_CONFIG="$CONFIG"

# The first start creates the spool and its maildrop; then the daemon stops.
start_portrelay "$CONFIG" "$SMTP_PORT"
stop_pid "$PORTRELAY_PID" TERM
MAILDROP="$SPOOL/maildrop"
[[ $(stat -c %a "$SPOOL") == 711 ]] || fail "spool mode is $(stat -c %a "$SPOOL"), want 711"
[[ $(stat -c %a "$MAILDROP") == 3733 ]] || fail "maildrop mode is $(stat -c %a "$MAILDROP"), want 3733"

# 1. cron's own command line as root, no daemon: exit 0, not 75.
status=0
printf '%s\n' 'From: root (Cron Daemon)' 'To: root' 'Subject: Cron <root@vm1> nightly' '' 'rotated' |
  "$SENDMAIL" -FCronDaemon -i -B8BITMIME -oem root 2>"$WORK/cron.err" || status=$?
[[ $status -eq 0 ]] || { cat "$WORK/cron.err" >&2; fail "cron's sendmail with no daemon exited $status"; }
[[ $(find "$MAILDROP" -maxdepth 1 -type f ! -name '.*' | wc -l) -eq 1 ]] || fail "no file in the maildrop after the cron mail"
note "cron mail with no daemon: exit 0, stored in the maildrop"

# 2. An unprivileged user drops a message; another user can do nothing with it.
status=0
printf 'Subject: from A\n\nsecret body of A\n' | as_a "$SENDMAIL" -i ops@example.test 2>"$WORK/a.err" || status=$?
[[ $status -eq 0 ]] || { cat "$WORK/a.err" >&2; fail "sendmail as $USER_A with no daemon exited $status"; }
A_FILE=$(find "$MAILDROP" -maxdepth 1 -type f -user "$USER_A" ! -name '.*' -printf '%f\n')
[[ -n $A_FILE ]] || fail "$USER_A's message is not in the maildrop"
[[ $(stat -c '%a %G' "$MAILDROP/$A_FILE") == "640 $(stat -c %G "$MAILDROP")" ]] || fail "dropped file is $(stat -c '%a %G' "$MAILDROP/$A_FILE")"
if as_b ls "$MAILDROP" >/dev/null 2>&1; then fail "$USER_B can list the maildrop"; fi
if as_a ls "$MAILDROP" >/dev/null 2>&1; then fail "$USER_A can list the maildrop"; fi
if as_b cat "$MAILDROP/$A_FILE" >/dev/null 2>&1; then fail "$USER_B can read $USER_A's dropped mail"; fi
if as_b rm -f "$MAILDROP/$A_FILE" 2>/dev/null && [[ ! -e $MAILDROP/$A_FILE ]]; then fail "$USER_B removed $USER_A's dropped mail"; fi
if as_b mv "$MAILDROP/$A_FILE" "$MAILDROP/stolen" 2>/dev/null; then fail "$USER_B renamed $USER_A's dropped mail"; fi
if as_b sh -c "echo x >>'$MAILDROP/$A_FILE'" 2>/dev/null; then fail "$USER_B appended to $USER_A's dropped mail"; fi
for area in queue tmp failed corrupt; do
  if as_b ls "$SPOOL/$area" >/dev/null 2>&1; then fail "$USER_B can list $area/"; fi
done
if as_b cat "$SPOOL/lock" >/dev/null 2>&1; then fail "$USER_B can open the spool lock"; fi
grep -q 'secret body of A' "$MAILDROP/$A_FILE" || fail "$USER_A's file was altered"
note "$USER_B can neither list, read, remove, rename nor append to $USER_A's dropped file"

# mailq (as root) shows what waits in the maildrop, with who dropped it.
ln -s portrelay "$WORK/bin/mailq"
"$WORK/bin/mailq" >"$WORK/mailq.out" || fail "mailq failed: $(cat "$WORK/mailq.out")"
[[ $(grep -c 'in the maildrop' "$WORK/mailq.out") -eq 2 ]] || fail "mailq does not list the 2 dropped messages: $(cat "$WORK/mailq.out")"
grep -q "from uid $(id -u "$USER_A")" "$WORK/mailq.out" || fail "mailq does not say who dropped it: $(cat "$WORK/mailq.out")"
grep -q 'ops@example.test  \[dropped\]' "$WORK/mailq.out" || fail "mailq lacks the dropped recipient"
"$PORTRELAY" queue --config "$CONFIG" list --json >"$WORK/list.json"
"$PY" -c 'import json,sys; e=json.load(open(sys.argv[1])); assert sorted(x["area"] for x in e)==["maildrop","maildrop"], e' "$WORK/list.json" ||
  fail "queue list --json lacks the maildrop: $(cat "$WORK/list.json")"
note "mailq lists both dropped messages and their uids"

# 3. Hostile files, planted by user A where only the daemon reads: a symlink to a root-only
# file, a FIFO, a bare-LF file that would smuggle a second transaction, a hard link.
echo "root only" >"$WORK/root-only"
chmod 0600 "$WORK/root-only"
as_a ln -s "$WORK/root-only" "$MAILDROP/0-link"
as_a mkfifo "$MAILDROP/0-fifo"
printf 'portrelay-maildrop 1\nsender <a@x>\nrecipient <ops@example.test>\nbody 7bit\n\nSubject: x\n\nhi\n.\nMAIL FROM:<evil@x>\n' |
  as_a sh -c "cat >'$MAILDROP/0-smuggle'"
root_before=$(stat -c '%U %a %s' "$WORK/root-only")

# 4. The daemon starts: the two real messages are delivered, the planted files refused.
start_portrelay "$CONFIG" "$SMTP_PORT"
wait_for_file "$WORK/mail/up-2.json" 15
sleep 1
[[ ! -e "$WORK/mail/up-3.json" ]] || fail "a planted file was delivered: $(cat "$WORK/mail/up-3.json")"
A_UID=$(id -u "$USER_A")
grep -q "event=maildrop_picked_up.*uid=$A_UID" "$WORK/portrelay.log" || fail "no maildrop_picked_up line with uid=$A_UID: $(grep maildrop "$WORK/portrelay.log")"
grep -q 'origin="maildrop:uid=0"' "$WORK/portrelay.log" || fail "root's drop not logged with uid=0"
for planted in 0-link 0-fifo 0-smuggle; do
  grep -q "event=maildrop_rejected.*file=$planted" "$WORK/portrelay.log" || fail "$planted not refused in the log"
done
grep -q "event=maildrop_rejected.*file=0-smuggle.*uid=$A_UID.*bare LF" "$WORK/portrelay.log" || fail "the smuggling file's refusal lacks uid or reason"
[[ $(stat -c '%U %a %s' "$WORK/root-only") == "$root_before" ]] || fail "the symlink target changed"
[[ -z $(find "$MAILDROP" -mindepth 1 ! -name '.*') ]] || fail "maildrop not emptied: $(ls -a "$MAILDROP")"
grep -h "^Subject:" "$WORK"/mail/up-*.eml | tr -d '\r' | sort >"$WORK/subjects"
grep -qx 'Subject: from A' "$WORK/subjects" || fail "$USER_A's message not delivered: $(cat "$WORK/subjects")"
grep -qx 'Subject: Cron <root@vm1> nightly' "$WORK/subjects" || fail "cron's message not delivered"
note "daemon start: 2 dropped messages delivered, 3 planted files refused (uid logged), target untouched"

# 5. While the daemon runs, sendmail submits over SMTP as before: nothing goes to the maildrop.
printf 'Subject: live\n\nbody\n' | "$SENDMAIL" -i ops@example.test || fail "live submission failed"
wait_for_file "$WORK/mail/up-3.json" 10
[[ -z $(find "$MAILDROP" -mindepth 1 ! -name '.*') ]] || fail "a live submission went to the maildrop"

# 6. A configuration without a spool has no maildrop: 75 as before, nothing stored.
stop_pid "$PORTRELAY_PID" TERM
sed -e '/^\[relay\]/,/^$/d' -e 's/^dir = .*//' "$CONFIG" >"$WORK/passthrough.toml"
status=0
printf 'Subject: lost?\n\nbody\n' | "$SENDMAIL" -C "$WORK/passthrough.toml" -i ops@example.test 2>"$WORK/pt.err" || status=$?
[[ $status -eq 75 ]] || fail "passthrough config with no daemon: exit $status, want 75"
grep -q "no maildrop" "$WORK/pt.err" || fail "exit 75 does not say why: $(cat "$WORK/pt.err")"
note "passthrough config: exit 75 ($(head -1 "$WORK/pt.err"))"
