#!/usr/bin/env bash
# `portrelay reload` (the unit's ExecReload) with the real binary and aiosmtpd upstreams:
# with no daemon it says so and fails; a good file is applied (exit 0, the next message goes
# to the new upstream); a file that does not load is refused before the daemon is asked
# (exit 1, file:line:col, no reload in the daemon's log); a file the daemon refuses (a
# changed listener needs a restart) fails with the daemon's reason while the daemon keeps
# relaying on the configuration it had. Without a spool there is no control socket: --pid.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

start_upstream first --tls none
FIRST_PORT=$UPSTREAM_PORT
start_upstream second --tls none
SECOND_PORT=$UPSTREAM_PORT
SMTP_PORT=$(free_port)
OTHER_PORT=$(free_port)
CONFIG="$WORK/portrelay.toml"

write_config() {  # write_config NAME PORT [LISTEN_PORT]
  cat >"$CONFIG.new" <<TOML
[server]
listen = ["127.0.0.1:${3:-$SMTP_PORT}"]
hostname = "relay.e2e.test"

[relay]
connect_timeout = "2s"
spool_on_failure = true

[[upstream]]
name = "$1"
host = "127.0.0.1"
port = $2
tls = "none"

[metrics]
enabled = false

[spool]
dir = "$WORK/spool"
TOML
  mv "$CONFIG.new" "$CONFIG"
}

send() {  # send SUBJECT
  printf 'Subject: %s\r\nFrom: app@vm.e2e.test\r\nTo: someone@example.test\r\n\r\nbody\r\n' "$1" \
    >"$WORK/message.eml"
  "$PY" "$E2E_DIR/submit.py" 127.0.0.1 "$SMTP_PORT" app@vm.e2e.test someone@example.test \
    "$WORK/message.eml" --timeout 20
}

# reload_status: runs `portrelay reload`, output in $WORK/reload.out, sets STATUS.
reload_status() {
  STATUS=0
  "$PORTRELAY" reload --config "$CONFIG" "$@" >"$WORK/reload.out" 2>&1 || STATUS=$?
}

write_config first "$FIRST_PORT"

# No daemon yet.
reload_status
[[ $STATUS -eq 2 ]] || { cat "$WORK/reload.out" >&2; fail "reload without a daemon exited $STATUS, not 2"; }
grep -q "no running portrelay" "$WORK/reload.out" || { cat "$WORK/reload.out" >&2; fail "reload without a daemon does not say so"; }
note "no daemon: exit 2, $(head -1 "$WORK/reload.out")"

start_portrelay "$CONFIG" "$SMTP_PORT"
reply=$(send "before the reload") || { cat "$WORK/portrelay.log" >&2; fail "first message refused: $reply"; }
[[ "$reply" == *"relayed via first:"* ]] || fail "first message not relayed via first: $reply"

# A good file: applied, and the verdict is the command's status.
write_config second "$SECOND_PORT"
reload_status
[[ $STATUS -eq 0 ]] || { cat "$WORK/reload.out" "$WORK/portrelay.log" >&2; fail "good reload exited $STATUS"; }
grep -q "reloaded $CONFIG" "$WORK/reload.out" || { cat "$WORK/reload.out" >&2; fail "good reload does not say what was applied"; }
grep -q 'event=reload ' "$WORK/portrelay.log" || fail "the daemon did not log the reload"
reply=$(send "after the reload") || { cat "$WORK/portrelay.log" >&2; fail "message after the reload refused: $reply"; }
[[ "$reply" == *"relayed via second:"* ]] || fail "message after the reload not relayed via second: $reply"
note "good file: exit 0, '$(cat "$WORK/reload.out")', next message via second"

# A file that does not load: refused here, the daemon is not asked.
printf '[server]\nlisten = ["127.0.0.1:%s"]\nmax_recipients = "lots"\n' "$SMTP_PORT" >"$CONFIG"
reload_status
[[ $STATUS -eq 1 ]] || { cat "$WORK/reload.out" >&2; fail "invalid file: reload exited $STATUS, not 1"; }
grep -q "^$CONFIG:3:" "$WORK/reload.out" || { cat "$WORK/reload.out" >&2; fail "invalid file: no file:line:col"; }
[[ $(grep -c 'event=reload' "$WORK/portrelay.log") -eq 1 ]] ||
  { cat "$WORK/portrelay.log" >&2; fail "invalid file: the daemon was asked to reload anyway"; }
note "invalid file: exit 1, $(head -1 "$WORK/reload.out"); the daemon was not asked"

# A valid file the daemon refuses: the listener changed (needs a restart).
write_config first "$FIRST_PORT" "$OTHER_PORT"
reload_status
[[ $STATUS -eq 1 ]] || { cat "$WORK/reload.out" "$WORK/portrelay.log" >&2; fail "listener change: reload exited $STATUS, not 1"; }
grep -q "kept its running configuration: .*restart" "$WORK/reload.out" ||
  { cat "$WORK/reload.out" >&2; fail "listener change: the daemon's reason is not printed"; }
grep -q 'event=reload_failed' "$WORK/portrelay.log" || fail "listener change: no reload_failed in the log"
kill -0 "$PORTRELAY_PID" 2>/dev/null || fail "a refused reload ended portrelay"
reply=$(send "after the refused reload") || { cat "$WORK/portrelay.log" >&2; fail "message after the refused reload refused: $reply"; }
[[ "$reply" == *"relayed via second:"* ]] || fail "after a refused reload, not relayed via second: $reply"
note "refused by the daemon: exit 1, $(head -1 "$WORK/reload.out"); still relaying via second"

stop_pid "$PORTRELAY_PID"
grep -q 'event=stopped' "$WORK/portrelay.log" || { cat "$WORK/portrelay.log" >&2; fail "portrelay did not stop cleanly"; }

# No spool, so no control socket: without --pid a clear error; with it, SIGHUP, and the
# verdict from the reload metrics on the metrics listener (or only the log without one).
NOSPOOL="$WORK/nospool.toml"
METRICS_PORT=$(free_port)
write_nospool() {  # write_nospool LISTEN_PORT METRICS_TABLE_LINE
  printf '[server]\nlisten = ["127.0.0.1:%s"]\n[metrics]\n%s\n[[upstream]]\nhost = "127.0.0.1"\nport = %s\ntls = "none"\n' \
    "$1" "$2" "$SECOND_PORT" >"$NOSPOOL"
}
write_nospool "$SMTP_PORT" "listen = \"127.0.0.1:$METRICS_PORT\""
STATUS=0
"$PORTRELAY" reload --config "$NOSPOOL" >"$WORK/reload.out" 2>&1 || STATUS=$?
[[ $STATUS -eq 2 ]] && grep -q -- "--pid" "$WORK/reload.out" ||
  { cat "$WORK/reload.out" >&2; fail "no spool, no --pid: exit $STATUS, or no hint at --pid"; }
: >"$WORK/portrelay.log"
start_portrelay "$NOSPOOL" "$SMTP_PORT"
wait_for_port 127.0.0.1 "$METRICS_PORT"
STATUS=0
"$PORTRELAY" reload --config "$NOSPOOL" --pid "$PORTRELAY_PID" >"$WORK/reload.out" 2>&1 || STATUS=$?
[[ $STATUS -eq 0 ]] && grep -q "^reloaded (pid $PORTRELAY_PID" "$WORK/reload.out" ||
  { cat "$WORK/reload.out" "$WORK/portrelay.log" >&2; fail "no spool, --pid: exit $STATUS"; }
grep -q 'event=reload ' "$WORK/portrelay.log" || { cat "$WORK/portrelay.log" >&2; fail "--pid: the daemon did not reload"; }
write_nospool "$OTHER_PORT" "listen = \"127.0.0.1:$METRICS_PORT\""
STATUS=0
"$PORTRELAY" reload --config "$NOSPOOL" --pid "$PORTRELAY_PID" >"$WORK/reload.out" 2>&1 || STATUS=$?
[[ $STATUS -eq 1 ]] && grep -q "kept its running configuration" "$WORK/reload.out" ||
  { cat "$WORK/reload.out" "$WORK/portrelay.log" >&2; fail "no spool, --pid, listener changed: exit $STATUS, not 1"; }
grep -q 'event=reload_failed' "$WORK/portrelay.log" || fail "--pid: no reload_failed in the log"
kill -0 "$PORTRELAY_PID" 2>/dev/null || fail "a refused SIGHUP reload ended portrelay"
note "no spool: without --pid exit 2 with a hint; --pid: SIGHUP, verdict from the metrics (0 applied, 1 refused)"
stop_pid "$PORTRELAY_PID"

# Neither a spool nor a metrics listener: the signal is sent, the verdict is only in the log.
write_nospool "$SMTP_PORT" "enabled = false"
: >"$WORK/portrelay.log"
start_portrelay "$NOSPOOL" "$SMTP_PORT"
STATUS=0
"$PORTRELAY" reload --config "$NOSPOOL" --pid "$PORTRELAY_PID" >"$WORK/reload.out" 2>&1 || STATUS=$?
[[ $STATUS -eq 0 ]] && grep -q "only in the log" "$WORK/reload.out" ||
  { cat "$WORK/reload.out" >&2; fail "no spool, no metrics, --pid: exit $STATUS"; }
for _ in $(seq 1 100); do grep -q 'event=reload ' "$WORK/portrelay.log" && break; sleep 0.05; done
grep -q 'event=reload ' "$WORK/portrelay.log" || { cat "$WORK/portrelay.log" >&2; fail "no metrics, --pid: the daemon did not reload"; }
note "no spool, no metrics: SIGHUP sent, exit 0, verdict only in the log"
