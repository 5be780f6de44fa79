#!/usr/bin/env bash
# Passthrough throughput by [server] workers, on 127.0.0.1 only:
#
#   bash bench/workers.sh <path-to-portrelay>
#
# smtp-source -> portrelay (workers = 1, 2, ... min(cores, 8)) -> smtp-sink, the same load
# for each count of loops; prints a table of msgs/s, CPU per message and the speed-up over
# one loop. Cores are detected: where there are 3 or more, the load generator and the sink
# are pinned (taskset) to the last quarter of them (at least one) and the relay to the rest,
# so the relay's loops do not compete with the load for a core; the workers tried go up to
# the relay's cores. On 2 cores that split would leave the relay one core (nothing to
# scale), so nothing is pinned and the table says that the load shares the cores.
#
# Every load is bounded in count and time; every process started here is stopped on exit.
# Knobs (environment): BENCH_MSGS (2000), BENCH_SESSIONS (20), BENCH_SIZE (4096 bytes),
# BENCH_REPEAT (3, the median is shown), BENCH_WORKERS (e.g. "1 2 4": which counts to try),
# BENCH_KEEP=1 (keep the work directory).
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: bash bench/workers.sh <path-to-portrelay>" >&2
  exit 2
fi
PORTRELAY=$(realpath "$1")
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
SMTP_SOURCE=/usr/sbin/smtp-source
SMTP_SINK=/usr/sbin/smtp-sink
MSGS=${BENCH_MSGS:-2000}
SESSIONS=${BENCH_SESSIONS:-20}
SIZE=${BENCH_SIZE:-4096}
REPEAT=${BENCH_REPEAT:-3}
RUN_TIMEOUT=120  # seconds, per single load

for tool in "$PY" "$SMTP_SOURCE" "$SMTP_SINK" taskset nproc; do
  command -v "$tool" >/dev/null || { echo "bench: missing $tool" >&2; exit 2; }
done
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/portrelay-workers.XXXXXX)
RESULTS=$WORK/results.tsv
: >"$RESULTS"
PIDS=()
cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

# The cores this process may use, as a list taskset understands.
mapfile -t CPUS < <("$PY" -c 'import os; print("\n".join(str(c) for c in sorted(os.sched_getaffinity(0))))')
CORES=${#CPUS[@]}
join() { local IFS=,; echo "$*"; }
if [ "$CORES" -ge 3 ]; then
  LOAD_CORES=$((CORES / 4))
  [ "$LOAD_CORES" -ge 1 ] || LOAD_CORES=1
  RELAY_CORES=$((CORES - LOAD_CORES))
  RELAY_CPUS=$(join "${CPUS[@]:0:RELAY_CORES}")
  LOAD_CPUS=$(join "${CPUS[@]:RELAY_CORES}")
  PLACEMENT="relay on CPUs $RELAY_CPUS; smtp-source and smtp-sink on CPUs $LOAD_CPUS"
  RELAY_PIN=(taskset -c "$RELAY_CPUS")
  LOAD_PIN=(taskset -c "$LOAD_CPUS")
else
  RELAY_CORES=$CORES
  PLACEMENT="$CORES core(s): not pinned; the relay shares them with smtp-source and smtp-sink"
  RELAY_PIN=()
  LOAD_PIN=()
fi
MAX_WORKERS=$RELAY_CORES
[ "$MAX_WORKERS" -le 8 ] || MAX_WORKERS=8
WORKERS=${BENCH_WORKERS:-$(seq -s ' ' 1 "$MAX_WORKERS")}

log "workers: $MSGS x $SIZE B over $SESSIONS sessions, $REPEAT repetitions; workers: $WORKERS"
log "placement: $PLACEMENT"

SINK_PORT=$(free_port)
start_bg sink "${LOAD_PIN[@]}" "$SMTP_SINK" "${SINK_USER[@]}" -c -m 2000 "127.0.0.1:$SINK_PORT" 1000
wait_port "$SINK_PORT"

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for workers in $WORKERS; do
  port=$(free_port)
  config=$WORK/workers-$workers.toml
  passthrough_config "$PORTRELAY" "$config" "$port" "$SINK_PORT"
  sed -i "s/^\[server\]$/[server]\nworkers = $workers/" "$config"
  "$PORTRELAY" check -c "$config" >/dev/null
  start_bg "relay-$workers" "${RELAY_PIN[@]}" "$PORTRELAY" run -c "$config" --shutdown-grace 2s
  relay_pid=$LAST_PID
  wait_port "$port"
  for rep in $(seq 1 "$REPEAT"); do
    out=$("${LOAD_PIN[@]}" "$PY" "$BENCH_DIR/throughput.py" --smtp-source "$SMTP_SOURCE" \
      --port "$port" --sink-output "$WORK/sink.out" --count "$MSGS" --sessions "$SESSIONS" \
      --size "$SIZE" --timeout "$RUN_TIMEOUT" --cpu-pid "$relay_pid") || true
    read -r status seconds rate cpu <<<"$out"
    if [ "$status" = OK ]; then
      log "  workers $workers, run $rep: $rate msgs/s, $cpu ms CPU/msg ($seconds s)"
      record "$workers" "$rate" "$cpu"
    else
      log "  workers $workers, run $rep: $out"
    fi
  done
  stop_pid "$relay_pid"
done

echo
echo "$("$PORTRELAY" version | head -n1): passthrough, $MSGS x $SIZE B, $SESSIONS sessions, median of $REPEAT"
echo "placement: $PLACEMENT"
printf '%-8s %12s %14s %9s\n' workers "msgs/s" "CPU ms/msg" speed-up
base=""
for workers in $WORKERS; do
  rate=$(awk -F'\t' -v w="$workers" '$1 == w { print $2 }' "$RESULTS" | median)
  cpu=$(awk -F'\t' -v w="$workers" '$1 == w && $3 != "-" { print $3 }' "$RESULTS" | median)
  [ -n "$base" ] || base=$rate
  speedup=$(awk -v r="$rate" -v b="$base" 'BEGIN { if (r == "-" || b == "-" || b == 0) print "-"; else printf "%.2fx", r / b }')
  printf '%-8s %12s %14s %9s\n' "$workers" "$rate" "$cpu" "$speedup"
done
