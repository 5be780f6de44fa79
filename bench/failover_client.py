#!/usr/bin/python3
"""Submits numbered messages and reports submission-to-delivery latency.

Each message carries "X-Bench-Seq: <n>". The submission time is taken just before connecting;
the delivery time is the sink's "RECV <n> <t>" line (stamp_sink.py, same CLOCK_MONOTONIC).
For a passthrough relay the submission returns only after delivery; for a store-and-forward
relay (Postfix) it returns at once and we wait for the sink, up to --wait seconds.
Usage: failover_client.py --port P --sink-log FILE --first N --count K [--wait S]
Prints one line per message: "MSG <n> <latency_seconds|lost>" and "SUBMIT <n> <seconds>".
"""
import argparse
import smtplib
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
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--wait", type=float, default=90.0)
    args = parser.parse_args()

    sent = {}
    for seq in range(args.first, args.first + args.count):
        body = (f"From: app@bench.test\r\nTo: rcpt@bench.test\r\nSubject: failover {seq}\r\n"
                f"X-Bench-Seq: {seq}\r\n\r\nfailover benchmark message {seq}\r\n")
        started = time.monotonic()
        with smtplib.SMTP("127.0.0.1", args.port, local_hostname="bench.test",
                          timeout=args.wait) as client:
            client.sendmail("app@bench.test", ["rcpt@bench.test"], body)
        sent[str(seq)] = started
        print(f"SUBMIT {seq} {time.monotonic() - started:.4f}", flush=True)

    deadline = time.monotonic() + args.wait
    receipts = read_receipts(args.sink_log)
    while any(s not in receipts for s in sent) and time.monotonic() < deadline:
        time.sleep(0.02)
        receipts = read_receipts(args.sink_log)
    for seq, started in sent.items():
        if seq in receipts:
            print(f"MSG {seq} {receipts[seq] - started:.4f}", flush=True)
        else:
            print(f"MSG {seq} lost", flush=True)
    return 0 if all(s in receipts for s in sent) else 1


if __name__ == "__main__":
    sys.exit(main())
