//! Subject normalisation for threading by subject (README, "Email").
//!
//! The rule, applied repeatedly from the start of the subject until nothing
//! more comes off:
//! - a reply/forward prefix: one of [`PREFIXES`] (any case), optionally
//!   followed by a counter (`Re[2]`, `Re(3)`, `Re^2`) or a dot (`Réf.`),
//!   optional spaces (French typography writes `TR :`), then `:` or the
//!   full-width `：`;
//! - a bracketed list or ticket tag at the start: `[ACME-123]`, `[list]`.
//!
//! Then inner whitespace is collapsed to one space, the ends are trimmed and
//! the rest is lower-cased. Tags inside the subject stay: only a leading tag
//! is list decoration. A subject that is only prefixes normalises to `""`,
//! which never threads by subject.

/// Reply and forward prefixes Outlook, Thunderbird, Apple Mail and Gmail
/// write in common languages, lower-case.
pub const PREFIXES: &[&str] = &[
    "re", "aw", "sv", "vs", "antw", "antwort", "doorst", "fw", "fwd", "wg", "tr", "rv", "ref",
    "réf", "rif", "r", "i", "enc", "res", "odp", "pd", "ynt", "ilt", "vl", "vb", "fs", "atb",
    "ats", "yn", "πρθ", "σχετ", "отв", "пер", "回复", "答复", "转发", "回覆", "轉寄", "転送",
    "返信", "답장", "전달",
];

/// Longest leading tag we strip; longer bracketed text is content, not a tag.
const MAX_TAG_CHARS: usize = 64;

pub fn normalize_subject(s: &str) -> String {
    let mut rest = s.trim_start();
    loop {
        let before = rest.len();
        rest = strip_tag(rest).unwrap_or(rest).trim_start();
        rest = strip_prefix(rest).unwrap_or(rest).trim_start();
        if rest.len() == before {
            break;
        }
    }
    rest.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Whether a reply or forward prefix starts the subject (after any leading
/// tags): `Re: Invoice`, `[ACME-1] AW: Rechnung`, `Fwd: x`.
pub fn has_reply_prefix(s: &str) -> bool {
    let mut rest = s.trim_start();
    loop {
        if strip_prefix(rest).is_some() {
            return true;
        }
        match strip_tag(rest) {
            Some(after) => rest = after.trim_start(),
            None => return false,
        }
    }
}

fn strip_tag(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('[')?;
    let end = inner.find([']', '['])?;
    (inner[end..].starts_with(']') && inner[..end].chars().count() <= MAX_TAG_CHARS)
        .then(|| &inner[end + 1..])
}

fn strip_prefix(s: &str) -> Option<&str> {
    // The word is the run of letters at the start; it must be a known
    // prefix as a whole, so "Rebate: x" or "Reactor:" never lose anything.
    let word_end = s
        .char_indices()
        .find(|(_, c)| !c.is_alphabetic())
        .map_or(s.len(), |(i, _)| i);
    if word_end == 0 || !PREFIXES.contains(&s[..word_end].to_lowercase().as_str()) {
        return None;
    }
    let mut rest = &s[word_end..];
    rest = strip_counter(rest).unwrap_or(rest);
    rest = rest.strip_prefix('.').unwrap_or(rest);
    rest = rest.trim_start_matches([' ', '\t']);
    rest.strip_prefix(':').or_else(|| rest.strip_prefix('：'))
}

/// `[2]`, `(2)` or `^2` after a prefix word, as some clients count replies.
fn strip_counter(s: &str) -> Option<&str> {
    let (open, close) = match s.chars().next()? {
        '[' => ('[', Some(']')),
        '(' => ('(', Some(')')),
        '^' => ('^', None),
        _ => return None,
    };
    let digits = &s[open.len_utf8()..];
    let n = digits.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let after = &digits[n..];
    match close {
        Some(c) => after.strip_prefix(c),
        None => Some(after),
    }
}
