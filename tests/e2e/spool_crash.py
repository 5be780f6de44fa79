#!/usr/bin/python3
"""Crash test driver for portrelay's durable spool (run by test_spool_crash.sh).

One process, all on 127.0.0.1:
  - a recording upstream (aiosmtpd, in a thread): counts every X-Crash-Token it receives
    and only then answers 250;
  - portrelay `run` with [relay] mode = "spool", the upstream as its only endpoint, and a
    spool directory under --work;
  - --clients smtplib clients submitting --messages messages in total, each with its own
    token. A token counts as acknowledged only when the final dot got 250 ("queued as");
    any error loses that token (not counted) and the client reconnects and goes on;
  - the main thread SIGKILLs the daemon at random moments (every 0.3-1.5 s), at least
    --min-kills times, and restarts it at once on the same spool (it must come up: the
    kernel drops the dead process's flock, start-up empties tmp/).
Then the last daemon drains the queue, gets SIGTERM, and the spool is inspected.

Asserts: every acknowledged token reached the upstream at least once; queue/, tmp/,
failed/ and corrupt/ are empty; no daemon exited on its own; the final daemon exits 0.
Duplicates (a crash between the upstream's 250 and the removal of the message) are
allowed by at-least-once delivery and reported, not asserted.

Prints "RESULT key=value ..." and exits 0 on success, 1 on a failed assertion.

--lose-one-queued-file is for checking the check: after one kill it deletes one message
file from queue/ before the restart (what a spool that acknowledged before its data was
durable would lose in a power cut); the run must then fail.
"""
import argparse
import asyncio
import os
import random
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time

from aiosmtpd.controller import Controller

TOKEN = re.compile(rb"^X-Crash-Token: (\d+)\r?$", re.M)


class RecordingSink:
    """Upstream handler: the token is recorded before the 250 goes out."""

    def __init__(self, delay):
        self.lock = threading.Lock()
        self.counts = {}
        self.without_token = 0
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        match = TOKEN.search(envelope.original_content)
        with self.lock:
            if match:
                token = int(match.group(1))
                self.counts[token] = self.counts.get(token, 0) + 1
            else:
                self.without_token += 1
        return "250 2.0.0 Ok: recorded"

    def snapshot(self):
        with self.lock:
            return dict(self.counts), self.without_token


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


class Daemon:
    """portrelay run; each start logs to its own file. Started from the main thread only:
    --pdeathsig ties the daemon's life to that thread, so a dying driver leaves none behind."""

    def __init__(self, binary, config, port, work):
        self.binary, self.config, self.port, self.work = binary, config, port, work
        self.process = None
        self.starts = 0
        self.logs = []

    def start(self, timeout=10.0):
        self.starts += 1
        log_path = os.path.join(self.work, f"portrelay-{self.starts}.log")
        self.logs.append(log_path)
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                ["setpriv", "--pdeathsig", "KILL", "--", self.binary, "run", "--config",
                 self.config, "--shutdown-grace", "5s"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not can_connect(self.port):
            if self.process.poll() is not None:
                raise AssertionError(f"portrelay start #{self.starts} exited with "
                                     f"{self.process.returncode}: {tail(log_path)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"portrelay start #{self.starts} not listening after "
                                     f"{timeout:.0f}s: {tail(log_path)}")
            time.sleep(0.01)

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def kill(self):
        self.process.kill()  # SIGKILL
        self.process.wait(timeout=10)

    def terminate(self, timeout=15.0):
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            raise AssertionError(f"portrelay did not stop within {timeout:.0f}s of SIGTERM")


def tail(path, lines=5):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Submissions:
    """Hands out tokens to clients and records what was acknowledged."""

    def __init__(self, total):
        self.lock = threading.Lock()
        self.next_token = 1
        self.total = total
        self.acknowledged = set()
        self.lost = 0  # tokens whose transaction failed (not acknowledged)
        self.not_queued = []  # 250 replies that do not say "queued as" (wrong mode)

    def take(self):
        with self.lock:
            if self.next_token > self.total:
                return None
            token = self.next_token
            self.next_token += 1
            return token

    def done(self):
        with self.lock:
            return self.next_token > self.total


def message(token):
    return (f"From: crash-{token}@client.test\r\n"
            f"To: sink@upstream.test\r\n"
            f"Subject: crash test token {token}\r\n"
            f"X-Crash-Token: {token}\r\n"
            f"\r\n"
            f"token {token}\r\n" + "filler line for a body of some size\r\n" * 20)


def client(port, submissions, pace, stop, rng):
    connection = None
    while not stop.is_set() and not submissions.done():
        if connection is None:
            try:
                connection = smtplib.SMTP("127.0.0.1", port, timeout=10)
                connection.ehlo("client.test")
            except (OSError, smtplib.SMTPException):
                connection = None
                time.sleep(0.02)  # the daemon is restarting; no token is used up
                continue
        token = submissions.take()
        if token is None:
            break
        try:
            code, _ = connection.mail(f"crash-{token}@client.test")
            if code != 250:
                raise smtplib.SMTPException(f"MAIL {code}")
            code, _ = connection.rcpt("sink@upstream.test")
            if code != 250:
                raise smtplib.SMTPException(f"RCPT {code}")
            code, reply = connection.data(message(token).encode())
            if code != 250:
                raise smtplib.SMTPException(f"DATA {code}")
            with submissions.lock:
                submissions.acknowledged.add(token)
                if b"queued as" not in reply:
                    submissions.not_queued.append(reply.decode(errors="replace"))
        except (OSError, smtplib.SMTPException):
            with submissions.lock:
                submissions.lost += 1
            try:
                connection.close()
            except OSError:
                pass
            connection = None
        time.sleep(rng.uniform(0, 2 * pace))
    if connection is not None:
        try:
            connection.quit()
        except (OSError, smtplib.SMTPException):
            pass


def files(path):
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def acknowledged_undelivered_file(spool, submissions, sink):
    """A message file in queue/ whose token was acknowledged and has not reached the
    upstream: losing it must fail the test."""
    delivered, _ = sink.snapshot()
    with submissions.lock:
        acknowledged = set(submissions.acknowledged)
    queue = os.path.join(spool, "queue")
    for name in files(queue):
        if name.endswith(".state"):
            continue
        try:
            with open(os.path.join(queue, name), "rb") as f:
                match = TOKEN.search(f.read())
        except OSError:
            continue
        if match and int(match.group(1)) in acknowledged - delivered.keys():
            return name
    return None


def write_config(path, port, sink_port, spool):
    with open(path, "w") as f:
        f.write(f"""[server]
listen = ["127.0.0.1:{port}"]
hostname = "relay.crash.test"
max_sessions_per_address = 200

[relay]
mode = "spool"
cooldown = "1s"
cooldown_max = "2s"

[[upstream]]
name = "sink"
host = "127.0.0.1"
port = {sink_port}
tls = "none"

[spool]
dir = "{spool}"
retry_min = "1s"
retry_max = "2s"
min_free_disk = "1MiB"
max_deliveries = 4

[metrics]
enabled = false
""")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--portrelay", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--min-kills", type=int, default=10)
    parser.add_argument("--pace", type=float, default=0.15,
                        help="mean seconds a client waits between messages, so that the "
                             "submissions span many kills")
    parser.add_argument("--submit-seconds", type=float, default=75,
                        help="bound on the submission phase")
    parser.add_argument("--drain-seconds", type=float, default=40)
    parser.add_argument("--sink-delay", type=float, default=0.05,
                        help="seconds the upstream takes per message: with max_deliveries = 4 "
                             "the queue builds up a backlog, so restarts recover queued mail")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--lose-one-queued-file", action="store_true")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"seed={args.seed}", flush=True)
    started = time.monotonic()

    sink = RecordingSink(args.sink_delay)
    sink_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=sink_port)
    controller.start()

    spool = os.path.join(args.work, "spool")
    port = free_port()
    config = os.path.join(args.work, "portrelay.toml")
    write_config(config, port, sink_port, spool)
    daemon = Daemon(args.portrelay, config, port, args.work)
    problems = []
    kills = 0
    lost_files = []
    submissions = Submissions(args.messages)
    stop = threading.Event()
    drained_in = float("nan")
    try:
        daemon.start()
        threads = [threading.Thread(target=client,
                                    args=(port, submissions, args.pace, stop,
                                          random.Random(rng.random())), daemon=True)
                   for _ in range(args.clients)]
        for thread in threads:
            thread.start()

        # Kill and restart until the clients are done and enough kills happened.
        submit_deadline = started + args.submit_seconds
        while True:
            clients_running = any(t.is_alive() for t in threads)
            if not clients_running and kills >= args.min_kills:
                break
            if time.monotonic() > submit_deadline:
                problems.append(f"submission phase exceeded {args.submit_seconds:.0f}s "
                                f"(kills={kills}, next token {submissions.next_token})")
                break
            time.sleep(rng.uniform(0.3, 1.5))
            if not daemon.alive():
                raise AssertionError(f"portrelay exited by itself (status "
                                     f"{daemon.process.returncode}): {tail(daemon.logs[-1])}")
            daemon.kill()
            kills += 1
            if args.lose_one_queued_file and not lost_files:
                victim = acknowledged_undelivered_file(spool, submissions, sink)
                if victim:
                    os.unlink(os.path.join(spool, "queue", victim))
                    lost_files.append(victim)
                    print(f"deliberately removed queue/{victim} after kill {kills}", flush=True)
            daemon.start()
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        submitted_at = time.monotonic()

        # The last daemon (started after the last kill) drains the queue.
        drain_deadline = submitted_at + args.drain_seconds
        while files(os.path.join(spool, "queue")) and time.monotonic() < drain_deadline:
            if not daemon.alive():
                raise AssertionError(f"portrelay exited while draining: {tail(daemon.logs[-1])}")
            time.sleep(0.05)
        drained_in = time.monotonic() - submitted_at
        left = [n for n in files(os.path.join(spool, "queue")) if not n.endswith(".state")]
        if left:
            problems.append(f"the queue did not drain within {args.drain_seconds:.0f}s after "
                            f"the last restart: {len(left)} messages left")
        status = daemon.terminate()
        if status != 0:
            problems.append(f"final portrelay exited with status {status} after SIGTERM")
    except AssertionError as error:
        problems.append(str(error))
    finally:
        stop.set()
        if daemon.alive():
            daemon.process.kill()
            daemon.process.wait(timeout=5)
        controller.stop()

    delivered, without_token = sink.snapshot()
    acknowledged = submissions.acknowledged
    missing = sorted(acknowledged - delivered.keys())
    duplicates = sorted(t for t, n in delivered.items() if n > 1)
    unacked_delivered = sorted(delivered.keys() - acknowledged)
    phantom = sorted(t for t in delivered if t < 1 or t >= submissions.next_token)
    leftovers = {area: files(os.path.join(spool, area))
                 for area in ("queue", "tmp", "failed", "corrupt")}
    removed_partial = corrupt = ready = recovered = 0
    for log_path in daemon.logs:
        with open(log_path, errors="replace") as f:
            for line in f:
                if "spool_ready" in line:
                    ready += 1
                    m = re.search(r"removed_partial=\"?(\d+)", line)
                    removed_partial += int(m.group(1)) if m else 0
                    m = re.search(r" queued=\"?(\d+)", line)
                    recovered += int(m.group(1)) if m else 0
                    m = re.search(r"corrupt=\"?(\d+)", line)
                    corrupt += int(m.group(1)) if m else 0

    if missing:
        problems.append(f"{len(missing)} acknowledged tokens never reached the upstream: "
                        f"{missing[:20]}")
    for area, names in leftovers.items():
        if names:
            problems.append(f"{area}/ is not empty: {len(names)} files, e.g. {names[:5]}")
    if phantom:
        problems.append(f"the upstream received tokens nobody submitted: {phantom[:10]}")
    if without_token:
        problems.append(f"the upstream received {without_token} messages without a token")
    if submissions.not_queued:
        problems.append(f"{len(submissions.not_queued)} acknowledgements do not say "
                        f"'queued as' (not spool mode?): {submissions.not_queued[:2]}")
    if args.lose_one_queued_file and not lost_files:
        problems.append("--lose-one-queued-file found no acknowledged, undelivered message to lose")
    if kills < args.min_kills:
        problems.append(f"only {kills} kills (wanted {args.min_kills})")
    if ready != daemon.starts:
        problems.append(f"{daemon.starts} starts but {ready} spool_ready log lines")
    # A test that acknowledged almost nothing tested almost nothing.
    if len(acknowledged) < args.messages // 3:
        problems.append(f"only {len(acknowledged)} of {args.messages} messages acknowledged")

    elapsed = time.monotonic() - started
    print(f"RESULT acknowledged={len(acknowledged)} lost_in_crashes={submissions.lost} "
          f"delivered={len(delivered)} deliveries={sum(delivered.values())} "
          f"duplicates={len(duplicates)} unacknowledged_delivered={len(unacked_delivered)} "
          f"kills={kills} starts={daemon.starts} queued_at_starts={recovered} tmp_removed_at_start={removed_partial} "
          f"corrupt_at_start={corrupt} drain_s={drained_in:.1f} elapsed_s={elapsed:.1f}",
          flush=True)
    if duplicates:
        print(f"duplicate tokens (at-least-once, allowed): {duplicates[:20]}", flush=True)
    for problem in problems:
        print(f"PROBLEM {problem}", flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
