#!/usr/bin/env python3
"""A featherweight IMAP backend for make bench's scale row.

    python3 scripts/bench/fakeimap.py PORT

Dovecot gives every logged-in IMAP session a process of its own, which
is right for a mail store and too heavy for holding tens of thousands of
idle sessions on one small machine. This serves just what the scale test
does through moat, from one asyncio loop: a greeting, CAPABILITY, any
credentials (AUTHENTICATE PLAIN, with or without an initial response, or
LOGIN with literals), SELECT/EXAMINE of an empty INBOX, IDLE until DONE,
NOOP and LOGOUT. Anything else gets a tagged BAD.
"""

import asyncio
import gc
import re
import resource
import sys

CAPS = b"IMAP4rev1 SASL-IR LITERAL+ IDLE AUTH=PLAIN"
LITERAL = re.compile(rb"\{(\d+)(\+?)\}\r\n$")


async def read_command(reader, writer):
    """One command line with its literals inlined; None at EOF."""
    line = await reader.readline()
    if not line:
        return None
    out = line
    while True:
        m = LITERAL.search(out)
        if not m:
            return out
        if not m.group(2):
            writer.write(b"+ go on\r\n")
        data = await reader.readexactly(int(m.group(1)))
        out = out[:m.start()] + b'"' + data + b'"' + await reader.readline()


async def session(reader, writer):
    writer.write(b"* OK [CAPABILITY " + CAPS + b"] fake IMAP ready\r\n")
    try:
        while True:
            line = await read_command(reader, writer)
            if line is None:
                break
            parts = line.split(None, 2)
            if len(parts) < 2:
                writer.write(b"* BAD what\r\n")
                continue
            tag, cmd = parts[0], parts[1].upper()
            if cmd == b"CAPABILITY":
                writer.write(b"* CAPABILITY " + CAPS + b"\r\n" + tag + b" OK done\r\n")
            elif cmd == b"AUTHENTICATE":
                if len(parts) < 3 or len(parts[2].split()) < 2:
                    writer.write(b"+ \r\n")
                    await reader.readline()
                writer.write(tag + b" OK [CAPABILITY " + CAPS + b"] logged in\r\n")
            elif cmd == b"LOGIN":
                writer.write(tag + b" OK [CAPABILITY " + CAPS + b"] logged in\r\n")
            elif cmd in (b"SELECT", b"EXAMINE"):
                writer.write(b"* 0 EXISTS\r\n* 0 RECENT\r\n* FLAGS ()\r\n" + tag +
                             b" OK [READ-WRITE] selected\r\n")
            elif cmd == b"IDLE":
                writer.write(b"+ idling\r\n")
                await writer.drain()
                while (await reader.readline()).strip().upper() not in (b"DONE", b""):
                    pass
                writer.write(tag + b" OK IDLE done\r\n")
            elif cmd == b"NOOP":
                writer.write(tag + b" OK noop\r\n")
            elif cmd == b"LOGOUT":
                writer.write(b"* BYE bye\r\n" + tag + b" OK logged out\r\n")
                await writer.drain()
                break
            else:
                writer.write(tag + b" BAD not here\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main(port):
    server = await asyncio.start_server(session, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # tens of thousands of idle sessions make the cyclic collector's full
    # passes long pauses that would show up as moat's latency; nothing
    # here makes cycles worth collecting
    gc.disable()
    try:
        asyncio.run(main(int(sys.argv[1])))
    except KeyboardInterrupt:
        pass
