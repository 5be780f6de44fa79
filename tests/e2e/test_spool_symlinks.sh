#!/usr/bin/env bash
# The spool belongs to the service user, and root runs `portrelay queue` / `mailq` (and
# sometimes the daemon) on it: nothing the owner plants in the spool may lead root to
# another file. With the spool owned by a user this test creates, a root-owned canary file
# (and a canary directory) is the target of a symbolic link at every name the spool uses
# (lock, tmp/<id>.state.cli, tmp/<id>.state.N, tmp/<id>, queue/<id>, queue/<id>.state,
# failed/<id>, failed/<id>.state, and the directories tmp/ queue/ failed/ corrupt/
# themselves); every queue command and a short `run` go over it as root, with no daemon
# running, and the canary's content, owner and mode must not change. Then a FIFO in queue/
# and failed/ must not hang `queue list` nor the daemon's start, and `mailq` by a user who
# may not read the spool (or the configuration) must say so and exit 77, never "empty".
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

[[ $(id -u) -eq 0 ]] || fail "needs root (it runs the queue commands as root on a spool another user owns)"
require_cmd useradd userdel setpriv mkfifo timeout stat sha256sum

# The spool's owner: a user of this test's own, removed at the end.
OWNER="prsym$$"
useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$OWNER" \
  || fail "useradd $OWNER failed"
trap 'status=$?; userdel "$OWNER" 2>/dev/null || true; (exit $status); cleanup' EXIT
OWNER_UID=$(id -u "$OWNER")

# The owner (and nobody, for mailq) must reach the spool and run the binary: $WORK may be
# 0700 and the build tree under /root.
chmod 0711 "$WORK"
mkdir -m 0755 "$WORK/bin"
install -m 0755 "$PORTRELAY" "$WORK/bin/portrelay"
BIN="$WORK/bin/portrelay"

SMTP_PORT=$(free_port)
DEAD_PORT=$(free_port)  # nothing listens: every delivery is deferred, mail stays queued
SPOOL="$WORK/spool"
CONFIG="$WORK/portrelay.toml"
cat >"$CONFIG" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
hostname = "relay.e2e.test"

[relay]
mode = "spool"
connect_timeout = "1s"

[spool]
dir = "$SPOOL"
retry_min = "1h"
retry_max = "1h"

[[upstream]]
name = "dead"
host = "127.0.0.1"
port = $DEAD_PORT
tls = "none"

[metrics]
enabled = false
TOML
chmod 0644 "$CONFIG"
mkdir -m 0700 "$SPOOL"
chown "$OWNER:" "$SPOOL"

AS_OWNER=(setpriv --reuid="$OWNER" --regid="$(id -g "$OWNER")" --init-groups)
as_owner() { "${AS_OWNER[@]}" "$@"; }

send() {  # send SUBJECT -> the queue id
  printf 'Subject: %s\r\nFrom: app@vm.e2e.test\r\nTo: someone@example.test\r\n\r\nbody\r\n' "$1" \
    >"$WORK/message.eml"
  local reply
  reply=$("$PY" "$E2E_DIR/submit.py" 127.0.0.1 "$SMTP_PORT" app@vm.e2e.test someone@example.test \
    "$WORK/message.eml" --timeout 20) || fail "submission refused: $reply"
  [[ $reply == *"queued as "* ]] || fail "no queue id in: $reply"
  sed -E 's/.*queued as ([0-9A-F]+).*/\1/' <<<"$reply"
}

# A spool with real mail in it, made by the daemon running as the owner: four messages in
# queue/, the last moved to failed/ (as a permanent failure would).
start_bg "$WORK/owner-daemon.log" "${AS_OWNER[@]}" "$BIN" run --config "$CONFIG" --shutdown-grace 1s
OWNER_DAEMON=$LAST_PID
wait_for_port 127.0.0.1 "$SMTP_PORT" 10
ID1=$(send one)
ID2=$(send two)
ID3=$(send three)
ID4=$(send four)
stop_pid "$OWNER_DAEMON"
as_owner mv "$SPOOL/queue/$ID4" "$SPOOL/failed/$ID4"
[[ -f $SPOOL/queue/$ID1 && -f $SPOOL/failed/$ID4 && -f $SPOOL/lock ]] || fail "the owner's daemon made no spool: $(ls -lR "$SPOOL")"
note "spool owned by $OWNER (uid $OWNER_UID): $ID1 $ID2 $ID3 in queue/, $ID4 in failed/"

# The canaries: a root file and a root directory holding a message any command could act on.
CANARY="$WORK/canary"
printf 'canary: root owns this and nothing may change it\n' >"$CANARY"
chown root:root "$CANARY"
chmod 0640 "$CANARY"
CANARY_DIR="$WORK/canary-dir"
mkdir -m 0750 "$CANARY_DIR"
cp "$SPOOL/failed/$ID4" "$CANARY_DIR/$ID4"  # `queue delete` looks for it in queue/ and failed/
cp "$SPOOL/queue/$ID1" "$CANARY_DIR/$ID1"
printf 'not a state\n' >"$CANARY_DIR/$ID1.state"
chown -R root:root "$CANARY_DIR"
chmod 0600 "$CANARY_DIR"/*
canary_state() {  # every name, owner, mode, size, mtime and ctime (ns), and every content
  find "$CANARY" "$CANARY_DIR" -printf '%p %u %g %m %s %T@ %C@\n' | sort
  find "$CANARY" "$CANARY_DIR" -type f -exec sha256sum {} + | sort
}
BEFORE=$(canary_state)
check_canary() {  # check_canary WHAT
  local now
  now=$(canary_state)
  [[ $now == "$BEFORE" ]] || fail "$1 changed a root-owned canary:
before:
$BEFORE
after:
$now"
}

# q ARGS...: one queue command as root, bounded; its status in $rc, output in $WORK/q.out/err.
q() {
  rc=0
  PORTRELAY_CONFIG="$CONFIG" timeout 20 "$BIN" "$@" >"$WORK/q.out" 2>"$WORK/q.err" || rc=$?
  [[ $rc -ne 124 ]] || fail "'portrelay $*' hung (killed after 20 s)"
  check_canary "'portrelay $*' as root"
}
every_command() {  # every_command LABEL: each queue command once, as root
  local id
  q queue list
  q queue list --json
  q mailq
  for id in "$ID1" "$ID4"; do q queue show "$id"; done
  q queue bounce "$ID1"
  q queue retry "$ID2"
  q queue retry --all
  q queue delete "$ID4"
  q queue delete "$ID3"
  note "$1: list, list --json, mailq, show, bounce, retry, retry --all, delete: canary unchanged"
}
# run_briefly LABEL: `portrelay run` as root for a moment (it may refuse the spool).
run_briefly() {
  local pid i
  start_bg "$WORK/root-daemon.log" timeout 10 "$BIN" run --config "$CONFIG" --shutdown-grace 1s
  pid=$LAST_PID
  for ((i = 0; i < 40; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    grep -q 'spool_recovered\|event=listening\|listening' "$WORK/root-daemon.log" && break
    sleep 0.05
  done
  sleep 0.3
  stop_pid "$pid"
  check_canary "'portrelay run' as root ($1)"
}

# 1. <spool>/lock is a link to the canary: the offline changes and the daemon refuse it.
as_owner mv "$SPOOL/lock" "$SPOOL/lock.real"
as_owner ln -s "$CANARY" "$SPOOL/lock"
for verb in "delete $ID1" "bounce $ID1" "retry $ID1" "retry --all"; do
  # shellcheck disable=SC2086  # the verb and its argument
  q queue $verb
  [[ $rc -ne 0 ]] || fail "'queue $verb' succeeded through a symbolic link at $SPOOL/lock"
done
grep -q 'lock' "$WORK/q.err" || fail "unclear refusal: $(cat "$WORK/q.err")"
run_briefly "lock is a symbolic link"
grep -qi 'lock' "$WORK/root-daemon.log" || fail "the daemon did not say why it refused: $(cat "$WORK/root-daemon.log")"
[[ -f $SPOOL/queue/$ID1 ]] || fail "$ID1 was deleted through a refused lock"
as_owner rm "$SPOOL/lock"
as_owner mv "$SPOOL/lock.real" "$SPOOL/lock"
note "lock -> canary: offline delete/bounce/retry and the daemon refuse ($(tail -1 "$WORK/q.err"))"

# 2. Links at the file names: temporary names in tmp/, a message, states, a failed message.
plant_files() {
  local id
  for id in "$ID1" "$ID2" "$ID3" "$ID4"; do
    as_owner ln -sfn "$CANARY" "$SPOOL/tmp/$id.state.cli"
    as_owner ln -sfn "$CANARY" "$SPOOL/tmp/$id"
    for n in 1 2 3; do as_owner ln -sfn "$CANARY" "$SPOOL/tmp/$id.state.$n"; done
  done
  as_owner ln -sfn "$CANARY" "$SPOOL/queue/$ID1.state"
  as_owner ln -sfn "$CANARY" "$SPOOL/queue/$ID3"  # the message itself
  as_owner rm -f "$SPOOL/queue/$ID3.state"
  as_owner ln -sfn "$CANARY" "$SPOOL/failed/$ID4.state"
  as_owner ln -sfn "$CANARY" "$SPOOL/failed/00000000000000FF"  # a failed "message"
}
plant_files
every_command "file names linked to the canary"
q queue bounce "$ID1"
[[ $rc -eq 0 ]] || fail "offline bounce of $ID1 failed: $(cat "$WORK/q.err")"
[[ -f $SPOOL/queue/$ID1.state && ! -L $SPOOL/queue/$ID1.state ]] || fail "$ID1.state is not a new file"
[[ $(stat -c %u "$SPOOL/queue/$ID1.state") == "$OWNER_UID" ]] \
  || fail "root wrote $ID1.state as uid $(stat -c %u "$SPOOL/queue/$ID1.state"), not as the spool's owner"
q queue show "$ID3"
[[ $rc -ne 0 ]] || fail "'queue show' read a message through a symbolic link"
note "bounce through the planted tmp/ link wrote a fresh state as $OWNER; show of a linked message refused"

# The daemon, as root, on the same spool (recovery, deliveries, a new message).
plant_files
start_bg "$WORK/root-daemon.log" "$BIN" run --config "$CONFIG" --shutdown-grace 1s
ROOT_DAEMON=$LAST_PID
wait_for_port 127.0.0.1 "$SMTP_PORT" 10
ID5=$(send five)
sleep 1.5  # a delivery attempt of the queued messages (connection refused) and its state
stop_pid "$ROOT_DAEMON"
check_canary "'portrelay run' as root"
[[ $(stat -c %u "$SPOOL/queue/$ID5") == "$OWNER_UID" ]] \
  || fail "the root daemon left queue/$ID5 owned by uid $(stat -c %u "$SPOOL/queue/$ID5"), not the spool's owner"
grep -q "spool_unreadable_file" "$WORK/root-daemon.log" || fail "no warning about the linked files: $(cat "$WORK/root-daemon.log")"
note "root daemon: recovery and a new message ($ID5, owned by $OWNER) left the canary alone"

# 3. The directories themselves are links to the canary directory. A file start-up would
# move to corrupt/ is waiting in queue/.
as_owner sh -c "echo garbage >'$SPOOL/queue/00000000000000CC'"
for sub in tmp queue failed corrupt; do
  as_owner mv "$SPOOL/$sub" "$SPOOL/$sub.real"
  as_owner ln -s "$CANARY_DIR" "$SPOOL/$sub"
  every_command "$sub/ linked to a root directory"
  q queue delete "$ID4"
  [[ $rc -ne 0 ]] || fail "delete succeeded with $sub/ a symbolic link"
  run_briefly "$sub/ is a symbolic link"
  as_owner rm "$SPOOL/$sub"
  as_owner mv "$SPOOL/$sub.real" "$SPOOL/$sub"
done

# 4. A FIFO in queue/ and failed/ neither hangs `queue list` nor the daemon's start.
as_owner mkfifo "$SPOOL/queue/00000000000000AA" "$SPOOL/failed/00000000000000AB"
q queue list
[[ $rc -eq 0 ]] || fail "queue list with a FIFO in queue/ exited $rc: $(cat "$WORK/q.err")"
grep -q "00000000000000AA" "$WORK/q.err" || fail "no warning naming the FIFO: $(cat "$WORK/q.err")"
grep -q "$ID5" "$WORK/q.out" || fail "the listing lost $ID5 beside the FIFO: $(cat "$WORK/q.out")"
start_bg "$WORK/fifo-daemon.log" "$BIN" run --config "$CONFIG" --shutdown-grace 1s
FIFO_DAEMON=$LAST_PID
wait_for_port 127.0.0.1 "$SMTP_PORT" 10
grep -q "spool_unreadable_file.*00000000000000AA" "$WORK/fifo-daemon.log" \
  || fail "the daemon did not report the FIFO: $(cat "$WORK/fifo-daemon.log")"
stop_pid "$FIFO_DAEMON"
note "FIFOs in queue/ and failed/: list and daemon start go on, each naming them"

# 5. mailq by a user who may not read the spool (0700, the owner's): not "empty", exit 77.
check_mailq_refused() {  # check_mailq_refused WHAT EXPECTED_TEXT
  local status=0
  setpriv --reuid=nobody --regid=nogroup --clear-groups env PORTRELAY_CONFIG="$CONFIG" \
    timeout 20 "$BIN" mailq >"$WORK/mailq.out" 2>"$WORK/mailq.err" || status=$?
  [[ $status -eq 77 ]] || fail "mailq as nobody ($1) exited $status: $(cat "$WORK/mailq.out" "$WORK/mailq.err")"
  ! grep -qi "empty" "$WORK/mailq.out" || fail "mailq as nobody ($1) said: $(cat "$WORK/mailq.out")"
  grep -qF "$2" "$WORK/mailq.err" || fail "mailq as nobody ($1): unclear error: $(cat "$WORK/mailq.err")"
}
check_mailq_refused "spool unreadable" "cannot read the spool $SPOOL: Permission denied; run as root or as the spool owner"
chmod 0600 "$CONFIG"
check_mailq_refused "config unreadable" "cannot read the configuration $CONFIG: Permission denied"
chmod 0644 "$CONFIG"
note "mailq as nobody: exit 77 with '$(head -1 "$WORK/mailq.err")'"

# 6. A file in queue/ that the owner may not read (root's, 0600): root's `queue list` (run as
# the owner) names it, still lists the rest, and exits 77: the listing may be missing mail.
# Found by the error's code (EACCES), not by the words of its message.
printf 'not yours\n' >"$SPOOL/queue/00000000000000BB"
chmod 0600 "$SPOOL/queue/00000000000000BB"
q queue list
[[ $rc -eq 77 ]] || fail "queue list with an unreadable file exited $rc: $(cat "$WORK/q.out" "$WORK/q.err")"
grep -q "00000000000000BB" "$WORK/q.err" || fail "no warning naming the unreadable file: $(cat "$WORK/q.err")"
grep -q "as its owner" "$WORK/q.err" || fail "unclear error: $(cat "$WORK/q.err")"
grep -q "$ID5" "$WORK/q.out" || fail "the listing lost $ID5 beside the unreadable file: $(cat "$WORK/q.out")"
rm -f "$SPOOL/queue/00000000000000BB"
note "a file the owner may not read: queue list names it and exits 77"
note "PASS"
