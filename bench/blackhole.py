#!/usr/bin/python3
"""A loopback port whose SYNs are silently dropped, like a firewalled provider port.

The socket listens with backlog 0 and we fill its accept queue with our own connections that
are never accepted; while the queue is full, Linux drops further SYNs without answering, which
is what a firewall DROP rule looks like to a client. Prints the port, then holds it until
SIGTERM/SIGINT. Usage: blackhole.py [PORT]  (0 or nothing: a free port)
"""
import errno
import select
import signal
import socket
import sys


def connects_within(port, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    rc = s.connect_ex(("127.0.0.1", port))
    if rc not in (0, errno.EINPROGRESS):
        s.close()
        return None
    _, writable, _ = select.select([], [s], [], seconds)
    if writable and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
        return s  # completed: keep it, it occupies the queue
    s.close()
    return None


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(16):
        s = connects_within(port, 0.1)
        if s is None:
            break
        fillers.append(s)
    else:
        sys.exit("blackhole: accept queue never filled")
    print(port, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
