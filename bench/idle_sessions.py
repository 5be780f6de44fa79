#!/usr/bin/python3
"""Opens N SMTP client sessions, reads each greeting, sends EHLO, reads the reply, then holds
all of them idle for --hold seconds. Prints "OPEN <ok> <failed>" once all are set up (so the
caller can sample the server's memory) and "DONE" after closing them.
Usage: idle_sessions.py --port P [--count 1000] [--hold 5]
"""
import argparse
import selectors
import socket
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()

    selector = selectors.DefaultSelector()
    # state per socket: bytes received so far and phase ("greeting" then "ehlo" then "idle")
    state = {}
    for _ in range(args.count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.connect(("127.0.0.1", args.port))
        except OSError:
            s.close()
            continue
        s.setblocking(False)
        state[s] = [b"", "greeting"]
        selector.register(s, selectors.EVENT_READ)

    def reply_complete(buffer):
        # a complete SMTP reply ends with a line "ddd <text>\r\n" (space, not dash, after code)
        lines = buffer.split(b"\r\n")
        return len(lines) >= 2 and any(len(l) >= 4 and l[3:4] == b" " for l in lines[:-1])

    pending = len(state)
    ready = 0
    deadline = time.monotonic() + args.timeout
    while pending and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            entry = state[s]
            if not data:
                selector.unregister(s)
                pending -= 1
                continue
            entry[0] += data
            if not reply_complete(entry[0]):
                continue
            if entry[1] == "greeting":
                ok = entry[0].startswith(b"220")
                entry[0], entry[1] = b"", "ehlo"
                if ok:
                    s.sendall(b"EHLO idle.bench.test\r\n")
                    continue
                selector.unregister(s)
                pending -= 1
                continue
            selector.unregister(s)
            pending -= 1
            if entry[0].startswith(b"250"):
                entry[1] = "idle"
                ready += 1
    print(f"OPEN {ready} {args.count - ready}", flush=True)
    time.sleep(args.hold)
    for s in state:
        s.close()
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
