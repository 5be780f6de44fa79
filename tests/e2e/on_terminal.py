#!/usr/bin/python3
"""Runs a command on a new pseudo-terminal, as a person at a terminal would.

on_terminal.py --type LINE [--type LINE...] --transcript FILE -- COMMAND...

Each --type line is typed (with Enter) once the terminal has been quiet for a moment after
output, in order. Everything the terminal shows (prompts, echoed keys) goes to FILE. Also
checks, after each line is read, whether the terminal had echo switched off. Exits with
the command's status; killed after 20 s.
"""
import argparse
import os
import select
import subprocess
import sys
import termios
import time

parser = argparse.ArgumentParser()
parser.add_argument("--type", action="append", default=[], dest="lines")
parser.add_argument("--transcript", required=True)
parser.add_argument("command", nargs="+")
args = parser.parse_args()

controller, terminal = os.openpty()
process = subprocess.Popen(args.command, stdin=terminal, stdout=terminal, stderr=terminal,
                           start_new_session=True)
os.close(terminal)  # the child holds it; EOF on `controller` once the child is gone
shown = bytearray()
echo_states = []
deadline = time.monotonic() + 20


def read_available(quiet_for):
    """Reads what the terminal shows until it has been quiet for `quiet_for` seconds."""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], quiet_for)
        if not ready:
            return True
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not chunk:
            return False
        shown.extend(chunk)
    return False


for line in args.lines:
    if not read_available(0.5):
        break
    # The prompt is up and the program waits for the line: what does the terminal echo now?
    echo_states.append(bool(termios.tcgetattr(controller)[3] & termios.ECHO))
    os.write(controller, line.encode() + b"\r")
read_available(1.0)
try:
    status = process.wait(timeout=max(0.1, deadline - time.monotonic()))
except subprocess.TimeoutExpired:
    process.kill()
    status = process.wait()
with open(args.transcript, "wb") as out:
    out.write(bytes(shown))
print("echo while waiting for each line: " + " ".join("on" if e else "off" for e in echo_states))
sys.exit(status)
