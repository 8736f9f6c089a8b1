//! From TOML text to a [`Contract`], reporting every problem with its position.
//!
//! We walk toml's span-preserving document tree ourselves instead of deriving
//! `Deserialize`: serde stops at the first error and forgets where values
//! were, while a contract author wants the whole list at once, each with the
//! line and column of the offending key or value.
//!
//! The walk has two passes: the first reads every section and records each
//! reference (a request type naming a calendar, a step naming a contact…)
//! with its position; the second resolves the references against everything
//! declared, so that declaration order in the file never matters.
//!
//! TOML syntax errors stop the walk: the parser's recovery guesses, and
//! checking a guessed document would report problems the author never wrote.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

use chrono::NaiveDate;
use chrono_tz::Tz;
use toml::Spanned;
use toml::de::{DeArray, DeString, DeTable, DeValue};

use super::diagnostic::{Diagnostics, Sink, closest, closest_time_zones, quoted_list};
use super::hours::{DAY_KEYS, parse_day};
use super::{
    CalendarDef, Channel, ChannelKind, Client, Contact, Contract, ContractInfo, EscalationStep,
    EscalationTrigger, MatchRules, Percent, RequestType, ResolveSecret, SecretRef, ShareLimit,
    Target, TargetKind, UNKNOWN_CLIENT, UnknownSenders, WeeklyDigest, WindowOverride,
};
use crate::calendar::{BusinessDuration, Calendar, OpenInterval, Week};

type Key<'i> = Spanned<DeString<'i>>;
type Value<'i> = Spanned<DeValue<'i>>;
type Span = Range<usize>;

const TOP_KEYS: [&str; 6] = [
    "contract",
    "calendars",
    "channels",
    "request_types",
    "contacts",
    "clients",
];
const CONTRACT_KEYS: [&str; 8] = [
    "name",
    "effective",
    "timezone",
    "public_url",
    "unknown_senders",
    "decision",
    "urgent_share_limit",
    "weekly_digest",
];
const CALENDAR_KEYS: [&str; 10] = [
    "timezone", "always", "holidays", "mon", "tue", "wed", "thu", "fri", "sat", "sun",
];
const CHANNEL_KEYS: [&str; 3] = ["kind", "address", "description"];
const CONTACT_KEYS: [&str; 7] = [
    "email",
    "webhook",
    "teams",
    "pagerduty",
    "opsgenie",
    "calendar",
    "digest",
];
const REQUEST_TYPE_KEYS: [&str; 14] = [
    "id",
    "name",
    "definition",
    "default",
    "channels",
    "match",
    "calendar",
    "first_response",
    "next_response",
    "resolution",
    "escalation",
    "update_every",
    "urgent",
    "max_pause",
];
const MATCH_KEYS: [&str; 4] = ["keywords", "priorities", "recipients", "clients"];
const ESCALATION_KEYS: [&str; 4] = ["at", "after_due", "notify", "page"];
const CLIENT_KEYS: [&str; 11] = [
    "id",
    "name",
    "domains",
    "addresses",
    "overrides",
    "jira_projects",
    "linear_teams",
    "basecamp_projects",
    "report_to",
    "slack_channels",
    "slack_teams",
];
const OVERRIDE_KEYS: [&str; 3] = ["first_response", "next_response", "resolution"];

const DURATION_HINT: &str =
    "write business time as e.g. \"30m\", \"4h\", \"1h30m\", \"5d\" (5 business days) or \"2d4h\"";
const DATE_HINT: &str = "write dates as YYYY-MM-DD, e.g. \"2026-12-24\"";

pub(super) fn parse(
    source: &str,
    file: &str,
    secrets: Option<&dyn ResolveSecret>,
) -> Result<Contract, Diagnostics> {
    let mut sink = Sink::new(source, file);
    let (root, syntax_errors) = DeTable::parse_recoverable(source);
    if !syntax_errors.is_empty() {
        // Recovery after one mistake often yields a cascade on the same line;
        // the first per line is the one the author can act on.
        let mut lines = BTreeSet::new();
        for error in syntax_errors {
            let span = error.span().unwrap_or(0..0);
            if lines.insert(sink.line(&span)) {
                sink.error(span, format!("invalid TOML: {}", error.message()));
            }
        }
        return Err(sink.finish());
    }
    let mut walker = Walker {
        sink,
        refs: Vec::new(),
        digest_times: Vec::new(),
        digest_recipients: Vec::new(),
        secrets,
    };
    let contract = walker.document(root.get_ref());
    if walker.sink.is_empty()
        && let Some(contract) = contract
    {
        return Ok(contract);
    }
    Err(walker.sink.finish())
}

/// What a reference points at, for the second pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Calendar,
    Channel,
    Contact,
    RequestType,
    Client,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Calendar => "calendar",
            Kind::Channel => "channel",
            Kind::Contact => "contact",
            Kind::RequestType => "request type",
            Kind::Client => "client",
        }
    }
    fn plural(self) -> &'static str {
        match self {
            Kind::Calendar => "calendars",
            Kind::Channel => "channels",
            Kind::Contact => "contacts",
            Kind::RequestType => "request types",
            Kind::Client => "clients",
        }
    }
    fn declare(self, name: &str) -> String {
        match self {
            Kind::Calendar => format!("[calendars.{name}]"),
            Kind::Channel => format!("[channels.{name}]"),
            Kind::Contact => format!("{name} = {{ email = \"...\" }} under [contacts]"),
            Kind::RequestType => format!("a [[request_types]] with id = \"{name}\""),
            Kind::Client => format!("a [[clients]] with id = \"{name}\""),
        }
    }
}

struct Reference {
    kind: Kind,
    name: String,
    span: Span,
}

struct Walker<'s> {
    sink: Sink<'s>,
    refs: Vec<Reference>,
    /// (contact, calendar, time, span) of each digest time, checked against
    /// the calendar's hours once every calendar is built.
    digest_times: Vec<(String, String, chrono::NaiveTime, Span)>,
    /// Contacts named by `weekly_digest`, checked for an email address once
    /// contacts are read.
    digest_recipients: Vec<(String, Span)>,
    /// Resolves `env:` and `file:` targets; `None` leaves them unresolved.
    secrets: Option<&'s dyn ResolveSecret>,
}

/// Declared ids per kind, including those of entries that had errors, so a
/// mistake inside a calendar does not also report every use of it.
#[derive(Default)]
struct Declared(BTreeMap<Kind, Vec<String>>);

impl Declared {
    fn add(&mut self, kind: Kind, id: &str) {
        let ids = self.0.entry(kind).or_default();
        if !ids.iter().any(|known| known == id) {
            ids.push(id.to_string());
        }
    }
    fn get(&self, kind: Kind) -> &[String] {
        self.0.get(&kind).map_or(&[], Vec::as_slice)
    }
}

fn targets_empty(targets: &[&Option<Target>]) -> bool {
    targets.iter().all(|t| t.is_none())
}

/// Table entries in file order: toml's map is sorted by key, but a contract
/// is read top to bottom, and rendering follows the author's order.
fn entries<'a, 'i>(table: &'a DeTable<'i>) -> Vec<(&'a Key<'i>, &'a Value<'i>)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
}

fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::Array(a) if !a.is_empty() && a.iter().all(|v| v.get_ref().is_table()) => {
            "array of tables"
        }
        DeValue::Datetime(_) => "date-time",
        other => other.type_str(),
    }
}

impl Walker<'_> {
    fn document(&mut self, root: &DeTable<'_>) -> Option<Contract> {
        self.check_keys(root, &TOP_KEYS, None);
        let mut declared = Declared::default();

        let info = match root.get_key_value("contract") {
            Some((_, value)) => self.contract_info(value),
            None => {
                self.sink.error_hint(
                    0..0,
                    "missing [contract] section",
                    "add [contract] with name, effective and timezone",
                );
                None
            }
        };
        let fallback_tz = info.as_ref().map_or(Tz::UTC, |i| i.timezone);

        let calendars = self.section(
            root,
            "calendars",
            "[calendars.business]",
            |w, id, span, v| {
                declared.add(Kind::Calendar, id);
                w.calendar(id, span, v, fallback_tz)
            },
        );
        let channels = self.section(root, "channels", "[channels.email]", |w, id, _, v| {
            declared.add(Kind::Channel, id);
            w.channel(id, v)
        });
        let contacts = self.section(root, "contacts", "", |w, id, _, v| {
            declared.add(Kind::Contact, id);
            w.contact(id, v)
        });
        let request_types = self.request_types(root, &mut declared);
        let clients = self.clients(root, &mut declared);

        self.resolve_references(&declared);
        if let Some(calendars) = &calendars {
            self.check_digest_times(calendars);
        }
        if let Some(contacts) = &contacts {
            self.check_digest_recipients(contacts);
        }

        let info = info?;
        if !self.sink.is_empty() {
            return None;
        }
        Some(Contract::assemble(
            info,
            calendars?,
            channels?,
            request_types?,
            contacts?,
            clients?,
        ))
    }

    // ---- generic helpers ------------------------------------------------

    /// Reports keys not in `allowed`. `place` names the table in messages;
    /// `None` is the top level, whose keys are sections.
    fn check_keys(&mut self, table: &DeTable<'_>, allowed: &[&str], place: Option<&str>) {
        for (key, _) in table.iter() {
            let name: &str = key.get_ref();
            if allowed.contains(&name) {
                continue;
            }
            let message = match place {
                None => format!("unknown section \"{name}\""),
                Some(place) => format!("unknown key \"{name}\" in {place}"),
            };
            let hint = match closest(name, allowed.iter().copied()) {
                Some(suggestion) => format!("did you mean \"{suggestion}\"?"),
                None => format!("valid keys here: {}", quoted_list(allowed.iter().copied())),
            };
            self.sink.error_hint(key.span(), message, hint);
        }
    }

    fn wrong_type(&mut self, what: &str, expected: &str, value: &Value<'_>) {
        self.sink.error(
            value.span(),
            format!(
                "{what} must be {expected}, got {}",
                type_name(value.get_ref())
            ),
        );
    }

    fn table<'a, 'i>(&mut self, what: &str, value: &'a Value<'i>) -> Option<&'a DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(what, "a table", value);
                None
            }
        }
    }

    fn array<'a, 'i>(&mut self, what: &str, value: &'a Value<'i>) -> Option<&'a DeArray<'i>> {
        match value.get_ref() {
            DeValue::Array(a) => Some(a),
            _ => {
                self.wrong_type(what, "an array", value);
                None
            }
        }
    }

    fn string<'a>(&mut self, what: &str, value: &'a Value<'_>) -> Option<&'a str> {
        match value.get_ref() {
            DeValue::String(s) => Some(s),
            _ => {
                self.wrong_type(what, "a string", value);
                None
            }
        }
    }

    /// A string that must say something: blank names render as nothing.
    fn text(&mut self, what: &str, value: &Value<'_>) -> Option<String> {
        let s = self.string(what, value)?;
        if s.trim().is_empty() {
            self.sink.error(value.span(), format!("{what} is empty"));
            return None;
        }
        Some(s.to_string())
    }

    fn boolean(&mut self, what: &str, value: &Value<'_>) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.sink.error_hint(
                    value.span(),
                    format!(
                        "{what} must be a boolean, got {}",
                        type_name(value.get_ref())
                    ),
                    format!("write {what} = true or {what} = false, without quotes"),
                );
                None
            }
        }
    }

    /// Each element a non-empty string; the position of each is kept for
    /// later checks (references, duplicates).
    fn strings(&mut self, what: &str, value: &Value<'_>) -> Option<Vec<(String, Span)>> {
        let array = self.array(what, value)?;
        let mut out = Vec::with_capacity(array.len());
        let mut ok = true;
        for item in array.iter() {
            match self.string(&format!("each entry of {what}"), item) {
                Some(s) if !s.trim().is_empty() => out.push((s.trim().to_string(), item.span())),
                Some(_) => {
                    self.sink
                        .error(item.span(), format!("empty string in {what}"));
                    ok = false;
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn required<'a, 'i>(
        &mut self,
        table: &'a DeTable<'i>,
        table_span: &Span,
        key: &str,
        owner: &str,
    ) -> Option<&'a Value<'i>> {
        let value = table.get(key);
        if value.is_none() {
            self.sink.error(
                table_span.clone(),
                format!("{owner} is missing required key \"{key}\""),
            );
        }
        value
    }

    fn duration(&mut self, what: &str, value: &Value<'_>) -> Option<BusinessDuration> {
        let DeValue::String(text) = value.get_ref() else {
            self.sink.error_hint(
                value.span(),
                format!(
                    "{what} must be a string, got {}",
                    type_name(value.get_ref())
                ),
                DURATION_HINT,
            );
            return None;
        };
        match text.trim().parse::<BusinessDuration>() {
            // A zero window would breach the moment a request arrives.
            Ok(d) if d == BusinessDuration::default() => {
                self.sink.error_hint(
                    value.span(),
                    format!("{what} \"{text}\" is zero"),
                    "promise some time, e.g. \"30m\"; a step at the due itself is at = \"100%\"",
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                let why = if e.reason.is_empty() {
                    String::new()
                } else {
                    format!("{}; ", e.reason)
                };
                self.sink.error_hint(
                    value.span(),
                    format!("{what} \"{text}\" is not a duration"),
                    format!("{why}{DURATION_HINT}"),
                );
                None
            }
        }
    }

    fn time_zone(&mut self, value: &Value<'_>) -> Option<Tz> {
        let name = self.string("timezone", value)?;
        if let Ok(tz) = name.parse::<Tz>() {
            return Some(tz);
        }
        let suggestions = closest_time_zones(name);
        let hint = match suggestions.as_slice() {
            [] => "use a name from the IANA time zone database, e.g. \"Europe/Berlin\" or \"UTC\""
                .to_string(),
            [one] => format!("not in the IANA time zone database; did you mean \"{one}\"?"),
            many => format!(
                "not in the IANA time zone database; closest names: {}",
                quoted_list(many.iter().copied())
            ),
        };
        self.sink
            .error_hint(value.span(), format!("unknown time zone \"{name}\""), hint);
        None
    }

    /// `"2026-12-24"` or a TOML local date `2026-12-24`.
    fn date(&mut self, what: &str, value: &Value<'_>) -> Option<NaiveDate> {
        match value.get_ref() {
            DeValue::String(s) => {
                let parsed = (s.len() == 10)
                    .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                    .flatten();
                if parsed.is_none() {
                    self.sink.error_hint(
                        value.span(),
                        format!("{what} \"{s}\" is not a valid date"),
                        DATE_HINT,
                    );
                }
                parsed
            }
            DeValue::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => {
                let parsed = dt.date.and_then(|d| {
                    NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
                });
                if parsed.is_none() {
                    self.sink.error_hint(
                        value.span(),
                        format!("{what} {dt} is not a valid date"),
                        DATE_HINT,
                    );
                }
                parsed
            }
            other => {
                self.sink.error_hint(
                    value.span(),
                    format!("{what} must be a date, got {}", type_name(other)),
                    DATE_HINT,
                );
                None
            }
        }
    }

    fn url(&mut self, what: &str, value: &Value<'_>) -> Option<String> {
        let s = self.string(what, value)?.trim();
        let ok = (s.starts_with("https://") || s.starts_with("http://"))
            && s.len() > "https://".len()
            && !s.contains(char::is_whitespace);
        if !ok {
            self.sink.error_hint(
                value.span(),
                format!("{what} \"{s}\" is not an http(s) URL"),
                "write the full URL, e.g. \"https://support.example.com/contract\"",
            );
            return None;
        }
        Some(s.to_string())
    }

    /// Lower-cased; the local part and the domain must both be present.
    fn email(&mut self, what: &str, span: Span, text: &str) -> Option<String> {
        let address = text.trim().to_lowercase();
        let valid = match address.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.contains('@')
                    && !address.contains(char::is_whitespace)
            }
            None => false,
        };
        if !valid {
            self.sink.error_hint(
                span,
                format!("{what} \"{text}\" is not an email address"),
                "write a plain address such as \"support@example.com\", without a display name",
            );
            return None;
        }
        Some(address)
    }

    /// A `[name.ID]` section: a table of tables, each handled by `entry`.
    /// `None` when the section or one of its entries is invalid.
    fn section<'i, T>(
        &mut self,
        root: &DeTable<'i>,
        name: &str,
        example: &str,
        mut entry: impl FnMut(&mut Self, &str, &Span, &Value<'i>) -> Option<T>,
    ) -> Option<Vec<T>> {
        let Some(value) = root.get(name) else {
            if example.is_empty() {
                return Some(Vec::new());
            }
            self.sink.error_hint(
                0..0,
                format!("missing [{name}] section"),
                format!("declare at least one, e.g. {example}"),
            );
            return None;
        };
        let table = self.table(name, value)?;
        let mut out = Vec::with_capacity(table.len());
        let mut ok = true;
        for (key, value) in entries(table) {
            match entry(self, key.get_ref(), &key.span(), value) {
                Some(item) => out.push(item),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    // ---- [contract] -----------------------------------------------------

    fn contract_info(&mut self, value: &Value<'_>) -> Option<ContractInfo> {
        let table = self.table("[contract]", value)?;
        let span = value.span();
        self.check_keys(table, &CONTRACT_KEYS, Some("[contract]"));
        let owner = "[contract]";
        let name = self
            .required(table, &span, "name", owner)
            .and_then(|v| self.text("name", v));
        let effective = self
            .required(table, &span, "effective", owner)
            .and_then(|v| self.date("effective", v));
        let timezone = self
            .required(table, &span, "timezone", owner)
            .and_then(|v| self.time_zone(v));
        let public_url = match table.get("public_url") {
            Some(v) => Some(self.url("public_url", v)?),
            None => None,
        };
        let unknown_senders = match table.get("unknown_senders") {
            None => Some(UnknownSenders::default()),
            Some(v) => match self.string("unknown_senders", v)? {
                "track" => Some(UnknownSenders::Track),
                "ignore" => Some(UnknownSenders::Ignore),
                other => {
                    self.sink.error_hint(
                        v.span(),
                        format!("unknown_senders \"{other}\" is neither \"track\" nor \"ignore\""),
                        "\"track\" files unknown senders under client \"unknown\"; \"ignore\" drops their mail",
                    );
                    None
                }
            },
        };
        let decision = match table.get("decision") {
            Some(v) => Some(self.text("decision", v)?),
            None => None,
        };
        let urgent_share_limit = match table.get("urgent_share_limit") {
            Some(v) => Some(self.share_limit(v)?),
            None => None,
        };
        let weekly_digest = match table.get("weekly_digest") {
            Some(v) => Some(self.weekly_digest(v)?),
            None => None,
        };
        Some(ContractInfo {
            weekly_digest,
            name: name?,
            effective: effective?,
            timezone: timezone?,
            public_url,
            unknown_senders: unknown_senders?,
            decision,
            urgent_share_limit,
        })
    }

    // ---- [calendars.ID] ---------------------------------------------------

    fn calendar(
        &mut self,
        id: &str,
        key_span: &Span,
        value: &Value<'_>,
        contract_tz: Tz,
    ) -> Option<CalendarDef> {
        let place = format!("calendar \"{id}\"");
        let table = self.table(&place, value)?;
        let span = value.span();
        self.check_keys(table, &CALENDAR_KEYS, Some(&place));

        let always = match table.get("always") {
            Some(v) => self.boolean("always", v)?,
            None => false,
        };
        let timezone = match table.get("timezone") {
            Some(v) => self.time_zone(v),
            None if always => Some(contract_tz),
            None => {
                self.sink.error_hint(
                    span.clone(),
                    format!("{place} is missing required key \"timezone\""),
                    "business hours are local: add e.g. timezone = \"Europe/Berlin\"",
                );
                None
            }
        };

        if always {
            let mut ok = true;
            for (key, _) in entries(table) {
                let name: &str = key.get_ref();
                if DAY_KEYS.contains(&name) || name == "holidays" {
                    self.sink.error_hint(
                        key.span(),
                        format!("{place} is always open, so \"{name}\" has no effect"),
                        format!("remove \"{name}\", or remove always = true"),
                    );
                    ok = false;
                }
            }
            let timezone = timezone?;
            if !ok {
                return None;
            }
            let week: Week = std::array::from_fn(|_| {
                vec![OpenInterval {
                    start: 0,
                    end: 86_400,
                }]
            });
            return Some(CalendarDef {
                id: id.to_string(),
                timezone,
                always: true,
                week,
                holidays: BTreeSet::new(),
                calendar: Calendar::always(timezone),
            });
        }

        let mut ok = true;
        let mut week: Week = Default::default();
        for (day, key) in DAY_KEYS.iter().enumerate() {
            let Some(v) = table.get(*key) else { continue };
            let Some(text) = self.string(key, v) else {
                ok = false;
                continue;
            };
            match parse_day(text) {
                Ok(intervals) => week[day] = intervals,
                Err(e) => {
                    self.sink.error_hint(v.span(), e.message, e.hint);
                    ok = false;
                }
            }
        }
        let mut holidays = BTreeSet::new();
        if let Some(v) = table.get("holidays") {
            match self.array("holidays", v) {
                Some(array) => {
                    for item in array.iter() {
                        match self.date("holiday", item) {
                            Some(date) => {
                                holidays.insert(date);
                            }
                            None => ok = false,
                        }
                    }
                }
                None => ok = false,
            }
        }
        if ok && week.iter().all(Vec::is_empty) {
            self.sink.error_hint(
                key_span.clone(),
                format!("{place} is never open"),
                "add open hours such as mon = \"09:00-17:00\" (a missing weekday is closed), or set always = true",
            );
            return None;
        }
        let timezone = timezone?;
        if !ok {
            return None;
        }
        match Calendar::new(timezone, week.clone(), holidays.clone()) {
            Ok(calendar) => Some(CalendarDef {
                id: id.to_string(),
                timezone,
                always: false,
                week,
                holidays,
                calendar,
            }),
            Err(e) => {
                self.sink.error(span, format!("{place}: {e}"));
                None
            }
        }
    }

    // ---- [channels.ID] and [contacts] ---------------------------------------

    fn channel(&mut self, id: &str, value: &Value<'_>) -> Option<Channel> {
        let place = format!("channel \"{id}\"");
        let table = self.table(&place, value)?;
        let span = value.span();
        self.check_keys(table, &CHANNEL_KEYS, Some(&place));
        let kind_value = self.required(table, &span, "kind", &place)?;
        let kind = match self.string("kind", kind_value)? {
            "email" => ChannelKind::Email,
            "ticket" => ChannelKind::Ticket,
            "manual" => ChannelKind::Manual,
            "slack" => ChannelKind::Slack,
            other => {
                let hint = match closest(other, ["email", "ticket", "manual", "slack"]) {
                    Some(s) => format!("did you mean \"{s}\"?"),
                    None => "kind is \"email\" (a mailbox we read), \"ticket\" (webhook events), \"slack\" (Slack channels shared with clients) or \"manual\" (a phone, pager or chat we do not read: say how to reach it in description)".to_string(),
                };
                self.sink.error_hint(
                    kind_value.span(),
                    format!("unknown channel kind \"{other}\""),
                    hint,
                );
                return None;
            }
        };
        let address = match table.get("address") {
            Some(v) => {
                let text = self.text("address", v)?;
                Some(if kind == ChannelKind::Email {
                    self.email("address", v.span(), &text)?
                } else {
                    text
                })
            }
            None => None,
        };
        let description = match table.get("description") {
            Some(v) => Some(self.text("description", v)?),
            None => None,
        };
        match kind {
            ChannelKind::Email if address.is_none() => {
                self.sink.error_hint(
                    span,
                    format!("{place} is missing required key \"address\""),
                    "clients are told where to write: add e.g. address = \"support@example.com\"",
                );
                return None;
            }
            ChannelKind::Manual if address.is_none() && description.is_none() => {
                self.sink.error_hint(
                    span,
                    format!("{place} says nothing about how to reach it"),
                    "add description = \"+49 30 1234567 (24/7)\" or an address",
                );
                return None;
            }
            _ => {}
        }
        Some(Channel {
            id: id.to_string(),
            kind,
            address,
            description,
        })
    }

    fn contact(&mut self, id: &str, value: &Value<'_>) -> Option<Contact> {
        let place = format!("contact \"{id}\"");
        // `lead = "lead@example.com"`: the short form of a contact with only
        // an email address.
        if let DeValue::String(text) = value.get_ref() {
            let email = self.email("email", value.span(), text)?;
            return Some(Contact {
                id: id.to_string(),
                email: Some(Target::new(SecretRef::Literal(email.clone()), Some(email))),
                webhook: None,
                teams: None,
                pagerduty: None,
                opsgenie: None,
                calendar: None,
                digest: Vec::new(),
            });
        }
        let table = self.table(&place, value)?;
        self.check_keys(table, &CONTACT_KEYS, Some(&place));
        // Every target is checked before giving up, so each mistake is listed.
        let mut failed = false;
        let email = match table.get("email") {
            Some(v) => {
                let text = self.string("email", v)?;
                let email = if text.trim().starts_with("env:") || text.trim().starts_with("file:") {
                    self.target(id, TargetKind::Email, v)
                } else {
                    self.email("email", v.span(), text)
                        .map(|e| Target::new(SecretRef::Literal(e.clone()), Some(e)))
                };
                failed |= email.is_none();
                email
            }
            None => None,
        };
        let mut targets = [None, None, None, None];
        for (slot, kind) in targets.iter_mut().zip([
            TargetKind::Webhook,
            TargetKind::Teams,
            TargetKind::PagerDuty,
            TargetKind::Opsgenie,
        ]) {
            if let Some(v) = table.get(kind.key()) {
                *slot = self.target(id, kind, v);
                failed |= slot.is_none();
            }
        }
        if failed {
            return None;
        }
        let [webhook, teams, pagerduty, opsgenie] = targets;
        if email.is_none() && targets_empty(&[&webhook, &teams, &pagerduty, &opsgenie]) {
            self.sink.error_hint(
                value.span(),
                format!("{place} has no alert target"),
                "add email = \"someone@example.com\", or webhook, teams, pagerduty or opsgenie (a secret one as \"env:VAR\" or \"file:PATH\")",
            );
            return None;
        }
        let calendar = match table.get("calendar") {
            Some(v) => {
                let name = self.text("calendar", v)?;
                self.reference(Kind::Calendar, &name, v.span());
                Some(name)
            }
            None => None,
        };
        let digest = match table.get("digest") {
            Some(v) => self.digest(id, calendar.as_deref(), v)?,
            None => Vec::new(),
        };
        Some(Contact {
            id: id.to_string(),
            email,
            webhook,
            teams,
            pagerduty,
            opsgenie,
            calendar,
            digest,
        })
    }

    /// A target written as a literal, `env:VAR` or `file:PATH` (an email
    /// literal goes through [`Walker::email`] instead),
    /// resolved when a resolver is given. Errors name the contact and key
    /// and never quote a resolved value.
    fn target(&mut self, contact: &str, kind: TargetKind, value: &Value<'_>) -> Option<Target> {
        let key = kind.key();
        let place = format!("contact \"{contact}\": {key}");
        let text = self.text(&place, value)?.trim().to_string();
        let reference = if let Some(var) = text.strip_prefix("env:") {
            let valid = !var.is_empty()
                && !var.starts_with(|c: char| c.is_ascii_digit())
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                self.sink.error_hint(
                    value.span(),
                    format!("{place} names no valid environment variable (\"{text}\")"),
                    "write env:NAME with letters, digits and _, e.g. \"env:PD_ROUTING_KEY\"",
                );
                return None;
            }
            SecretRef::Env(var.to_string())
        } else if let Some(path) = text.strip_prefix("file:") {
            if path.is_empty() {
                self.sink.error_hint(
                    value.span(),
                    format!("{place} names no file"),
                    "write file:PATH, e.g. \"file:/run/secrets/opsgenie\"",
                );
                return None;
            }
            SecretRef::File(path.to_string())
        } else {
            SecretRef::Literal(text)
        };
        let resolved = match (&reference, self.secrets) {
            (SecretRef::Literal(v), _) => Some(v.clone()),
            (r, Some(secrets)) => match secrets.resolve(r) {
                Ok(v) => Some(v.trim().to_string()),
                Err(reason) => {
                    let hint = match r {
                        SecretRef::Env(var) => format!(
                            "set {var} in the environment of keepword, or write the value in a file and use \"file:PATH\""
                        ),
                        _ => "make the file readable by keepword, or use \"env:VAR\"".to_string(),
                    };
                    self.sink.error_hint(
                        value.span(),
                        format!("{place} = \"{}\": {reason}", r.written()),
                        hint,
                    );
                    return None;
                }
            },
            (_, None) => None,
        };
        if let Some(v) = &resolved {
            let from = if reference.is_literal() {
                String::new()
            } else {
                format!(" (from {})", reference.written())
            };
            let problem = match kind {
                TargetKind::Email => {
                    let ok = v.split_once('@').is_some_and(|(local, domain)| {
                        !local.is_empty() && domain.contains('.') && !domain.contains('@')
                    }) && !v.contains(char::is_whitespace);
                    (!ok).then(|| {
                        (
                            format!("{place}{from} is not an email address"),
                            "give an address like someone@example.com",
                        )
                    })
                }
                TargetKind::Webhook | TargetKind::Teams => {
                    let ok = (v.starts_with("https://") || v.starts_with("http://"))
                        && v.len() > "https://".len()
                        && !v.contains(char::is_whitespace);
                    (!ok).then(|| {
                        (
                            format!("{place}{from} is not an http(s) URL"),
                            "write the full URL, e.g. \"https://…\"",
                        )
                    })
                }
                _ => (v.is_empty() || v.contains(char::is_whitespace)).then(|| {
                    (
                        format!("{place}{from} is not a key (empty, or has spaces)"),
                        "give the integration's key, e.g. pagerduty = \"env:PD_ROUTING_KEY\"",
                    )
                }),
            };
            if let Some((message, hint)) = problem {
                self.sink.error_hint(value.span(), message, hint);
                return None;
            }
        }
        // Addresses compare case-insensitively; the contract keeps them so.
        let resolved = match kind {
            TargetKind::Email => resolved.map(|v| v.to_lowercase()),
            _ => resolved,
        };
        Some(Target::new(reference, resolved))
    }

    // ---- [[request_types]] ---------------------------------------------------

    /// The items of an array of tables, each with its span.
    fn table_array<'a, 'i>(
        &mut self,
        name: &str,
        value: &'a Value<'i>,
    ) -> Option<Vec<(Span, &'a DeTable<'i>)>> {
        let array = self.array(name, value)?;
        let mut out = Vec::with_capacity(array.len());
        for item in array.iter() {
            if let Some(table) = self.table(&format!("each entry of {name}"), item) {
                out.push((item.span(), table));
            }
        }
        (out.len() == array.len()).then_some(out)
    }

    /// An id: letters, digits, `-`, `_` — it ends up in URLs, metric labels
    /// and the database.
    fn id(&mut self, table: &DeTable<'_>, span: &Span, owner: &str) -> Option<(String, Span)> {
        let value = self.required(table, span, "id", owner)?;
        let id = self.text("id", value)?;
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.sink.error_hint(
                value.span(),
                format!("id \"{id}\" may only contain letters, digits, \"-\" and \"_\""),
                "ids appear in URLs and metrics; put the readable text in name",
            );
            return None;
        }
        Some((id, value.span()))
    }

    /// Reports an id seen before, pointing at this occurrence and naming the
    /// line of the first.
    fn unique_id(&mut self, seen: &mut HashMap<String, Span>, id: &str, span: &Span, noun: &str) {
        if let Some(first) = seen.get(id) {
            let line = self.sink.line(first);
            self.sink.error_hint(
                span.clone(),
                format!("duplicate {noun} id \"{id}\" (first defined on line {line})"),
                "ids must be unique; rename one of them",
            );
        } else {
            seen.insert(id.to_string(), span.clone());
        }
    }

    fn reference(&mut self, kind: Kind, name: &str, span: Span) {
        self.refs.push(Reference {
            kind,
            name: name.to_string(),
            span,
        });
    }

    fn request_types(
        &mut self,
        root: &DeTable<'_>,
        declared: &mut Declared,
    ) -> Option<Vec<RequestType>> {
        let Some(value) = root.get("request_types") else {
            self.sink.error_hint(
                0..0,
                "no request types declared",
                "add at least one [[request_types]], one of them with default = true",
            );
            return None;
        };
        let items = self.table_array("request_types", value)?;
        let mut seen = HashMap::new();
        let mut defaults: Vec<(String, Span)> = Vec::new();
        let mut out = Vec::with_capacity(items.len());
        for (index, (span, table)) in items.iter().enumerate() {
            let id = self.id(table, span, &format!("request type #{}", index + 1));
            if let Some((id, id_span)) = &id {
                self.unique_id(&mut seen, id, id_span, "request type");
                declared.add(Kind::RequestType, id);
            }
            let label = id.as_ref().map_or_else(
                || format!("request type #{}", index + 1),
                |(id, _)| format!("request type \"{id}\""),
            );
            if let Some((key, value)) = table.get_key_value("default")
                && self.boolean("default", value) == Some(true)
            {
                let id = id
                    .as_ref()
                    .map_or_else(|| label.clone(), |(id, _)| id.clone());
                defaults.push((id, key.span()));
            }
            let parsed = self.request_type(table, span, &label);
            if let (Some((id, _)), Some(mut request_type)) = (id, parsed) {
                request_type.id = id;
                out.push(request_type);
            }
        }
        match defaults.len() {
            1 => {}
            0 => self.sink.error_hint(
                value.span(),
                "no request type is marked default = true",
                "add default = true to the request type that requests matching no rule should get",
            ),
            _ => {
                for (i, (id, span)) in defaults.iter().enumerate() {
                    let others: Vec<String> = defaults
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .map(|(_, (other, span))| {
                            format!("\"{other}\" (line {})", self.sink.line(span))
                        })
                        .collect();
                    self.sink.error_hint(
                        span.clone(),
                        format!(
                            "request type \"{id}\" is marked default = true, and so is {}",
                            others.join(", ")
                        ),
                        "exactly one request type is the default; remove default = true from the others",
                    );
                }
            }
        }
        (out.len() == items.len()).then_some(out)
    }

    /// Everything but the id, which the caller owns (it needs it for
    /// duplicate and default checks even when the rest is broken).
    fn request_type(
        &mut self,
        table: &DeTable<'_>,
        span: &Span,
        label: &str,
    ) -> Option<RequestType> {
        self.check_keys(table, &REQUEST_TYPE_KEYS, Some(label));
        let name = self
            .required(table, span, "name", label)
            .and_then(|v| self.text("name", v));
        let definition = self
            .required(table, span, "definition", label)
            .and_then(|v| self.text("definition", v));
        let channels = self.required(table, span, "channels", label).and_then(|v| {
            let list = self.strings("channels", v)?;
            if list.is_empty() {
                self.sink.error_hint(
                    v.span(),
                    "channels is empty",
                    "name at least one declared channel clients should use for this request type",
                );
                return None;
            }
            Some(list)
        });
        let mut channel_ids = Vec::new();
        for (channel, channel_span) in channels.iter().flatten() {
            self.reference(Kind::Channel, channel, channel_span.clone());
            if !channel_ids.contains(channel) {
                channel_ids.push(channel.clone());
            }
        }
        let calendar = self.required(table, span, "calendar", label).and_then(|v| {
            let name = self.text("calendar", v)?;
            self.reference(Kind::Calendar, &name, v.span());
            Some(name)
        });
        let first_response = self
            .required(table, span, "first_response", label)
            .and_then(|v| self.duration("window", v));
        let mut ok = true;
        let mut optional_window = |w: &mut Self, key: &str| match table.get(key) {
            Some(v) => {
                let d = w.duration("window", v);
                ok &= d.is_some();
                d
            }
            None => None,
        };
        let next_response = optional_window(self, "next_response");
        let resolution = optional_window(self, "resolution");
        let update_every = optional_window(self, "update_every");
        let match_rules = match table.get("match") {
            Some(v) => self.match_rules(v, label),
            None => Some(MatchRules::default()),
        };
        let escalation = match table.get("escalation") {
            Some(v) => self.escalation(v),
            None => Some(Vec::new()),
        };
        let default = table
            .get("default")
            .and_then(|v| v.get_ref().as_bool())
            .unwrap_or(false);
        let urgent = match table.get("urgent") {
            Some(v) => self.boolean("urgent", v),
            None => Some(false),
        };
        let max_pause = match table.get("max_pause") {
            Some(v) => self.duration("max_pause", v).map(Some),
            None => Some(None),
        };
        if !ok {
            return None;
        }
        Some(RequestType {
            id: String::new(),
            name: name?,
            definition: definition?,
            default,
            channels: channels.map(|_| channel_ids)?,
            match_rules: match_rules?,
            calendar: calendar?,
            first_response: first_response?,
            next_response,
            resolution,
            escalation: escalation?,
            update_every,
            urgent: urgent?,
            max_pause: max_pause?,
        })
    }

    fn match_rules(&mut self, value: &Value<'_>, label: &str) -> Option<MatchRules> {
        let place = format!("match of {label}");
        let table = self.table("match", value)?;
        self.check_keys(table, &MATCH_KEYS, Some(&place));
        let mut ok = true;
        let mut list = |w: &mut Self, key: &str| -> Vec<(String, Span)> {
            match table.get(key) {
                Some(v) => w.strings(key, v).unwrap_or_else(|| {
                    ok = false;
                    Vec::new()
                }),
                None => Vec::new(),
            }
        };
        let keywords = list(self, "keywords");
        let priorities = list(self, "priorities");
        let recipients_raw = list(self, "recipients");
        let clients = list(self, "clients");
        let mut recipients = Vec::new();
        for (text, span) in &recipients_raw {
            match self.email("recipient", span.clone(), text) {
                Some(address) => recipients.push(address),
                None => ok = false,
            }
        }
        for (client, span) in &clients {
            self.reference(Kind::Client, client, span.clone());
        }
        let names = |list: Vec<(String, Span)>| list.into_iter().map(|(s, _)| s).collect();
        ok.then(|| MatchRules {
            keywords: names(keywords),
            priorities: names(priorities),
            recipients,
            clients: names(clients),
        })
    }

    fn escalation(&mut self, value: &Value<'_>) -> Option<Vec<EscalationStep>> {
        let items = self.table_array("escalation", value)?;
        let mut steps = Vec::with_capacity(items.len());
        let mut ok = true;
        for (span, table) in items {
            match self.escalation_step(&span, table) {
                Some(step) => steps.push(step),
                None => ok = false,
            }
        }
        ok.then_some(steps)
    }

    fn escalation_step(&mut self, span: &Span, table: &DeTable<'_>) -> Option<EscalationStep> {
        self.check_keys(table, &ESCALATION_KEYS, Some("escalation step"));
        let notify = self
            .required(table, span, "notify", "escalation step")
            .and_then(|v| {
                let list = self.strings("notify", v)?;
                if list.is_empty() {
                    self.sink.error_hint(
                        v.span(),
                        "notify is empty",
                        "name the contacts this step alerts, e.g. notify = [\"lead\"]",
                    );
                    return None;
                }
                Some(list)
            });
        for (contact, contact_span) in notify.iter().flatten() {
            self.reference(Kind::Contact, contact, contact_span.clone());
        }
        let trigger = match (table.get_key_value("at"), table.get_key_value("after_due")) {
            (Some(_), Some((after_key, _))) => {
                self.sink.error_hint(
                    after_key.span(),
                    "escalation step has both at and after_due",
                    "a step fires at one moment: split it into two steps",
                );
                None
            }
            (None, None) => {
                self.sink.error_hint(
                    span.clone(),
                    "escalation step has neither at nor after_due",
                    "add at = \"75%\" (share of the window) or after_due = \"30m\" (time after the due)",
                );
                None
            }
            (Some((_, at)), None) => self.percent(at).map(EscalationTrigger::At),
            (None, Some((_, after))) => self
                .duration("after_due", after)
                .map(EscalationTrigger::AfterDue),
        };
        let page = match table.get("page") {
            Some(v) => self.boolean("page", v),
            None => Some(false),
        };
        let mut seen = BTreeSet::new();
        let notify = notify?
            .into_iter()
            .map(|(s, _)| s)
            .filter(|s| seen.insert(s.clone()))
            .collect();
        Some(EscalationStep {
            trigger: trigger?,
            notify,
            page: page?,
        })
    }

    fn percent(&mut self, value: &Value<'_>) -> Option<Percent> {
        const HINT: &str =
            "write a whole percentage of the window as a string, e.g. at = \"50%\" or \"100%\"";
        let DeValue::String(text) = value.get_ref() else {
            self.sink.error_hint(
                value.span(),
                format!(
                    "at must be a percentage like \"50%\", got {}",
                    type_name(value.get_ref())
                ),
                HINT,
            );
            return None;
        };
        let number = text
            .trim()
            .strip_suffix('%')
            .map(str::trim)
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            .map(|n| n.parse::<u64>().unwrap_or(u64::MAX));
        match number {
            None => {
                self.sink.error_hint(
                    value.span(),
                    format!("at \"{text}\" is not a percentage"),
                    HINT,
                );
                None
            }
            Some(n) if n > 100 => {
                self.sink.error_hint(
                    value.span(),
                    format!("at \"{text}\" is above 100%"),
                    "a step after the window has run out is written after_due = \"30m\"",
                );
                None
            }
            Some(0) => {
                self.sink.error_hint(
                    value.span(),
                    format!("at \"{text}\" would fire as the timer starts"),
                    "use at least \"1%\"",
                );
                None
            }
            Some(n) => Percent::new(n as u8),
        }
    }

    // ---- [[clients]] ----------------------------------------------------------

    fn clients(&mut self, root: &DeTable<'_>, declared: &mut Declared) -> Option<Vec<Client>> {
        let Some(value) = root.get("clients") else {
            return Some(Vec::new());
        };
        let items = self.table_array("clients", value)?;
        let mut seen = HashMap::new();
        // Who claimed each domain and address first, for overlap messages.
        let mut claimed: HashMap<String, (String, Span)> = HashMap::new();
        let mut out = Vec::with_capacity(items.len());
        for (index, (span, table)) in items.iter().enumerate() {
            let label = format!("client #{}", index + 1);
            let id = self.id(table, span, &label);
            if let Some((id, id_span)) = &id {
                if id == UNKNOWN_CLIENT {
                    self.sink.error_hint(
                        id_span.clone(),
                        format!("client id \"{UNKNOWN_CLIENT}\" is reserved"),
                        "senders no client claims are filed under \"unknown\"; choose another id",
                    );
                }
                self.unique_id(&mut seen, id, id_span, "client");
                declared.add(Kind::Client, id);
            }
            let label = id
                .as_ref()
                .map_or(label, |(id, _)| format!("client \"{id}\""));
            let owner = id.as_ref().map_or("?", |(id, _)| id.as_str()).to_string();
            let parsed = self.client(table, span, &label, &owner, &mut claimed);
            if let (Some((id, _)), Some(mut client)) = (id, parsed) {
                client.id = id;
                out.push(client);
            }
        }
        (out.len() == items.len()).then_some(out)
    }

    fn client(
        &mut self,
        table: &DeTable<'_>,
        span: &Span,
        label: &str,
        owner: &str,
        claimed: &mut HashMap<String, (String, Span)>,
    ) -> Option<Client> {
        self.check_keys(table, &CLIENT_KEYS, Some(label));
        let name = self
            .required(table, span, "name", label)
            .and_then(|v| self.text("name", v));
        let mut ok = true;
        let mut domains = Vec::new();
        if let Some(v) = table.get("domains") {
            for (text, item_span) in self.strings("domains", v).unwrap_or_else(|| {
                ok = false;
                Vec::new()
            }) {
                let domain = text.to_lowercase();
                let bare = domain.trim_start_matches('@');
                let valid =
                    bare.contains('.') && !bare.starts_with('.') && !bare.contains(['@', ' ', '/']);
                if !valid || bare != domain {
                    let hint = if valid {
                        format!("write the domain without \"@\": \"{bare}\"")
                    } else {
                        "write a mail domain such as \"acme.com\"; single senders go in addresses"
                            .to_string()
                    };
                    self.sink.error_hint(
                        item_span,
                        format!("domain \"{text}\" is not a mail domain"),
                        hint,
                    );
                    ok = false;
                    continue;
                }
                ok &= self.claim(claimed, &domain, &text, "domain", owner, item_span);
                if !domains.contains(&domain) {
                    domains.push(domain);
                }
            }
        }
        let mut addresses = Vec::new();
        if let Some(v) = table.get("addresses") {
            for (text, item_span) in self.strings("addresses", v).unwrap_or_else(|| {
                ok = false;
                Vec::new()
            }) {
                let Some(address) = self.email("address", item_span.clone(), &text) else {
                    ok = false;
                    continue;
                };
                ok &= self.claim(claimed, &address, &text, "address", owner, item_span);
                if !addresses.contains(&address) {
                    addresses.push(address);
                }
            }
        }
        let overrides = match table.get("overrides") {
            Some(v) => self.overrides(v, label),
            None => Some(BTreeMap::new()),
        };
        let jira_projects = self.ticket_keys(table, "jira_projects", owner, claimed, &mut ok);
        let linear_teams = self.ticket_keys(table, "linear_teams", owner, claimed, &mut ok);
        let basecamp_projects = self.basecamp_projects(table, owner, claimed, &mut ok);
        let mut report_to = Vec::new();
        if let Some(v) = table.get("report_to") {
            for (text, item_span) in self.strings("report_to", v).unwrap_or_else(|| {
                ok = false;
                Vec::new()
            }) {
                match self.email("report_to", item_span, &text) {
                    Some(a) if !report_to.contains(&a) => report_to.push(a),
                    Some(_) => {}
                    None => ok = false,
                }
            }
        }
        let slack_channels = self.slack_ids(table, "slack_channels", owner, claimed, &mut ok);
        let slack_teams = self.slack_ids(table, "slack_teams", owner, claimed, &mut ok);
        if !ok {
            return None;
        }
        Some(Client {
            id: String::new(),
            name: name?,
            domains,
            addresses,
            overrides: overrides?,
            jira_projects,
            linear_teams,
            basecamp_projects,
            report_to,
            slack_channels,
            slack_teams,
        })
    }

    /// `slack_channels` or `slack_teams`: Slack ids such as "C0ACME123" or
    /// "T0ACME" (a channel starts with C or G, a workspace with T or E),
    /// upper-cased, each claimed by one client.
    fn slack_ids(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        owner: &str,
        claimed: &mut HashMap<String, (String, Span)>,
        ok: &mut bool,
    ) -> Vec<String> {
        let (noun, first, example) = if key == "slack_channels" {
            ("Slack channel id", ['C', 'G'], "\"C0ACME123\"")
        } else {
            ("Slack workspace id", ['T', 'E'], "\"T0ACME\"")
        };
        self.claimed_keys(table, key, owner, claimed, ok, noun, |text| {
            let upper = text.trim().to_uppercase();
            let valid = (2..=30).contains(&upper.len())
                && upper.starts_with(first)
                && upper.chars().all(|c| c.is_ascii_alphanumeric());
            if valid {
                return Ok(upper);
            }
            let hint = if key == "slack_channels" && upper.starts_with('#') {
                format!(
                    "write the channel's id, not its name: in Slack, open the channel's details; the id is at the bottom (such as {example})"
                )
            } else {
                format!(
                    "write the id Slack shows, such as {example} (starts with {} or {}, letters and digits)",
                    first[0], first[1]
                )
            };
            Err((format!("{noun} \"{text}\" is not an id"), hint))
        })
    }

    /// `jira_projects` or `linear_teams`: keys such as "SUP" (letters, digits,
    /// `_`), upper-cased, each claimed by one client so an issue has one.
    fn ticket_keys(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        owner: &str,
        claimed: &mut HashMap<String, (String, Span)>,
        ok: &mut bool,
    ) -> Vec<String> {
        let noun = if key == "jira_projects" {
            "Jira project key"
        } else {
            "Linear team key"
        };
        self.claimed_keys(table, key, owner, claimed, ok, noun, |text| {
            let upper = text.to_uppercase();
            let valid = upper.len() <= 50
                && upper.starts_with(|c: char| c.is_ascii_alphabetic())
                && upper.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if valid {
                Ok(upper)
            } else {
                Err((
                    format!("{noun} \"{text}\" is not a key"),
                    "write the key as the product shows it, such as \"SUP\" (letters, digits and _, at most 50)".into(),
                ))
            }
        })
    }

    /// A client's list of product keys under `key`: each checked by `check`
    /// (the key as stored, or the error and its hint), each claimed by one
    /// client. Claims are namespaced by `key`: the same word may be a Jira
    /// and a Linear key.
    #[allow(clippy::too_many_arguments)]
    fn claimed_keys(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        owner: &str,
        claimed: &mut HashMap<String, (String, Span)>,
        ok: &mut bool,
        noun: &str,
        check: impl Fn(&str) -> Result<String, (String, String)>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let Some(v) = table.get(key) else {
            return out;
        };
        for (text, item_span) in self.strings(key, v).unwrap_or_else(|| {
            *ok = false;
            Vec::new()
        }) {
            let stored = match check(&text) {
                Ok(s) => s,
                Err((message, hint)) => {
                    self.sink.error_hint(item_span, message, hint);
                    *ok = false;
                    continue;
                }
            };
            *ok &= self.claim(
                claimed,
                &format!("{key}:{stored}"),
                &text,
                noun,
                owner,
                item_span,
            );
            if !out.contains(&stored) {
                out.push(stored);
            }
        }
        out
    }

    /// `basecamp_projects`: bucket ids, the number in a project's URL.
    fn basecamp_projects(
        &mut self,
        table: &DeTable<'_>,
        owner: &str,
        claimed: &mut HashMap<String, (String, Span)>,
        ok: &mut bool,
    ) -> Vec<u64> {
        let mut out = Vec::new();
        let Some(v) = table.get("basecamp_projects") else {
            return out;
        };
        let Some(items) = self.array("basecamp_projects", v) else {
            *ok = false;
            return out;
        };
        for item in items.iter() {
            let id = match item.get_ref() {
                DeValue::Integer(i) if i.radix() == 10 => i.as_str().replace('_', "").parse().ok(),
                DeValue::String(s) => s.trim().parse().ok(),
                _ => None,
            }
            .filter(|&id: &u64| id > 0);
            let Some(id) = id else {
                self.sink.error_hint(
                    item.span(),
                    "each entry of basecamp_projects must be a project id, a positive whole number",
                    "the id is the number after /buckets/ or /projects/ in the project's URL",
                );
                *ok = false;
                continue;
            };
            let as_written = id.to_string();
            *ok &= self.claim(
                claimed,
                &format!("basecamp_projects:{id}"),
                &as_written,
                "Basecamp project",
                owner,
                item.span(),
            );
            if !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }

    /// Records that `owner` claims a domain or address; false (and a
    /// diagnostic) if another client already did.
    fn claim(
        &mut self,
        claimed: &mut HashMap<String, (String, Span)>,
        what: &str,
        as_written: &str,
        noun: &str,
        owner: &str,
        span: Span,
    ) -> bool {
        match claimed.get(what) {
            Some((first, first_span)) if first != owner => {
                let line = self.sink.line(first_span);
                self.sink.error_hint(
                    span,
                    format!("{noun} \"{as_written}\" is already claimed by client \"{first}\" (line {line})"),
                    if matches!(noun, "domain" | "address") {
                        "a domain or address belongs to one client; for one sender from a shared domain, list the address under addresses"
                    } else {
                        "a project or team belongs to one client: its tickets need one contract"
                    },
                );
                false
            }
            Some(_) => true,
            None => {
                claimed.insert(what.to_string(), (owner.to_string(), span));
                true
            }
        }
    }

    fn overrides(
        &mut self,
        value: &Value<'_>,
        label: &str,
    ) -> Option<BTreeMap<String, WindowOverride>> {
        let table = self.table("overrides", value)?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (key, value) in entries(table) {
            let type_id: &str = key.get_ref();
            self.reference(Kind::RequestType, type_id, key.span());
            let place = format!("overrides.{type_id} of {label}");
            let Some(windows) = self.table(&place, value) else {
                ok = false;
                continue;
            };
            self.check_keys(windows, &OVERRIDE_KEYS, Some(&place));
            let mut window = WindowOverride::default();
            for (timer_key, timer_value) in entries(windows) {
                let slot = match timer_key.get_ref().as_ref() {
                    "first_response" => &mut window.first_response,
                    "next_response" => &mut window.next_response,
                    "resolution" => &mut window.resolution,
                    _ => continue,
                };
                *slot = self.duration("window", timer_value);
                ok &= slot.is_some();
            }
            if window == WindowOverride::default() && windows.is_empty() {
                self.sink.error_hint(
                    value.span(),
                    format!("{place} overrides nothing"),
                    "set first_response, next_response and/or resolution, or remove it",
                );
                ok = false;
            }
            out.insert(type_id.to_string(), window);
        }
        ok.then_some(out)
    }

    // ---- second pass --------------------------------------------------------

    fn resolve_references(&mut self, declared: &Declared) {
        for reference in std::mem::take(&mut self.refs) {
            let known = declared.get(reference.kind);
            if known.contains(&reference.name) {
                continue;
            }
            let noun = reference.kind.noun();
            let name = &reference.name;
            let listed = quoted_list(known.iter().map(String::as_str));
            let (message, hint) = match closest(name, known.iter().map(String::as_str)) {
                Some(suggestion) => (
                    format!("unknown {noun} \"{name}\" — did you mean \"{suggestion}\"?"),
                    format!("declared {}: {listed}", reference.kind.plural()),
                ),
                None if known.is_empty() => (
                    format!("unknown {noun} \"{name}\""),
                    format!(
                        "no {} are declared; declare {}",
                        reference.kind.plural(),
                        reference.kind.declare(name)
                    ),
                ),
                None => (
                    format!("unknown {noun} \"{name}\""),
                    format!(
                        "declare {}, or use one of {listed}",
                        reference.kind.declare(name)
                    ),
                ),
            };
            self.sink.error_hint(reference.span, message, hint);
        }
    }
}

// ---- urgency and focus (README) ------------------------------------------------

const DIGEST_HINT: &str = "write local times as \"HH:MM\", e.g. digest = [\"09:30\", \"14:00\"]";

impl Walker<'_> {
    /// `"15%"` or `"12.5%"` (two decimals at most), 0% to 100%.
    fn share_limit(&mut self, value: &Value<'_>) -> Option<ShareLimit> {
        const HINT: &str =
            "write the share as a percentage string, e.g. urgent_share_limit = \"15%\"";
        let DeValue::String(text) = value.get_ref() else {
            self.sink.error_hint(
                value.span(),
                format!(
                    "urgent_share_limit must be a percentage like \"15%\", got {}",
                    type_name(value.get_ref())
                ),
                HINT,
            );
            return None;
        };
        let number = text.trim().strip_suffix('%').map(str::trim);
        let basis_points = number.and_then(|n| {
            let (whole, frac) = n.split_once('.').unwrap_or((n, ""));
            let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
            if whole.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 2 {
                return None;
            }
            let whole: u64 = whole.parse().unwrap_or(u64::MAX);
            let frac: u64 = format!("{frac:0<2}").parse().unwrap_or(0);
            Some(whole.saturating_mul(100).saturating_add(frac))
        });
        match basis_points {
            None => {
                self.sink.error_hint(
                    value.span(),
                    format!("urgent_share_limit \"{text}\" is not a percentage"),
                    HINT,
                );
                None
            }
            Some(bp) if bp > 10_000 => {
                self.sink.error_hint(
                    value.span(),
                    format!("urgent_share_limit \"{text}\" is above 100%"),
                    "it is a share of a client's new conversations, so at most \"100%\"; e.g. \"15%\"",
                );
                None
            }
            Some(bp) => ShareLimit::from_basis_points(bp as u16),
        }
    }

    /// `weekly_digest = { to = ["lead"], day = "mon", at = "09:00" }`: every
    /// contact is declared (checked in the second pass) and has an email
    /// address (checked once contacts are read).
    fn weekly_digest(&mut self, value: &Value<'_>) -> Option<WeeklyDigest> {
        const HINT: &str =
            "write weekly_digest = { to = [\"lead\"], day = \"mon\", at = \"09:00\" }";
        let place = "weekly_digest";
        let table = self.table(place, value)?;
        self.check_keys(table, &["to", "day", "at"], Some(place));
        let span = value.span();
        let to = self
            .required(table, &span, "to", place)
            .and_then(|v| self.strings("to", v));
        if let Some(to) = &to
            && to.is_empty()
        {
            self.sink
                .error_hint(span.clone(), "weekly_digest has no recipient", HINT);
            return None;
        }
        let day = self.required(table, &span, "day", place).and_then(|v| {
            let text = self.string("day", v)?;
            let day = match text.trim().to_lowercase().as_str() {
                "mon" => Some(chrono::Weekday::Mon),
                "tue" => Some(chrono::Weekday::Tue),
                "wed" => Some(chrono::Weekday::Wed),
                "thu" => Some(chrono::Weekday::Thu),
                "fri" => Some(chrono::Weekday::Fri),
                "sat" => Some(chrono::Weekday::Sat),
                "sun" => Some(chrono::Weekday::Sun),
                _ => None,
            };
            if day.is_none() {
                self.sink.error_hint(
                    v.span(),
                    format!("weekly_digest day \"{text}\" is not a weekday"),
                    "write one of \"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"",
                );
            }
            day
        });
        let at = self.required(table, &span, "at", place).and_then(|v| {
            let text = self.string("at", v)?;
            let time = (text.len() == 5)
                .then(|| chrono::NaiveTime::parse_from_str(text, "%H:%M").ok())
                .flatten();
            if time.is_none() {
                self.sink.error_hint(
                    v.span(),
                    format!("weekly_digest at \"{text}\" is not HH:MM"),
                    "write a local time in the contract's zone, e.g. at = \"09:00\"",
                );
            }
            time
        });
        let to = to?;
        for (name, span) in &to {
            self.reference(Kind::Contact, name, span.clone());
            self.digest_recipients.push((name.clone(), span.clone()));
        }
        Some(WeeklyDigest {
            to: to.into_iter().map(|(n, _)| n).collect(),
            day: day?,
            at: at?,
        })
    }

    /// A weekly digest goes by email: each of its contacts needs an address.
    fn check_digest_recipients(&mut self, contacts: &[Contact]) {
        for (name, span) in std::mem::take(&mut self.digest_recipients) {
            if let Some(c) = contacts.iter().find(|c| c.id == name)
                && c.email.is_none()
            {
                self.sink.error_hint(
                    span,
                    format!("weekly_digest goes by email, and contact \"{name}\" has no email"),
                    format!("add email = \"...\" to contact \"{name}\", or name another contact"),
                );
            }
        }
    }

    /// `digest = ["09:30", "14:00"]`: sorted, duplicates dropped.
    fn digest(
        &mut self,
        contact: &str,
        calendar: Option<&str>,
        value: &Value<'_>,
    ) -> Option<Vec<chrono::NaiveTime>> {
        let list = self.strings("digest", value)?;
        if list.is_empty() {
            self.sink.error_hint(
                value.span(),
                "digest is empty",
                format!("{DIGEST_HINT}, or remove digest to alert at once"),
            );
            return None;
        }
        let mut times = BTreeSet::new();
        let mut ok = true;
        for (text, span) in list {
            let valid = text.len() == 5
                && text.as_bytes()[2] == b':'
                && text[..2]
                    .chars()
                    .chain(text[3..].chars())
                    .all(|c| c.is_ascii_digit());
            let time = valid
                .then(|| chrono::NaiveTime::parse_from_str(&text, "%H:%M").ok())
                .flatten();
            match time {
                Some(t) => {
                    if let Some(calendar) = calendar {
                        self.digest_times.push((
                            contact.to_string(),
                            calendar.to_string(),
                            t,
                            span,
                        ));
                    }
                    times.insert(t);
                }
                None => {
                    self.sink.error_hint(
                        span,
                        format!("digest time \"{text}\" is not HH:MM"),
                        DIGEST_HINT,
                    );
                    ok = false;
                }
            }
        }
        ok.then(|| times.into_iter().collect())
    }

    /// A digest time at which the contact's calendar is closed on every day
    /// of the week would never go out at that time.
    fn check_digest_times(&mut self, calendars: &[CalendarDef]) {
        use chrono::Timelike;
        for (contact, calendar, time, span) in std::mem::take(&mut self.digest_times) {
            let Some(def) = calendars.iter().find(|c| c.id == calendar) else {
                continue;
            };
            let secs = time.num_seconds_from_midnight();
            let open = def.always
                || def
                    .week
                    .iter()
                    .flatten()
                    .any(|iv| iv.start <= secs && secs < iv.end);
            if !open {
                self.sink.error_hint(
                    span,
                    format!(
                        "digest time \"{}\" of contact \"{contact}\" is outside the hours of calendar \"{calendar}\" on every day",
                        time.format("%H:%M")
                    ),
                    "a digest goes out while the contact's calendar is open: choose a time within its hours",
                );
            }
        }
    }
}
