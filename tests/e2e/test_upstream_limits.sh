#!/usr/bin/env bash
# Upstream limits (issue #18) with the real binary in spool mode against
# provider_emulator.py (SES's token bucket with its 454, M365's 432 past N connections):
#  1. pacing: 1,000 queued messages, max_message_rate = "20/s", emulator allowing 20/s:
#     all delivered, zero 454 replies, first to last delivery 50 s +-10%;
#  2. no limit configured, emulator throttling at 10/s (100 messages, throttle_backoff 1s
#     to keep CI time bounded): all delivered, none bounced, and at most max_deliveries
#     attempts refused per pause (the ones already in flight when the pause began);
#  3. max_connections = 3 against --max-connections 3, 20 concurrent clients: never a 4th
#     connection, zero 432 replies, all delivered;
#  4. a Gmail-style daily limit of 5 (550 5.4.5 at RCPT): 20 messages, 5 via the first
#     provider, the rest via the next one of the chain, one quota pause, no bounce.
# About 70 s. LIMITS_QUICK=1 runs case 1 with 200 messages (10 s).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd curl

# start_emulator LABEL [options...]: sets EMU_PORT; stats in $WORK/LABEL.stats.json.
start_emulator() {
  local label=$1
  shift
  mkdir -p "$WORK/mail-$label"
  rm -f "$WORK/$label.port"
  start_bg "$WORK/$label.log" "$PY" "$E2E_DIR/provider_emulator.py" --label "$label" \
    --outdir "$WORK/mail-$label" --port-file "$WORK/$label.port" \
    --stats-file "$WORK/$label.stats.json" "$@"
  local i
  for ((i = 0; i < 200; i++)); do
    [[ -s "$WORK/$label.port" ]] && break
    sleep 0.05
  done
  [[ -s "$WORK/$label.port" ]] || { cat "$WORK/$label.log" >&2; fail "emulator $label did not start"; }
  EMU_PORT=$(cat "$WORK/$label.port")
}

# stat LABEL PYTHON_EXPR: evaluates EXPR over the emulator's stats (as `s`).
stat() {
  "$PY" -c "import json,sys; s=json.load(open(sys.argv[1])); print($2)" "$WORK/$1.stats.json"
}

# write_config NAME EMU_PORT UPSTREAM_EXTRA RELAY_EXTRA SPOOL_EXTRA: sets CONFIG, SMTP_PORT,
# METRICS_URL.
write_config() {
  local name=$1 emu=$2 upstream_extra=$3 relay_extra=$4 spool_extra=$5
  SMTP_PORT=$(free_port)
  local metrics_port
  metrics_port=$(free_port)
  METRICS_URL="http://127.0.0.1:$metrics_port/metrics"
  CONFIG="$WORK/$name.toml"
  mkdir -p "$WORK/spool-$name"
  cat >"$CONFIG" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
hostname = "relay.e2e.test"
max_sessions = 200
[relay]
mode = "spool"
probe_interval = "0s"
$relay_extra
[spool]
dir = "$WORK/spool-$name"
$spool_extra
[metrics]
listen = "127.0.0.1:$metrics_port"
[[upstream]]
name = "provider"
host = "127.0.0.1"
port = $emu
tls = "none"
$upstream_extra
TOML
}

# wait_delivered LABEL N SECONDS
wait_delivered() {
  local label=$1 count=$2 seconds=$3 i
  for ((i = 0; i < seconds * 10; i++)); do
    [[ $(stat "$label" 's["messages_accepted"]') -ge $count ]] && return 0
    sleep 0.1
  done
  fail "$label: $(stat "$label" 's["messages_accepted"]') of $count delivered within ${seconds}s"
}

# spread LABEL: seconds from the first delivery to the last (the .json files' mtimes).
spread() {
  "$PY" - "$WORK/mail-$1" <<'PY'
import os, sys
times = sorted(os.stat(os.path.join(sys.argv[1], n)).st_mtime for n in os.listdir(sys.argv[1]) if n.endswith(".json"))
print(f"{times[-1] - times[0]:.2f}")
PY
}

# ---- 1. pacing to the provider's rate ------------------------------------------------------
COUNT=1000
[[ "${LIMITS_QUICK:-}" == 1 ]] && COUNT=200
start_emulator ses --rate 20
write_config pace "$EMU_PORT" 'max_message_rate = "20/s"' "" ""
start_portrelay "$CONFIG" "$SMTP_PORT"
"$PY" "$E2E_DIR/limits_driver.py" "$SMTP_PORT" "$COUNT" --clients 4 >"$WORK/pace.out" ||
  fail "submission refused: $(cat "$WORK/pace.out")"
wait_delivered ses "$COUNT" $((COUNT / 20 + 30))
elapsed=$(spread ses)
throttled=$(stat ses 's["replies"].get("454", 0)')
expected=$(awk -v n="$COUNT" 'BEGIN { printf "%.2f", (n - 1) / 20 }')
note "pacing: $COUNT delivered, first to last ${elapsed}s (ideal ${expected}s), 454 replies: $throttled"
[[ "$throttled" == 0 ]] || fail "the relay was throttled $throttled times at its own configured rate"
awk -v e="$elapsed" -v x="$expected" 'BEGIN { exit !(e >= 0.9 * x && e <= 1.1 * x) }' ||
  fail "elapsed ${elapsed}s is not within 10% of ${expected}s"
[[ $(metric_value 'portrelay_upstream_throttled_total{kind="throttle",upstream="provider"}') == 0 ]] ||
  fail "throttled_total is not 0"
stop_pid "$PORTRELAY_PID"


# ---- 2. no limit configured, the provider throttles ----------------------------------------
start_emulator throttling --rate 10
write_config throttle "$EMU_PORT" "" $'throttle_backoff = "1s"\nthrottle_backoff_max = "2s"' \
  'max_deliveries = 4'
start_portrelay "$CONFIG" "$SMTP_PORT"
"$PY" "$E2E_DIR/limits_driver.py" "$SMTP_PORT" 100 --clients 4 >"$WORK/throttle.out" ||
  fail "submission refused: $(cat "$WORK/throttle.out")"
wait_delivered throttling 100 60
refused=$(stat throttling 's["replies"].get("454", 0)')
pauses=$(metric_value 'portrelay_upstream_throttled_total{kind="throttle",upstream="provider"}')
bounced=$("$PY" -c "import glob, json, sys; print(sum(json.load(open(f))['mail_from'] in ('', '<>') for f in glob.glob(sys.argv[1] + '/*.json')))" "$WORK/mail-throttling")
note "throttling provider: 100 delivered, $refused 454 replies, $pauses pauses, $bounced bounces"
[[ "$bounced" == 0 ]] || fail "$bounced bounces reached the upstream"
[[ $(find "$WORK/spool-throttle/failed" -type f | wc -l) == 0 ]] || fail "messages in failed/"
awk -v r="$refused" -v p="$pauses" 'BEGIN { exit !(p >= 1 && r <= 4 * p) }' ||
  fail "$refused refused attempts for $pauses pauses (at most max_deliveries = 4 per pause)"
stop_pid "$PORTRELAY_PID"

# ---- 3. connection cap against M365's 3 ------------------------------------------------------
start_emulator m365 --max-connections 3 --delay 0.05
write_config cap "$EMU_PORT" 'max_connections = 3' "" ""
start_portrelay "$CONFIG" "$SMTP_PORT"
"$PY" "$E2E_DIR/limits_driver.py" "$SMTP_PORT" 200 --clients 20 >"$WORK/cap.out" ||
  fail "submission refused: $(cat "$WORK/cap.out")"
wait_delivered m365 200 60
most=$(stat m365 's["max_concurrent_connections"]')
refused=$(stat m365 's["replies"].get("432", 0)')
note "connection cap: 200 delivered, at most $most connections at once, $refused 432 replies"
[[ "$most" -le 3 ]] || fail "$most concurrent connections (max_connections = 3)"
[[ "$refused" == 0 ]] || fail "$refused 432 replies"
stop_pid "$PORTRELAY_PID"

# ---- 4. a quota reply: the messages wait and go via the next provider ------------------------
start_emulator gmail --daily-recipients 5 --quota-style gmail
GMAIL_PORT=$EMU_PORT
start_emulator backup
write_config quota "$GMAIL_PORT" "" "" ""
cat >>"$CONFIG" <<TOML
[[upstream]]
name = "backup"
host = "127.0.0.1"
port = $EMU_PORT
tls = "none"
TOML
start_portrelay "$CONFIG" "$SMTP_PORT"
"$PY" "$E2E_DIR/limits_driver.py" "$SMTP_PORT" 20 --clients 1 >"$WORK/quota.out" ||
  fail "submission refused: $(cat "$WORK/quota.out")"
wait_delivered backup 15 30
first=$(stat gmail 's["messages_accepted"]')
quota=$(stat gmail 's["replies"].get("550", 0)')
pauses=$(metric_value 'portrelay_upstream_throttled_total{kind="quota",upstream="provider"}')
bounced=$("$PY" -c "import glob, json, sys; print(sum(json.load(open(f))['mail_from'] in ('', '<>') for d in sys.argv[1:] for f in glob.glob(d + '/*.json')))" "$WORK/mail-gmail" "$WORK/mail-backup")
note "quota: $first via the first provider, $(stat backup 's["messages_accepted"]') via the next, $quota quota replies, $pauses quota pauses, $bounced bounces"
[[ "$first" == 5 ]] || fail "$first messages via the provider whose quota is 5"
[[ "$bounced" == 0 ]] || fail "$bounced bounces after a quota reply"
[[ "$pauses" == 1 ]] || fail "quota pauses: $pauses"
[[ $(find "$WORK/spool-quota/failed" -type f | wc -l) == 0 ]] || fail "messages in failed/"
stop_pid "$PORTRELAY_PID"
note "PASS"
