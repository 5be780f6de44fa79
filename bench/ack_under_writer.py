#!/usr/bin/python3
"""Submission time (client's DATA dot -> 250) of one client, one message after another.

Prints "OK <median_ms> <p90_ms> <max_ms> <count>" or "FAIL <reason>". Used by
ack_under_writer.sh, quiet and while another program writes to the same file system.
"""
import argparse
import smtplib
import statistics
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--deadline", type=float, default=120.0,
                        help="seconds; the run stops then, whatever it reached")
    args = parser.parse_args()
    body = ("Subject: ack\r\n\r\n" + "x" * 76 + "\r\n") * 50  # about 4 KiB
    times = []
    end = time.monotonic() + args.deadline
    try:
        with smtplib.SMTP("127.0.0.1", args.port, local_hostname="bench.test", timeout=30) as smtp:
            smtp.ehlo()
            for i in range(args.count):
                if time.monotonic() > end:
                    break
                for command, args_ in (("mail", "FROM:<app@bench.test>"),
                                       ("rcpt", "TO:<rcpt@bench.test>"), ("data", "")):
                    smtp.putcmd(command, args_)
                    code, reply = smtp.getreply()
                    if code not in (250, 354):
                        print(f"FAIL {command} answered {code} {reply!r}")
                        return
                started = time.monotonic()
                smtp.send(body.encode() + b".\r\n")
                code, reply = smtp.getreply()
                times.append((time.monotonic() - started) * 1000)
                if code != 250:
                    print(f"FAIL message {i} answered {code} {reply!r}")
                    return
                time.sleep(args.interval)
    except (OSError, smtplib.SMTPException) as error:
        print(f"FAIL {error}")
        return
    if not times:
        print("FAIL nothing sent")
        return
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    print(f"OK {statistics.median(ordered):.2f} {p90:.2f} {ordered[-1]:.2f} {len(ordered)}")


if __name__ == "__main__":
    main()
