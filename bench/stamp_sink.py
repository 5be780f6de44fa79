#!/usr/bin/python3
"""A minimal SMTP sink that timestamps every message it receives.

For each accepted message it prints "RECV <seq> <t>" where <seq> is the value of the message's
X-Bench-Seq header and <t> is time.monotonic() (CLOCK_MONOTONIC, comparable across processes on
one Linux machine). Prints "PORT <n>" first. Loopback only; no TLS, no AUTH.
Usage: stamp_sink.py [PORT]
"""
import asyncio
import signal
import sys
import time


async def session(reader, writer):
    def reply(text):
        writer.write((text + "\r\n").encode())

    reply("220 stamp-sink ESMTP")
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            verb = line[:4].upper()
            if verb == b"EHLO":
                reply("250-stamp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 104857600")
            elif verb == b"HELO":
                reply("250 stamp-sink")
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                reply("250 2.0.0 OK")
            elif verb == b"DATA":
                reply("354 go ahead")
                await writer.drain()
                seq = "?"
                while True:
                    data = await reader.readline()
                    if not data or data == b".\r\n":
                        break
                    if data.lower().startswith(b"x-bench-seq:"):
                        seq = data.split(b":", 1)[1].strip().decode()
                if not data:
                    break
                print(f"RECV {seq} {time.monotonic():.6f}", flush=True)
                reply("250 2.0.0 queued")
            elif verb == b"QUIT":
                reply("221 2.0.0 bye")
                await writer.drain()
                break
            else:
                reply("502 5.5.2 not implemented")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = await asyncio.start_server(session, "127.0.0.1", port, limit=1 << 20)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
