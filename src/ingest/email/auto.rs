//! Automatic-mail detection (README, "Email"). Automatic mail is stored but starts no
//! SLA clock and never gets an acknowledgement, so a miss here means mail
//! loops with auto-responders and false breaches.
//!
//! Rules are checked most specific first, so the recorded reason says what
//! the message is (a delivery report, an out-of-office) rather than just
//! that it went through a list. The first matching rule names the reason.

use mail_parser::{Message, MimeHeaders};

use super::{Address, AutoReason};

/// Local parts that only ever send machine mail (RFC 5321 §4.5.1, RFC 3464).
const DAEMON_LOCAL_PARTS: &[&str] = &["mailer-daemon", "postmaster"];

/// `Precedence` values that mark automatic or bulk mail; `auto_reply` is
/// what some auto-responders (and Google's vacation reply) send.
const AUTO_PRECEDENCE: &[&str] = &["bulk", "list", "junk", "auto_reply"];

pub(super) fn detect(message: &Message, from: Option<&Address>) -> Option<AutoReason> {
    let reason = |s: String| Some(AutoReason(s));

    // Our own acknowledgements come back via the sent folder or a client's
    // reply-all; answering them would be an ack loop.
    if let Some(v) = header(message, "X-Keepword-Ack") {
        return reason(format!("X-Keepword-Ack: {v}"));
    }
    if let Some(r) = report(message) {
        return Some(r);
    }
    let return_path = header(message, "Return-Path");
    let senders = from
        .map(|a| a.address.as_str())
        .into_iter()
        .chain(return_path.as_deref());
    for sender in senders {
        let local = sender
            .trim()
            .trim_start_matches('<')
            .split('@')
            .next()
            .unwrap_or_default()
            .trim_end_matches('>')
            .to_lowercase();
        if DAEMON_LOCAL_PARTS.contains(&local.as_str()) {
            return reason(format!("sender {local}"));
        }
    }
    // RFC 3834 §3.1.7 / RFC 5321: a null reverse-path is what bounces and
    // well-behaved auto-responders use so nothing answers them.
    if let Some(rp) = &return_path
        && rp
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            == "<>"
    {
        return reason("empty Return-Path".into());
    }
    if let Some(v) = header(message, "Auto-Submitted") {
        let keyword = v
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_lowercase();
        // An empty value is malformed, not a claim of automatic mail.
        if !keyword.is_empty() && keyword != "no" {
            return reason(format!("Auto-Submitted: {keyword}"));
        }
    }
    for name in ["X-Autoreply", "X-Autorespond"] {
        if let Some(v) = header(message, name) {
            return reason(format!("{name}: {v}"));
        }
    }
    // Exchange puts this on out-of-office and other server-generated mail.
    if let Some(v) = header(message, "X-Auto-Response-Suppress") {
        return reason(format!("X-Auto-Response-Suppress: {v}"));
    }
    if let Some(v) = header(message, "Precedence") {
        let v = v.trim().to_lowercase();
        if AUTO_PRECEDENCE.contains(&v.as_str()) {
            return reason(format!("Precedence: {v}"));
        }
    }
    for name in ["List-Id", "List-Unsubscribe"] {
        if header(message, name).is_some() {
            return reason(name.into());
        }
    }
    None
}

/// The first top-level header of that name (case-insensitive), unfolded and
/// trimmed. Read raw: mail-parser only structures the headers it knows, and
/// several of these (`Return-Path: <>`) lose the detail we need when parsed.
fn header(message: &Message, name: &str) -> Option<String> {
    message
        .headers_raw()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Delivery and disposition reports (RFC 3462/3464/8098), anywhere in the
/// MIME tree of this message. An attached original (`message/rfc822`) is a
/// nested message and is not searched: a forwarded bounce is a human's mail.
fn report(message: &Message) -> Option<AutoReason> {
    // `parts[0]` is the message itself, so a top-level multipart/report is
    // found first; some MTAs wrap the report in multipart/mixed.
    message.parts.iter().find_map(|part| {
        let ct = part.content_type()?;
        let ctype = ct.ctype().to_lowercase();
        let sub = ct.subtype()?.to_lowercase();
        match (ctype.as_str(), sub.as_str()) {
            ("multipart", "report") => {
                let kind = ct.attribute("report-type").unwrap_or("unspecified");
                Some(AutoReason(format!(
                    "multipart/report ({})",
                    kind.to_lowercase()
                )))
            }
            (
                "message",
                "delivery-status" | "global-delivery-status" | "disposition-notification",
            ) => Some(AutoReason(format!("message/{sub} part"))),
            _ => None,
        }
    })
}
