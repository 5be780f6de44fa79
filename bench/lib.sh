# shellcheck shell=bash
# shellcheck disable=SC2034  # POSTFIX_OK, POSTFIX_PORT, POSTFIX_CONF are read by the callers
# Shell helpers shared by the benchmark scripts (bench/run.sh, bench/compare_builds.sh, ...).
# Sourced, not run. The caller sets, before using them:
#   WORK        a private work directory (outputs of background processes go there)
#   PY          the Python interpreter
#   SMTP_SINK   Postfix's smtp-sink
#   PIDS=()     background processes started here are appended; the caller's EXIT trap
#               stops them
#   RESULTS     the results TSV that record() appends to

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# stop_on_exit: the EXIT trap most scripts want: stop every process in PIDS, remove $WORK;
# an interrupt exits 130 through it.
stop_on_exit() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}
bench_cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
record() { (IFS=$'\t'; echo "$*") >>"$RESULTS"; }

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_bg NAME COMMAND...: runs in the background, output in $WORK/NAME.out, pid in $LAST_PID.
start_bg() {
  local name=$1
  shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# wait_for FILE REGEX [SECONDS]: until a line of FILE matches.
wait_for() {
  local deadline=$((SECONDS + ${3:-10}))
  until grep -qE "$2" "$1" 2>/dev/null; do
    [ $SECONDS -lt "$deadline" ] || { echo "bench: timed out waiting for /$2/ in $1" >&2; return 1; }
    sleep 0.05
  done
}

wait_port() {
  local deadline=$((SECONDS + ${2:-10}))
  until "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2).close()" 2>/dev/null; do
    [ $SECONDS -lt "$deadline" ] || { echo "bench: nothing listens on 127.0.0.1:$1" >&2; return 1; }
    sleep 0.05
  done
}

# smtp-sink refuses to run as root without -u; as a normal user -u is not allowed.
SINK_USER=()
[ "$(id -u)" -eq 0 ] && SINK_USER=(-u nobody)

start_smtp_sink() {  # NAME PORT -> pid in LAST_PID; counter file $WORK/NAME.out
  start_bg "$1" "$SMTP_SINK" "${SINK_USER[@]}" -c -m 2000 "127.0.0.1:$2" 1000
  wait_port "$2"
}

# rss_kib PID VmHWM|VmRSS: that line of /proc/PID/status, in KiB.
rss_kib() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }

# passthrough_config BINARY FILE LISTEN_PORT SINK_PORT: a plain passthrough relay to one
# tls = "none" upstream, metrics off, pool 16; the same for every build of portrelay. The
# per-address and before-MAIL session limits are lifted where the build knows them (builds
# before issue 11 have neither key, and every build rejects unknown keys).
passthrough_config() {
  local limits
  for limits in yes no; do
    {
      echo "[server]"
      echo "listen = [\"127.0.0.1:$3\"]"
      echo "hostname = \"relay.bench.test\""
      echo "max_sessions = 2000"
      if [ "$limits" = yes ]; then
        echo "max_sessions_per_address = 2000"
        echo "max_sessions_before_mail = 2000"
      fi
      echo "[relay]"
      echo "mode = \"passthrough\""
      echo "pool_max_per_endpoint = 16"
      echo "[metrics]"
      echo "enabled = false"
      echo "[[upstream]]"
      echo "name = \"sink\""
      echo "host = \"127.0.0.1\""
      echo "port = $4"
      echo "tls = \"none\""
    } >"$2"
    if "$1" check -c "$2" >"$WORK/check.out" 2>&1; then return 0; fi
  done
  echo "bench: $1 check -c $2 fails:" >&2
  cat "$WORK/check.out" >&2
  return 1
}

# shutdown_grace_arg BINARY SECONDS: --shutdown-grace's value in that build's syntax (a
# duration such as "2s" since the CLI conventions change, a bare number of seconds before).
shutdown_grace_arg() {
  if "$1" run --help 2>&1 | grep -q -- '--shutdown-grace INT'; then echo "$2"; else echo "$2s"; fi
}

# ---------------------------------------------------------------------------------------------
# Private Postfix instance: own config dir, queue and data dir under $WORK; loopback only.
# The system's /etc/postfix is only read (master.cf template), never changed. The caller
# stops it on exit: postfix -c "$POSTFIX_CONF" stop (when POSTFIX_CONF is set).
# ---------------------------------------------------------------------------------------------
POSTFIX_OK=0
POSTFIX_PORT=0
postfix_setup() {  # SMTPD_PORT RELAYHOST_PORT
  local dir=$WORK/postfix
  mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
  cp /etc/postfix/master.cf "$dir/etc/master.cf"
  cat >"$dir/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = \$myhostname
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
local_recipient_maps =
local_transport = error:local delivery is disabled here
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$2
default_process_limit = 250
biff = no
EOF
  chown postfix:postfix "$dir/data"
  local conf=$dir/etc
  # Replace the port-25 listener by one on a free loopback port; no chroot (nothing set up).
  postconf -c "$conf" -M# smtp/inet
  postconf -c "$conf" -Me "127.0.0.1:$1/inet = 127.0.0.1:$1 inet n - n - - smtpd"
  postconf -c "$conf" -F '*/*/chroot = n'
  # Postfix reports fatal errors only to syslog or a terminal: give it a terminal (script).
  if ! script -qec "postfix -c $conf start" /dev/null >"$WORK/postfix-start.out" 2>&1; then
    log "postfix: private instance did not start: $(tr -d '\r' <"$WORK/postfix-start.out" | tail -3)"
    return 1
  fi
  POSTFIX_CONF=$conf
  wait_port "$1" 20
  POSTFIX_PORT=$1
  POSTFIX_OK=1
}

postfix_set() {  # name=value...: change the private instance's main.cf and reload
  postconf -c "$POSTFIX_CONF" -e "$@"
  postfix -c "$POSTFIX_CONF" reload >/dev/null 2>&1
  sleep 1
}

postfix_queue_empty() {
  [ -z "$(find "$WORK/postfix/queue/incoming" "$WORK/postfix/queue/active" \
    "$WORK/postfix/queue/deferred" "$WORK/postfix/queue/maildrop" -type f 2>/dev/null | head -1)" ]
}
