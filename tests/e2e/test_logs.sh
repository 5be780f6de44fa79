#!/usr/bin/env bash
# Logs an operator can live with, with the real binary:
#  1. stderr is "journald" (JOURNAL_STREAM names the log file's device:inode, as systemd
#     sets it): every line is "<priority>ts=... level=... event=..." with the priority
#     matching the level; the message line names the sender, the accepted recipients (to=)
#     and the refused one with the upstream's 550 (refused=).
#  2. SIGHUP to `[log] format = "json"`, `level = "warn"`: every later line is <N>{JSON}, the
#     info lines are gone, and neither format carries the upstream password (plain or
#     base64, raw or JSON-decoded) that portrelay sent with AUTH.
#  3. JOURNAL_STREAM naming another file: no prefix. `--log-level debug` wins over the file's
#     level, also after a reload. Bad values: `--log-level loud` exits 64, `[log] level =
#     "loud"` exits 1 with file:line:col.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd openssl

USER_NAME="relay-user"
PASSWORD="e2e-Log-Secr3t-$RANDOM$RANDOM"
make_pki "$WORK/pki"
start_upstream good --tls implicit --cert "$WORK/pki/server.pem" --key "$WORK/pki/server.key" \
  --auth "$USER_NAME:$PASSWORD" --refuse-rcpt nobody
GOOD_PORT=$UPSTREAM_PORT
SMTP_PORT=$(free_port)
CONFIG="$WORK/portrelay.toml"
export E2E_UPSTREAM_PASSWORD="$PASSWORD"

write_config() {  # write_config [LOG_TABLE_LINES]
  cat >"$CONFIG.new" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
hostname = "relay.e2e.test"

[metrics]
enabled = false

[[upstream]]
name = "good"
host = "127.0.0.1"
port = $GOOD_PORT
tls = "implicit"
ca_file = "$WORK/pki/ca.pem"
tls_server_name = "localhost"
username = "$USER_NAME"
password_env = "E2E_UPSTREAM_PASSWORD"

# Never contacted (the first answers); tls = "none" off loopback is a warning.
[[upstream]]
name = "spare"
host = "192.0.2.1"
port = 2525
tls = "none"

$1
TOML
  mv "$CONFIG.new" "$CONFIG"
}

# start_run LOG JOURNAL_STREAM ARGS...: portrelay run with stderr appended to LOG.
start_run() {
  local log=$1 stream=$2 i
  shift 2
  env JOURNAL_STREAM="$stream" "$PORTRELAY" run --config "$CONFIG" --shutdown-grace 5s "$@" \
    2>>"$log" &
  PORTRELAY_PID=$!
  BG_PIDS+=("$PORTRELAY_PID")
  for ((i = 0; i < 200; i++)); do
    kill -0 "$PORTRELAY_PID" 2>/dev/null || { cat "$log" >&2; fail "portrelay exited at start"; }
    "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $SMTP_PORT), 0.2).close()" \
      2>/dev/null && return 0
    sleep 0.05
  done
  fail "portrelay not listening on :$SMTP_PORT"
}

# send_two FROM: one message to ok@ and nobody@ (refused upstream with 550).
send_two() {
  "$PY" - "$SMTP_PORT" "$1" <<'PYEOF'
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="app.e2e.test", timeout=20) as s:
    refused = s.sendmail(sys.argv[2], ["ok@example.test", "nobody@example.test"],
                         b"Subject: logs\r\n\r\nbody\r\n")
    assert list(refused) == ["nobody@example.test"], refused
PYEOF
}

# wait_for LOG PATTERN: until a line of LOG matches the extended regex (10 s).
wait_for() {
  local i
  for ((i = 0; i < 200; i++)); do
    grep -qE -- "$2" "$1" && return 0
    sleep 0.05
  done
  cat "$1" >&2
  fail "no line matching '$2' in $1 within 10s"
}

stop_run() {
  kill -TERM "$PORTRELAY_PID"
  for _ in $(seq 1 100); do kill -0 "$PORTRELAY_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$PORTRELAY_PID" 2>/dev/null && fail "portrelay did not stop"
  wait "$PORTRELAY_PID" || fail "portrelay exited non-zero"
}

# check_no_secret LOG: the password, raw or as AUTH PLAIN base64, nowhere; JSON lines decoded too.
check_no_secret() {
  local b64
  b64=$(printf '\0%s\0%s' "$USER_NAME" "$PASSWORD" | base64 -w0)
  grep -qF -- "$PASSWORD" "$1" && fail "the upstream password is in $1"
  grep -qF -- "$b64" "$1" && fail "the base64 AUTH PLAIN credentials are in $1"
  "$PY" - "$1" "$PASSWORD" "$b64" <<'PYEOF' || fail "a secret is in a decoded JSON line of $1"
import json, sys
path, secrets = sys.argv[1], sys.argv[2:]
for line in open(path, encoding="utf-8"):
    start = line.find("{")
    if start < 0:
        continue
    values = " ".join(f"{k}={v}" for k, v in json.loads(line[start:]).items())
    if any(s in values for s in secrets):
        sys.exit(1)
PYEOF
}

# --- 1. journald, logfmt ---------------------------------------------------------------------
JOURNAL_LOG="$WORK/journal.log"
: >"$JOURNAL_LOG"
STREAM=$(stat -c '%d:%i' "$JOURNAL_LOG")
write_config ""
start_run "$JOURNAL_LOG" "$STREAM"
send_two app@vm.e2e.test || { cat "$JOURNAL_LOG" >&2; fail "message not relayed"; }
wait_for "$JOURNAL_LOG" 'event=message '
message_line=$(grep 'event=message ' "$JOURNAL_LOG")
grep -qE "^<6>ts=[^ ]+ level=info event=message session=(s[0-9]+) message=s[0-9]+\.1 result=relayed from=app@vm.e2e.test original_from=app@vm.e2e.test to=ok@example.test refused=\"nobody@example.test: 550 [^\"]*\" recipients=1 .*endpoint=good:$GOOD_PORT " <<<"$message_line" ||
  fail "message line: $message_line"
grep -q '^<4>ts=[^ ]* level=warn event=config_warning ' "$JOURNAL_LOG" || { cat "$JOURNAL_LOG" >&2; fail "no <4> config_warning"; }
# Every line: <N> that matches its level, then ts= level= event= and key=value pairs only.
"$PY" - "$JOURNAL_LOG" <<'PYEOF' || { cat "$JOURNAL_LOG" >&2; fail "a line is not <N>logfmt with a matching priority"; }
import re, sys
priority = {"debug": "7", "info": "6", "warn": "4", "error": "3"}
pair = r'[a-z_]+=(?:"(?:[^"\\]|\\.)*"|[^ "=]+)'
shape = re.compile(r'^<(\d)>ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(\w+) event=\w+(?: ' + pair + r')*$')
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
assert lines
for line in lines:
    m = shape.match(line)
    assert m and priority[m.group(2)] == m.group(1), line
PYEOF
note "journald logfmt: $(wc -l <"$JOURNAL_LOG") lines, all <N>ts=...; message: ${message_line#*event=message }"

# --- 2. reload to JSON at warn ------------------------------------------------------------------
lines_before=$(wc -l <"$JOURNAL_LOG")
write_config $'[log]\nformat = "json"\nlevel = "warn"'
kill -HUP "$PORTRELAY_PID"
wait_for "$JOURNAL_LOG" '^<4>\{"ts":"[^"]+","level":"warn","event":"config_warning"'
send_two json@vm.e2e.test || fail "message after the reload not relayed"
sleep 0.3
stop_run
# From the line after "signal=SIGHUP" (written before the file is read) on.
tail -n +"$((lines_before + 1))" "$JOURNAL_LOG" | sed '0,/event=signal signal=SIGHUP/d' >"$WORK/after-reload.log"
"$PY" - "$WORK/after-reload.log" <<'PYEOF' || { cat "$WORK/after-reload.log" >&2; fail "after the reload: not all <N>{JSON} at warn or above"; }
import json, sys
priority = {"warn": "4", "error": "3"}
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
assert lines
events = []
for line in lines:
    assert line[0] == "<" and line[2] == ">", line
    obj = json.loads(line[3:])
    assert list(obj)[:3] == ["ts", "level", "event"], line
    assert all(isinstance(v, str) for v in obj.values()), line
    assert priority[obj["level"]] == line[1], line   # KeyError for an info/debug line
    events.append(obj["event"])
assert "message" not in events and "stopped" not in events, events
print(" ".join(sorted(set(events))))
PYEOF
check_no_secret "$JOURNAL_LOG"
note "after HUP: $(wc -l <"$WORK/after-reload.log") lines, all <N>{JSON} at warn+; no info lines; no secret in either format"

# --- 3. not journald; --log-level wins over the file ---------------------------------------------
PLAIN_LOG="$WORK/plain.log"
: >"$PLAIN_LOG"
OTHER=$(stat -c '%d:%i' "$JOURNAL_LOG")  # inherited, but stderr is another file
start_run "$PLAIN_LOG" "$OTHER" --log-level debug
send_two debug@vm.e2e.test || fail "message with --log-level debug not relayed"
kill -HUP "$PORTRELAY_PID"
wait_for "$PLAIN_LOG" '^\{"ts":"[^"]+","level":"info","event":"reload"'
stop_run
grep -q '^<' "$PLAIN_LOG" && { cat "$PLAIN_LOG" >&2; fail "a <N> prefix although stderr is not the journal stream"; }
grep -q '"level":"info","event":"message".*"from":"debug@vm.e2e.test","original_from":"debug@vm.e2e.test","to":"ok@example.test","refused":"nobody@example.test: 550 ' "$PLAIN_LOG" ||
  { cat "$PLAIN_LOG" >&2; fail "JSON message line with --log-level debug"; }
grep -q '"event":"stopped"' "$PLAIN_LOG" || fail "--log-level debug lost to the file's warn after the reload"
check_no_secret "$PLAIN_LOG"
note "not journald: no prefix; --log-level debug kept info lines across a reload to level = \"warn\""

# --- 4. bad values -----------------------------------------------------------------------------
status=0
"$PORTRELAY" run --config "$CONFIG" --log-level loud >"$WORK/flag.out" 2>"$WORK/flag.err" || status=$?
[[ $status -eq 64 ]] || fail "--log-level loud: exit $status, want 64"
grep -q -- '--log-level' "$WORK/flag.err" || fail "--log-level loud: error does not name the option"
write_config $'[log]\nlevel = "loud"'
status=0
"$PORTRELAY" run --config "$CONFIG" >"$WORK/file.out" 2>"$WORK/file.err" || status=$?
[[ $status -eq 1 ]] || fail "[log] level = \"loud\": exit $status, want 1"
grep -qE "^$CONFIG:[0-9]+:9: log.level: \"loud\" is not a log level" "$WORK/file.err" ||
  { cat "$WORK/file.err" >&2; fail "[log] level error not positioned"; }
note "bad values: --log-level loud -> 64; [log] level = \"loud\" -> $(cat "$WORK/file.err")"
note "PASS"
