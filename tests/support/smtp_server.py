"""A real SMTP server on loopback for the notification tests.

Usage: smtp_server.py PORT OUTDIR [starttls|tls CERT.pem KEY.pem]

Listens on 127.0.0.1:PORT (0 picks a free port) and prints the port it
listens on as the first line of stdout once it accepts connections. Each
message received is written to OUTDIR as one JSON file
{"mail_from", "rcpt_tos", "data", "tls"} (data: the raw message, headers and
body; tls: the TLS version the message came over, or null).

With `starttls` the server offers STARTTLS and refuses MAIL before it (so a
delivered message proves the client upgraded); with `tls` it speaks TLS from
the first byte (implicit TLS, "SMTPS"). Either way it presents CERT.pem.
Files are written under a temporary name and renamed, so a reader counting
*.json never sees half a message.

Requires aiosmtpd (tests/support/requirements.txt).
"""

import asyncio
import json
import os
import ssl
import sys
import uuid

from aiosmtpd.smtp import SMTP


class SaveToDir:
    def __init__(self, outdir):
        self.outdir = outdir

    async def handle_DATA(self, server, session, envelope):
        # After STARTTLS aiosmtpd swaps in the TLS transport, so one lookup
        # covers both modes.
        tls = server.transport.get_extra_info("ssl_object")
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "data": envelope.original_content.decode("utf-8", errors="replace"),
            "tls": tls.version() if tls is not None else None,
        }
        name = uuid.uuid4().hex
        tmp = os.path.join(self.outdir, name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.outdir, name + ".json"))
        return "250 Message accepted for delivery"


async def main():
    port = int(sys.argv[1])
    outdir = sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    mode = sys.argv[3] if len(sys.argv) > 3 else "none"
    if mode not in ("none", "starttls", "tls"):
        sys.exit(f"unknown TLS mode {mode!r} (none, starttls or tls)")
    context = None
    if mode != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(sys.argv[4], sys.argv[5])
    handler = SaveToDir(outdir)
    loop = asyncio.get_running_loop()

    def protocol():
        # decode_data=False keeps the raw bytes (original_content) as sent.
        if mode == "starttls":
            return SMTP(
                handler,
                hostname="smtp.test.local",
                decode_data=False,
                tls_context=context,
                require_starttls=True,
            )
        return SMTP(handler, hostname="smtp.test.local", decode_data=False)

    server = await loop.create_server(
        protocol,
        host="127.0.0.1",
        port=port,
        ssl=context if mode == "tls" else None,
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
