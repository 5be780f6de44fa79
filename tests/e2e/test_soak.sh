#!/usr/bin/env bash
# Bounded soak (about 60 s): legitimate submissions from a local application while hostile
# clients hit the relay at the same time: an AUTH flood and wrong-password repeaters on the
# AUTH listener, clients that pipeline EHLO and never read, and slowloris drippers.
# Asserts: every legitimate message is relayed (250, and it reaches the upstream) within
# 5 s, and the relay's resident memory stays under 160 MiB throughout (scrypt alone takes
# 32 MiB while a check runs; the rest is the bounded per-client cost).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd openssl

SOAK_SECONDS=${SOAK_SECONDS:-45}
RSS_CEILING_KIB=$((160 * 1024))
BOUND_SECONDS=5

make_pki "$WORK/pki"
echo right-password | "$PORTRELAY" hash-password app >"$WORK/users"
chmod 600 "$WORK/users"
start_upstream sink --tls none
SMTP_PORT=$(free_port)
AUTH_PORT=$(free_port)
cat >"$WORK/portrelay.toml" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT", "127.0.0.2:$AUTH_PORT"]
hostname = "relay.soak.test"
tls_cert = "$WORK/pki/server.pem"
tls_key = "$WORK/pki/server.key"
users_file = "$WORK/users"
require_auth = ["127.0.0.2:$AUTH_PORT"]
command_timeout = "5s"

[relay]
# A fresh upstream connection (and name resolution) for every message.
pool_max_per_endpoint = 0

[[upstream]]
name = "sink"
host = "localhost"
port = $UPSTREAM_PORT
tls = "none"

[metrics]
enabled = false
TOML
ulimit -n 4096 2>/dev/null || true
start_portrelay "$WORK/portrelay.toml" "$SMTP_PORT"

# Sample the relay's RSS every 0.5 s while the soak runs.
(
  while kill -0 "$PORTRELAY_PID" 2>/dev/null; do
    awk '$1 == "VmRSS:" { print $2 }' "/proc/$PORTRELAY_PID/status" 2>/dev/null
    sleep 0.5
  done
) >"$WORK/rss.samples" &
BG_PIDS+=($!)

# The hostile clients run a little longer than the legitimate ones, in their own process.
start_bg "$WORK/hostile.out" "$PY" "$E2E_DIR/soak_clients.py" --role hostile --port "$SMTP_PORT" \
  --auth-port "$AUTH_PORT" --ca "$WORK/pki/ca.pem" --duration $((SOAK_SECONDS + 4))
HOSTILE_PID=$LAST_PID
sleep 2  # let the hostile load build up first
status=0
timeout $((SOAK_SECONDS + 30)) "$PY" "$E2E_DIR/soak_clients.py" --role legit --port "$SMTP_PORT" \
  --duration "$SOAK_SECONDS" --bound "$BOUND_SECONDS" >"$WORK/soak.out" 2>&1 || status=$?
hostile=$(awk '/^HOSTILE/ { n = $2 } END { print n + 0 }' "$WORK/hostile.out")
stop_pid "$HOSTILE_PID"
summary=$(grep '^SUMMARY' "$WORK/soak.out" || true)
peak=$(sort -n "$WORK/rss.samples" | tail -1)
note "$summary; hostile attempts: $hostile"
median=$(awk '/^LEGIT/ { print $4 }' "$WORK/soak.out" | sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }')
note "legitimate messages: median ${median:-?} s; slowest: $(awk '/^LEGIT/ { print $4 " s (#" $2 ")" }' "$WORK/soak.out" | sort -rn | head -3 | paste -sd, -)"
note "relay RSS: peak ${peak:-?} KiB over $(wc -l <"$WORK/rss.samples") samples (ceiling $RSS_CEILING_KIB KiB)"
if [[ $status -ne 0 ]]; then
  grep -vE '^LEGIT [0-9]+ 250 ' "$WORK/soak.out" | head -20 >&2
  tail -20 "$WORK/portrelay.log" >&2
  fail "not every legitimate message got 250 within ${BOUND_SECONDS}s (driver exit $status)"
fi
sent=$(sed -E 's/.*sent=([0-9]+).*/\1/' <<<"$summary")
[[ "$sent" -ge 20 ]] || fail "only $sent legitimate messages were sent"
delivered=$(find "$WORK/mail" -name 'sink-*.eml' | wc -l)
[[ "$delivered" -eq "$sent" ]] || fail "the upstream received $delivered of $sent legitimate messages"
[[ -n "$peak" && "$peak" -lt "$RSS_CEILING_KIB" ]] || fail "relay RSS peaked at ${peak:-?} KiB, over $RSS_CEILING_KIB KiB"
[[ "$hostile" -ge 100 ]] || fail "the hostile clients made only $hostile attempts: the soak did not soak"
grep -q 'event=session_shed\|reason=per_address\|event=client_auth.*result=failed' "$WORK/portrelay.log" ||
  fail "the relay log shows none of the defences at work"
note "PASS: $sent/$sent legitimate messages relayed within ${BOUND_SECONDS}s under $hostile hostile attempts; RSS peak $peak KiB"
