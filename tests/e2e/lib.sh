# Shared helpers for tests/e2e/test_*.sh. Source it after `set -euo pipefail`.
# shellcheck disable=SC2034  # variables set here are used by the test scripts that source this
# Provides: E2E_DIR (this directory), REPO_ROOT, PY, WORK (temp dir, removed on exit),
# fail, note, free_port, wait_for_port, wait_for_file, start_bg, stop_pid, require_cmd.

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$E2E_DIR/../.." && pwd)"
PY=/usr/bin/python3  # Debian's python3, which has aiosmtpd
TEST_NAME="$(basename "$0" .sh)"

fail() {
  echo "FAIL [$TEST_NAME]: $*" >&2
  exit 1
}
note() { echo "[$TEST_NAME] $*"; }

require_cmd() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || fail "required command '$cmd' not found (apt-get install swaks python3-aiosmtpd prometheus openssl curl)"
  done
}

if [[ $# -lt 1 ]]; then
  echo "usage: $0 <path-to-portrelay-binary>" >&2
  exit 2
fi
PORTRELAY="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
[[ -x "$PORTRELAY" ]] || fail "portrelay binary not executable: $1"
"$PY" -c 'import aiosmtpd' 2>/dev/null || fail "$PY cannot import aiosmtpd (apt-get install python3-aiosmtpd)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/portrelay-e2e-$TEST_NAME.XXXXXX")"
BG_PIDS=()

cleanup() {
  local status=$? pid
  for pid in "${BG_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${BG_PIDS[@]}"; do
    # Bounded wait, then force: a hung peer must not hang the test run.
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    { wait "$pid"; } 2>/dev/null || true
  done
  if [[ $status -ne 0 && -n "${KEEP_E2E_WORK:-}" ]]; then
    echo "[$TEST_NAME] keeping $WORK for inspection" >&2
  else
    rm -rf "$WORK"
  fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port that was free a moment ago on 127.0.0.1 (the kernel picks it).
free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_for_port HOST PORT [SECONDS]: until a TCP connect succeeds.
wait_for_port() {
  local host=$1 port=$2 timeout=${3:-10}
  "$PY" - "$host" "$port" "$timeout" <<'PYEOF' || fail "nothing listening on $host:$port after ${timeout}s"
import socket, sys, time
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout
while True:
    try:
        socket.create_connection((host, port), 0.5).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.05)
PYEOF
}

# wait_for_file PATH [SECONDS]
wait_for_file() {
  local path=$1 timeout=${2:-10} i
  for ((i = 0; i < timeout * 20; i++)); do
    [[ -e "$path" ]] && return 0
    sleep 0.05
  done
  fail "file $path did not appear within ${timeout}s"
}

# start_bg LOGFILE CMD...: runs CMD in the background, output to LOGFILE; sets LAST_PID.
start_bg() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  LAST_PID=$!
  BG_PIDS+=("$LAST_PID")
}

# stop_pid PID [SIGNAL]: signal it and wait (bounded) for it to exit.
stop_pid() {
  local pid=$1 sig=${2:-TERM}
  kill -"$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  # Braces: bash reports "Killed" jobs on the shell's stderr, not on wait's.
  { wait "$pid"; } 2>/dev/null || true
}

# start_upstream LABEL [smtp_upstream.py options...]: an aiosmtpd upstream on a kernel-picked
# port writing to $WORK/mail; sets UPSTREAM_PORT and UPSTREAM_PID.
start_upstream() {
  local label=$1
  shift
  mkdir -p "$WORK/mail"
  rm -f "$WORK/$label.port"
  start_bg "$WORK/$label.log" "$PY" "$E2E_DIR/${UPSTREAM_SCRIPT:-smtp_upstream.py}" --label "$label" \
    --outdir "$WORK/mail" --port-file "$WORK/$label.port" "$@"
  UPSTREAM_PID=$LAST_PID
  local i
  for ((i = 0; i < 200; i++)); do
    [[ -s "$WORK/$label.port" ]] && break
    kill -0 "$UPSTREAM_PID" 2>/dev/null || { cat "$WORK/$label.log" >&2; fail "upstream $label exited at start"; }
    sleep 0.05
  done
  [[ -s "$WORK/$label.port" ]] || { cat "$WORK/$label.log" >&2; fail "upstream $label did not start within 10s"; }
  UPSTREAM_PORT=$(cat "$WORK/$label.port")
}

# start_provider LABEL [provider_emulator.py options...]: start_upstream with the provider
# emulator (SES / M365 / Gmail replies, limits, stats file); sets UPSTREAM_PORT and UPSTREAM_PID.
start_provider() {
  UPSTREAM_SCRIPT=provider_emulator.py start_upstream "$@"
}

# start_portrelay CONFIG SMTP_PORT: `portrelay run` in the background (log in $WORK/portrelay.log),
# then waits until SMTP_PORT accepts connections. Sets PORTRELAY_PID.
start_portrelay() {
  local config=$1 port=$2 i
  start_bg "$WORK/portrelay.log" "$PORTRELAY" run --config "$config" --shutdown-grace 5s
  PORTRELAY_PID=$LAST_PID
  for ((i = 0; i < 200; i++)); do
    if ! kill -0 "$PORTRELAY_PID" 2>/dev/null; then
      cat "$WORK/portrelay.log" >&2
      fail "portrelay exited at start (config $config)"
    fi
    if "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2).close()" 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  cat "$WORK/portrelay.log" >&2
  fail "portrelay not listening on 127.0.0.1:$port within 10s"
}

# metric_value NAME_WITH_LABELS: the value of one exact series from $METRICS_URL, or "absent".
metric_value() {
  local series=$1
  curl -fsS --max-time 5 "$METRICS_URL" | awk -v s="$series" '$1 == s { print $2; found = 1 } END { if (!found) print "absent" }'
}

# make_pki DIR: a CA (DIR/ca.pem) and a server certificate for localhost / 127.0.0.1 / ::1
# signed by it (DIR/server.pem, DIR/server.key), made with the openssl CLI.
make_pki() {
  local dir=$1
  mkdir -p "$dir"
  (
    cd "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
      -subj "/CN=portrelay e2e test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
      "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
      -days 2 -extfile server.ext
  ) >"$dir/openssl.log" 2>&1 || { cat "$dir/openssl.log" >&2; fail "openssl could not make the test PKI"; }
  openssl verify -CAfile "$dir/ca.pem" "$dir/server.pem" >/dev/null || fail "generated server certificate does not verify"
}
