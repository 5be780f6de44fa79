#!/usr/bin/env bash
# A real Prometheus server (Debian package `prometheus`, loopback only, its own data directory)
# scrapes a live `portrelay run` and evaluates the shipped rules
# (deploy/prometheus/portrelay-rules.yml) while the relay's only working upstream goes away and
# comes back. Asserted through Prometheus's HTTP API (/api/v1/alerts, /api/v1/query):
#   idle relay: no alert but the info-level PortrelayEndpointDown for the chain's first
#     endpoint, which does refuse (probes find it down while the second one works);
#   outage: PortrelayMessagesDeferred fires with the first deferral, PortrelayDeferralBurst and
#     PortrelayDeferralsPersisting while deferrals go on; PortrelayNoUpstreamReachable fires
#     when the relay probes its endpoints (see HAVE_PROBES) and stays silent otherwise;
#   recovery: the reachability and deferral alerts resolve;
#   relay stopped: PortrelayTargetDown.
# Then every query of the Grafana dashboard (deploy/grafana/portrelay.json) must parse and
# return data.
#
# Time scale: the rules speak in minutes (`for: 15m`, `[5m]`), which no bounded test can wait
# out. The rules are copied with every minute turned into a second (`for: 15m` -> `for: 15s`,
# `[5m]` -> `[5s]`, `[1h]` -> `[60s]`) and the one threshold that is a duration in seconds
# (last success older than 150 s = 2.5 probe intervals) divided by 60 as well; Prometheus
# scrapes and evaluates every second, so the ratios between scrape, evaluation and alert
# durations stay what they are in production (1 minute probes, 15-60 s scrapes). The scaled
# file must still pass `promtool check rules`, and no minute or hour duration may be left in it.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
require_cmd prometheus promtool curl

RULES="$REPO_ROOT/deploy/prometheus/portrelay-rules.yml"
DASHBOARD="$REPO_ROOT/deploy/grafana/portrelay.json"
SCALED_RULES="$WORK/portrelay-rules.scaled.yml"
sed -E -e 's/^( *for: )([0-9]+)m$/\1\2s/' -e 's/\[([0-9]+)m\]/[\1s]/g' -e 's/\[1h\]/[60s]/g' \
  -e 's/(portrelay_upstream_last_success_timestamp_seconds\)) > 150$/\1 > 2.5/' "$RULES" >"$SCALED_RULES"
if grep -nE '(for: [0-9]+[mh]$|\[[0-9]+[mh]\]|> 150$)' "$SCALED_RULES" | grep -v '^ *#' >&2; then
  fail "the time-scaling sed left minute/hour durations in the rules (above): update it for the new rule"
fi
promtool check rules "$SCALED_RULES" >"$WORK/check-rules.out" 2>&1 || { cat "$WORK/check-rules.out" >&2; fail "scaled rules do not load"; }
note "rules scaled minutes -> seconds: $(grep -c 'for: [0-9]*s$' "$SCALED_RULES") for: durations"

# Chain: a port that refuses connections first (so failover and failure series move), then an
# aiosmtpd upstream that the test stops and restarts on the same port.
start_upstream up --tls none
UP_PORT=$UPSTREAM_PORT
REFUSED_PORT=$(free_port)
SMTP_PORT=$(free_port)
METRICS_PORT=$(free_port)
PROM_PORT=$(free_port)
PROM="http://127.0.0.1:$PROM_PORT"

write_config() {
  local extra=$1
  cat >"$WORK/portrelay.toml" <<TOML
[server]
listen = ["127.0.0.1:$SMTP_PORT"]
hostname = "relay.e2e.test"

[relay]
connect_timeout = "2s"
cooldown = "1s"
cooldown_max = "2s"
spool_on_failure = false
$extra

[[upstream]]
name = "refused"
host = "127.0.0.1"
port = $REFUSED_PORT
tls = "none"

[[upstream]]
name = "aiosmtpd"
host = "127.0.0.1"
port = $UP_PORT
tls = "none"

[metrics]
listen = "127.0.0.1:$METRICS_PORT"
TOML
}
# Periodic probes of every endpoint (issue 10, item 1) make upstream_up and the last-success
# series current; a build without them rejects the key. Only with them can "no endpoint
# reachable" be told from "idle", so only then is that alert expected to fire.
write_config 'probe_interval = "1s"'
if "$PORTRELAY" check --config "$WORK/portrelay.toml" >"$WORK/check.out" 2>&1; then
  HAVE_PROBES=1
else
  HAVE_PROBES=0
  write_config ''
  note "this build has no [relay] probe_interval ($(head -1 "$WORK/check.out")): PortrelayNoUpstreamReachable is checked to stay silent only"
fi
start_portrelay "$WORK/portrelay.toml" "$SMTP_PORT"
wait_for_port 127.0.0.1 "$METRICS_PORT"

write_prometheus_config() {
  {
    printf 'global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n'
    printf 'rule_files:\n  - %s\n' "$SCALED_RULES"
    printf 'scrape_configs:\n  - job_name: portrelay\n    static_configs:\n      - targets: ["127.0.0.1:%s"]\n' "$METRICS_PORT"
  } >"$WORK/prometheus.yml"
}
write_prometheus_config
start_bg "$WORK/prometheus.log" prometheus --config.file="$WORK/prometheus.yml" \
  --storage.tsdb.path="$WORK/tsdb" --web.listen-address="127.0.0.1:$PROM_PORT" \
  --storage.tsdb.retention.time=1h --log.level=info
PROM_PID=$LAST_PID
for _ in $(seq 1 100); do
  curl -fsS --max-time 1 "$PROM/-/ready" >/dev/null 2>&1 && break
  kill -0 "$PROM_PID" 2>/dev/null || { cat "$WORK/prometheus.log" >&2; fail "prometheus exited at start"; }
  sleep 0.1
done
curl -fsS --max-time 1 "$PROM/-/ready" >/dev/null || { cat "$WORK/prometheus.log" >&2; fail "prometheus not ready within 10s"; }
T0=$(date +%s)
since() { echo "$(($(date +%s) - T0))s"; }
note "prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}') on 127.0.0.1:$PROM_PORT scraping 127.0.0.1:$METRICS_PORT; probes: $HAVE_PROBES"

# alerts_in STATE: names of the portrelay alerts Prometheus has in STATE (firing|pending), sorted.
alerts_in() {
  curl -fsS --max-time 2 "$PROM/api/v1/alerts" | "$PY" -c '
import json, sys
state = sys.argv[1]
alerts = json.load(sys.stdin)["data"]["alerts"]
print(" ".join(sorted({a["labels"]["alertname"] for a in alerts if a["state"] == state})))' "$1"
}
# query EXPR: the instant vector's first value, or "empty".
query() {
  curl -fsS --max-time 2 --data-urlencode "query=$1" "$PROM/api/v1/query" | "$PY" -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "empty")'
}
# wait_alert NAME firing|pending|gone SECONDS: until NAME is in that state (gone: neither).
wait_alert() {
  local name=$1 want=$2 timeout=$3 i firing pending
  for ((i = 0; i < timeout * 2; i++)); do
    firing=" $(alerts_in firing) "
    pending=" $(alerts_in pending) "
    case $want in
      firing) [[ $firing == *" $name "* ]] && return 0 ;;
      pending) [[ $pending == *" $name "* ]] && return 0 ;;
      gone) [[ $firing != *" $name "* && $pending != *" $name "* ]] && return 0 ;;
    esac
    sleep 0.5
  done
  curl -fsS --max-time 2 "$PROM/api/v1/alerts" >&2 || true
  fail "$name not $want within ${timeout}s (firing:$firing pending:$pending)"
}
# not_firing NAME: NAME is neither firing nor pending now.
not_firing() {
  local all=" $(alerts_in firing) $(alerts_in pending) "
  [[ $all != *" $1 "* ]] || fail "$1 is firing or pending at $(since) but must not be (alerts:$all)"
}
submit() {
  "$PY" "$E2E_DIR/submit.py" 127.0.0.1 "$SMTP_PORT" app@vm.e2e.test someone@example.test "$WORK/m.eml" 2>&1 || true
}
printf 'Subject: alerts\r\n\r\nhello\r\n' >"$WORK/m.eml"

# 1. Idle relay: scraped for 8 s (8 evaluations; the scaled TargetMissing/NoUpstream windows
# are shorter than that), no alert of any kind, firing or pending. (With the old rule
# `max(portrelay_upstream_up) == 0 for: 5m`, NoUpstreamReachable fired here.)
for _ in $(seq 1 40); do [[ $(query 'up{job="portrelay"}') == 1 ]] && break; sleep 0.25; done
[[ $(query 'up{job="portrelay"}') == 1 ]] || fail "prometheus does not scrape the relay: $(curl -fsS "$PROM/api/v1/targets")"
sleep 8
# The first endpoint of the chain is a refused port: with probes, PortrelayEndpointDown (info)
# is right to go pending (and fire) for it. Anything else on an idle relay is a false alarm.
idle_firing=$(alerts_in firing | tr ' ' '\n' | grep -v '^PortrelayEndpointDown$' | tr '\n' ' ' || true)
idle_pending=$(alerts_in pending | tr ' ' '\n' | grep -v '^PortrelayEndpointDown$' | tr '\n' ' ' || true)
[[ -z "${idle_firing// /}${idle_pending// /}" ]] || fail "idle relay: alerts firing [$idle_firing] pending [$idle_pending]"
note "$(since) idle relay: no alert firing or pending (but the refused endpoint's info-level EndpointDown)"

# 2. One message goes through (past the refused endpoint).
reply=$(submit)
[[ $reply == 250* ]] || { cat "$WORK/portrelay.log" >&2; fail "message not relayed: $reply"; }
note "$(since) relayed: $reply"
sleep 3
not_firing PortrelayMessagesDeferred
not_firing PortrelayNoUpstreamReachable

# 3. Outage: the upstream goes away; clients keep submitting (several a second) and get 4xx.
stop_pid "$UPSTREAM_PID"
OUTAGE=$(date +%s)
note "$(since) upstream stopped"
reply=$(submit)
[[ $reply == 4* ]] || fail "expected a 4xx during the outage, got: $reply"
wait_alert PortrelayMessagesDeferred firing 5
note "$(since) PortrelayMessagesDeferred firing ($(($(date +%s) - OUTAGE))s into the outage): $(curl -fsS "$PROM/api/v1/alerts" | "$PY" -c '
import json, sys
print([a["annotations"]["summary"] for a in json.load(sys.stdin)["data"]["alerts"] if a["labels"]["alertname"] == "PortrelayMessagesDeferred"][0])')"
saw_burst=0 saw_no_upstream=0 outage_end=$((OUTAGE + 22))
while (($(date +%s) < outage_end)); do
  # Six at once: the burst threshold is 10 in the (scaled) 5 s window.
  submitters=()
  for _ in 1 2 3 4 5 6; do
    submit >/dev/null &
    submitters+=($!)
  done
  wait "${submitters[@]}"
  firing=" $(alerts_in firing) "
  [[ $firing == *" PortrelayDeferralBurst "* ]] && saw_burst=1
  [[ $firing == *" PortrelayNoUpstreamReachable "* ]] && ((saw_no_upstream == 0)) &&
    saw_no_upstream=$(($(date +%s) - OUTAGE)) && note "$(since) PortrelayNoUpstreamReachable firing ${saw_no_upstream}s into the outage"
  sleep 0.5
done
((saw_burst)) || fail "PortrelayDeferralBurst never fired during 22 s of deferrals ($(query 'sum(increase(portrelay_messages_total{result="deferred"}[5s]))') in the last 5 s)"
note "$(since) PortrelayDeferralBurst fired during the outage"
wait_alert PortrelayDeferralsPersisting firing 5
note "$(since) PortrelayDeferralsPersisting firing after $(($(date +%s) - OUTAGE))s of deferrals (scaled for: 15m)"
if ((HAVE_PROBES)); then
  # Scaled: "within 5 minutes" of the outage is within 5 s, plus a scrape and an evaluation.
  ((saw_no_upstream > 0 && saw_no_upstream <= 8)) ||
    fail "PortrelayNoUpstreamReachable fired ${saw_no_upstream}s into the outage (0 = never); expected within 8 s"
else
  not_firing PortrelayNoUpstreamReachable
  note "$(since) PortrelayNoUpstreamReachable silent: no last-success series without probes (upstream_up now $(query 'max(portrelay_upstream_up)'))"
fi

# 4. Recovery: the upstream comes back on the same port; mail flows; the alerts resolve.
start_bg "$WORK/up2.log" "$PY" "$E2E_DIR/smtp_upstream.py" --label up2 --port "$UP_PORT" \
  --outdir "$WORK/mail" --port-file "$WORK/up2.port" --tls none
wait_for_port 127.0.0.1 "$UP_PORT"
RECOVERED=$(date +%s)
for _ in $(seq 1 20); do
  reply=$(submit)
  [[ $reply == 250* ]] && break
  sleep 0.5
done
[[ $reply == 250* ]] || fail "no message relayed 10 s after the upstream came back: $reply"
note "$(since) upstream back, relayed: $reply"
wait_alert PortrelayNoUpstreamReachable gone 5
wait_alert PortrelayMessagesDeferred gone 12
wait_alert PortrelayDeferralBurst gone 12
wait_alert PortrelayDeferralsPersisting gone 12
note "$(since) deferral and reachability alerts resolved $(($(date +%s) - RECOVERED))s after recovery"

# 5. Every dashboard query parses and returns data. Grafana's variables are replaced by
# values a query would get from Grafana for this relay. Allowed to be empty: the series of
# the probe work (issue 10, item 1), on a build that does not have it yet; and the failover
# rate: a probe may put the refused endpoint in cooldown before a message arrives, and then the
# message goes straight to the second endpoint, which by the counter's definition (a message
# that moved from a failed endpoint to the next) is no failover. CI saw that once. The query
# must still parse; tests/integration count failovers deterministically.
ALLOWED_EMPTY='portrelay_failovers_total|portrelay_upstream_probes_total|portrelay_upstream_last_success_timestamp_seconds'
((HAVE_PROBES)) && ALLOWED_EMPTY='portrelay_failovers_total'
"$PY" - "$DASHBOARD" "$PROM" "$ALLOWED_EMPTY" >"$WORK/dashboard.out" 2>&1 <<'PYEOF' || { cat "$WORK/dashboard.out" >&2; fail "dashboard queries (above)"; }
import json, re, sys, urllib.parse, urllib.request
dashboard, prom, allowed_empty = sys.argv[1], sys.argv[2], re.compile(sys.argv[3])
exprs = [t["expr"] for p in json.load(open(dashboard))["panels"] for t in p.get("targets", [])]
assert exprs, "no expr in the dashboard"
bad = 0
for expr in exprs:
    q = (expr.replace("$instance", ".*").replace("$__rate_interval", "10s")
             .replace("$__range", "60s").replace("$__interval", "1s"))
    try:
        with urllib.request.urlopen(prom + "/api/v1/query?" + urllib.parse.urlencode({"query": q}), timeout=5) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        print("DOES NOT PARSE:", q, e.read().decode()); bad += 1; continue
    n = len(body["data"]["result"])
    if n == 0 and not allowed_empty.search(expr):
        print("EMPTY:", q); bad += 1
    else:
        print(("ok %d series" % n) if n else "empty (allowed, see above)", "|", q)
print(len(exprs), "dashboard queries,", bad, "bad")
sys.exit(1 if bad else 0)
PYEOF
sed 's/^/    /' "$WORK/dashboard.out"

# 6. The relay stops: the scrape fails (up 0) and PortrelayTargetDown fires (scaled for: 2m).
stop_pid "$PORTRELAY_PID"
note "$(since) portrelay stopped"
wait_alert PortrelayTargetDown firing 8
note "$(since) PortrelayTargetDown firing"

# PortrelayTargetMissing (absent(up{job="portrelay"})) is covered by the promtool cases only:
# removing the scrape job by a configuration reload did not end the up series within 20 s in
# Prometheus 2.42 here (not investigated further).
note "PASS ($(since) with Prometheus)"
