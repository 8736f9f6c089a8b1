"""Checks Slack request signatures with the slack-sdk package's SignatureVerifier.

Reads JSON on stdin: {"secret": "...", "cases": [{"timestamp": "...",
"signature": "...", "body": "..."}]} (bodies exactly as sent). Prints one
JSON line: per case, whether the verifier accepts it (`valid`, which also
checks the timestamp against this machine's clock, 5 minutes) and the
signature it computes itself (`expected`).
"""
import json
import sys

from slack_sdk.signature import SignatureVerifier

request = json.load(sys.stdin)
verifier = SignatureVerifier(request["secret"])
out = []
for case in request["cases"]:
    out.append(
        {
            "valid": verifier.is_valid(case["body"], case["timestamp"], case["signature"]),
            "expected": verifier.generate_signature(timestamp=case["timestamp"], body=case["body"]),
        }
    )
print(json.dumps(out))
