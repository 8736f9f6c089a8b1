//! What changed between two contract versions, in the client's words
//! (README, "The contract"): "Questions: first response 4 business hours → 2 business
//! hours", "new request type: Billing", "holiday added: 31 December 2026",
//! "urgent channel: pager → phone".
//!
//! The words come from the contract page's wording (durations, hours,
//! channels, escalation steps), so the changes page and the contract page
//! cannot describe one promise two ways. Changes clients do not see (a
//! contact's address, a client's domains) are reported as
//! [`ChangeKind::Internal`], so `contract diff` never says "no difference"
//! about two contracts whose versions differ.

use std::collections::BTreeSet;
use std::fmt;

use super::render::{duration_words, escalation_words, hours_words, long_date};
use super::{CalendarDef, Contract, RequestType, Timer, UnknownSenders, channel_words};
use crate::calendar::BusinessDuration;

/// What part of the contract a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// Name, effective date, zone, link, unknown senders.
    Contract,
    RequestTypeAdded,
    RequestTypeRemoved,
    /// Name, definition, channels, calendar, matching, default.
    RequestType,
    /// A promised window of a request type.
    Window,
    Escalation,
    /// Open hours or zone of a calendar, or a calendar added or removed.
    Calendar,
    HolidayAdded,
    HolidayRemoved,
    Channel,
    UrgentChannel,
    /// A client's own windows.
    ClientOverride,
    /// Not visible to clients: contacts, clients' addresses and domains.
    Internal,
}

/// One difference, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub text: String,
}

impl Change {
    /// Whether the public changes page shows it: not internal changes, and
    /// not a client's own agreement (the public pages name no client; each
    /// client reads its own on its page).
    pub fn is_public(&self) -> bool {
        !matches!(self.kind, ChangeKind::Internal | ChangeKind::ClientOverride)
    }

    /// A change of the agreement of the client named `name`, in its words
    /// without its name ("Questions: first response 2 business hours → 1
    /// business hour"); `None` for any other change.
    pub fn of_client(&self, name: &str) -> Option<String> {
        (self.kind == ChangeKind::ClientOverride)
            .then(|| self.text.strip_prefix(&format!("{name}: ")))
            .flatten()
            .map(str::to_string)
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The timer as the diff names it to a client: the promise of updates
/// reads as what it is.
pub fn timer_words(timer: Timer) -> &'static str {
    match timer {
        Timer::PeriodicUpdate => "updates while we work on it",
        other => other.words(),
    }
}

fn is_always(contract: &Contract, t: &RequestType) -> bool {
    contract.calendar(&t.calendar).is_none_or(|c| c.always)
}

fn window(d: Option<BusinessDuration>, always: bool) -> String {
    d.map_or_else(|| "no promise".into(), |d| duration_words(d, always))
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

fn steps(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join("; ")
    }
}

fn arrow(label: &str, old: &str, new: &str) -> String {
    format!("{label}: {old} → {new}")
}

/// Every difference from `old` to `new`, in contract order: the contract,
/// the urgent channel, request types, calendars, channels, clients'
/// agreements, then internal changes.
pub fn diff(old: &Contract, new: &Contract) -> Vec<Change> {
    let mut out = Vec::new();
    let mut push = |kind: ChangeKind, text: String| out.push(Change { kind, text });
    let (oi, ni) = (old.info(), new.info());
    if oi.name != ni.name {
        push(ChangeKind::Contract, arrow("name", &oi.name, &ni.name));
    }
    if oi.effective != ni.effective {
        push(
            ChangeKind::Contract,
            arrow(
                "in effect from",
                &long_date(oi.effective),
                &long_date(ni.effective),
            ),
        );
    }
    if oi.timezone != ni.timezone {
        push(
            ChangeKind::Contract,
            arrow("times are shown in", oi.timezone.name(), ni.timezone.name()),
        );
    }
    if oi.public_url != ni.public_url {
        let url = |u: &Option<String>| u.clone().unwrap_or_else(|| "none".into());
        push(
            ChangeKind::Contract,
            arrow("contract link", &url(&oi.public_url), &url(&ni.public_url)),
        );
    }
    if oi.unknown_senders != ni.unknown_senders {
        let words = |u: UnknownSenders| match u {
            UnknownSenders::Track => "tracked",
            UnknownSenders::Ignore => "ignored",
        };
        push(
            ChangeKind::Contract,
            arrow(
                "mail from senders we do not know yet",
                words(oi.unknown_senders),
                words(ni.unknown_senders),
            ),
        );
    }

    // The channel clients are told to use first when it is urgent (the
    // urgent type's channels are in order of preference).
    let urgent_channels = |c: &Contract| {
        c.urgent_request_type()
            .and_then(|t| t.channels.first().cloned())
            .unwrap_or_else(|| "none".into())
    };
    let (ou, nu) = (urgent_channels(old), urgent_channels(new));
    if ou != nu {
        push(ChangeKind::UrgentChannel, arrow("urgent channel", &ou, &nu));
    }

    for t in new.request_types() {
        match old.request_type(&t.id) {
            None => push(
                ChangeKind::RequestTypeAdded,
                format!("new request type: {}", t.name),
            ),
            Some(o) => request_type(old, o, new, t, &mut push),
        }
    }
    for o in old.request_types() {
        if new.request_type(&o.id).is_none() {
            push(
                ChangeKind::RequestTypeRemoved,
                format!("request type removed: {}", o.name),
            );
        }
    }
    let (od, nd) = (old.default_request_type(), new.default_request_type());
    if od.id != nd.id {
        push(
            ChangeKind::RequestType,
            arrow("everything else is filed under", &od.name, &nd.name),
        );
    }

    let several = new.calendars().iter().filter(|c| !c.always).count() > 1;
    for c in new.calendars() {
        match old.calendar(&c.id) {
            None => push(
                ChangeKind::Calendar,
                format!("new calendar {}: {}", c.id, hours_words(c)),
            ),
            Some(o) => calendar(o, c, several, &mut push),
        }
    }
    for o in old.calendars() {
        if new.calendar(&o.id).is_none() {
            push(ChangeKind::Calendar, format!("calendar removed: {}", o.id));
        }
    }

    for c in new.channels() {
        match old.channel(&c.id) {
            None => push(
                ChangeKind::Channel,
                format!("new channel {}: {}", c.id, channel_words(c)),
            ),
            Some(o) if o != c => push(
                ChangeKind::Channel,
                arrow(
                    &format!("channel {}", c.id),
                    &channel_words(o),
                    &channel_words(c),
                ),
            ),
            Some(_) => {}
        }
    }
    for o in old.channels() {
        if new.channel(&o.id).is_none() {
            push(ChangeKind::Channel, format!("channel removed: {}", o.id));
        }
    }

    overrides(old, new, &mut push);
    internal(old, new, &mut push);
    out
}

fn request_type(
    old: &Contract,
    o: &RequestType,
    new: &Contract,
    t: &RequestType,
    push: &mut impl FnMut(ChangeKind, String),
) {
    let name = &t.name;
    if o.name != t.name {
        push(
            ChangeKind::RequestType,
            arrow("request type renamed", &o.name, &t.name),
        );
    }
    if o.definition != t.definition {
        push(
            ChangeKind::RequestType,
            format!("{name}: definition “{}” → “{}”", o.definition, t.definition),
        );
    }
    let channels = |c: &Contract, t: &RequestType| {
        t.channels
            .iter()
            .filter_map(|id| c.channel(id))
            .map(channel_words)
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let (oc, nc) = (channels(old, o), channels(new, t));
    if oc != nc {
        push(
            ChangeKind::RequestType,
            arrow(&format!("{name}: where to send it"), &oc, &nc),
        );
    }
    let hours = |c: &Contract, t: &RequestType| {
        c.calendar(&t.calendar).map(hours_words).unwrap_or_default()
    };
    let (oh, nh) = (hours(old, o), hours(new, t));
    // A calendar's own change is reported once, with the calendar.
    if o.calendar != t.calendar && oh != nh {
        push(
            ChangeKind::Calendar,
            arrow(&format!("{name}: hours"), &oh, &nh),
        );
    }
    let (oa, na) = (is_always(old, o), is_always(new, t));
    for timer in Timer::ALL {
        let (ow, nw) = (o.window(timer), t.window(timer));
        if ow != nw || (ow.is_some() && oa != na) {
            let (ow, nw) = (window(ow, oa), window(nw, na));
            if ow != nw {
                push(
                    ChangeKind::Window,
                    format!("{name}: {} {ow} → {nw}", timer_words(timer)),
                );
            }
        }
    }
    let rules = |t: &RequestType| {
        let m = &t.match_rules;
        let mut parts = Vec::new();
        if !m.keywords.is_empty() {
            parts.push(format!("keywords {}", m.keywords.join(", ")));
        }
        if !m.priorities.is_empty() {
            parts.push(format!("ticket priority {}", m.priorities.join(", ")));
        }
        if !m.recipients.is_empty() {
            parts.push(format!("sent to {}", m.recipients.join(", ")));
        }
        if !m.clients.is_empty() {
            parts.push(format!("from clients {}", m.clients.join(", ")));
        }
        list(&parts)
    };
    let (or, nr) = (rules(o), rules(t));
    if or != nr {
        push(
            ChangeKind::RequestType,
            arrow(&format!("{name}: recognised by"), &or, &nr),
        );
    }
    let (oe, ne) = (escalation_words(old, o), escalation_words(new, t));
    if oe != ne {
        push(
            ChangeKind::Escalation,
            arrow(&format!("{name}: escalation"), &steps(&oe), &steps(&ne)),
        );
    }
}

fn calendar(
    o: &CalendarDef,
    c: &CalendarDef,
    several: bool,
    push: &mut impl FnMut(ChangeKind, String),
) {
    let (oh, nh) = (hours_words(o), hours_words(c));
    if oh != nh {
        push(
            ChangeKind::Calendar,
            arrow(&format!("{} hours", c.id), &oh, &nh),
        );
    }
    let which = if several {
        format!(" ({})", c.id)
    } else {
        String::new()
    };
    for d in c.holidays.difference(&o.holidays) {
        push(
            ChangeKind::HolidayAdded,
            format!("holiday added{which}: {}", long_date(*d)),
        );
    }
    for d in o.holidays.difference(&c.holidays) {
        push(
            ChangeKind::HolidayRemoved,
            format!("holiday removed{which}: {}", long_date(*d)),
        );
    }
}

fn overrides(old: &Contract, new: &Contract, push: &mut impl FnMut(ChangeKind, String)) {
    let ids: BTreeSet<&str> = old
        .clients()
        .iter()
        .chain(new.clients())
        .map(|c| c.id.as_str())
        .collect();
    // In the new contract's order, then clients only the old one had.
    let mut ordered: Vec<&str> = new.clients().iter().map(|c| c.id.as_str()).collect();
    ordered.extend(ids.iter().filter(|id| new.client(id).is_none()));
    for id in ordered {
        let (oc, nc) = (old.client(id), new.client(id));
        let name = nc.or(oc).map(|c| c.name.clone()).unwrap_or_default();
        let types: BTreeSet<&str> = oc
            .into_iter()
            .chain(nc)
            .flat_map(|c| c.overrides.keys().map(String::as_str))
            .collect();
        for type_id in types {
            let Some(t) = new.request_type(type_id).or(old.request_type(type_id)) else {
                continue;
            };
            let always = new
                .request_type(type_id)
                .map_or_else(|| is_always(old, t), |t| is_always(new, t));
            for timer in Timer::ALL {
                let get = |c: Option<&super::Client>| {
                    c.and_then(|c| c.overrides.get(type_id))
                        .and_then(|w| w.get(timer))
                };
                let (ow, nw) = (get(oc), get(nc));
                if ow == nw {
                    continue;
                }
                let standard = |c: &Contract| c.request_type(type_id).and_then(|t| t.window(timer));
                let text = match (ow, nw) {
                    (Some(a), Some(b)) => format!(
                        "{name}: {} {} {} → {}",
                        t.name,
                        timer_words(timer),
                        duration_words(a, always),
                        duration_words(b, always)
                    ),
                    (None, Some(b)) => format!(
                        "{name}: {} {} {} (instead of {})",
                        t.name,
                        timer_words(timer),
                        duration_words(b, always),
                        window(standard(new), always)
                    ),
                    (Some(a), None) => format!(
                        "{name}: {} {} back to the standard {} (was {})",
                        t.name,
                        timer_words(timer),
                        window(standard(new), always),
                        duration_words(a, always)
                    ),
                    (None, None) => continue,
                };
                push(ChangeKind::ClientOverride, text);
            }
        }
    }
}

fn internal(old: &Contract, new: &Contract, push: &mut impl FnMut(ChangeKind, String)) {
    if old.info().weekly_digest != new.info().weekly_digest {
        push(
            ChangeKind::Internal,
            "the team's weekly digest changed".into(),
        );
    }
    for c in new.contacts() {
        match old.contact(&c.id) {
            None => push(ChangeKind::Internal, format!("new contact: {}", c.id)),
            Some(o) if o != c => push(ChangeKind::Internal, format!("contact changed: {}", c.id)),
            Some(_) => {}
        }
    }
    for o in old.contacts() {
        if new.contact(&o.id).is_none() {
            push(ChangeKind::Internal, format!("contact removed: {}", o.id));
        }
    }
    for c in new.clients() {
        match old.client(&c.id) {
            None => push(ChangeKind::Internal, format!("new client: {}", c.name)),
            Some(o) if o.name != c.name => push(
                ChangeKind::Internal,
                arrow("client renamed", &o.name, &c.name),
            ),
            Some(o) if o.domains != c.domains || o.addresses != c.addresses => push(
                ChangeKind::Internal,
                format!("{}: addresses and domains changed", c.name),
            ),
            Some(o) if o.report_to != c.report_to => push(
                ChangeKind::Internal,
                format!("{}: monthly report recipients changed", c.name),
            ),
            Some(o)
                if o.jira_projects != c.jira_projects
                    || o.linear_teams != c.linear_teams
                    || o.basecamp_projects != c.basecamp_projects =>
            {
                push(
                    ChangeKind::Internal,
                    format!("{}: ticket projects and teams changed", c.name),
                )
            }
            Some(o) if o.slack_channels != c.slack_channels || o.slack_teams != c.slack_teams => {
                push(
                    ChangeKind::Internal,
                    format!("{}: Slack channels and workspaces changed", c.name),
                )
            }
            Some(_) => {}
        }
    }
    for o in old.clients() {
        if new.client(&o.id).is_none() {
            push(ChangeKind::Internal, format!("client removed: {}", o.name));
        }
    }
    let order =
        |c: &Contract| -> Vec<String> { c.request_types().iter().map(|t| t.id.clone()).collect() };
    let (oo, no) = (order(old), order(new));
    let common = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter().filter(|x| b.contains(x)).cloned().collect()
    };
    if common(&oo, &no) != common(&no, &oo) {
        push(
            ChangeKind::RequestType,
            "the order in which request types are recognised changed".into(),
        );
    }
}

/// The diff as `keepword contract diff` prints it: one change a line, or
/// "no difference" when the versions agree.
pub fn diff_text(old: &Contract, new: &Contract) -> String {
    if old.version() == new.version() {
        return "no difference\n".into();
    }
    let changes = diff(old, new);
    let mut out = String::new();
    if let Some(decision) = &new.info().decision
        && old.info().decision.as_ref() != Some(decision)
    {
        out.push_str(&format!("decision: {decision}\n"));
    }
    if changes.is_empty() && out.is_empty() {
        out.push_str("no difference clients see (the canonical forms differ only in form)\n");
    }
    for c in changes {
        out.push_str(&c.text);
        out.push('\n');
    }
    out
}
