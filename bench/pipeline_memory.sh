#!/usr/bin/env bash
# Memory under clients that pipeline EHLO and never read their replies: starts
# `portrelay run` on a free loopback port, floods it with N such clients
# (bench/pipeline_flood.py), and prints the relay's RSS before, while held, and its peak,
# with the growth per client. Nothing is relayed: the upstream is never contacted.
#   bench/pipeline_memory.sh [PORTRELAY_BINARY] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
BINARY=${1:-build/portrelay}
CLIENTS=${2:-100}
WORK=$(mktemp -d /tmp/portrelay-pipeline-memory.XXXXXX)
trap 'kill "${RELAY_PID:-}" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$WORK/portrelay.toml" <<TOML
[server]
listen = ["127.0.0.1:$port"]
hostname = "relay.bench.test"
max_sessions = 2000
max_sessions_per_address = 2000
max_sessions_before_mail = 2000
[[upstream]]
host = "127.0.0.1"
port = 9
tls = "none"
[metrics]
enabled = false
TOML
# The baseline binary may not know the limit keys: drop them if check refuses the file.
if ! "$BINARY" check --config "$WORK/portrelay.toml" >/dev/null 2>&1; then
  sed -i '/^max_sessions_per_address\|^max_sessions_before_mail/d' "$WORK/portrelay.toml"
fi
ulimit -n 4096 2>/dev/null || true
"$BINARY" run --config "$WORK/portrelay.toml" 2>"$WORK/relay.log" &
RELAY_PID=$!
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2).close()" 2>/dev/null && break
  sleep 0.1
done
rss() { awk -v key="$1:" '$1 == key { print $2 }' "/proc/$RELAY_PID/status"; }
before=$(rss VmRSS)
python3 bench/pipeline_flood.py --port "$port" --count "$CLIENTS" --hold 3 >"$WORK/flood.out" &
flood_pid=$!
for _ in $(seq 600); do grep -q '^FLOODED' "$WORK/flood.out" && break; sleep 0.1; done
sleep 1
held=$(rss VmRSS)
io=$(awk '$1 == "rchar:" || $1 == "wchar:" { printf "%s %d KiB  ", $1, $2 / 1024 }' "/proc/$RELAY_PID/io")
wait "$flood_pid"
peak=$(rss VmHWM)
read -r _ sessions sent <<<"$(grep '^FLOODED' "$WORK/flood.out")"
echo "binary:            $BINARY"
echo "clients:           $sessions pipelining EHLO without reading ($((sent / 1024)) KiB sent in total)"
echo "relay socket I/O:  $io(read from clients, replies written)"
echo "RSS before:        $before KiB"
echo "RSS while held:    $held KiB"
echo "RSS peak (VmHWM):  $peak KiB"
echo "growth per client: $(((peak - before) / sessions)) KiB (peak), $(((held - before) / sessions)) KiB (held)"
