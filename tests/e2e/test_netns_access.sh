#!/usr/bin/env bash
# Access control for clients that are NOT on loopback, which no loopback test can show.
# The test builds its own two-host network: namespace A runs portrelay and its upstream,
# namespace B is a client host, joined by a veth pair (10.213.0.1 <-> 10.213.0.2). No
# packet leaves these namespaces. Needs root and iproute2; skipped (exit 0) without them.
#   1. explicit `allow` without the client's network  -> 554 5.7.1 at connect
#   2. explicit `allow` with the client's address      -> the message is relayed
#   3. a listener with require_auth and no `allow`     -> any client may connect, but MAIL
#      needs AUTH (530 before it, relayed after it)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if [[ $(id -u) -ne 0 ]] || ! command -v ip >/dev/null 2>&1; then
  note "skip: needs root and iproute2 to create network namespaces"
  exit 0
fi
require_cmd swaks openssl

NSA="prA$$"
NSB="prB$$"
VETH_A="prva$$"
VETH_B="prvb$$"
RELAY_IP=10.213.0.1
CLIENT_IP=10.213.0.2

remove_namespaces() {
  ip netns del "$NSA" 2>/dev/null || true
  ip netns del "$NSB" 2>/dev/null || true
}
# lib.sh's cleanup, plus the namespaces (after our processes in them are gone).
cleanup() {
  local status=$? pid
  for pid in "${BG_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${BG_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  remove_namespaces
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

ip netns add "$NSA"
ip netns add "$NSB"
ip link add "$VETH_A" type veth peer name "$VETH_B"
ip link set "$VETH_A" netns "$NSA"
ip link set "$VETH_B" netns "$NSB"
ip -n "$NSA" addr add "$RELAY_IP/30" dev "$VETH_A"
ip -n "$NSB" addr add "$CLIENT_IP/30" dev "$VETH_B"
for ns in "$NSA" "$NSB"; do ip -n "$ns" link set lo up; done
ip -n "$NSA" link set "$VETH_A" up
ip -n "$NSB" link set "$VETH_B" up
note "network: $NSA ($RELAY_IP, relay + upstream) <-> $NSB ($CLIENT_IP, client)"

# The upstream lives on A's loopback.
mkdir -p "$WORK/mail"
start_bg "$WORK/upstream.log" ip netns exec "$NSA" "$PY" "$E2E_DIR/smtp_upstream.py" \
  --label up --outdir "$WORK/mail" --port-file "$WORK/up.port"
wait_for_file "$WORK/up.port"
UP_PORT=$(cat "$WORK/up.port")

make_pki "$WORK/pki"
echo "secret" | "$PORTRELAY" hash-password alice > "$WORK/users"

# run_relay NAME SERVER_TABLE_LINES: portrelay in A with the given [server] keys.
run_relay() {
  local name=$1 server=$2
  cat > "$WORK/$name.toml" <<EOF
[server]
hostname = "relay.netns.test"
$server
[metrics]
enabled = false
[[upstream]]
name = "up"
host = "127.0.0.1"
port = $UP_PORT
tls = "none"
EOF
  start_bg "$WORK/$name.log" ip netns exec "$NSA" "$PORTRELAY" run --config "$WORK/$name.toml"
  RELAY_PID=$LAST_PID
}

# client_greeting PORT: the first reply line the client host gets from the relay.
client_greeting() {
  local port=$1
  ip netns exec "$NSB" "$PY" - "$RELAY_IP" "$port" <<'PYEOF'
import socket, sys, time
deadline = time.monotonic() + 10
while True:
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)
        break
    except OSError:
        if time.monotonic() > deadline:
            print("no connection"); sys.exit(0)
        time.sleep(0.05)
s.settimeout(5)
print(s.recv(512).decode(errors="replace").splitlines()[0])
PYEOF
}

# 1. explicit allow that does not include the client
run_relay refused "listen = [\"$RELAY_IP:2525\"]
allow = [\"192.0.2.0/24\"]"
greeting=$(client_greeting 2525)
[[ $greeting == "554 5.7.1 "* ]] || fail "client outside allow got: $greeting"
note "1. client $CLIENT_IP outside allow: '$greeting'"
stop_pid "$RELAY_PID"

# 2. explicit allow that includes the client: relayed
run_relay allowed "listen = [\"$RELAY_IP:2525\"]
allow = [\"$CLIENT_IP/32\"]"
[[ $(client_greeting 2525) == "220 "* ]] || fail "allowed client was not greeted"
ip netns exec "$NSB" swaks --server "$RELAY_IP:2525" --from a@netns.test --to b@example.test \
  --header "Subject: allowed" --body "from the client host" > "$WORK/swaks-allowed.log" 2>&1 ||
  { cat "$WORK/swaks-allowed.log" >&2; fail "allowed client could not relay"; }
[[ -e "$WORK/mail/up-1.eml" ]] || fail "upstream did not receive the allowed client's message"
note "2. client inside allow: relayed to the upstream"
stop_pid "$RELAY_PID"

# 3. a submission listener that requires AUTH, no allow: reachable, but only with AUTH
run_relay auth "listen = [\"127.0.0.1:2525\", \"$RELAY_IP:2587\"]
tls_cert = \"$WORK/pki/server.pem\"
tls_key = \"$WORK/pki/server.key\"
users_file = \"$WORK/users\"
require_auth = [\"$RELAY_IP:2587\"]"
[[ $(client_greeting 2587) == "220 "* ]] || fail "AUTH listener did not greet a remote client"
set +e
ip netns exec "$NSB" swaks --server "$RELAY_IP:2587" -tls --from a@netns.test --to b@example.test \
  --body "no auth" > "$WORK/swaks-noauth.log" 2>&1
set -e
grep -q "^<[~-]\* 530 5.7.0 Authentication required" "$WORK/swaks-noauth.log" ||
  { cat "$WORK/swaks-noauth.log" >&2; fail "MAIL without AUTH was not refused with 530 5.7.0"; }
ip netns exec "$NSB" swaks --server "$RELAY_IP:2587" -tls -au alice -ap secret \
  --from a@netns.test --to b@example.test --header "Subject: authenticated" \
  --body "with auth" > "$WORK/swaks-auth.log" 2>&1 ||
  { cat "$WORK/swaks-auth.log" >&2; fail "authenticated remote client could not relay"; }
[[ -e "$WORK/mail/up-2.eml" ]] || fail "upstream did not receive the authenticated message"
note "3. AUTH-only listener without allow: remote client connects, 530 before AUTH, relayed after"
stop_pid "$RELAY_PID"
note "OK"
