#!/usr/bin/python3
"""A real SMTP upstream for portrelay's end-to-end tests, built on aiosmtpd.

Every accepted message is written to --outdir as <n>.eml (the message bytes exactly as
received after SMTP dot-unstuffing, with CRLF line ends) and <n>.json (envelope, whether
the session was encrypted, the authenticated user, the --label of this server).
The bound port is written to --port-file once the server listens, so tests can bind port 0
and never race for a port.
"""
import argparse
import asyncio
import json
import os
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class RecordingHandler:
    def __init__(self, outdir, label, refuse_rcpt=None, defer_rcpt=None):
        self.outdir = outdir
        self.label = label
        self.count = 0
        self.refuse_rcpt = refuse_rcpt  # recipients containing this get 550
        self.defer_rcpt = defer_rcpt    # recipients containing this get 450

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse_rcpt and self.refuse_rcpt in address:
            return "550 5.1.1 <" + address + ">: no such user here"
        if self.defer_rcpt and self.defer_rcpt in address:
            return "450 4.2.0 <" + address + ">: mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.outdir, f"{self.label}-{self.count}")
        encrypted = session.ssl is not None or server.transport.get_extra_info("sslcontext") is not None
        auth_user = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            auth_user = session.auth_data.login.decode()
        meta = {
            "label": self.label,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "encrypted": encrypted,
            "auth_user": auth_user,
        }
        meta.update(self.extra_meta(server, session, envelope))
        # Write the body first and the metadata last (renamed into place): a test that sees
        # the .json file can read a complete .eml file.
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content)
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 2.0.0 Ok: queued as " + f"{self.label}-{self.count}"


    def extra_meta(self, server, session, envelope):
        """More fields for the .json record; subclasses (provider_emulator.py) add theirs."""
        return {}


def make_authenticator(user, password):
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == user
              and auth_data.password.decode() == password)
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
    return authenticate


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--outdir", required=True)
    parser.add_argument("--label", default="upstream")
    parser.add_argument("--tls", choices=["none", "implicit", "starttls"], default="none")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--auth", help="user:password; AUTH is then required before MAIL")
    parser.add_argument("--refuse-rcpt", help="550 for recipients that contain this text")
    parser.add_argument("--defer-rcpt", help="450 for recipients that contain this text")
    args = parser.parse_args()

    context = None
    if args.tls != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)

    authenticator = None
    if args.auth:
        user, password = args.auth.split(":", 1)
        authenticator = make_authenticator(user, password)

    handler = RecordingHandler(args.outdir, args.label, args.refuse_rcpt, args.defer_rcpt)

    def factory():
        return SMTP(
            handler,
            hostname=f"{args.label}.upstream.test",
            # STARTTLS mode: offer it and refuse everything else until it is done.
            tls_context=context if args.tls == "starttls" else None,
            require_starttls=args.tls == "starttls",
            authenticator=authenticator,
            auth_required=authenticator is not None,
            # Implicit TLS is encrypted from the first byte, which aiosmtpd cannot see on its own.
            auth_require_tls=args.tls != "implicit",
        )

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(factory, host=args.host, port=args.port,
                           ssl=context if args.tls == "implicit" else None))
    port = server.sockets[0].getsockname()[1]
    with open(args.port_file + ".tmp", "w") as f:
        f.write(f"{port}\n")
    os.rename(args.port_file + ".tmp", args.port_file)
    print(f"{args.label}: listening on {args.host}:{port} tls={args.tls}", file=sys.stderr, flush=True)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, loop.stop)
    loop.run_forever()
    server.close()
    loop.run_until_complete(server.wait_closed())


if __name__ == "__main__":
    main()
