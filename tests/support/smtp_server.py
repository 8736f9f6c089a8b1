"""A real SMTP server on loopback for the notification tests.

Usage: smtp_server.py PORT OUTDIR

Listens on 127.0.0.1:PORT (0 picks a free port) and prints the port it
listens on as the first line of stdout once it accepts connections. Each
message received is written to OUTDIR as one JSON file
{"mail_from", "rcpt_tos", "data"} (data: the raw message, headers and body).
Files are written under a temporary name and renamed, so a reader counting
*.json never sees half a message.

Requires aiosmtpd (tests/support/requirements.txt).
"""

import asyncio
import json
import os
import sys
import uuid

from aiosmtpd.smtp import SMTP


class SaveToDir:
    def __init__(self, outdir):
        self.outdir = outdir

    async def handle_DATA(self, server, session, envelope):
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "data": envelope.original_content.decode("utf-8", errors="replace"),
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
    handler = SaveToDir(outdir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        # decode_data=False keeps the raw bytes (original_content) as sent.
        lambda: SMTP(handler, hostname="smtp.test.local", decode_data=False),
        host="127.0.0.1",
        port=port,
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
