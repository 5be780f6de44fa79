#!/usr/bin/env bash
# A full disk under the spool, for real: the daemon runs in a private mount namespace with
# a 512 KiB tmpfs (64 inodes) as its spool directory.
#  1. A message larger than the free space: 452 4.3.1 before anything is written.
#  2. No inode left (the file system is full in a way the size check cannot see): the
#     write fails with ENOSPC, the client gets 451 4.3.0, nothing is left in tmp/ or queue/;
#     once space is back the next message is queued (250) and delivered.
#  3. Eight concurrent 160 KiB messages racing for the space: each gets 250, 451 or 452,
#     and exactly the acknowledged ones are in the queue, none half-written.
#  4. min_free_disk above what is free: 452 4.3.1.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd unshare
require_cmd nsenter
[[ $(id -u) -eq 0 ]] || fail "needs root for a private mount namespace (the suite runs as root)"

start_upstream up --tls none
SMTP_PORT=$(free_port)
SPOOL="$WORK/spool"
mkdir -p "$SPOOL"

write_config() {  # write_config MIN_FREE
  cat >"$WORK/portrelay.toml" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
hostname = "relay.e2e.test"
[relay]
mode = "spool"
[spool]
dir = "$SPOOL"
min_free_disk = $1
[[upstream]]
name = "up"
host = "127.0.0.1"
port = $UPSTREAM_PORT
tls = "none"
[metrics]
enabled = false
TOML
}

# start_in_namespace: portrelay inside its own mount namespace, spool on a tiny tmpfs.
start_in_namespace() {
  start_bg "$WORK/portrelay.log" unshare --mount --propagation private bash -c \
    "mount -t tmpfs -o size=512k,nr_inodes=64,mode=0700 portrelay-spool '$SPOOL' && exec '$PORTRELAY' run --config '$WORK/portrelay.toml'"
  PORTRELAY_PID=$LAST_PID
  for ((i = 0; i < 200; i++)); do
    "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $SMTP_PORT), 0.2).close()" 2>/dev/null && return 0
    kill -0 "$PORTRELAY_PID" 2>/dev/null || { cat "$WORK/portrelay.log" >&2; fail "portrelay exited"; }
    sleep 0.05
  done
  fail "portrelay did not listen"
}
# --root: the daemon's own root, so paths resolve the same when the suite runs in a chroot.
in_ns() { nsenter --target "$PORTRELAY_PID" --mount --root "$@"; }

send() {  # send SUBJECT BODY_KIB -> prints the reply; status 0 only on 250
  "$PY" - "$SMTP_PORT" "$1" "$2" <<'PY'
import smtplib, sys
port, subject, kib = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
line = "x" * 76 + "\r\n"
body = line * (kib * 1024 // len(line))
message = f"Subject: {subject}\r\nFrom: a@e2e.test\r\nTo: b@e2e.test\r\n\r\n{body}"
with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
    smtp.ehlo()
    for step in (lambda: smtp.mail("a@e2e.test"), lambda: smtp.rcpt("b@e2e.test"),
                 lambda: smtp.data(message.encode())):
        code, reply = step()
        if code >= 400:
            break
    print(code, reply.decode())
    sys.exit(0 if code == 250 else 1)
PY
}

write_config 0
start_in_namespace
reply=$(send big 2048) && fail "a 2 MiB message on a 512 KiB spool was acknowledged: $reply"
note "1. too big for the disk: $reply"
[[ $reply == 452* && $reply == *4.3.1* ]] || fail "expected 452 4.3.1, got: $reply"

# 2. Use up every inode of the tmpfs from outside the daemon.
in_ns mkdir "$SPOOL/filler"
in_ns bash -c "for i in \$(seq 1 100000); do : >'$SPOOL/filler/'\$i 2>/dev/null || break; done"
reply=$(send no-inode 4) && fail "acknowledged with no inode left: $reply"
note "2. no inode left: $reply"
[[ $reply == 451* && $reply == *4.3.0* ]] || fail "expected 451 4.3.0, got: $reply"
left=$(in_ns find "$SPOOL/tmp" "$SPOOL/queue" -type f | wc -l)
[[ $left -eq 0 ]] || fail "files left behind after ENOSPC: $(in_ns find "$SPOOL/tmp" "$SPOOL/queue" -type f)"
in_ns rm -rf "$SPOOL/filler"
reply=$(send small 4) || fail "a small message after the full disk was refused: $reply"
note "   space back: $reply"
for ((i = 0; i < 100; i++)); do grep -rqs "Subject: small" "$WORK/mail" && break; sleep 0.1; done
grep -rqs "Subject: small" "$WORK/mail" || fail "the small message was not delivered"

# 3. Racing for the space. The upstream is stopped so acknowledged messages stay queued.
stop_pid "$UPSTREAM_PID"
racers=()
for n in 1 2 3 4 5 6 7 8; do
  (send "race-$n" 160 >"$WORK/race-$n" || true) &
  racers+=($!)
done
wait "${racers[@]}"
acked=$(grep -l '^250' "$WORK"/race-* | wc -l)
other=$(grep -L '^250' "$WORK"/race-* | xargs -r cat)
note "3. racing: $acked acknowledged; others: $(tr '\n' '|' <<<"$other")"
while read -r line; do
  [[ -z $line || $line == 451\ 4.3.0* || $line == 452\ 4.3.1* ]] || fail "unexpected reply: $line"
done <<<"$other"
[[ $acked -lt 8 ]] || fail "eight 160 KiB messages fit on a 512 KiB spool?"
queued=$(in_ns find "$SPOOL/queue" -type f ! -name '*.state' | wc -l)
[[ $queued -eq $acked ]] || fail "$acked acknowledged but $queued in the queue"
[[ $(in_ns find "$SPOOL/tmp" -type f | wc -l) -eq 0 ]] || fail "leftovers in tmp/"
for f in $(in_ns find "$SPOOL/queue" -type f ! -name '*.state'); do
  in_ns tail -c 6 "$f" | grep -q '^.end$' || fail "$f is not complete"
done
stop_pid "$PORTRELAY_PID"

# The configured reserve: more free space demanded than the tmpfs has -> 452, nothing written.
write_config '"1MiB"'
start_in_namespace
reply=$(send reserve 4) && fail "accepted below min_free_disk: $reply"
[[ $reply == 452* && $reply == *4.3.1* ]] || fail "expected 452 4.3.1, got: $reply"
note "4. below min_free_disk: $reply"
stop_pid "$PORTRELAY_PID"
note "PASS"
