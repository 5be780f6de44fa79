#!/usr/bin/python3
"""Soak driver: legitimate submissions mixed with hostile clients, for a bounded time.

Hostile clients (each kind from its own loopback source address, as separate attackers
would be):
  - auth flood (127.0.0.5): connections that STARTTLS and send wrong AUTH PLAIN, again and
    again, reconnecting when the relay drops them;
  - non-reading pipeliners (127.0.0.3): connections that pipeline EHLO and never read;
  - slowloris drippers (127.0.0.4): connections that send a command one byte per second;
  - wrong-password repeaters (127.0.0.6): a few sequential AUTH LOGIN guessers.
Legitimate client (127.0.0.1, plain listener): one message every --interval seconds with
Python's smtplib; each must be answered 250 within --bound seconds.

--role hostile runs the hostile clients until killed, printing "HOSTILE <attempts>" every
second; --role legit sends the legitimate messages for --duration seconds. They run as two
processes so the legitimate client's timing does not include waits for the Python GIL
behind 145 hostile threads. The legit role prints one line per message
("LEGIT <n> <code> <seconds>") and "SUMMARY sent=<n> ok=<n> max_seconds=<s>"; it exits 0 if
every message got 250 within the bound.
"""
import argparse
import base64
import smtplib
import socket
import ssl
import sys
import threading
import time


def read_reply(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("closed")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), b"".join(lines)


class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.value = 0

    def add(self, n=1):
        with self.lock:
            self.value += n


def auth_flooder(args, stop, attempts, source, mechanism):
    context = ssl.create_default_context(cafile=args.ca)
    context.check_hostname = False
    while not stop.is_set():
        try:
            s = socket.socket()
            s.settimeout(15)
            s.bind((source, 0))
            s.connect(("127.0.0.2", args.auth_port))
            f = s.makefile("rb")
            read_reply(f)
            s.sendall(b"EHLO flood.test\r\n")
            read_reply(f)
            s.sendall(b"STARTTLS\r\n")
            read_reply(f)
            t = context.wrap_socket(s, server_hostname="localhost")
            f = t.makefile("rb")
            t.sendall(b"EHLO flood.test\r\n")
            read_reply(f)
            while not stop.is_set():
                if mechanism == "plain":
                    token = base64.b64encode(b"\0app\0wrong-" + str(time.monotonic()).encode())
                    t.sendall(b"AUTH PLAIN " + token + b"\r\n")
                else:
                    t.sendall(b"AUTH LOGIN\r\n")
                    read_reply(f)
                    t.sendall(base64.b64encode(b"app") + b"\r\n")
                    read_reply(f)
                    t.sendall(base64.b64encode(b"guess-" + str(time.monotonic()).encode()) + b"\r\n")
                code, _ = read_reply(f)
                attempts.add()
                if code not in (535, 454):
                    break
            t.close()
        except (OSError, ConnectionError, ssl.SSLError):
            time.sleep(0.05)
        if mechanism != "plain":
            time.sleep(0.5)


def pipeliner(args, stop, attempts):
    chunk = b"EHLO pipeline.test\r\n" * 3000
    while not stop.is_set():
        try:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(2)
            s.bind(("127.0.0.3", 0))
            s.connect(("127.0.0.1", args.port))
            attempts.add()
            while not stop.is_set():
                try:
                    s.send(chunk)
                except socket.timeout:
                    time.sleep(0.5)  # the relay stopped reading: hold the connection
        except OSError:
            time.sleep(0.2)
        finally:
            s.close()


def dripper(args, stop, attempts):
    line = b"MAIL FROM:<slow@example.test>\r\n"
    while not stop.is_set():
        try:
            s = socket.socket()
            s.settimeout(5)
            s.bind(("127.0.0.4", 0))
            s.connect(("127.0.0.1", args.port))
            attempts.add()
            for byte in line * 100:
                if stop.is_set():
                    break
                s.send(bytes([byte]))
                time.sleep(1.0)
        except OSError:
            time.sleep(0.2)
        finally:
            s.close()


def hostile(args):
    stop = threading.Event()
    attempts = Counter()
    threads = []
    for _ in range(args.flooders):
        threads.append(threading.Thread(target=auth_flooder, args=(args, stop, attempts, "127.0.0.5", "plain")))
    for _ in range(args.repeaters):
        threads.append(threading.Thread(target=auth_flooder, args=(args, stop, attempts, "127.0.0.6", "login")))
    for _ in range(args.pipeliners):
        threads.append(threading.Thread(target=pipeliner, args=(args, stop, attempts)))
    for _ in range(args.drippers):
        threads.append(threading.Thread(target=dripper, args=(args, stop, attempts)))
    for t in threads:
        t.daemon = True
        t.start()
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline:
        time.sleep(1)
        print(f"HOSTILE {attempts.value}", flush=True)
    stop.set()
    return 0


def legit(args):
    sent = ok = 0
    worst = 0.0
    failures = []
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline:
        started = time.monotonic()
        sent += 1
        code = 0
        try:
            with smtplib.SMTP("127.0.0.1", args.port, timeout=args.bound * 2,
                              source_address=("127.0.0.1", 0)) as smtp:
                smtp.ehlo("app.soak.test")
                refused = smtp.sendmail("app@soak.test", ["rcpt@example.test"],
                                        f"Subject: soak {sent}\r\n\r\nlegitimate message {sent}\r\n")
                code = 250 if not refused else 550
        except smtplib.SMTPResponseException as error:
            code = error.smtp_code
        except (OSError, smtplib.SMTPException) as error:
            code = -1
            failures.append(f"message {sent}: {error!r}")
        took = time.monotonic() - started
        worst = max(worst, took)
        print(f"LEGIT {sent} {code} {took:.3f}", flush=True)
        if code == 250 and took <= args.bound:
            ok += 1
        time.sleep(max(0.0, args.interval - took))
    print(f"SUMMARY sent={sent} ok={ok} max_seconds={worst:.3f}", flush=True)
    for failure in failures:
        print("FAILURE", failure, flush=True)
    return 0 if ok == sent and sent > 0 else 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["hostile", "legit"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--auth-port", type=int, default=0)
    parser.add_argument("--ca", default="")
    parser.add_argument("--duration", type=float, default=45)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--bound", type=float, default=5.0)
    parser.add_argument("--flooders", type=int, default=40)
    parser.add_argument("--pipeliners", type=int, default=50)
    parser.add_argument("--drippers", type=int, default=50)
    parser.add_argument("--repeaters", type=int, default=5)
    args = parser.parse_args()
    return hostile(args) if args.role == "hostile" else legit(args)


if __name__ == "__main__":
    sys.exit(main())
