#!/usr/bin/python3
"""One throughput measurement: smtp-source sends --count messages of --size bytes over
--sessions parallel sessions to 127.0.0.1:--port; the clock stops when smtp-source has exited
AND the sink has counted all the messages (store-and-forward relays answer 250 before they
deliver, so smtp-source finishing is not enough). The sink's counter is the running
"mesg=<n>" that `smtp-sink -c` writes to --sink-output; we take the delta from the start.
Prints "OK <seconds> <msgs_per_second> <cpu_ms_per_message>" or "FAIL <reason>"; the CPU time
is that of --cpu-pid (user + system, from /proc) during the run, "-" without --cpu-pid.
With --ack-seconds a fifth field follows: the seconds until smtp-source had every message
acknowledged (for a store-and-forward relay, before the sink has them all).
"""
import argparse
import os
import re
import subprocess
import sys
import time

MESG = re.compile(rb"mesg=(\d+)")


def sink_count(path):
    with open(path, "rb") as output:
        output.seek(0, 2)
        size = output.tell()
        output.seek(max(0, size - 256))
        counts = MESG.findall(output.read())
    return int(counts[-1]) if counts else 0


def cpu_seconds(pid):
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--smtp-source", default="/usr/sbin/smtp-source")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sink-output", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--cpu-pid", type=int, default=0)
    parser.add_argument("--ack-seconds", action="store_true")
    args = parser.parse_args()

    baseline = sink_count(args.sink_output)
    command = [args.smtp_source, "-m", str(args.count), "-s", str(args.sessions),
               "-l", str(args.size), "-M", "bench.test", "-f", "app@bench.test",
               "-t", "rcpt@bench.test", f"127.0.0.1:{args.port}"]
    cpu_before = cpu_seconds(args.cpu_pid)
    started = time.monotonic()
    deadline = started + args.timeout
    try:
        source = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                timeout=args.timeout)
    except subprocess.TimeoutExpired:
        print(f"FAIL smtp-source still running after {args.timeout:.0f}s")
        return 1
    if source.returncode != 0:
        print("FAIL smtp-source: " + source.stderr.decode(errors="replace").strip()[-200:])
        return 1
    acknowledged = time.monotonic() - started
    while sink_count(args.sink_output) - baseline < args.count:
        if time.monotonic() > deadline:
            got = sink_count(args.sink_output) - baseline
            print(f"FAIL sink received {got}/{args.count} within {args.timeout:.0f}s")
            return 1
        time.sleep(0.005)
    elapsed = time.monotonic() - started
    cpu = "-"
    if args.cpu_pid:
        cpu = f"{1000 * (cpu_seconds(args.cpu_pid) - cpu_before) / args.count:.3f}"
    print(f"OK {elapsed:.3f} {args.count / elapsed:.1f} {cpu}"
          + (f" {acknowledged:.3f}" if args.ack_seconds else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
