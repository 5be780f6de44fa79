#!/usr/bin/env bash
# The command line as an operator uses it: version, check (good example config, broken config
# with a positioned error), --help on every subcommand, the built-in demo.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

# run_cli NAME ARGS...: runs portrelay, stdout/stderr/status into $WORK/NAME.{out,err,status}.
run_cli() {
  local name=$1
  shift
  local status=0
  timeout 60 "$PORTRELAY" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null || status=$?
  echo "$status" >"$WORK/$name.status"
}
show() { echo "--- stdout:" >&2; cat "$WORK/$1.out" >&2; echo "--- stderr:" >&2; cat "$WORK/$1.err" >&2; }
expect_status() {
  local name=$1 want=$2 got
  got=$(cat "$WORK/$name.status")
  [[ "$got" == "$want" ]] || { show "$name"; fail "portrelay $name: exit status $got, want $want"; }
}

# version: the project version from CMakeLists.txt.
want_version=$(sed -nE 's/^project\(portrelay VERSION ([0-9.]+).*/\1/p' "$REPO_ROOT/CMakeLists.txt")
[[ -n "$want_version" ]] || fail "cannot read the project version from $REPO_ROOT/CMakeLists.txt"
run_cli version version
expect_status version 0
[[ "$(cat "$WORK/version.out")" == "portrelay $want_version" ]] ||
  { show version; fail "portrelay version printed '$(cat "$WORK/version.out")', want 'portrelay $want_version'"; }
note "version: $(cat "$WORK/version.out")"

# check on the repository's example: exit 0, the chain in order, no password printed.
example="$REPO_ROOT/conf/portrelay.toml"
run_cli check-example check --config "$example"
expect_status check-example 0
out="$WORK/check-example.out"
grep -q '^upstream chain (6 endpoints, in order of preference):$' "$out" || { show check-example; fail "check: no chain header"; }
chain=$(grep -E '^[0-9]+ ' "$out" | awk '{ print $1, $2, $3 }')
want_chain="1 smtp.sendgrid.net:587 tls=starttls
2 smtp.sendgrid.net:465 tls=implicit
3 smtp.sendgrid.net:2525 tls=starttls
4 smtp.sendgrid.net:25 tls=starttls
5 smtp.mailgun.org:587 tls=starttls
6 smtp.mailgun.org:2525 tls=starttls"
[[ "$chain" == "$want_chain" ]] || { show check-example; fail "check: chain is
$chain
want
$want_chain"; }
grep -q '^config OK: 6 endpoint(s), listening on 127.0.0.1:2525$' "$out" || { show check-example; fail "check: no 'config OK' summary"; }
note "check $example: exit 0, chain of 6 endpoints in order (587, 465, 2525, 25, mailgun 587, 2525)"

# check with a password set in the environment: it is never printed.
secret="e2e-never-print-$RANDOM$RANDOM"
SENDGRID_API_KEY="$secret" MAILGUN_SMTP_PASSWORD="$secret" run_cli check-secret check --config "$example"
expect_status check-secret 0
if grep -qF "$secret" "$WORK/check-secret.out" "$WORK/check-secret.err"; then fail "check printed the password"; fi
note "check with passwords in the environment: the password is not printed"

# A provider preset and a per-port TLS entry: check prints the expansion, one endpoint a line.
presets="$WORK/presets.toml"
printf '%s\n' '[[upstream]]' 'provider = "ses"' 'region = "eu-west-1"' \
  '[[upstream]]' 'host = "smtp.example.test"' 'ports = [587, { port = 2465, tls = "implicit" }]' >"$presets"
run_cli check-presets check --config "$presets"
expect_status check-presets 0
chain=$(grep -E '^[0-9]+ ' "$WORK/check-presets.out" | awk '{ print $1, $2, $3, $NF }')
want_chain="1 email-smtp.eu-west-1.amazonaws.com:2587 tls=starttls provider=ses/eu-west-1
2 email-smtp.eu-west-1.amazonaws.com:2465 tls=implicit provider=ses/eu-west-1
3 email-smtp.eu-west-1.amazonaws.com:587 tls=starttls provider=ses/eu-west-1
4 email-smtp.eu-west-1.amazonaws.com:465 tls=implicit provider=ses/eu-west-1
5 smtp.example.test:587 tls=starttls auth)
6 smtp.example.test:2465 tls=implicit auth)"
[[ "$chain" == "$want_chain" ]] || { show check-presets; fail "check: preset chain is
$chain
want
$want_chain"; }
note "check with provider = \"ses\" and { port = 2465, tls = \"implicit\" }: expansion printed"

# A typo in a ports entry: exit 1, positioned at the key inside the inline table.
printf '%s\n' '[[upstream]]' 'host = "smtp.example.test"' 'ports = [587, { port = 2465, tsl = "implicit" }]' >"$presets"
run_cli check-port-entry check --config "$presets"
expect_status check-port-entry 1
grep -qF "$presets:3:30: unknown key \"tsl\" in an upstream.ports entry; did you mean \"tls\"?" "$WORK/check-port-entry.err" ||
  { show check-port-entry; fail "check: the ports entry typo is not reported at 3:30"; }
note "check with a typo in a ports entry: $(head -1 "$WORK/check-port-entry.err")"

# A broken config: unknown key on line 3 -> exit 1, "<file>:3:<col>: " error on stderr.
broken="$WORK/broken.toml"
printf '%s\n' '[server]' 'listen = ["127.0.0.1:2525"]' 'lisen = ["127.0.0.1:2526"]' '' \
  '[[upstream]]' 'host = "smtp.example.test"' 'port = 587' >"$broken"
run_cli check-broken check --config "$broken"
expect_status check-broken 1
first_error=$(head -1 "$WORK/check-broken.err")
if ! grep -qE "^$(printf '%s' "$broken" | sed 's/[][\.*^$/]/\\&/g'):3:[0-9]+: " <<<"$first_error"; then
  show check-broken
  fail "check: error does not start with '$broken:3:<col>: '"
fi
grep -q 'lisen' <<<"$first_error" || { show check-broken; fail "check: error does not name the unknown key"; }
note "check broken config: exit 1, stderr: $first_error"

# run refuses the same broken config the same way, without starting.
run_cli run-broken run --config "$broken"
expect_status run-broken 1
grep -qE ":3:[0-9]+: " "$WORK/run-broken.err" || { show run-broken; fail "run: broken config error not positioned"; }
note "run with the broken config: exit 1 with the same positioned error"

# An allow-list that admits all of IPv4 only through the mapped form, on a public listener:
# refused as an open relay, with the position of the offending network.
open_relay="$WORK/open-relay.toml"
printf '%s\n' '[server]' 'listen = ["0.0.0.0:2525"]' 'allow = ["10.0.0.0/8", "::ffff:0.0.0.0/96"]' '' \
  '[[upstream]]' 'host = "smtp.example.test"' 'port = 587' >"$open_relay"
run_cli check-open-relay check --config "$open_relay"
expect_status check-open-relay 1
grep -qF "$open_relay:3:24: server.allow: \"::ffff:0.0.0.0/96\" admits every IPv4 address" "$WORK/check-open-relay.err" ||
  { show check-open-relay; fail "check: open relay through ::ffff:0.0.0.0/96 not refused at 3:24"; }
note "check with allow = ::ffff:0.0.0.0/96 on 0.0.0.0: exit 1, $(head -1 "$WORK/check-open-relay.err")"

# Warnings that do not stop the relay: secrets readable by others, plaintext to the Internet.
mkdir -p "$WORK/warn"
"$PORTRELAY" hash-password app <<<"app-password" >"$WORK/warn/users"
chmod 0644 "$WORK/warn/users"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=relay.test -days 1 \
  -keyout "$WORK/warn/key.pem" -out "$WORK/warn/cert.pem" 2>/dev/null
chmod 0640 "$WORK/warn/key.pem"
warn_conf="$WORK/warn/portrelay.toml"
printf '%s\n' '[server]' "tls_cert = \"$WORK/warn/cert.pem\"" "tls_key = \"$WORK/warn/key.pem\"" \
  "users_file = \"$WORK/warn/users\"" '' '[[upstream]]' 'host = "smtp.example.test"' 'port = 25' \
  'tls = "none"' '' '[[upstream]]' 'host = "smtp2.example.test"' 'port = 587' 'tls = "opportunistic"' >"$warn_conf"
run_cli check-warnings check --config "$warn_conf"
expect_status check-warnings 0
for want in "$warn_conf:3: server.tls_key: \"$WORK/warn/key.pem\" (the TLS private key) is readable by group or others" \
  "$warn_conf:4: server.users_file: \"$WORK/warn/users\" (password hashes) is readable by group or others" \
  "$warn_conf:9: upstream.tls: \"none\" toward smtp.example.test, which is not a loopback address" \
  "$warn_conf:14: upstream.tls: \"opportunistic\" toward smtp2.example.test, which is not a loopback address"; do
  grep -qF "warning: $want" "$WORK/check-warnings.err" || { show check-warnings; fail "check: missing warning: $want"; }
done
chmod 0600 "$WORK/warn/users" "$WORK/warn/key.pem"
run_cli check-private check --config "$warn_conf"
if grep -q 'readable by group' "$WORK/check-private.err"; then show check-private; fail "check: warned about private files"; fi
note "check: warns (exit 0) for a 0640 tls_key, a 0644 users_file, tls=none and tls=opportunistic toward non-loopback hosts"

# An inline password in a configuration file its group (or everyone) may read.
inline_conf="$WORK/warn/inline.toml"
printf '%s\n' '[[upstream]]' 'host = "smtp.example.test"' 'port = 587' 'username = "u"' \
  'password = "inline-e2e-secret"' >"$inline_conf"
chmod 0640 "$inline_conf"
run_cli check-inline-group check --config "$inline_conf"
expect_status check-inline-group 0
grep -qF "warning: $inline_conf: holds an inline password and is readable by its group (mode 0640)" "$WORK/check-inline-group.err" ||
  { show check-inline-group; fail "check: no warning for an inline password in a group-readable file"; }
chmod 0644 "$inline_conf"
run_cli check-inline-world check --config "$inline_conf"
grep -qF "is readable by every user (mode 0644)" "$WORK/check-inline-world.err" ||
  { show check-inline-world; fail "check: no warning for an inline password in a world-readable file"; }
chmod 0600 "$inline_conf"
run_cli check-inline-private check --config "$inline_conf"
if grep -q 'holds an inline password' "$WORK/check-inline-private.err"; then show check-inline-private; fail "check: warned about a 0600 file"; fi
if grep -qF 'inline-e2e-secret' "$WORK"/check-inline-*.out "$WORK"/check-inline-*.err; then fail "check printed the inline password"; fi
note "check: warns about an inline password in a 0640 or 0644 config, not in a 0600 one"

# A missing config file is a clear error, not a crash.
run_cli check-missing check --config "$WORK/does-not-exist.toml"
expect_status check-missing 1
[[ -s "$WORK/check-missing.err" ]] || fail "check on a missing file printed no error"
note "check on a missing file: exit 1, stderr: $(head -1 "$WORK/check-missing.err")"

# --help everywhere.
run_cli help --help
expect_status help 0
for sub in run check probe demo version hash-password reload healthcheck queue; do
  run_cli "help-$sub" "$sub" --help
  expect_status "help-$sub" 0
  grep -qi 'usage' "$WORK/help-$sub.out" || { show "help-$sub"; fail "$sub --help printed no usage"; }
  grep -q -- "$sub" "$WORK/help-$sub.out" || { show "help-$sub"; fail "$sub --help does not name the command"; }
  grep -qF "$sub" "$WORK/help.out" || { show help; fail "top-level --help does not list $sub"; }
done
note "--help: exit 0 with usage for portrelay, run, check, probe, demo, version, hash-password, reload, healthcheck, queue"

# Usage errors: exit 64 (EX_USAGE, sysexits.h) and one line that names the problem and --help.
expect_usage_error() {
  local name=$1 want_text=$2
  expect_status "$name" 64
  [[ $(wc -l <"$WORK/$name.err") -eq 1 ]] || { show "$name"; fail "$name: usage error is not one line"; }
  grep -q -- "$want_text" "$WORK/$name.err" || { show "$name"; fail "$name: usage error does not say '$want_text'"; }
  grep -q -- "--help" "$WORK/$name.err" || { show "$name"; fail "$name: usage error does not point at --help"; }
  [[ ! -s "$WORK/$name.out" ]] || { show "$name"; fail "$name: usage error printed on stdout"; }
}
run_cli none
expect_usage_error none "subcommand"
run_cli bogus frobnicate
expect_usage_error bogus "frobnicate"
run_cli bad-option check --no-such-option
expect_usage_error bad-option "no-such-option"
run_cli hash-no-user hash-password
expect_usage_error hash-no-user "username"
run_cli grace-bare run --config "$example" --shutdown-grace 30
expect_usage_error grace-bare "unit"
run_cli grace-word run --config "$example" --shutdown-grace soon
expect_usage_error grace-word "soon"
note "usage errors exit 64 with one line, e.g.: $(cat "$WORK/grace-bare.err")"

# Where the config comes from without --config: PORTRELAY_CONFIG, else the packaged default.
PORTRELAY_CONFIG="$example" run_cli check-env check
expect_status check-env 0
cmp -s "$WORK/check-env.out" "$WORK/check-example.out" || { show check-env; fail "check with PORTRELAY_CONFIG differs from check --config"; }
PORTRELAY_CONFIG="$WORK/does-not-exist.toml" run_cli check-explicit-wins check --config "$example"
expect_status check-explicit-wins 0
PORTRELAY_CONFIG="$WORK/does-not-exist.toml" run_cli check-env-missing check
expect_status check-env-missing 1
grep -qF "$WORK/does-not-exist.toml" "$WORK/check-env-missing.err" || { show check-env-missing; fail "error does not name the PORTRELAY_CONFIG path"; }
default_config=/etc/portrelay/portrelay.toml
PORTRELAY_CONFIG='' run_cli check-default check
if [[ -e $default_config ]]; then
  run_cli check-default-explicit check --config "$default_config"
  [[ $(cat "$WORK/check-default.status") == $(cat "$WORK/check-default-explicit.status") ]] &&
    cmp -s "$WORK/check-default.out" "$WORK/check-default-explicit.out" || { show check-default; fail "check without --config does not read $default_config"; }
else
  expect_status check-default 1
  grep -qF "$default_config" "$WORK/check-default.err" || { show check-default; fail "check without --config does not name $default_config"; }
fi
note "config: --config > PORTRELAY_CONFIG > $default_config ($(head -1 "$WORK/check-default.err"))"

# probe and run find theirs the same way. probe: one refused endpoint -> exit 2 (none usable).
closed_port=$(free_port)
smtp_port=$(free_port)
cat >"$WORK/local.toml" <<TOML
[server]
listen = ["127.0.0.1:$smtp_port"]

[[upstream]]
host = "127.0.0.1"
port = $closed_port
tls = "none"

[metrics]
enabled = false
TOML
PORTRELAY_CONFIG="$WORK/local.toml" run_cli probe-env probe
expect_status probe-env 2
grep -q "127.0.0.1:$closed_port" "$WORK/probe-env.out" || { show probe-env; fail "probe with PORTRELAY_CONFIG did not probe its endpoint"; }
PORTRELAY_CONFIG="$WORK/local.toml" start_bg "$WORK/run-env.log" "$PORTRELAY" run --shutdown-grace 1s500ms
run_pid=$LAST_PID
wait_for_port 127.0.0.1 "$smtp_port" 10
# SIGHUP (systemctl reload) must not end it: the file is read again (event=reload), still
# serving. tests/e2e/test_reload.sh covers what a reload changes.
kill -HUP "$run_pid"
for _ in $(seq 1 100); do grep -q 'event=reload ' "$WORK/run-env.log" && break; sleep 0.05; done
grep -q 'event=reload ' "$WORK/run-env.log" || { cat "$WORK/run-env.log" >&2; fail "SIGHUP was not logged as a reload"; }
kill -0 "$run_pid" 2>/dev/null || { cat "$WORK/run-env.log" >&2; fail "SIGHUP ended portrelay run"; }
wait_for_port 127.0.0.1 "$smtp_port" 5
note "SIGHUP: reloaded, still listening"
stop_pid "$run_pid" TERM
grep -q 'event=stopped' "$WORK/run-env.log" || { cat "$WORK/run-env.log" >&2; fail "run with PORTRELAY_CONFIG did not stop cleanly"; }
note "probe and run read PORTRELAY_CONFIG; run accepts --shutdown-grace 1s500ms"

# env_file: the secret only in the file (not in probe's environment), as /etc/portrelay/env
# under systemd; `sudo portrelay probe` used to see AUTH FAILED. An aiosmtpd upstream with
# implicit TLS requires AUTH with exactly that password.
require_cmd openssl
make_pki "$WORK/pki"
env_secret="e2e-env-file-$RANDOM$RANDOM"
start_upstream authed --tls implicit --cert "$WORK/pki/server.pem" --key "$WORK/pki/server.key" \
  --auth "relay-user:$env_secret"
printf '# secrets for portrelay\nE2E_ENV_FILE_PASSWORD="%s"\n' "$env_secret" >"$WORK/env"
chmod 0640 "$WORK/env"
cat >"$WORK/env-file.toml" <<TOML
env_file = "$WORK/env"

[server]
listen = ["127.0.0.1:$smtp_port"]

[[upstream]]
name = "authed"
host = "127.0.0.1"
port = $UPSTREAM_PORT
tls = "implicit"
ca_file = "$WORK/pki/ca.pem"
tls_server_name = "localhost"
username = "relay-user"
password_env = "E2E_ENV_FILE_PASSWORD"

[metrics]
enabled = false
TOML
unset E2E_ENV_FILE_PASSWORD
run_cli probe-env-file probe --config "$WORK/env-file.toml"
expect_status probe-env-file 0
grep -q 'OK (AUTH OK)' "$WORK/probe-env-file.out" || { show probe-env-file; fail "probe with the secret in env_file did not authenticate"; }
if grep -qF "$env_secret" "$WORK/probe-env-file.out" "$WORK/probe-env-file.err"; then fail "probe printed the env_file secret"; fi
# The file wins over the environment (it is what a reload reads again).
E2E_ENV_FILE_PASSWORD=stale run_cli probe-env-file-wins probe --config "$WORK/env-file.toml"
expect_status probe-env-file-wins 0
# Without the file's line (and not in the environment): no password, said so.
printf 'OTHER=1\n' >"$WORK/env"
run_cli probe-env-file-gone probe --config "$WORK/env-file.toml"
expect_status probe-env-file-gone 2
grep -q 'E2E_ENV_FILE_PASSWORD is not set' "$WORK/probe-env-file-gone.out" "$WORK/probe-env-file-gone.err" ||
  { show probe-env-file-gone; fail "probe without the env_file line does not say the variable is not set"; }
note "env_file: probe authenticates with a secret only in the file; the file wins over the environment"

# --config after a queue subcommand, as after run (it used to be refused).
{ cat "$WORK/local.toml"; printf '[spool]\ndir = "%s"\n' "$WORK/spool-cli"; } >"$WORK/queue.toml"
run_cli queue-list-config queue list --config "$WORK/queue.toml"
expect_status queue-list-config 0
run_cli queue-config-list queue --config "$WORK/queue.toml" list
expect_status queue-config-list 0
cmp -s "$WORK/queue-list-config.out" "$WORK/queue-config-list.out" || { show queue-list-config; fail "queue list --config differs from queue --config list"; }
run_cli queue-show-config queue show NOSUCHID --config "$WORK/queue.toml"
grep -q 'arguments were not expected' "$WORK/queue-show-config.err" && { show queue-show-config; fail "queue show ID --config refused"; }
note "queue list --config F and queue --config F list agree: $(head -1 "$WORK/queue-list-config.out")"

# demo (binds 127.0.8.1:587/25 and uses 465/2525 there: needs root or free ports; it says so).
run_cli demo demo
expect_status demo 0
grep -q '^demo OK$' "$WORK/demo.out" || { show demo; fail "demo did not print 'demo OK'"; }
grep -q 'portrelay_messages_total{result="relayed",route="default"} 2' "$WORK/demo.out" || { show demo; fail "demo output lacks the relayed message metric (2 messages)"; }
grep -q 'The relay would use now: provider:465' "$WORK/demo.out" || { show demo; fail "demo probe table does not pick 465"; }
note "demo: exit 0, $(grep -c '=> DELIVERED' "$WORK/demo.out") messages delivered, probe picks 465, demo OK"
note "PASS"
