#!/usr/bin/env bash
# `portrelay queue` against what a bad day brings: 16 idle clients holding every slot of the
# control socket (they are dropped after 5 s, and the operator gets through), a "daemon" that
# closes the connection without an answer, answers half a word or nonsense (exit 75 and a
# message, never an abort), and an offline `queue retry --all` that really makes every
# queued message due (the state files change, and nothing named "all" appears).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

SMTP_PORT=$(free_port)
UP_PORT=$(free_port)  # nothing listens: every message stays queued
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
host = "127.0.0.1"
port = $UP_PORT
tls = "none"

[metrics]
enabled = false
TOML
send() {
  printf 'Subject: %s\r\n\r\nbody\r\n' "$1" >"$WORK/m.eml"
  "$PY" "$E2E_DIR/submit.py" 127.0.0.1 "$SMTP_PORT" app@relay.e2e.test ops@example.test "$WORK/m.eml" --timeout 20
}

# 1. Idle control clients cannot lock the operator out.
start_portrelay "$CONFIG" "$SMTP_PORT"
send one >/dev/null || fail "first message not queued"
send two >/dev/null || fail "second message not queued"
"$PY" - "$SPOOL/control" >"$WORK/idle.log" 2>&1 <<'PY' &
import socket, sys, time
held = []
for _ in range(16):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    held.append(s)
print("holding", len(held), flush=True)
time.sleep(20)
PY
IDLE_PID=$!
BG_PIDS+=("$IDLE_PID")
for _ in $(seq 50); do grep -q holding "$WORK/idle.log" && break; sleep 0.1; done
grep -q "holding 16" "$WORK/idle.log" || fail "could not open 16 idle control connections: $(cat "$WORK/idle.log")"
started=$(date +%s%N)
ok=0
for _ in $(seq 10); do
  if out=$("$PORTRELAY" queue --config "$CONFIG" retry --all 2>&1); then ok=1; break; fi
  sleep 1
done
elapsed_ms=$((($(date +%s%N) - started) / 1000000))
[[ $ok -eq 1 ]] || fail "queue retry still refused with 16 idle control clients held open: $out"
((elapsed_ms < 9000)) || fail "the operator waited ${elapsed_ms} ms for idle clients to be dropped"
grep -q "event=queue_control_timeout" "$WORK/portrelay.log" || fail "idle clients were not timed out in the log"
note "16 idle control clients: retry --all got through after ${elapsed_ms} ms ($out)"
stop_pid "$IDLE_PID" KILL
stop_pid "$PORTRELAY_PID" TERM

# 2. Offline retry --all: no daemon, both messages due at the next start.
out=$("$PORTRELAY" queue --config "$CONFIG" retry --all) || fail "offline retry --all failed: $out"
[[ $out == *"2 message(s)"* ]] || fail "offline retry --all says: $out"
[[ ! -e $SPOOL/queue/all.state && ! -e $SPOOL/queue/all ]] || fail "offline retry --all wrote queue/all.state"
"$PORTRELAY" queue --config "$CONFIG" list --json >"$WORK/list.json"
"$PY" - "$WORK/list.json" <<'PY' || fail "offline retry --all did not make the messages due: $(cat "$WORK/list.json")"
import json, sys
entries = json.load(open(sys.argv[1]))
assert len(entries) == 2, entries
assert all(e["next_attempt"] == "now" for e in entries), [e["next_attempt"] for e in entries]
PY
note "offline retry --all: $out; both state files say next attempt now"

# 3. A daemon that holds the lock but answers badly: exit 75 and a message, never an abort.
"$PY" - "$SPOOL" >"$WORK/fake.log" 2>&1 <<'PY' &
import fcntl, os, socket, sys
spool = sys.argv[1]
lock = os.open(os.path.join(spool, "lock"), os.O_RDWR)
fcntl.flock(lock, fcntl.LOCK_EX)
path = os.path.join(spool, "control")
try:
    os.unlink(path)
except FileNotFoundError:
    pass
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen(4)
print("ready", flush=True)
for answer in [b"", b"o", b"hello\n", b"ok"]:
    conn, _ = server.accept()
    conn.recv(512)
    conn.sendall(answer)
    conn.close()
PY
FAKE_PID=$!
BG_PIDS+=("$FAKE_PID")
for _ in $(seq 50); do grep -q ready "$WORK/fake.log" && break; sleep 0.1; done
grep -q ready "$WORK/fake.log" || fail "fake daemon did not start: $(cat "$WORK/fake.log")"
for answer in none fragment nonsense no-text; do
  status=0
  timeout 20 "$PORTRELAY" queue --config "$CONFIG" retry --all >"$WORK/$answer.out" 2>"$WORK/$answer.err" || status=$?
  [[ $status -eq 75 ]] || { cat "$WORK/$answer.err" >&2; fail "answer '$answer': exit $status, want 75"; }
  grep -q "may or may not" "$WORK/$answer.err" || fail "answer '$answer': unclear message: $(cat "$WORK/$answer.err")"
  note "answer '$answer': exit 75: $(head -1 "$WORK/$answer.err")"
done
