#!/usr/bin/python3
"""Hostile clients that pipeline EHLO and never read their replies (issue: memory
amplification, an EHLO reply is ~13 times its command). Opens N connections with a small
receive buffer, writes "EHLO x" lines on each until the relay stops taking them (no progress
for --stall seconds) or --max-bytes were sent, prints "FLOODED <sessions> <bytes sent>",
holds every connection for --hold seconds without reading, prints "DONE" and closes.
Usage: pipeline_flood.py --port P [--count 100] [--hold 5]
"""
import argparse
import socket
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--hold", type=float, default=5.0)
    parser.add_argument("--stall", type=float, default=1.0)
    parser.add_argument("--max-bytes", type=int, default=4 << 20)
    args = parser.parse_args()

    chunk = b"EHLO flood.example\r\n" * 3276  # ~64 KiB per write
    sockets, sent = [], []
    for _ in range(args.count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # never read: keep it small
        try:
            s.connect(("127.0.0.1", args.port))
        except OSError:
            s.close()
            continue
        s.setblocking(False)
        sockets.append(s)
        sent.append(0)

    last_progress = time.monotonic()
    while time.monotonic() - last_progress < args.stall:
        progressed = False
        for i, s in enumerate(sockets):
            if sent[i] >= args.max_bytes:
                continue
            try:
                n = s.send(chunk)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                sent[i] = args.max_bytes  # closed by the relay
                continue
            sent[i] += n
            progressed = True
        if progressed:
            last_progress = time.monotonic()
        else:
            time.sleep(0.02)
    print(f"FLOODED {len(sockets)} {sum(min(x, args.max_bytes) for x in sent)}", flush=True)
    time.sleep(args.hold)
    print("DONE", flush=True)
    for s in sockets:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
