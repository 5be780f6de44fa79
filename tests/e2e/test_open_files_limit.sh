#!/usr/bin/env bash
# `portrelay run` raises its soft open-files limit so that max_sessions can be reached:
#  1. Started under a soft limit of 256 (hard limit higher), the relay raises it (log
#     event=open_files_limit, /proc/PID/limits) and then holds 1,100 local connections
#     at once without a single accept failing with EMFILE.
#  2. Under a hard limit of 512 it cannot: it says so at start (open_files_limit_low, with
#     what max_sessions needs) and keeps running.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

ulimit -Sn 4096 2>/dev/null || true  # this script's own clients
[[ $(ulimit -Hn) == unlimited || $(ulimit -Hn) -ge 4096 ]] || fail "needs a hard open-files limit of at least 4096 (have $(ulimit -Hn))"
start_upstream sink --tls none
SMTP_PORT=$(free_port)
cat >"$WORK/portrelay.toml" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
# One loop on every machine: the figure checked below (needed=2080) counts one pool.
workers = 1
hostname = "relay.files.test"

[relay]
probe_interval = "0s"

[[upstream]]
name = "sink"
host = "127.0.0.1"
port = $UPSTREAM_PORT
tls = "none"

[metrics]
enabled = false
TOML

# start_limited SOFT HARD: portrelay run under those limits (the subshell execs into it).
start_limited() {
  local soft=$1 hard=$2
  # shellcheck disable=SC2016  # expanded by the inner bash
  start_bg "$WORK/portrelay.log" bash -c 'ulimit -Sn "$2" && ulimit -Hn "$1" && shift 2 && exec "$@"' _ \
    "$hard" "$soft" "$PORTRELAY" run --config "$WORK/portrelay.toml" --shutdown-grace 1s
  PORTRELAY_PID=$LAST_PID
  local i
  for ((i = 0; i < 200; i++)); do
    kill -0 "$PORTRELAY_PID" 2>/dev/null || { cat "$WORK/portrelay.log" >&2; fail "portrelay exited at start"; }
    "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $SMTP_PORT), 0.2).close()" 2>/dev/null && return 0
    sleep 0.05
  done
  cat "$WORK/portrelay.log" >&2
  fail "portrelay not listening on 127.0.0.1:$SMTP_PORT within 10s"
}

# 1. Soft 256, hard 4096: raised to the hard limit (65536 is more than it may have).
start_limited 256 4096
soft=$(awk '/^Max open files/ { print $4 }' "/proc/$PORTRELAY_PID/limits")
[[ "$soft" == 4096 ]] || fail "soft open-files limit of the relay is $soft, want 4096"
grep -q 'event=open_files_limit from=256 to=4096' "$WORK/portrelay.log" ||
  { cat "$WORK/portrelay.log" >&2; fail "no event=open_files_limit from=256 to=4096 in the log"; }
if grep -q 'open_files_limit_low' "$WORK/portrelay.log"; then fail "warned about the limit although 4096 is enough"; fi
note "soft limit 256 raised to $soft"

"$PY" - "$SMTP_PORT" <<'PYEOF' || fail "could not hold 1100 connections to the relay"
import socket, sys, time
port = int(sys.argv[1])
held = [socket.create_connection(("127.0.0.1", port), 5) for _ in range(1100)]
time.sleep(1)  # let the relay accept them all
for s in held:
    s.close()
PYEOF
sleep 0.5
accepted=$(grep -cE 'event=(session_open|session_refused)' "$WORK/portrelay.log" || true)
if grep -q 'event=accept_failed' "$WORK/portrelay.log"; then
  grep 'event=accept_failed' "$WORK/portrelay.log" | head -3 >&2
  fail "accept failed while 1100 connections were open"
fi
[[ "$accepted" -ge 1100 ]] || fail "the relay saw $accepted of 1100 connections"
note "1100 connections accepted (sessions or 421 at a session limit), none lost to EMFILE"
stop_pid "$PORTRELAY_PID"

# 2. Hard 512: nothing to raise to; a warning names what the configuration needs.
start_limited 512 512
grep -q 'event=open_files_limit_low limit=512 needed=2128' "$WORK/portrelay.log" ||
  { cat "$WORK/portrelay.log" >&2; fail "no open_files_limit_low warning with limit=512 needed=2128"; }
kill -0 "$PORTRELAY_PID" || fail "the relay stopped after the warning"
note "hard limit 512: warned (needed 2128) and running"
stop_pid "$PORTRELAY_PID"
note "PASS"
