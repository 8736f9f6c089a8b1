//! The document clients read: the contract in plain words, as Markdown and as
//! a self-contained HTML page.
//!
//! Both formats render one small document tree built once from the contract,
//! so they cannot drift apart in content. Every string from the contract is
//! escaped when written out — the HTML page is served publicly, and a
//! definition is free text.

use std::fmt::Write as _;

use chrono::NaiveDate;

use super::hours::describe_week;
use super::{CalendarDef, Channel, ChannelKind, Contract, EscalationTrigger, RequestType, Timer};
use crate::calendar::BusinessDuration;

/// The contract as Markdown (CommonMark).
pub fn render_markdown(contract: &Contract) -> String {
    let doc = document(contract);
    let mut out = String::new();
    for block in &doc.blocks {
        match block {
            Block::Heading(level, text) => {
                let _ = writeln!(out, "{} {}\n", "#".repeat(*level), md_inline(text));
            }
            Block::Para(text) => {
                let _ = writeln!(out, "{}\n", md_inline(text));
            }
            Block::List(items) => {
                for item in items {
                    let _ = writeln!(out, "- {}", md_inline(item));
                }
                out.push('\n');
            }
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// The contract as one complete HTML page with inline CSS and no external
/// resources, so it can be served, saved or mailed as is.
pub fn render_html(contract: &Contract) -> String {
    let doc = document(contract);
    let mut body = String::new();
    for block in &doc.blocks {
        match block {
            Block::Heading(level, text) => {
                let _ = writeln!(body, "<h{level}>{}</h{level}>", html_inline(text));
            }
            Block::Para(text) => {
                let _ = writeln!(body, "<p>{}</p>", html_inline(text));
            }
            Block::List(items) => {
                body.push_str("<ul>\n");
                for item in items {
                    let _ = writeln!(body, "  <li>{}</li>", html_inline(item));
                }
                body.push_str("</ul>\n");
            }
        }
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        title = escape_html(&contract.info.name),
    )
}

const CSS: &str = "
body { margin: 0; background: #f6f7f9; color: #1d2330; font: 16px/1.55 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; }
main { max-width: 46rem; margin: 2rem auto; padding: 2rem 2.5rem; background: #fff; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h1 { font-size: 1.7rem; line-height: 1.25; margin-top: 0; }
h2 { font-size: 1.3rem; margin-top: 2.2rem; padding-bottom: .3rem; border-bottom: 1px solid #e3e6eb; }
h3 { font-size: 1.1rem; margin-top: 1.6rem; }
ul { padding-left: 1.3rem; }
li { margin: .25rem 0; }
code { background: #f0f2f5; padding: .05rem .3rem; border-radius: 3px; font-size: .92em; }
a { color: #1f5fbf; }
.muted { color: #5b6475; }
@media print { body { background: #fff; } main { box-shadow: none; margin: 0; } }
";

// ---- the document tree -------------------------------------------------------

enum Inline {
    Text(String),
    Strong(String),
    Code(String),
    Link(String),
}

type Line = Vec<Inline>;

enum Block {
    Heading(usize, Line),
    Para(Line),
    List(Vec<Line>),
}

struct Doc {
    blocks: Vec<Block>,
}

fn text(s: impl Into<String>) -> Inline {
    Inline::Text(s.into())
}

fn strong(s: impl Into<String>) -> Inline {
    Inline::Strong(s.into())
}

fn document(contract: &Contract) -> Doc {
    let info = &contract.info;
    let mut blocks = vec![
        Block::Heading(1, vec![text(&info.name)]),
        Block::Para(vec![
            text("In effect from "),
            strong(long_date(info.effective)),
            text(
                ". This document says which requests we handle how, where to send them, and how quickly you hear back from us.",
            ),
        ]),
    ];
    if let Some(decision) = &info.decision {
        blocks.push(Block::Para(vec![
            strong("Why this version: "),
            text(decision.clone()),
        ]));
    }
    if let Some(url) = &info.public_url {
        blocks.push(Block::Para(vec![
            text("The current version is always at "),
            Inline::Link(url.clone()),
            text("."),
        ]));
    }

    if let Some(urgent) = contract.urgent_request_type() {
        blocks.push(Block::Heading(2, vec![text("Urgent matters")]));
        let mut para = vec![
            text("If it is urgent — "),
            text(lowercase_first(&urgent.definition)),
            text(" — contact us "),
        ];
        para.extend(channel_phrase(contract, urgent));
        para.push(text(". "));
        para.push(text(sentence(&window_sentence(
            contract,
            urgent,
            Timer::FirstResponse,
            urgent.first_response,
        ))));
        blocks.push(Block::Para(para));
        if !urgent.escalation.is_empty() {
            blocks.push(Block::Para(vec![text(escalation_sentence(
                contract, urgent,
            ))]));
        }
    }

    blocks.extend(paging_blocks(contract));

    blocks.push(Block::Heading(2, vec![text("Kinds of requests")]));
    for request_type in &contract.request_types {
        request_type_blocks(contract, request_type, &mut blocks);
    }

    blocks.push(Block::Heading(2, vec![text("Business hours and holidays")]));
    blocks.push(Block::Para(vec![text(
        "Response times are counted only while the calendar of the request type is open.",
    )]));
    let used: Vec<&CalendarDef> = contract
        .calendars
        .iter()
        .filter(|c| contract.request_types.iter().any(|t| t.calendar == c.id))
        .collect();
    blocks.push(Block::List(used.iter().map(|c| calendar_line(c)).collect()));
    for calendar in used.iter().filter(|c| !c.holidays.is_empty()) {
        blocks.push(Block::Heading(
            3,
            vec![text(format!("Holidays ({})", calendar.id))],
        ));
        blocks.push(Block::List(
            calendar
                .holidays
                .iter()
                .map(|d| vec![text(d.format("%A, %-d %B %Y").to_string())])
                .collect(),
        ));
    }

    // No client is named here: the page is public, and who our clients
    // are (and what each was promised) is theirs. A client reads its own
    // agreement on its own page (README, "The client's record").

    blocks.push(Block::Para(vec![
        text("Contract version "),
        Inline::Code(contract.version_short().to_string()),
        text(format!(", effective {}.", long_date(info.effective))),
    ]));
    Doc { blocks }
}

fn request_type_blocks(contract: &Contract, request_type: &RequestType, blocks: &mut Vec<Block>) {
    let mut heading = vec![text(&request_type.name)];
    if request_type.default {
        heading.push(text(" (everything else)"));
    }
    blocks.push(Block::Heading(3, heading));
    blocks.push(Block::Para(vec![text(&request_type.definition)]));

    let mut send = vec![strong("Where to send it: ")];
    send.extend(channel_phrase(contract, request_type));
    send.push(text("."));
    blocks.push(Block::Para(send));

    let mut items = Vec::new();
    for timer in Timer::ALL {
        if let Some(window) = request_type.window(timer) {
            items.push(vec![text(sentence(&window_sentence(
                contract,
                request_type,
                timer,
                window,
            )))]);
        }
    }
    blocks.push(Block::Para(vec![strong("Response times")]));
    blocks.push(Block::List(items));
    if !request_type.escalation.is_empty() {
        blocks.push(Block::Para(vec![text(escalation_sentence(
            contract,
            request_type,
        ))]));
    }
}

/// "by email to support@example.com or through our ticket system (tickets)".
fn channel_phrase(contract: &Contract, request_type: &RequestType) -> Line {
    let mut line = Vec::new();
    let channels: Vec<&Channel> = request_type
        .channels
        .iter()
        .filter_map(|id| contract.channel(id))
        .collect();
    for (i, channel) in channels.iter().enumerate() {
        if i > 0 {
            line.push(text(if i + 1 == channels.len() {
                " or "
            } else {
                ", "
            }));
        }
        match channel.kind {
            ChannelKind::Email => {
                line.push(text("by email to "));
                line.push(strong(channel.address.clone().unwrap_or_default()));
            }
            ChannelKind::Ticket => {
                line.push(text(format!("through our ticket system ({})", channel.id)));
                if let Some(address) = &channel.address {
                    line.push(text(" at "));
                    line.push(strong(address.clone()));
                }
            }
            ChannelKind::Slack => {
                line.push(text("on Slack, in "));
                line.push(strong(
                    channel
                        .description
                        .clone()
                        .unwrap_or_else(|| SLACK_WORDS.to_string()),
                ));
                if let Some(address) = &channel.address {
                    line.push(text(format!(" ({address})")));
                }
            }
            ChannelKind::Manual => {
                line.push(text(format!("by {} ", channel.id)));
                let details: Vec<&str> =
                    [channel.address.as_deref(), channel.description.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect();
                line.push(strong(details.join(", ")));
            }
        }
        if let Some(description) = &channel.description
            && !matches!(channel.kind, ChannelKind::Manual | ChannelKind::Slack)
        {
            line.push(text(format!(" ({description})")));
        }
    }
    line
}

/// "We reply within 4 business hours (Mon–Thu 09:00–17:00, …, Europe/Berlin)".
fn window_sentence(
    contract: &Contract,
    request_type: &RequestType,
    timer: Timer,
    window: BusinessDuration,
) -> String {
    // The hours are spelled out once per request type, on the first line.
    let hours = timer == Timer::FirstResponse;
    capitalise(&window_words(contract, request_type, timer, window, hours))
}

/// The promise of one timer in the client's words, the one wording the
/// contract page, the acknowledgement and the status page share: "we reply
/// within 4 business hours (Mon–Thu 09:00–17:00, …, Europe/Berlin)", "we
/// resolve the request within 8 hours, around the clock". `hours`: name the
/// open hours of a business calendar.
pub fn window_words(
    contract: &Contract,
    request_type: &RequestType,
    timer: Timer,
    window: BusinessDuration,
    hours: bool,
) -> String {
    let calendar = contract.calendar(&request_type.calendar);
    let always = calendar.is_none_or(|c| c.always);
    let lead = match timer {
        Timer::FirstResponse => "we reply within",
        Timer::NextResponse => "after each of your messages, we answer again within",
        Timer::Resolution => "we resolve the request within",
        Timer::PeriodicUpdate => "while we work on it, we update you at least once every",
    };
    let amount = match timer {
        // "once every business day", not "once every 1 business day".
        Timer::PeriodicUpdate => every_words(window, always),
        _ => duration_words(window, always),
    };
    match calendar {
        Some(c) if !c.always && !hours => format!("{lead} {amount}"),
        Some(c) if !c.always => format!(
            "{lead} {amount} ({}, {})",
            describe_week(&c.week),
            c.timezone.name()
        ),
        _ => format!("{lead} {amount}, around the clock"),
    }
}

/// The first-response promise to a client, with its override applied;
/// "we reply as soon as we can" when the type promises nothing.
pub fn promise(contract: &Contract, type_id: &str, client_id: Option<&str>) -> String {
    match (
        contract.request_type(type_id),
        contract.window(type_id, client_id, Timer::FirstResponse),
    ) {
        (Some(t), Some(window)) => window_words(contract, t, Timer::FirstResponse, window, true),
        _ => "we reply as soon as we can".into(),
    }
}

/// A Slack channel without a description, as a client reads it.
const SLACK_WORDS: &str = "the Slack channel we share with you";

/// How a client reaches a channel, in words ("email to support@…",
/// "our ticket system", "pager (+49 30 1234567 (24/7))").
pub fn channel_words(c: &Channel) -> String {
    match (c.kind, &c.address, &c.description) {
        (ChannelKind::Slack, _, Some(d)) => format!("Slack, in {d}"),
        (ChannelKind::Slack, _, None) => format!("Slack, in {SLACK_WORDS}"),
        (ChannelKind::Email, Some(a), _) => format!("email to {a}"),
        (ChannelKind::Ticket, Some(a), Some(d)) => format!("our ticket system ({a}, {d})"),
        (ChannelKind::Ticket, Some(a), None) => format!("our ticket system ({a})"),
        (ChannelKind::Ticket, None, _) => "our ticket system".into(),
        (_, _, Some(d)) => format!("{} ({d})", c.id),
        (_, Some(a), None) => format!("{} ({a})", c.id),
        _ => c.id.clone(),
    }
}

/// A calendar's hours in words: "Mon–Thu 09:00–17:00, … (time zone
/// Europe/Berlin)", or "around the clock".
pub(crate) fn hours_words(calendar: &CalendarDef) -> String {
    if calendar.always {
        "around the clock".into()
    } else {
        format!(
            "{} (time zone {})",
            describe_week(&calendar.week),
            calendar.timezone.name()
        )
    }
}

/// "business: Mon–Thu 09:00–17:00, … (Europe/Berlin), closed on the holidays below".
fn calendar_line(calendar: &CalendarDef) -> Line {
    if calendar.always {
        return vec![
            strong(format!("{}: ", calendar.id)),
            text("around the clock, every day of the year."),
        ];
    }
    let holidays = if calendar.holidays.is_empty() {
        String::new()
    } else {
        ", closed on the holidays listed below".to_string()
    };
    vec![
        strong(format!("{}: ", calendar.id)),
        text(format!(
            "{} (time zone {}){holidays}.",
            describe_week(&calendar.week),
            calendar.timezone.name()
        )),
    ]
}

/// Escalation is internal, but clients deserve to know it exists and when it
/// kicks in; contact ids are the team's role names, their addresses stay out.
fn escalation_sentence(contract: &Contract, request_type: &RequestType) -> String {
    format!(
        "If an answer is running late, we escalate internally: {}.",
        escalation_words(contract, request_type).join("; ")
    )
}

/// Each escalation step of a request type in words ("at 75% of the
/// response time, we alert lead"): the contract page and the contract diff.
pub(crate) fn escalation_words(contract: &Contract, request_type: &RequestType) -> Vec<String> {
    let always = contract
        .calendar(&request_type.calendar)
        .is_none_or(|c| c.always);
    request_type
        .escalation
        .iter()
        .map(|step| {
            let who = step.notify.join(" and ");
            match step.trigger {
                EscalationTrigger::At(p) if p.get() == 100 => {
                    format!("when the time is up, we alert {who}")
                }
                EscalationTrigger::At(p) => {
                    format!("at {}% of the response time, we alert {who}", p.get())
                }
                EscalationTrigger::AfterDue(d) => {
                    format!("{} after it, we alert {who}", duration_words(d, always))
                }
            }
        })
        .collect()
}

/// "4 business hours", "1 business day and 4 business hours", "30 minutes"
/// (around the clock there are no business units).
pub(crate) fn duration_words(d: BusinessDuration, always: bool) -> String {
    let unit = |n: u64, one: &str, many: &str| {
        let business = if always { "" } else { "business " };
        format!("{n} {business}{}", if n == 1 { one } else { many })
    };
    let hours = d.seconds / 3600;
    let minutes = d.seconds / 60 % 60;
    let seconds = d.seconds % 60;
    let mut parts = Vec::new();
    if d.days > 0 {
        parts.push(unit(u64::from(d.days), "day", "days"));
    }
    if hours > 0 {
        parts.push(unit(hours, "hour", "hours"));
    }
    if minutes > 0 {
        parts.push(unit(minutes, "minute", "minutes"));
    }
    if seconds > 0 {
        parts.push(unit(seconds, "second", "seconds"));
    }
    match parts.len() {
        0 => "no time".to_string(),
        1 => parts.remove(0),
        n => format!("{} and {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}

/// A rhythm in words: "business day", "4 business hours", "day".
fn every_words(d: BusinessDuration, always: bool) -> String {
    let words = duration_words(d, always);
    match words.strip_prefix("1 ") {
        Some(unit) if !unit.contains(" and ") && !unit.contains(", ") => unit.to_string(),
        _ => words,
    }
}

pub(crate) fn long_date(date: NaiveDate) -> String {
    date.format("%-d %B %Y").to_string()
}

fn sentence(s: &str) -> String {
    if s.ends_with(['.', '!', '?']) {
        s.to_string()
    } else {
        format!("{s}.")
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// For splicing a definition into a sentence: drops a final full stop and
/// lower-cases the first letter unless the first word looks like an acronym.
fn lowercase_first(s: &str) -> String {
    let s = s.trim().trim_end_matches('.');
    let first_word = s.split_whitespace().next().unwrap_or("");
    if first_word.chars().filter(|c| c.is_uppercase()).count() > 1 {
        return s.to_string();
    }
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// "Who is paged at any hour, and for what" (README, "Urgency and focus"), when the contract
/// says anything about it: urgent types, `page = true` steps, contacts'
/// working hours or digests. Contact ids are role names, as in escalation.
fn paging_blocks(contract: &Contract) -> Vec<Block> {
    let paged_steps = contract
        .request_types
        .iter()
        .any(|t| !t.urgent && t.escalation.iter().any(|s| s.page));
    let urgent: Vec<&RequestType> = contract.request_types.iter().filter(|t| t.urgent).collect();
    let with_hours: Vec<_> = contract
        .contacts
        .iter()
        .filter(|c| c.calendar.is_some() || !c.digest.is_empty())
        .collect();
    // Through what each person is alerted, in words: the targets' addresses
    // and keys are secrets, their kinds are not.
    let through: Vec<Vec<Inline>> = if contract
        .contacts
        .iter()
        .any(|c| c.teams.is_some() || c.pagerduty.is_some() || c.opsgenie.is_some())
    {
        contract
            .contacts
            .iter()
            .map(|c| {
                let kinds: Vec<String> = c
                    .target_kinds()
                    .into_iter()
                    .map(|k| k.name().to_string())
                    .collect();
                vec![
                    strong(format!("{}: ", c.id)),
                    text(format!("alerted through {}.", join_words(&kinds))),
                ]
            })
            .collect()
    } else {
        Vec::new()
    };
    if urgent.is_empty() && !paged_steps && with_hours.is_empty() && through.is_empty() {
        return Vec::new();
    }
    let mut items = Vec::new();
    for t in &urgent {
        let who = names(t.escalation.iter().flat_map(|s| &s.notify));
        let who = if who.is_empty() {
            "nobody (it has no escalation)".to_string()
        } else {
            who
        };
        items.push(vec![
            strong(format!("{}: ", t.name)),
            text(format!(
                "every alert pages {who} at once, at any hour, day or night."
            )),
        ]);
    }
    for t in contract.request_types.iter().filter(|t| !t.urgent) {
        let always = contract.calendar(&t.calendar).is_none_or(|c| c.always);
        for step in t.escalation.iter().filter(|s| s.page) {
            let when = match step.trigger {
                EscalationTrigger::At(p) if p.get() == 100 => "when the time is up".to_string(),
                EscalationTrigger::At(p) => format!("at {}% of the response time", p.get()),
                EscalationTrigger::AfterDue(d) => {
                    format!("{} after the time is up", duration_words(d, always))
                }
            };
            items.push(vec![
                strong(format!("{}: ", t.name)),
                text(format!(
                    "{when}, {} is paged at any hour.",
                    names(step.notify.iter())
                )),
            ]);
        }
    }
    let mut blocks = vec![
        Block::Heading(2, vec![text("Who is paged at any hour")]),
        Block::Para(vec![text(
            "Only true urgencies interrupt the team outside its working hours.",
        )]),
    ];
    if !items.is_empty() {
        blocks.push(Block::List(items));
    }
    let mut rest = Vec::new();
    for c in &with_hours {
        let hours = match c.calendar.as_deref().and_then(|id| contract.calendar(id)) {
            Some(cal) if cal.always => "at any hour".to_string(),
            Some(cal) => format!(
                "in working hours ({}, {})",
                describe_week(&cal.week),
                cal.timezone.name()
            ),
            None => "at any hour".to_string(),
        };
        let digest = if c.digest.is_empty() {
            String::new()
        } else {
            let times: Vec<String> = c
                .digest
                .iter()
                .map(|t| t.format("%H:%M").to_string())
                .collect();
            format!(
                ", with early warnings collected into a digest at {}",
                join_words(&times)
            )
        };
        rest.push(vec![
            strong(format!("{}: ", c.id)),
            text(format!("other alerts reach them {hours}{digest}.")),
        ]);
    }
    if !rest.is_empty() {
        blocks.push(Block::Para(vec![text(
            "Everything else waits for the working hours of the person alerted:",
        )]));
        blocks.push(Block::List(rest));
    }
    if !through.is_empty() {
        blocks.push(Block::Para(vec![text(
            "Where each person is alerted; hours and digests apply to every route alike:",
        )]));
        blocks.push(Block::List(through));
    }
    blocks
}

/// "oncall, lead and head", each once, in order of appearance.
fn names<'a>(ids: impl Iterator<Item = &'a String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for id in ids {
        if !seen.contains(id) {
            seen.push(id.clone());
        }
    }
    join_words(&seen)
}

fn join_words(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

// ---- writers -------------------------------------------------------------------

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html_inline(line: &Line) -> String {
    let mut out = String::new();
    for inline in line {
        match inline {
            Inline::Text(s) => out.push_str(&escape_html(s)),
            Inline::Strong(s) => {
                let _ = write!(out, "<strong>{}</strong>", escape_html(s));
            }
            Inline::Code(s) => {
                let _ = write!(out, "<code>{}</code>", escape_html(s));
            }
            Inline::Link(url) => {
                let url = escape_html(url);
                let _ = write!(out, "<a href=\"{url}\">{url}</a>");
            }
        }
    }
    out
}

/// Backslash-escapes what CommonMark would otherwise read as markup (or as
/// raw HTML, which a Markdown viewer may render).
fn escape_markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '&'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn md_inline(line: &Line) -> String {
    let mut out = String::new();
    for inline in line {
        match inline {
            Inline::Text(s) => out.push_str(&escape_markdown(s)),
            Inline::Strong(s) if s.trim().is_empty() => {}
            Inline::Strong(s) => {
                let _ = write!(out, "**{}**", escape_markdown(s.trim_end()));
                if s.ends_with(' ') {
                    out.push(' ');
                }
            }
            Inline::Code(s) => {
                let _ = write!(out, "`{}`", s.replace('`', ""));
            }
            Inline::Link(url) => {
                let _ = write!(out, "<{}>", url.replace(['<', '>', ' '], ""));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(days: u32, seconds: u64) -> BusinessDuration {
        BusinessDuration { days, seconds }
    }

    #[test]
    fn durations_in_words() {
        assert_eq!(duration_words(d(0, 4 * 3600), false), "4 business hours");
        assert_eq!(duration_words(d(0, 1800), true), "30 minutes");
        assert_eq!(duration_words(d(5, 0), false), "5 business days");
        assert_eq!(
            duration_words(d(1, 3600 + 1800), false),
            "1 business day, 1 business hour and 30 business minutes"
        );
        assert_eq!(duration_words(d(0, 3600), true), "1 hour");
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape_html("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape_markdown("<script>*x*"), "\\<script\\>\\*x\\*");
    }

    #[test]
    fn definitions_fold_into_sentences() {
        assert_eq!(lowercase_first("Your site is down."), "your site is down");
        assert_eq!(lowercase_first("SSL expired"), "SSL expired");
    }
}
