//! Slack Events API deliveries (README, "Slack").
//!
//! - Verified first ([`verify_slack`]): `X-Slack-Signature` is `v0=` and the
//!   hex HMAC-SHA256 of `v0:{timestamp}:{body}` under the app's signing
//!   secret, compared in constant time, and `X-Slack-Request-Timestamp` must
//!   be within 5 minutes of the server's clock, so a captured request cannot
//!   be replayed later.
//! - `url_verification` answers its `challenge` ([`slack_challenge`]).
//! - A `message` in a channel is a message of the conversation whose thread
//!   is `CHANNEL:ts` of its thread's parent (`thread_ts`), or its own `ts`
//!   at the top level, where it opens one. The idempotency key is the
//!   envelope's `event_id`: Slack's retries carry the same one.
//! - Who wrote it: bots (`bot_id`, subtype `bot_message`, keepword's own
//!   posts among them) are `auto`; a person whose workspace (`user_team`,
//!   else `team`) is one of the team's is `outbound`; anyone else `inbound`.
//! - The client of a client's message: the one whose `slack_channels` lists
//!   the channel, else whose `slack_teams` lists the author's workspace,
//!   else `unknown` (or none, when the contract ignores unknown senders).
//!   The team's and bots' messages name no client: they join a thread's
//!   conversation, never open one.
//! - Edits, deletions, joins, topic changes, other subtypes, other events
//!   and direct messages are ignored with a reason (answered 200, counted).
//! - The text is made readable ([`slack_text`]): `<@U…>` mentions,
//!   `<#C…|name>` channels, `<url|label>` links and Slack's `&lt;` escapes
//!   become what a person sees, and mrkdwn's `*`, `_`, `~` markers go.

use chrono::{DateTime, TimeZone, Utc};
use hmac::Mac;
use serde_json::Value;

use super::signature::{mac, sha256_hex};
use super::ticket::*;
use super::*;
use crate::contract::{Contract, UNKNOWN_CLIENT, UnknownSenders};
use crate::sla::Direction;

pub const SLACK_SIGNATURE_HEADER: &str = "X-Slack-Signature";
pub const SLACK_TIMESTAMP_HEADER: &str = "X-Slack-Request-Timestamp";
/// Present on Slack's retries of a delivery it got no timely 2xx for.
pub const SLACK_RETRY_HEADER: &str = "X-Slack-Retry-Num";
/// How far `X-Slack-Request-Timestamp` may be from the server's clock
/// (Slack's own SDKs use the same five minutes).
pub const SLACK_TIMESTAMP_WINDOW_SECS: i64 = 300;
/// The subject is the opening message's first line, at most this long.
const SLACK_SUBJECT_CHARS: usize = 200;

/// The digest an `X-Slack-Signature` header carries (`v0=` and 64 hex
/// digits). Needs no body, so the HTTP edge can refuse before reading one.
pub fn slack_signature_digest(header: Option<&str>) -> Result<Vec<u8>, WebhookAuthError> {
    header
        .ok_or(WebhookAuthError::Missing(SLACK_SIGNATURE_HEADER))?
        .trim()
        .strip_prefix("v0=")
        .and_then(sha256_hex)
        .ok_or(WebhookAuthError::Malformed(
            SLACK_SIGNATURE_HEADER,
            "\"v0=\" and 64 hex digits",
        ))
}

/// The signature over the timestamp and the body, then the timestamp's
/// age: a body is trusted only when both hold.
pub fn verify_slack(
    secret: &[u8],
    body: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), WebhookAuthError> {
    if secret.is_empty() {
        return Err(WebhookAuthError::NoSecret);
    }
    let expected = slack_signature_digest(signature)?;
    let stamp = timestamp
        .ok_or(WebhookAuthError::Missing(SLACK_TIMESTAMP_HEADER))?
        .trim();
    let sent: i64 = stamp
        .parse()
        .map_err(|_| WebhookAuthError::Malformed(SLACK_TIMESTAMP_HEADER, "seconds since 1970"))?;
    slack_mac(secret, stamp, body)
        .verify_slice(&expected)
        .map_err(|_| WebhookAuthError::Mismatch(SLACK_SIGNATURE_HEADER))?;
    let skew = now.timestamp().saturating_sub(sent);
    if skew.abs() > SLACK_TIMESTAMP_WINDOW_SECS {
        return Err(WebhookAuthError::SlackStale(skew));
    }
    Ok(())
}

/// The `X-Slack-Signature` Slack would send for `body` at `timestamp`: for
/// tests and for tools that replay deliveries.
pub fn slack_signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    format!(
        "v0={}",
        hex::encode(slack_mac(secret, timestamp, body).finalize().into_bytes())
    )
}

fn slack_mac(secret: &[u8], timestamp: &str, body: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    let mut m = mac(secret, b"v0:");
    m.update(timestamp.as_bytes());
    m.update(b":");
    m.update(body);
    m
}

/// The `challenge` of a `url_verification` request, which Slack sends once
/// when the request URL is set; `None` for anything else.
pub fn slack_challenge(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v.get("type")?.as_str()? != "url_verification" {
        return None;
    }
    v.get("challenge")?.as_str().map(str::to_owned)
}

/// The event names of ignored deliveries that get their own `event` label
/// (message subtypes, event and envelope types); anything else is `other`.
pub fn slack_event_label(event: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "message_changed",
        "message_deleted",
        "message_replied",
        "channel_join",
        "channel_leave",
        "group_join",
        "group_leave",
        "channel_topic",
        "channel_purpose",
        "channel_name",
        "channel_archive",
        "channel_unarchive",
        "pinned_item",
        "unpinned_item",
        "ekm_access_denied",
        "reminder_add",
        "direct_message",
        "app_mention",
        "reaction_added",
        "reaction_removed",
        "member_joined_channel",
        "member_left_channel",
        "app_rate_limited",
        "app_uninstalled",
        "tokens_revoked",
        "channel_shared",
        "channel_unshared",
    ];
    bounded_label(KNOWN, event)
}

/// Who is who in Slack, from `[slack]`.
#[derive(Debug, Clone, Copy)]
pub struct SlackTeam<'a> {
    /// The team's workspace ids: their members are the team.
    pub team_ids: &'a [String],
}

/// Parses a delivery [`verify_slack`] accepted (not a `url_verification`).
pub fn parse_slack(
    body: &[u8],
    channel: &str,
    team: SlackTeam<'_>,
    contract: &Contract,
    now: DateTime<Utc>,
) -> Result<TicketOutcome, EventError> {
    let root = parse_object(body)?;
    let [envelope] = required_names(&root, ["type"])?;
    if envelope != "event_callback" {
        return Ok(ignored(
            envelope,
            None,
            "keepword reads message events (event_callback)",
        ));
    }
    let [kind] = required_names(&root, ["event.type"])?;
    if kind != "message" {
        return Ok(ignored(kind, None, "keepword reads message events only"));
    }
    let ev = lookup(&root, "event").unwrap_or(&Value::Null);
    let subtype = ev.get("subtype").and_then(Value::as_str);
    if let Some(s) = subtype
        && !matches!(
            s,
            "bot_message" | "thread_broadcast" | "file_share" | "me_message"
        )
    {
        let reason = match s {
            "message_changed" => "an edit moves no timer: the first version was the message",
            "message_deleted" => "a deletion moves no timer: the message was received",
            _ => "not a message someone wrote in the channel",
        };
        return Ok(ignored(s, None, reason));
    }
    if matches!(
        ev.get("channel_type").and_then(Value::as_str),
        Some("im" | "mpim")
    ) {
        return Ok(ignored(
            "direct_message",
            subtype,
            "direct messages are not a shared channel",
        ));
    }

    let mut p = Problems::default();
    let key = p
        .text(&root, "event_id", Rule::required(MAX_ID_CHARS))
        .map(str::to_owned);
    let slack_channel = p
        .text(&root, "event.channel", Rule::required(100))
        .map(str::to_owned);
    let ts = p.text(&root, "event.ts", Rule::required(40));
    let at = ts.and_then(|ts| match slack_instant(ts) {
        Some(at) => p.instant_in_range("event.ts", at, now),
        None => {
            p.push(
                "event.ts",
                format!(
                    "must be Slack's seconds.micros timestamp (got {})",
                    quote(ts)
                ),
            );
            None
        }
    });
    let parent = match p.string(&root, "event.thread_ts", false) {
        Some(t) if slack_instant(t).is_some() => Some(t),
        Some(t) => {
            p.push(
                "event.thread_ts",
                format!(
                    "must be Slack's seconds.micros timestamp (got {})",
                    quote(t)
                ),
            );
            None
        }
        None => None,
    };
    let thread = match (&slack_channel, parent.or(ts)) {
        (Some(c), Some(t)) => Some(format!("{c}:{t}")),
        _ => None,
    };
    let raw_text = ev.get("text").and_then(Value::as_str).unwrap_or_default();
    let text = slack_text(raw_text);

    let bot = subtype == Some("bot_message") || ev.get("bot_id").is_some_and(|b| !b.is_null());
    let user = ev.get("user").and_then(Value::as_str);
    let workspace = ev
        .get("user_team")
        .and_then(Value::as_str)
        .or_else(|| ev.get("team").and_then(Value::as_str));
    let direction = if bot {
        Direction::Auto
    } else if user.is_none() {
        p.push("event.user", "is required for a message a person wrote");
        Direction::Auto
    } else if workspace.is_some_and(|w| team.team_ids.iter().any(|t| t.eq_ignore_ascii_case(w))) {
        Direction::Outbound
    } else {
        Direction::Inbound
    };
    let client = (direction == Direction::Inbound)
        .then(|| slack_client(contract, slack_channel.as_deref(), workspace))
        .flatten();
    Draft {
        key,
        channel: channel.to_owned(),
        thread,
        thread_field: "event.channel",
        direction: Some(direction),
        from: clip(&author(ev), MAX_NAME_CHARS_SLACK),
        client,
        subject: first_line(&text),
        body: text,
        priority: None,
        status: None,
        at,
    }
    .finish(p)
}

/// A sender label fits the email one's bound.
const MAX_NAME_CHARS_SLACK: usize = 320;

/// The client of a client's message (see the module's rule).
fn slack_client(
    contract: &Contract,
    channel: Option<&str>,
    workspace: Option<&str>,
) -> Option<String> {
    let by_channel = channel.and_then(|ch| {
        contract
            .clients()
            .iter()
            .find(|c| c.slack_channels.iter().any(|x| x.eq_ignore_ascii_case(ch)))
    });
    let by_team = || {
        workspace.and_then(|w| {
            contract
                .clients()
                .iter()
                .find(|c| c.slack_teams.iter().any(|x| x.eq_ignore_ascii_case(w)))
        })
    };
    match by_channel.or_else(by_team) {
        Some(c) => Some(c.id.clone()),
        None => match contract.info().unknown_senders {
            UnknownSenders::Track => Some(UNKNOWN_CLIENT.to_owned()),
            UnknownSenders::Ignore => None,
        },
    }
}

/// The message's author as stored: the Slack user id (or bot id), then the
/// name the payload gives, if any — `U06NU4E26M9 (Ann Lee)`. The id comes
/// first so a report can group by it whatever the name became.
fn author(ev: &Value) -> String {
    let s = |path: &str| {
        lookup(ev, path)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let id = s("user").or_else(|| s("bot_id")).unwrap_or("slack");
    let name = s("user_profile.display_name")
        .or_else(|| s("user_profile.real_name"))
        .or_else(|| s("username"))
        .or_else(|| s("bot_profile.name"));
    match name {
        Some(n) => format!("{id} ({n})"),
        None => id.to_owned(),
    }
}

fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let cut = clip(line, SLACK_SUBJECT_CHARS);
    if cut.len() < line.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Slack's `ts` (`"1719209506.817929"`: seconds, a dot, microseconds) as an
/// instant.
pub fn slack_instant(ts: &str) -> Option<DateTime<Utc>> {
    let (secs, micros) = ts.split_once('.').unwrap_or((ts, "0"));
    if secs.is_empty()
        || micros.len() > 6
        || !secs
            .bytes()
            .chain(micros.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let micros: u32 = format!("{micros:0<6}").parse().ok()?;
    Utc.timestamp_opt(secs, micros * 1_000).single()
}

/// Slack message text as a person reads it: `<@U123>` → `@U123`,
/// `<@U123|ann>` → `@ann`, `<#C123|general>` → `#general`, `<!here>` →
/// `@here`, `<https://x|label>` → `label (https://x)`, `&lt;` `&gt;` `&amp;`
/// → `<` `>` `&`; mrkdwn's `*bold*`, `_italic_` and `~strike~` markers are
/// dropped. The result is text: pages escape it like any other.
pub fn slack_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        out.push_str(&readable_token(&after[..close]));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    let plain = strip_markers(&out);
    plain
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// One `<…>` of Slack's markup.
fn readable_token(token: &str) -> String {
    let (target, label) = match token.split_once('|') {
        Some((t, l)) => (t, Some(l).filter(|l| !l.is_empty())),
        None => (token, None),
    };
    if let Some(user) = target.strip_prefix('@') {
        return format!("@{}", label.unwrap_or(user));
    }
    if let Some(channel) = target.strip_prefix('#') {
        return format!("#{}", label.unwrap_or(channel));
    }
    if let Some(special) = target.strip_prefix('!') {
        // `<!subteam^S123|@team>`, `<!date^…|fallback>`: the label is what
        // Slack shows; `<!here>`, `<!channel>`, `<!everyone>` are mentions.
        return match label {
            Some(l) => l.to_owned(),
            None => format!("@{}", special.split('^').next().unwrap_or(special)),
        };
    }
    let shown = target.strip_prefix("mailto:").unwrap_or(target);
    match label {
        Some(l) if l != shown => format!("{l} ({shown})"),
        _ => shown.to_owned(),
    }
}

/// Drops `*`, `_` and `~` where they open or close a word, as mrkdwn reads
/// them; the same characters inside a word (`snake_case`, `2*3`) stay.
fn strip_markers(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let edge = |c: Option<&char>| c.is_none_or(|c| c.is_whitespace() || c.is_ascii_punctuation());
    for (i, c) in chars.iter().enumerate() {
        if matches!(c, '*' | '_' | '~') {
            let before = if i == 0 { None } else { chars.get(i - 1) };
            let after = chars.get(i + 1);
            let opens = edge(before) && after.is_some_and(|a| !a.is_whitespace());
            let closes = before.is_some_and(|b| !b.is_whitespace()) && edge(after);
            if opens || closes {
                continue;
            }
        }
        out.push(*c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_becomes_what_a_person_reads() {
        let cases = [
            (
                "<@U074VRHQ11T> <#C06P6T3QGD7|general> hi",
                "@U074VRHQ11T #general hi",
            ),
            ("<@U1|ann> and <#C1>", "@ann and #C1"),
            (
                "<!here> <!channel> <!subteam^S1|@ops>",
                "@here @channel @ops",
            ),
            (
                "see <https://example.com/a?b=1&amp;c=2|the docs> or <https://x.test>",
                "see the docs (https://example.com/a?b=1&c=2) or https://x.test",
            ),
            ("<mailto:a@b.test|a@b.test>", "a@b.test"),
            (
                "*bold* _it_ ~gone~ snake_case 2*3",
                "bold it gone snake_case 2*3",
            ),
            ("a &lt;script&gt; &amp; more", "a <script> & more"),
            ("unclosed < here", "unclosed < here"),
        ];
        for (raw, want) in cases {
            assert_eq!(slack_text(raw), want, "{raw}");
        }
    }

    #[test]
    fn slack_timestamps_are_instants() {
        let at = slack_instant("1719209506.817929").unwrap();
        assert_eq!(at.timestamp(), 1_719_209_506);
        assert_eq!(at.timestamp_subsec_micros(), 817_929);
        assert_eq!(
            slack_instant("1719209506").unwrap().timestamp(),
            1_719_209_506
        );
        for bad in ["", "x.1", "1.1234567", "-1.0", "1e9"] {
            assert!(slack_instant(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn signatures_match_slacks_published_example() {
        // The example in Slack's "Verifying requests from Slack".
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let stamp = "1531420618";
        let want = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(slack_signature(secret, stamp, body), want);
        let now = Utc.timestamp_opt(1_531_420_618 + 299, 0).unwrap();
        assert_eq!(
            verify_slack(secret, body, Some(want), Some(stamp), now),
            Ok(())
        );
        let late = Utc.timestamp_opt(1_531_420_618 + 301, 0).unwrap();
        assert!(matches!(
            verify_slack(secret, body, Some(want), Some(stamp), late),
            Err(WebhookAuthError::SlackStale(301))
        ));
        assert!(matches!(
            verify_slack(secret, b"tampered", Some(want), Some(stamp), now),
            Err(WebhookAuthError::Mismatch(_))
        ));
        assert!(matches!(
            verify_slack(secret, body, Some(want), None, now),
            Err(WebhookAuthError::Missing(_))
        ));
        assert!(matches!(
            verify_slack(b"", body, Some(want), Some(stamp), now),
            Err(WebhookAuthError::NoSecret)
        ));
    }
}
