#!/usr/bin/env bash
# The spool as an operator meets it, with the real binary: every endpoint down, a message
# queued (250 "queued as"), `portrelay queue list` / `--json` / `show` / `mailq` with the
# daemon running, `queue retry` through the control socket, the upstream recovering and
# the message delivered; then `queue delete` and `queue bounce` with and without a daemon
# (offline changes are picked up at the next start).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

SMTP_PORT=$(free_port)
UP_PORT=$(free_port)  # nothing listens yet: connection refused
CONFIG="$WORK/portrelay.toml"
SPOOL="$WORK/spool"
cat >"$CONFIG" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
hostname = "relay.e2e.test"

[relay]
mode = "spool"
connect_timeout = "2s"
cooldown = "1s"
cooldown_max = "2s"

[spool]
dir = "$SPOOL"
retry_min = "1h"
retry_max = "1h"

[[upstream]]
name = "up"
host = "127.0.0.1"
port = $UP_PORT
tls = "none"

[metrics]
enabled = false
TOML

send() {  # send SUBJECT -> prints the reply
  printf 'Subject: %s\r\nFrom: app@vm.e2e.test\r\nTo: someone@example.test\r\n\r\nbody\r\n' "$1" \
    >"$WORK/message.eml"
  "$PY" "$E2E_DIR/submit.py" 127.0.0.1 "$SMTP_PORT" app@vm.e2e.test someone@example.test \
    "$WORK/message.eml" --timeout 20
}

start_portrelay "$CONFIG" "$SMTP_PORT"
reply=$(send "first") || fail "submission refused: $reply"
[[ $reply == *"queued as "* ]] || fail "no queue id in: $reply"
ID=$(sed -E 's/.*queued as ([0-9A-F]+).*/\1/' <<<"$reply")
note "queued as $ID"

list=$("$PORTRELAY" queue --config "$CONFIG" list)
grep -q "$ID" <<<"$list" || fail "queue list does not show $ID: $list"
grep -q "someone@example.test  \[pending\]" <<<"$list" || fail "recipient state missing: $list"
"$PORTRELAY" queue --config "$CONFIG" list --json >"$WORK/list.json"
"$PY" - "$WORK/list.json" "$ID" <<'PY' || fail "queue list --json is wrong: $(cat "$WORK/list.json")"
import json, sys
entries = json.load(open(sys.argv[1]))
assert [e["id"] for e in entries] == [sys.argv[2]], entries
e = entries[0]
assert e["sender"] == "app@vm.e2e.test" and e["recipients"][0]["state"] == "pending", e
assert e["area"] == "queue" and e["size"] > 0, e
PY
"$PORTRELAY" queue --config "$CONFIG" show "$ID" | grep -q "Subject: first" || fail "queue show lacks headers"
PORTRELAY_CONFIG="$CONFIG" "$PORTRELAY" mailq | grep -q "$ID" || fail "mailq does not list $ID"

# Unknown ids are errors, not silence.
if "$PORTRELAY" queue --config "$CONFIG" delete NOSUCHID 2>"$WORK/err"; then fail "delete of an unknown id succeeded"; fi
grep -q "no message NOSUCHID" "$WORK/err" || fail "unclear error: $(cat "$WORK/err")"

# The upstream comes back on that port; an operator's retry delivers at once (the next
# attempt was an hour away).
start_upstream up --tls none --port "$UP_PORT"
out=$("$PORTRELAY" queue --config "$CONFIG" retry --all) || fail "retry failed: $out"
note "retry: $out"
for ((i = 0; i < 100; i++)); do
  [[ -z $(ls "$SPOOL/queue") ]] && break
  sleep 0.1
done
[[ -z $(ls "$SPOOL/queue") ]] || fail "queue not empty after retry: $(ls "$SPOOL/queue")"
grep -rq "Subject: first" "$WORK/mail" || fail "the message did not reach the upstream"
grep -q "queue_id=$ID" "$WORK/portrelay.log" || fail "no log line with the queue id"
note "delivered; log lines for $ID: $(grep -c "$ID" "$WORK/portrelay.log")"

# Delete and bounce through the running daemon.
stop_pid "$UPSTREAM_PID"
reply=$(send "second") || fail "submission refused: $reply"
ID2=$(sed -E 's/.*queued as ([0-9A-F]+).*/\1/' <<<"$reply")
"$PORTRELAY" queue --config "$CONFIG" delete "$ID2" | grep -q "deleted" || fail "delete via daemon"
# The daemon answers at once; the removal is synced in its next commit round.
for ((i = 0; i < 50; i++)); do [[ -e "$SPOOL/queue/$ID2" ]] || break; sleep 0.05; done
[[ ! -e "$SPOOL/queue/$ID2" ]] || fail "$ID2 still on disk after delete"

# Without a daemon: offline delete; offline bounce is carried out at the next start.
reply=$(send "third") || fail "submission refused: $reply"
ID3=$(sed -E 's/.*queued as ([0-9A-F]+).*/\1/' <<<"$reply")
stop_pid "$PORTRELAY_PID"
"$PORTRELAY" queue --config "$CONFIG" list | grep -q "$ID3" || fail "offline list lacks $ID3"
"$PORTRELAY" queue --config "$CONFIG" bounce "$ID3" | grep -q "bounced when portrelay starts" \
  || fail "offline bounce"
start_portrelay "$CONFIG" "$SMTP_PORT"
for ((i = 0; i < 100; i++)); do
  [[ ! -e "$SPOOL/queue/$ID3" ]] && break
  sleep 0.1
done
[[ ! -e "$SPOOL/queue/$ID3" ]] || fail "offline bounce of $ID3 not carried out at start"
grep -q "bounce_queued.*queue_id=$ID3\|queue_id=$ID3.*bounce_id" "$WORK/portrelay.log" \
  || fail "no bounce queued for $ID3: $(grep "$ID3" "$WORK/portrelay.log")"
note "offline bounce carried out: $(grep -c . <<<"$(ls "$SPOOL/queue")") file(s) now queued (the DSN)"
stop_pid "$PORTRELAY_PID"
note "PASS"
