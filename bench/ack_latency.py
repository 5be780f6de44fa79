#!/usr/bin/python3
"""Acknowledgement-to-delivery latency of a store-and-forward relay at low load.

One client, one connection: --count messages one after the other, each with
"X-Bench-Seq: <first + i>"; the acknowledgement time is time.monotonic() right after the
250 to the final dot. The delivery time is the sink's "RECV <seq> <t>" line
(stamp_sink.py, the same CLOCK_MONOTONIC). Waits up to --wait seconds for the sink.
Prints "OK <median_ms> <p90_ms> <max_ms> <delivered>/<count>" or "FAIL <reason>".
"""
import argparse
import smtplib
import statistics
import sys
import time


def read_receipts(path):
    receipts = {}
    with open(path) as log:
        for line in log:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "RECV":
                receipts.setdefault(parts[1], float(parts[2]))
    return receipts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sink-log", required=True)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.01,
                        help="pause between messages: low load, not a burst")
    parser.add_argument("--wait", type=float, default=30.0)
    args = parser.parse_args()

    acknowledged = {}
    body_tail = "x" * 76 + "\r\n"
    with smtplib.SMTP("127.0.0.1", args.port, local_hostname="bench.test",
                      timeout=args.wait) as client:
        for seq in range(args.first, args.first + args.count):
            body = (f"From: app@bench.test\r\nTo: rcpt@bench.test\r\nSubject: latency {seq}\r\n"
                    f"X-Bench-Seq: {seq}\r\n\r\n" + body_tail * 50)
            client.sendmail("app@bench.test", ["rcpt@bench.test"], body)
            acknowledged[str(seq)] = time.monotonic()
            time.sleep(args.interval)

    deadline = time.monotonic() + args.wait
    receipts = read_receipts(args.sink_log)
    while any(s not in receipts for s in acknowledged) and time.monotonic() < deadline:
        time.sleep(0.02)
        receipts = read_receipts(args.sink_log)
    latencies = sorted(1000 * (receipts[s] - t) for s, t in acknowledged.items() if s in receipts)
    if not latencies:
        print("FAIL nothing reached the sink")
        return 1
    p90 = latencies[min(len(latencies) - 1, int(0.9 * len(latencies)))]
    print(f"OK {statistics.median(latencies):.2f} {p90:.2f} {latencies[-1]:.2f} "
          f"{len(latencies)}/{args.count}")
    return 0 if len(latencies) == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
