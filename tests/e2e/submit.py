#!/usr/bin/python3
"""Submit one message with smtplib: submit.py HOST PORT FROM TO MESSAGE_FILE [--starttls CAFILE].

Prints the reply that decided the outcome (to MAIL, RCPT or the end of DATA); exits 0 only if
the message was accepted with 250."""
import argparse
import smtplib
import ssl
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("mail_from")
    parser.add_argument("rcpt_to")
    parser.add_argument("message_file")
    parser.add_argument("--starttls", metavar="CAFILE")
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()
    with open(args.message_file, "rb") as f:
        message = f.read()
    try:
        with smtplib.SMTP(args.host, args.port, local_hostname="app.e2e.test", timeout=args.timeout) as smtp:
            smtp.ehlo()
            if args.starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=args.starttls))
                smtp.ehlo()
            code, reply = smtp.mail(args.mail_from)
            if code != 250:
                print(f"{code} {reply.decode(errors='replace')} (MAIL)")
                return 1
            code, reply = smtp.rcpt(args.rcpt_to)
            if code != 250:
                print(f"{code} {reply.decode(errors='replace')} (RCPT)")
                return 1
            code, reply = smtp.data(message)
            print(f"{code} {reply.decode(errors='replace')}")
            return 0 if code == 250 else 1
    except (smtplib.SMTPException, OSError) as error:
        print(f"error: {type(error).__name__}: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
