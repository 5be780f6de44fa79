#!/usr/bin/env bash
# The metrics listener under connection floods: 500 idle and 500 slowloris connections (a
# byte of a request line every second) held open from eight loopback addresses while
# /healthz must answer 200 within 1 s, again and again, and /metrics still serves the
# registry. Idle connections are closed after the idle timeout. Bounded: about 15 s.
# (Before: civetweb's two threads, taken by two idle connections for 30 s each.)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

# Room for the relay's side of 1000 connections (the server takes a quarter of its limit).
hard=$(ulimit -Hn)
if [[ "$hard" == unlimited || "$hard" -ge 16384 ]]; then ulimit -n 16384; else ulimit -n "$hard"; fi
note "RLIMIT_NOFILE $(ulimit -n)"

start_upstream plain --tls none
SMTP_PORT=$(free_port)
METRICS_PORT=$(free_port)
cat >"$WORK/portrelay.toml" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
hostname = "relay.e2e.test"

[[upstream]]
name = "plain"
host = "127.0.0.1"
port = $UPSTREAM_PORT
tls = "none"

[metrics]
listen = "127.0.0.1:$METRICS_PORT"
TOML
start_portrelay "$WORK/portrelay.toml" "$SMTP_PORT"
wait_for_port 127.0.0.1 "$METRICS_PORT"

timeout 40 "$PY" "$E2E_DIR/metrics_flood.py" "$METRICS_PORT" 500 500 ||
  { tail -20 "$WORK/portrelay.log" >&2; fail "the metrics listener did not hold up (above)"; }
kill -0 "$PORTRELAY_PID" 2>/dev/null || fail "portrelay died under the flood"
note "PASS"
