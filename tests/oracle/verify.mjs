// The vendors' own webhook checks, for tests/http/ingest_tickets.rs to
// compare keepword's with. Reads {"cases": [{source, secret, body (hex),
// signature}]} on stdin; writes one {ok, error, sign} per case on stdout.
// - linear: @linear/sdk's LinearWebhookClient.verify (HMAC-SHA256 hex of the
//   raw body, then the body's webhookTimestamp within a minute of now).
// - jira: @octokit/webhooks-methods' verify, the `sha256=<hex>` HMAC-SHA256
//   header scheme Jira's `X-Hub-Signature` uses (WebSub); `sign` is what that
//   library would send for the body.
import { LinearWebhookClient } from "@linear/sdk/webhooks";
import { sign, verify } from "@octokit/webhooks-methods";

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
}));

const results = [];
for (const c of input.cases) {
  const body = Buffer.from(c.body, "hex");
  try {
    if (c.source === "linear") {
      const ok = new LinearWebhookClient(c.secret).verify(body, c.signature);
      results.push({ ok, error: null, sign: null });
    } else if (c.source === "jira") {
      const text = body.toString("utf8");
      const ok = await verify(c.secret, text, c.signature);
      results.push({ ok, error: null, sign: await sign(c.secret, text) });
    } else {
      throw new Error(`unknown source ${c.source}`);
    }
  } catch (e) {
    results.push({ ok: false, error: String(e.message ?? e), sign: null });
  }
}
process.stdout.write(JSON.stringify(results));
