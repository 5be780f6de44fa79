#!/usr/bin/python3
"""Submits N messages to portrelay from C concurrent smtplib clients and prints one JSON line
with what happened: limits_driver.py PORT N [--clients C].

Each message carries a unique token (Subject) so the test can match deliveries. Every reply
is recorded: a message not answered 250 is reported in "refused" with its reply."""
import argparse
import json
import smtplib
import sys
import threading


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    lock = threading.Lock()
    accepted = []
    refused = []
    next_index = [0]

    def client():
        with smtplib.SMTP("127.0.0.1", args.port, local_hostname="app.e2e.test",
                          timeout=args.timeout) as smtp:
            while True:
                with lock:
                    if next_index[0] >= args.count:
                        return
                    index = next_index[0]
                    next_index[0] += 1
                token = f"limits-{index:05d}"
                body = (f"From: a@example.test\r\nTo: b@example.test\r\nSubject: {token}\r\n\r\n"
                        f"message {token}\r\n").encode()
                try:
                    smtp.sendmail("a@example.test", ["b@example.test"], body)
                    with lock:
                        accepted.append(token)
                except smtplib.SMTPException as error:
                    with lock:
                        refused.append([token, str(error)])
                    smtp.rset()

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"accepted": len(accepted), "refused": refused[:5],
                      "refused_count": len(refused)}))
    return 0 if not refused else 1


if __name__ == "__main__":
    sys.exit(main())
