"""Checks one webhook delivery with the Standard Webhooks reference library.

Reads JSON on stdin: {"secret": "whsec_...", "headers": {...}, "body": "..."}
(the body exactly as received). Prints "ok" and exits 0 when the signature
verifies; prints the library's reason and exits 1 when it does not.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

request = json.load(sys.stdin)
try:
    Webhook(request["secret"]).verify(request["body"].encode(), request["headers"])
except WebhookVerificationError as e:
    print(f"refused: {e}")
    sys.exit(1)
print("ok")
