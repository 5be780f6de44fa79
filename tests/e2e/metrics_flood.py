#!/usr/bin/env python3
"""Holds idle and slowloris connections against the metrics port and checks that /healthz
and /metrics still answer promptly. Used by test_metrics_under_load.sh.

usage: metrics_flood.py PORT IDLE SLOWLORIS

The held connections come from 127.0.0.2 .. 127.0.0.9 (a few clients, as other pods would
be), the probes from 127.0.0.1 (the kubelet). Bounded: about 13 s, then everything closes.
Exit 0 when every check held; otherwise the failed checks on stderr and exit 1.
"""
import errno
import resource
import socket
import sys
import time

PORT, IDLE, SLOW = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]
PROBE_LIMIT = 1.0  # seconds a /healthz may take
PROBE_FOR = 6.0  # seconds of probing while the connections are held
IDLE_TIMEOUT = 10.0  # the server's idle timeout (MetricsHttpServer::kIdleTimeout)
PARTIAL = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n"

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = IDLE + SLOW + 64
if soft < want:
    if hard != resource.RLIM_INFINITY and hard < want:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} < {want}: cannot hold the connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print(f"  FAILED: {what}", file=sys.stderr)


def connect(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((SOURCES[n % len(SOURCES)], 0))
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", PORT))
    except OSError as error:
        s.close()
        return error
    s.setblocking(False)
    return s


def hold(count):
    """`count` open connections, or as many as could be opened (the failure is recorded)."""
    held = []
    for n in range(count):
        s = connect(n)
        if isinstance(s, OSError):
            check(False, f"connection {n + 1} of {count} could not be opened: {s}")
            break
        held.append(s)
    return held


def get(path, timeout):
    """(status, headers, body, seconds); status 0 when there was no complete answer."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=timeout) as s:
            s.settimeout(max(0.05, timeout - (time.monotonic() - start)))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                s.settimeout(max(0.05, timeout - (time.monotonic() - start)))
    except OSError as error:
        return 0, "", str(error), time.monotonic() - start
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        status = 0
    return status, "\n".join(lines[1:]).lower(), body.decode("utf-8", "replace"), time.monotonic() - start


def still_open(s):
    try:
        return s.recv(1) != b""  # data would be odd, but the connection is open
    except BlockingIOError:
        return True
    except OSError:
        return False


def drip(sockets, step):
    for s in sockets:
        try:
            s.send(PARTIAL[step % len(PARTIAL) : step % len(PARTIAL) + 1])
        except OSError:
            pass


opened = time.monotonic()
idle = hold(IDLE)
slow = hold(SLOW)
step = 0
drip(slow, step)
print(f"holding {len(idle)} idle and {len(slow)} slowloris connections "
      f"from {len(SOURCES)} addresses ({time.monotonic() - opened:.2f}s to open)")

worst, probes, last_drip = 0.0, 0, time.monotonic()
while time.monotonic() - opened < PROBE_FOR:
    if time.monotonic() - last_drip >= 1.0:
        step += 1
        drip(slow, step)
        last_drip = time.monotonic()
    status, _, body, seconds = get("/healthz", PROBE_LIMIT)
    probes += 1
    worst = max(worst, seconds)
    check(status == 200 and body == "ok\n" and seconds <= PROBE_LIMIT,
          f"/healthz #{probes}: status {status} after {seconds:.3f}s ({body.strip()!r})")
    if failures:
        break
    time.sleep(0.2)
print(f"/healthz: {probes} probes, all 200, slowest {worst * 1000:.0f} ms" if not failures else
      f"/healthz failed after {probes} probes")

status, headers, body, seconds = get("/metrics", 2.0)
check(status == 200, f"/metrics: status {status} after {seconds:.3f}s")
check("content-type: text/plain; charset=utf-8" in headers,
      f"/metrics content type: {headers!r}")
check("portrelay_messages_total" in body and "process_open_fds" in body,
      "/metrics body lacks portrelay_messages_total or process_open_fds")
if status == 200:
    print(f"/metrics: 200 in {seconds * 1000:.0f} ms, {len(body)} bytes")
status, _, body, _ = get("/readyz", PROBE_LIMIT)
check(status in (200, 503) and body.endswith("\n"), f"/readyz: status {status}")

# The load was real: the server still holds every connection (it did not just drop them).
held_idle = sum(still_open(s) for s in idle)
held_slow = sum(still_open(s) for s in slow)
print(f"still open after {time.monotonic() - opened:.1f}s: {held_idle}/{IDLE} idle, "
      f"{held_slow}/{SLOW} slowloris")
check(held_idle == len(idle) and held_slow == len(slow), "the server dropped held connections early")

# Idle connections are not held forever: closed once the idle timeout passed.
if not failures:
    while time.monotonic() - opened < IDLE_TIMEOUT + 3.0:
        drip(slow, step)
        step += 1
        time.sleep(1.0)
    held_idle = sum(still_open(s) for s in idle)
    print(f"after {time.monotonic() - opened:.1f}s: {held_idle}/{IDLE} idle connections open")
    check(held_idle == 0, f"{held_idle} idle connections outlived the idle timeout")
    status, _, _, seconds = get("/healthz", PROBE_LIMIT)
    check(status == 200, f"/healthz at the end: status {status} after {seconds:.3f}s")

for s in idle + slow:
    s.close()
sys.exit(1 if failures else 0)
