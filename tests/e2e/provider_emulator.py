#!/usr/bin/python3
"""An SMTP upstream that behaves like the providers (SES, Microsoft 365, Gmail) for portrelay's
end-to-end tests, built on aiosmtpd over smtp_upstream.py.

Recording is smtp_upstream.py's: every accepted message is written to --outdir as
<label>-<n>.eml (bytes as received after dot-unstuffing) and <label>-<n>.json (envelope,
encryption, authenticated user, plus here: "mail_options", "size", "client_cert_cn",
"client_cert_sha256"); the .json is renamed into place last. The bound port is written to
--port-file once the server listens.

Every option below is off by default; with none, this is smtp_upstream.py. Reply texts are the
providers' own (see shared PROVIDERS.md); where a provider's documentation does not say at
which command it answers, an --*-at option chooses.

  --auth user:password           repeatable, or a comma list: several credentials; AUTH is
                                 then required before MAIL.
  --identity user=addr[,addr]    repeatable: the identities verified for that credential
                                 (SES / M365: one per credential). An entry without '@' is a
                                 verified domain. "*" is the credential of an unauthenticated
                                 session. With any --identity, an envelope sender that is not
                                 verified gets SES's
                                   554 Message rejected: Email address is not verified. The
                                   following identities failed the check in region REGION: addr
                                 at MAIL (the null sender <> passes), and a From or Sender
                                 header address not verified gets it after end of data.
  --region NAME                  the region in that text (US-EAST-1).
  --require-qualified-to         a To/Cc header address without @domain gets SES's
                                   554 Transaction failed: Missing final '@domain'
                                 after end of data.
  --rate R[/s|/min]              token bucket: capacity --rate-burst (default: R per second,
                                 at least 1), refilled at R per second; one token per
                                 message, taken at --throttle-at (mail: MAIL FROM, the
                                 default; data: end of data). Empty bucket: SES's
                                   454 Throttling failure: Maximum sending rate exceeded.
  --max-connections N            the N+1th concurrent TCP connection gets M365's greeting
                                   432 4.3.2 STOREDRV.ClientSubmit; concurrent connection
                                   limit exceeded
                                 and is closed (it still counts in max_concurrent_connections).
  --daily-recipients N           recipients accepted at RCPT within --quota-window seconds
                                 (default 86400, rolling); past N, --quota-at (rcpt, the
                                 default, or mail) gets, by --quota-style:
                                   gmail: 550 5.4.5 Daily user sending limit exceeded.
                                   ses:   454 Throttling failure: Daily message quota exceeded.
  --size N                       advertise SIZE N in EHLO; MAIL ... SIZE= above it and a bigger
                                 body at end of data get 552 5.3.4.
  --tls implicit|starttls --cert --key   as smtp_upstream.py.
  --require-client-cert CAFILE   with --tls: the client must present a certificate that
                                 CAFILE verifies; its subject CN and SHA-256 fingerprint go
                                 in each .json.
  --stats-file PATH              JSON rewritten atomically (tmp + rename) on every change:
                                 connections, connections_open, max_concurrent_connections,
                                 messages_accepted, recipients_accepted, replies (every final
                                 reply line sent, by code, e.g. {"250": 9, "454": 2}),
                                 refusals (by cause: rate, quota, connections, size,
                                 identity, unqualified), client_certs (CNs seen).
  --refuse-rcpt / --defer-rcpt   as smtp_upstream.py.
  --delay SECONDS                wait this long before answering end of data (a slow provider).
"""
import argparse
import asyncio
import email
import email.policy
import email.utils
import hashlib
import json
import os
import signal
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword  # noqa: E402
from smtp_upstream import RecordingHandler  # noqa: E402

SES_NOT_VERIFIED = ("554 Message rejected: Email address is not verified. "
                    "The following identities failed the check in region {region}: {addr}")
SES_UNQUALIFIED = "554 Transaction failed: Missing final '@domain'"
SES_RATE = "454 Throttling failure: Maximum sending rate exceeded."
SES_QUOTA = "454 Throttling failure: Daily message quota exceeded."
GMAIL_QUOTA = "550 5.4.5 Daily user sending limit exceeded."
M365_CONNECTIONS = "432 4.3.2 STOREDRV.ClientSubmit; concurrent connection limit exceeded"
SIZE_MAIL = "552 5.3.4 Message size exceeds fixed maximum message size"
SIZE_DATA = "552 5.3.4 Message too big for system"


class Stats:
    """What happened, for tests to assert on; written atomically after every change."""

    def __init__(self, path):
        self.path = path
        self.data = {
            "connections": 0,
            "connections_open": 0,
            "max_concurrent_connections": 0,
            "messages_accepted": 0,
            "recipients_accepted": 0,
            "replies": {},
            "refusals": {},
            "client_certs": [],
        }
        self.write()

    def add(self, key, n=1):
        self.data[key] += n
        if key == "connections_open":
            self.data["max_concurrent_connections"] = max(
                self.data["max_concurrent_connections"], self.data["connections_open"])
        self.write()

    def reply(self, code):
        self.data["replies"][code] = self.data["replies"].get(code, 0) + 1
        self.write()

    def refusal(self, cause):
        self.data["refusals"][cause] = self.data["refusals"].get(cause, 0) + 1
        self.write()

    def client_cert(self, cn):
        if cn not in self.data["client_certs"]:
            self.data["client_certs"].append(cn)
            self.write()

    def write(self):
        if not self.path:
            return
        with open(self.path + ".tmp", "w") as f:
            json.dump(self.data, f, sort_keys=True)
        os.rename(self.path + ".tmp", self.path)


class TokenBucket:
    def __init__(self, rate, burst):
        self.rate = rate
        self.capacity = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self):
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class RecipientQuota:
    """Recipients accepted in a rolling window; full at `limit`."""

    def __init__(self, limit, window):
        self.limit = limit
        self.window = window
        self.stamps = []

    def used(self):
        cutoff = time.monotonic() - self.window
        self.stamps = [t for t in self.stamps if t > cutoff]
        return len(self.stamps)

    def full(self):
        return self.used() >= self.limit

    def count(self):
        self.stamps.append(time.monotonic())


def parse_rate(text):
    number, _, unit = text.partition("/")
    per = {"": 1.0, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0}[unit]
    return float(number) / per


def peer_certificate(session, server):
    """(CN, sha256 hex) of the client's certificate, or (None, None)."""
    ssl_object = None
    if session.ssl is not None:  # after STARTTLS: aiosmtpd keeps the SSL protocol's extras
        ssl_object = session.ssl.get("ssl_object")
    elif server.transport is not None:
        ssl_object = server.transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None, None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None, None
    cn = None
    for rdn in (ssl_object.getpeercert() or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
    return cn, hashlib.sha256(der).hexdigest()


class ProviderHandler(RecordingHandler):
    def __init__(self, args, stats):
        super().__init__(args.outdir, args.label, args.refuse_rcpt, args.defer_rcpt)
        self.args = args
        self.stats = stats
        self.identities = {}
        for item in args.identity or []:
            user, _, addrs = item.partition("=")
            self.identities[user] = {a.strip().lower() for a in addrs.split(",") if a.strip()}
        self.bucket = None
        if args.rate:
            rate = parse_rate(args.rate)
            self.bucket = TokenBucket(rate, args.rate_burst or max(1.0, rate))
        self.quota = (RecipientQuota(args.daily_recipients, args.quota_window)
                      if args.daily_recipients is not None else None)
        self.quota_reply = GMAIL_QUOTA if args.quota_style == "gmail" else SES_QUOTA

    def refuse(self, cause, reply):
        self.stats.refusal(cause)
        return reply

    def user_of(self, session):
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            return session.auth_data.login.decode()
        return "*"

    def unverified(self, session, address):
        """None when `address` is a verified identity of the session's credential, else the
        SES refusal."""
        if not self.identities:
            return None
        verified = self.identities.get(self.user_of(session), set())
        address = address.strip().lower()
        domain = address.rpartition("@")[2]
        if address in verified or ("@" in address and domain in verified):
            return None
        return SES_NOT_VERIFIED.format(region=self.args.region, addr=address)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.bucket and self.args.throttle_at == "mail" and not self.bucket.take():
            return self.refuse("rate", SES_RATE)
        if self.quota and self.args.quota_at == "mail" and self.quota.full():
            return self.refuse("quota", self.quota_reply)
        if address not in ("", "<>"):  # aiosmtpd gives the null sender as "<>"
            refusal = self.unverified(session, address)
            if refusal:
                return self.refuse("identity", refusal)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.quota and self.args.quota_at == "rcpt" and self.quota.full():
            return self.refuse("quota", self.quota_reply)
        reply = await super().handle_RCPT(server, session, envelope, address, rcpt_options)
        if reply.startswith("250"):
            if self.quota:
                self.quota.count()
            self.stats.add("recipients_accepted")
        return reply

    async def handle_DATA(self, server, session, envelope):
        if self.args.delay:
            await asyncio.sleep(self.args.delay)
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.compat32)
        if self.identities:
            for field in ("From", "Sender"):
                for _, addr in email.utils.getaddresses(message.get_all(field, [])):
                    refusal = self.unverified(session, addr)
                    if refusal:
                        return self.refuse("identity", refusal)
        if self.args.require_qualified_to:
            for _, addr in email.utils.getaddresses(message.get_all("To", []) + message.get_all("Cc", [])):
                if addr and "@" not in addr:
                    return self.refuse("unqualified", SES_UNQUALIFIED)
        if self.bucket and self.args.throttle_at == "data" and not self.bucket.take():
            return self.refuse("rate", SES_RATE)
        reply = await super().handle_DATA(server, session, envelope)
        self.stats.add("messages_accepted")
        return reply

    def extra_meta(self, server, session, envelope):
        cn, fingerprint = peer_certificate(session, server)
        return {
            "mail_options": envelope.mail_options,
            "size": len(envelope.original_content),
            "client_cert_cn": cn,
            "client_cert_sha256": fingerprint,
        }


class ProviderSMTP(SMTP):
    """aiosmtpd's SMTP with the connection limit, reply counting and providers' 552 texts."""

    open_connections = 0  # across every connection of this process

    def __init__(self, handler, stats, max_connections, **kwargs):
        super().__init__(handler, **kwargs)
        self.stats = stats
        self.max_connections = max_connections
        self.counted = False
        self.over_limit = False

    def connection_made(self, transport):
        if self._original_transport is None and not self.counted:  # a new TCP connection, not STARTTLS
            self.counted = True
            ProviderSMTP.open_connections += 1
            self.over_limit = (self.max_connections is not None
                               and ProviderSMTP.open_connections > self.max_connections)
            self.stats.add("connections")
            self.stats.add("connections_open")
        super().connection_made(transport)
        if self.counted and self._original_transport is not None:
            cn, _ = peer_certificate(self.session, self)
            if cn:
                self.stats.client_cert(cn)

    def connection_lost(self, error):
        if self.counted:
            self.counted = False
            ProviderSMTP.open_connections -= 1
            self.stats.add("connections_open", -1)
        super().connection_lost(error)

    async def _handle_client(self):
        cn, _ = peer_certificate(self.session, self)
        if cn:
            self.stats.client_cert(cn)
        if self.over_limit:
            self.stats.refusal("connections")
            await self.push(M365_CONNECTIONS)
            self.transport.close()
            return
        await super()._handle_client()

    async def push(self, status):
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
        # aiosmtpd's own size refusals, in the providers' words (with an enhanced status).
        if text.startswith("552 Error: message size exceeds"):
            self.stats.refusal("size")
            text = SIZE_MAIL
        elif text.startswith("552 Error: Too much mail data"):
            self.stats.refusal("size")
            text = SIZE_DATA
        if len(text) == 3 or (len(text) > 3 and text[3] == " "):  # a final line
            self.stats.reply(text[:3])
        await super().push(text)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--outdir", required=True)
    parser.add_argument("--label", default="provider")
    parser.add_argument("--tls", choices=["none", "implicit", "starttls"], default="none")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--auth", action="append", help="user:password (repeatable, or a comma list)")
    parser.add_argument("--identity", action="append", help="user=addr[,addr] (repeatable)")
    parser.add_argument("--region", default="US-EAST-1")
    parser.add_argument("--require-qualified-to", action="store_true")
    parser.add_argument("--rate", help="messages per second: R, R/s or R/min")
    parser.add_argument("--rate-burst", type=float, help="token bucket capacity (default: one second's worth)")
    parser.add_argument("--throttle-at", choices=["mail", "data"], default="mail")
    parser.add_argument("--max-connections", type=int)
    parser.add_argument("--daily-recipients", type=int)
    parser.add_argument("--quota-window", type=float, default=86400.0, help="seconds (rolling)")
    parser.add_argument("--quota-style", choices=["gmail", "ses"], default="gmail")
    parser.add_argument("--quota-at", choices=["rcpt", "mail"], default="rcpt")
    parser.add_argument("--size", type=int, help="SIZE advertised and enforced (octets)")
    parser.add_argument("--require-client-cert", metavar="CAFILE")
    parser.add_argument("--stats-file")
    parser.add_argument("--refuse-rcpt")
    parser.add_argument("--defer-rcpt")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.require_client_cert and args.tls == "none":
        parser.error("--require-client-cert needs --tls implicit or starttls")
    if args.tls != "none" and not (args.cert and args.key):
        parser.error("--tls needs --cert and --key")
    return args


def main():
    args = parse_args()
    stats = Stats(args.stats_file)

    context = None
    if args.tls != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        if args.require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=args.require_client_cert)

    credentials = {}
    for item in args.auth or []:
        for pair in item.split(","):
            user, _, password = pair.partition(":")
            credentials[user] = password

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and credentials.get(auth_data.login.decode()) == auth_data.password.decode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    handler = ProviderHandler(args, stats)

    def factory():
        return ProviderSMTP(
            handler, stats, args.max_connections,
            hostname=f"{args.label}.provider.test",
            tls_context=context if args.tls == "starttls" else None,
            require_starttls=args.tls == "starttls",
            authenticator=authenticate if credentials else None,
            auth_required=bool(credentials),
            auth_require_tls=args.tls != "implicit",
            # Unset: aiosmtpd's default (SIZE 33554432), as smtp_upstream.py.
            **({"data_size_limit": args.size} if args.size is not None else {}),
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
