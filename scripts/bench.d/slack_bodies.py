"""Writes N signed Slack Events API requests, one per line: "v0=SIG<TAB>BODY".

Usage: slack_bodies.py SECRET TIMESTAMP MODE N RUNID > FILE
  MODE new : every message is a client's top-level question (a new conversation)
  MODE mix : 20% new questions, 80% replies in the threads of recent ones,
             half the client's, half the team's
Every body has its own event_id, so none is a duplicate. Standard library only.
"""
import hashlib
import hmac
import json
import sys

secret, stamp, mode, n, run = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
base = int(stamp)
opened = []
out = sys.stdout
for i in range(n):
    # Written a second before they are sent, as Slack delivers them: older
    # messages would open conversations whose urgent steps (30 s in the
    # fast contract) are due at once, which the events API run does not pay.
    at = base - 1 + i // 1_000_000
    ts = f"{at}.{i % 1_000_000:06d}"
    event = {
        "type": "message",
        "channel": "C0BENCH01",
        "channel_type": "channel",
        "user": "U0CLIENT1",
        "team": "T0ACME",
        "user_team": "T0ACME",
        "text": "Checkout is down: customers cannot pay since 10:02.",
        "ts": ts,
    }
    if mode == "mix" and opened and i % 5 != 0:
        event["thread_ts"] = opened[-1 - (i % min(len(opened), 50))]
        event["text"] = "Any news?"
        if i % 2 == 0:
            event["user"], event["team"], event["user_team"] = "U0AGENT01", "T0AGENCY", "T0AGENCY"
            event["text"] = "Looking into it."
    else:
        opened.append(ts)
    body = json.dumps(
        {
            "token": "bench",
            "team_id": "T0AGENCY",
            "api_app_id": "A0BENCH",
            "type": "event_callback",
            "event_id": f"Ev{run}{i:09d}",
            "event_time": base,
            "is_ext_shared_channel": True,
            "event": event,
        },
        separators=(",", ":"),
    )
    sig = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    out.write(f"v0={sig}\t{body}\n")
