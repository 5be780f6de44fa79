#!/usr/bin/env bash
# /metrics passes `promtool check metrics` after real traffic: a chain whose first endpoint
# refuses connections; the start-up probes find that out (probe series, last success time), one
# message is relayed over the second endpoint, and process_* is served. /healthz and /readyz
# answer 200 on the same listener.
# First, the alert rules' own unit tests (promtool test rules, tests/e2e/prometheus/).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd promtool curl

# Each alert fires in the situation it is for and stays silent in the normal case.
rule_tests=("$E2E_DIR"/prometheus/*.test.yml)
[[ -f "${rule_tests[0]}" ]] || fail "no promtool rule tests in $E2E_DIR/prometheus"
for rule_test in "${rule_tests[@]}"; do
  promtool test rules "$rule_test" >"$WORK/rule-test.out" 2>&1 ||
    { cat "$WORK/rule-test.out" >&2; fail "promtool test rules $rule_test failed"; }
  note "promtool test rules $(basename "$rule_test"): SUCCESS"
done

start_upstream plain --tls none
REFUSED_PORT=$(free_port)  # nothing listens here: connect() gets RST at once
SMTP_PORT=$(free_port)
METRICS_PORT=$(free_port)
METRICS_URL="http://127.0.0.1:$METRICS_PORT/metrics"
cat >"$WORK/portrelay.toml" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
hostname = "relay.e2e.test"

[relay]
connect_timeout = "2s"

[[upstream]]
name = "refused"
host = "127.0.0.1"
port = $REFUSED_PORT
tls = "none"

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
note "chain: refused 127.0.0.1:$REFUSED_PORT, then aiosmtpd 127.0.0.1:$UPSTREAM_PORT"

printf 'Subject: promtool\r\n\r\nhello\r\n' >"$WORK/m.eml"
"$PY" "$E2E_DIR/submit.py" 127.0.0.1 "$SMTP_PORT" app@vm.e2e.test someone@example.test "$WORK/m.eml" >"$WORK/submit.out" ||
  { cat "$WORK/submit.out" "$WORK/portrelay.log" >&2; fail "submission failed: $(cat "$WORK/submit.out")"; }
wait_for_file "$WORK/mail/plain-1.json"
note "message relayed past the refused endpoint: $(cat "$WORK/submit.out")"

curl -fsS --max-time 5 -D "$WORK/headers.txt" "$METRICS_URL" >"$WORK/metrics.txt" || fail "GET $METRICS_URL failed"
note "GET /metrics: $(head -1 "$WORK/headers.txt" | tr -d '\r'), $(grep -i '^content-type' "$WORK/headers.txt" | tr -d '\r'), $(wc -l <"$WORK/metrics.txt") lines"

# The traffic must show up, or promtool would only be linting an idle registry.
# series_at_least_one NAME LABEL=\"VALUE\"...: some series of NAME with all these labels is >= 1.
series_at_least_one() {
  local name=$1
  shift
  local line
  line=$(awk -v name="$name" -v labels="$*" '
    $0 ~ /^#/ { next }
    {
      split($1, parts, "{")
      if (parts[1] != name || $2 + 0 < 1) next
      n = split(labels, wanted, " ")
      for (i = 1; i <= n; i++) if (index($1, wanted[i]) == 0) next
      print
      exit
    }' "$WORK/metrics.txt")
  if [[ -z "$line" ]]; then
    grep -F "$name" "$WORK/metrics.txt" | grep -v '^#' >&2 || true
    fail "no series $name{$*} with value >= 1"
  fi
  note "non-zero: $line"
}
series_at_least_one portrelay_messages_total 'result="relayed"'
# The start-up probes found the refused endpoint down before the message came, so the message
# went straight to "plain" (over the probe's pooled connection): no failover to count.
series_at_least_one portrelay_upstream_probes_total 'upstream="refused"' 'result="failure"'
series_at_least_one portrelay_upstream_probes_total 'upstream="plain"' 'result="success"'
series_at_least_one portrelay_upstream_up 'upstream="plain"'
series_at_least_one portrelay_upstream_last_success_timestamp_seconds 'upstream="plain"'
for name in process_resident_memory_bytes process_virtual_memory_bytes process_open_fds \
  process_max_fds process_start_time_seconds; do
  series_at_least_one "$name"
done
grep -q '^process_cpu_seconds_total ' "$WORK/metrics.txt" || fail "no process_cpu_seconds_total"

for path in /healthz /readyz; do
  body=$(curl -fsS --max-time 5 "http://127.0.0.1:$METRICS_PORT$path") ||
    fail "GET $path did not answer 200: $(curl -sS --max-time 5 "http://127.0.0.1:$METRICS_PORT$path")"
  note "GET $path: 200 $body"
done
# The same through the CLI a container HEALTHCHECK runs (the image has no curl).
out=$("$PORTRELAY" healthcheck --config "$WORK/portrelay.toml") || fail "portrelay healthcheck: $out"
out_ready=$("$PORTRELAY" healthcheck --ready --config "$WORK/portrelay.toml") ||
  fail "portrelay healthcheck --ready: $out_ready"
note "$out; $out_ready"

status=0
promtool check metrics <"$WORK/metrics.txt" >"$WORK/promtool.out" 2>&1 || status=$?
if [[ -s "$WORK/promtool.out" ]]; then
  note "promtool check metrics says:"
  sed 's/^/    /' "$WORK/promtool.out"
fi
[[ $status -eq 0 ]] || fail "promtool check metrics exited $status"
note "promtool check metrics: exit 0"

# With the daemon gone the health check fails (exit 1, says why).
stop_pid "$PORTRELAY_PID"
if out=$("$PORTRELAY" healthcheck --config "$WORK/portrelay.toml" 2>&1); then
  fail "healthcheck passed with no daemon: $out"
fi
note "no daemon: $out"
note "PASS"
