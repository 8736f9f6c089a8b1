//! The written contract: the typed model, parsing with source positions,
//! validation that reports every problem, the content version, the queries
//! the service asks (windows, dues, clients by address) and the document
//! clients read.
//!
//! A [`Contract`] only exists after [`parse`] accepted the whole file: every
//! reference (calendar, channel, contact, request type, client) resolves,
//! exactly one request type is the default, every calendar is built. The
//! rest of the program therefore never checks a string from the file again.
//!
//! The file format is the README's "The contract"; its key names are an interface.

mod diagnostic;
mod diff;
mod focus;
mod hours;
mod parse;
mod render;
mod version;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::calendar::{BusinessDuration, Calendar, CalendarError, Week};

pub use diagnostic::{Diagnostic, Diagnostics};
pub use diff::{Change, ChangeKind, diff, diff_text, timer_words};
pub use focus::{Delivery, Urgency, next_digest};
pub use hours::{describe_day, describe_week, format_time};
pub use render::{channel_words, promise, render_html, render_markdown, window_words};

/// The client id senders are filed under when no declared client matches.
pub const UNKNOWN_CLIENT: &str = "unknown";

/// Warn threshold of a request type without an `at` escalation step (README, "The contract").
pub const DEFAULT_WARN_PERCENT: u8 = 75;

/// Parses and validates a contract. `file_name` only labels diagnostics.
/// Targets written as references (`env:VAR`, `file:PATH`) stay unresolved:
/// the contract is read, rendered and compared, but such a target cannot be
/// delivered to. [`parse_with`] resolves them.
pub fn parse(source: &str, file_name: &str) -> Result<Contract, Diagnostics> {
    parse::parse(source, file_name, None)
}

/// [`parse`], resolving every target reference through `secrets`; a
/// reference that does not resolve is an error naming the contact and key.
pub fn parse_with(
    source: &str,
    file_name: &str,
    secrets: &dyn ResolveSecret,
) -> Result<Contract, Diagnostics> {
    parse::parse(source, file_name, Some(secrets))
}

/// Where a target reference is looked up. The core reads no environment and
/// no files: the service passes the process's own.
pub trait ResolveSecret {
    /// The value behind `reference`, or why there is none (said without
    /// the value).
    fn resolve(&self, reference: &SecretRef) -> Result<String, String>;
}

/// Why a query about a valid contract could not be answered.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ContractError {
    #[error("unknown request type \"{0}\"")]
    UnknownRequestType(String),
    #[error("unknown client \"{0}\"")]
    UnknownClient(String),
    #[error("request type \"{type_id}\" promises no {timer} window")]
    NoWindow { type_id: String, timer: Timer },
    #[error(transparent)]
    Calendar(#[from] CalendarError),
}

/// One SLA clock of a conversation (README, "The contract").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    FirstResponse,
    NextResponse,
    Resolution,
    /// `update_every`: the longest the client goes without hearing from the
    /// team while the team owes the next move.
    PeriodicUpdate,
}

impl Timer {
    pub const ALL: [Timer; 4] = [
        Timer::FirstResponse,
        Timer::NextResponse,
        Timer::Resolution,
        Timer::PeriodicUpdate,
    ];

    /// The timer as people read it: the one wording of pages, alerts and
    /// reports.
    pub fn words(self) -> &'static str {
        match self {
            Timer::FirstResponse => "first response",
            Timer::NextResponse => "next response",
            Timer::Resolution => "resolution",
            Timer::PeriodicUpdate => "periodic update",
        }
    }

    /// The stored name of the timer (the contract key of its window, but
    /// `update_every` for `periodic_update`).
    pub fn as_str(self) -> &'static str {
        match self {
            Timer::FirstResponse => "first_response",
            Timer::NextResponse => "next_response",
            Timer::Resolution => "resolution",
            Timer::PeriodicUpdate => "periodic_update",
        }
    }
}

impl fmt::Display for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown timer \"{0}\" (expected first_response, next_response, resolution or periodic_update)"
)]
pub struct TimerParseError(pub String);

impl FromStr for Timer {
    type Err = TimerParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timer::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| TimerParseError(s.to_string()))
    }
}

/// What happens to mail from senders no client claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownSenders {
    /// Tracked as client [`UNKNOWN_CLIENT`].
    #[default]
    Track,
    Ignore,
}

impl UnknownSenders {
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownSenders::Track => "track",
            UnknownSenders::Ignore => "ignore",
        }
    }
}

/// `[contract]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractInfo {
    pub name: String,
    pub effective: NaiveDate,
    /// Zone for rendering times, and of `always` calendars without one.
    pub timezone: Tz,
    pub public_url: Option<String>,
    pub unknown_senders: UnknownSenders,
    /// `decision`: why this version exists, in the lead's words (README, "The contract").
    /// Part of the version, so a changed reason is a new version.
    pub decision: Option<String>,
    /// `urgent_share_limit`: the share of a client's new conversations over
    /// the trailing 30 days that may be urgent before it is flagged (README, "Urgency and focus").
    pub urgent_share_limit: Option<ShareLimit>,
    /// `weekly_digest`: the team's own week, mailed to contacts (README,
    /// "The client's record").
    pub weekly_digest: Option<WeeklyDigest>,
}

/// `[contract] weekly_digest = { to = ["lead"], day = "mon", at = "09:00" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyDigest {
    /// Contact ids; all declared, each with an email address.
    pub to: Vec<String>,
    pub day: chrono::Weekday,
    /// Local time in the contract's zone.
    pub at: chrono::NaiveTime,
}

/// A share written as a percentage (`"15%"`, `"12.5%"`), kept in basis
/// points so the contract stays `Eq` and hashes the same on every machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShareLimit(u16);

impl ShareLimit {
    /// `basis_points` 0..=10_000 (100%).
    pub fn from_basis_points(basis_points: u16) -> Option<ShareLimit> {
        (basis_points <= 10_000).then_some(ShareLimit(basis_points))
    }
    pub fn basis_points(self) -> u16 {
        self.0
    }
    /// 0.0..=1.0, as the `keepword_urgent_share` gauge reports shares.
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }
}

impl fmt::Display for ShareLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(100) {
            write!(f, "{}%", self.0 / 100)
        } else {
            let s = format!("{}.{:02}", self.0 / 100, self.0 % 100);
            write!(f, "{}%", s.trim_end_matches('0'))
        }
    }
}

/// `[calendars.ID]`, with its built [`Calendar`].
#[derive(Debug, Clone)]
pub struct CalendarDef {
    pub id: String,
    pub timezone: Tz,
    /// 24x7: `week` is then open all day every day and `holidays` is empty.
    pub always: bool,
    pub week: Week,
    pub holidays: BTreeSet<NaiveDate>,
    calendar: Calendar,
}

impl CalendarDef {
    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// An IMAP mailbox the service reads.
    Email,
    /// Ticket events arriving by webhook.
    Ticket,
    /// Not ingested (phone, pager…); named so clients are told to use it.
    Manual,
    /// Slack channels shared with clients, through the Events API.
    Slack,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::Ticket => "ticket",
            ChannelKind::Manual => "manual",
            ChannelKind::Slack => "slack",
        }
    }
}

/// `[channels.ID]`. An email channel always has an address; a manual one an
/// address or a description — otherwise clients could not be told how to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub id: String,
    pub kind: ChannelKind,
    pub address: Option<String>,
    pub description: Option<String>,
}

/// `match = {…}` of a request type. Addresses are lower-cased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchRules {
    pub keywords: Vec<String>,
    pub priorities: Vec<String>,
    pub recipients: Vec<String>,
    /// Client ids; all declared.
    pub clients: Vec<String>,
}

impl MatchRules {
    pub fn is_empty(&self) -> bool {
        self.keywords.is_empty()
            && self.priorities.is_empty()
            && self.recipients.is_empty()
            && self.clients.is_empty()
    }
}

/// A percentage of a window, 1..=100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(u8);

impl Percent {
    pub fn new(value: u8) -> Option<Percent> {
        (1..=100).contains(&value).then_some(Percent(value))
    }
    pub fn get(self) -> u8 {
        self.0
    }
}

/// When an escalation step fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscalationTrigger {
    /// At this share of the timer's window.
    At(Percent),
    /// This long after the due, counted on the request type's calendar.
    AfterDue(BusinessDuration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationStep {
    pub trigger: EscalationTrigger,
    /// Contact ids; all declared.
    pub notify: Vec<String>,
    /// `page = true`: goes out at once at any hour, whatever the contacts'
    /// working hours and digests (README, "Urgency and focus").
    pub page: bool,
}

impl EscalationStep {
    /// A warning: a step before the due (`at` below 100%), the kind a digest
    /// collects.
    pub fn is_warning(&self) -> bool {
        matches!(self.trigger, EscalationTrigger::At(p) if p.get() < 100)
    }
}

/// `[[request_types]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestType {
    pub id: String,
    pub name: String,
    pub definition: String,
    pub default: bool,
    /// Channel ids in the contract's order of preference; all declared.
    pub channels: Vec<String>,
    pub match_rules: MatchRules,
    /// Calendar id; declared.
    pub calendar: String,
    pub first_response: BusinessDuration,
    /// `None`: no promise for this timer, so it is not tracked.
    pub next_response: Option<BusinessDuration>,
    pub resolution: Option<BusinessDuration>,
    pub escalation: Vec<EscalationStep>,
    /// `update_every`: while the conversation is open and the team owes the
    /// next move, the client hears from the team at least this often
    /// (timer `periodic_update`). `None`: no such promise.
    pub update_every: Option<BusinessDuration>,
    /// `urgent = true`: a true urgency. Its alerts page at any hour, and it
    /// counts towards the client's urgent share (README, "Urgency and focus").
    pub urgent: bool,
    /// `max_pause`: business time the resolution timer may spend paused
    /// (waiting on the client) in one conversation before it resumes by
    /// itself.
    pub max_pause: Option<BusinessDuration>,
}

impl RequestType {
    pub fn window(&self, timer: Timer) -> Option<BusinessDuration> {
        match timer {
            Timer::FirstResponse => Some(self.first_response),
            Timer::NextResponse => self.next_response,
            Timer::Resolution => self.resolution,
            Timer::PeriodicUpdate => self.update_every,
        }
    }

    /// Percent of the window past which a conversation is `at_risk`: the first
    /// `at` step, else [`DEFAULT_WARN_PERCENT`].
    pub fn warn_percent(&self) -> u8 {
        self.escalation
            .iter()
            .find_map(|step| match step.trigger {
                EscalationTrigger::At(p) => Some(p.get()),
                EscalationTrigger::AfterDue(_) => None,
            })
            .unwrap_or(DEFAULT_WARN_PERCENT)
    }
}

/// How a target is written in the contract: the value itself, or where the
/// service finds it, so that a secret (a webhook URL, a routing key) need not
/// be in a document clients read and the database keeps.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    Literal(String),
    /// `env:VAR`.
    Env(String),
    /// `file:PATH`: the file's text, without its trailing line break.
    File(String),
}

impl SecretRef {
    /// Exactly as the contract writes it.
    pub fn written(&self) -> String {
        match self {
            SecretRef::Literal(v) => v.clone(),
            SecretRef::Env(var) => format!("env:{var}"),
            SecretRef::File(path) => format!("file:{path}"),
        }
    }
    pub fn is_literal(&self) -> bool {
        matches!(self, SecretRef::Literal(_))
    }
}

/// A literal may be the secret itself: never printed.
impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Literal(_) => f.write_str("Literal([redacted])"),
            other => write!(f, "{}", other.written()),
        }
    }
}

/// One of a contact's alert targets: as written, and its value once
/// resolved (`None`: a reference read without resolving, see [`parse`]).
/// Two targets are equal when the contract writes them alike.
#[derive(Clone)]
pub struct Target {
    pub written: SecretRef,
    value: Option<String>,
}

impl Target {
    pub(crate) fn new(written: SecretRef, value: Option<String>) -> Target {
        Target { written, value }
    }
    /// The URL or key to deliver to.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }
}

impl PartialEq for Target {
    fn eq(&self, other: &Target) -> bool {
        self.written == other.written
    }
}
impl Eq for Target {}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Target({:?}, {})",
            self.written,
            if self.value.is_some() {
                "resolved"
            } else {
                "unresolved"
            }
        )
    }
}

/// The kinds of alert target a contact may have, by contract key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetKind {
    Email,
    Webhook,
    Teams,
    PagerDuty,
    Opsgenie,
}

impl TargetKind {
    pub const ALL: [TargetKind; 5] = [
        TargetKind::Email,
        TargetKind::Webhook,
        TargetKind::Teams,
        TargetKind::PagerDuty,
        TargetKind::Opsgenie,
    ];
    /// The contract key.
    pub fn key(self) -> &'static str {
        match self {
            TargetKind::Email => "email",
            TargetKind::Webhook => "webhook",
            TargetKind::Teams => "teams",
            TargetKind::PagerDuty => "pagerduty",
            TargetKind::Opsgenie => "opsgenie",
        }
    }
    /// For people: "PagerDuty", "Microsoft Teams".
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Email => "email",
            TargetKind::Webhook => "a chat webhook",
            TargetKind::Teams => "Microsoft Teams",
            TargetKind::PagerDuty => "PagerDuty",
            TargetKind::Opsgenie => "Opsgenie",
        }
    }
}

/// `[contacts]` entry; at least one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: String,
    /// An email address (a literal is lower-cased).
    pub email: Option<Target>,
    /// A JSON webhook (Slack-compatible `text`), Standard Webhooks headers.
    pub webhook: Option<Target>,
    /// A Microsoft Teams Workflows URL.
    pub teams: Option<Target>,
    /// A PagerDuty Events API v2 routing key.
    pub pagerduty: Option<Target>,
    /// An Opsgenie (or Jira Service Management Ops) API key.
    pub opsgenie: Option<Target>,
    /// Working hours: a calendar id of the contract; `None` = any hour.
    pub calendar: Option<String>,
    /// Local times (in the contact's calendar zone, else the contract's) at
    /// which warnings are sent as one digest; sorted, no duplicates.
    pub digest: Vec<chrono::NaiveTime>,
}

impl Contact {
    /// The targets it has, in [`TargetKind::ALL`] order.
    pub fn target_kinds(&self) -> Vec<TargetKind> {
        TargetKind::ALL
            .into_iter()
            .filter(|k| self.target(*k).is_some())
            .collect()
    }

    pub fn target(&self, kind: TargetKind) -> Option<&Target> {
        match kind {
            TargetKind::Email => self.email.as_ref(),
            TargetKind::Webhook => self.webhook.as_ref(),
            TargetKind::Teams => self.teams.as_ref(),
            TargetKind::PagerDuty => self.pagerduty.as_ref(),
            TargetKind::Opsgenie => self.opsgenie.as_ref(),
        }
    }

    /// Targets whose secret is written into the contract itself (an email
    /// address is no secret: every alert's `To:` shows it).
    pub fn literal_secrets(&self) -> Vec<TargetKind> {
        TargetKind::ALL
            .into_iter()
            .filter(|k| *k != TargetKind::Email)
            .filter(|k| self.target(*k).is_some_and(|t| t.written.is_literal()))
            .collect()
    }
}

/// Windows a client was promised instead of a request type's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowOverride {
    pub first_response: Option<BusinessDuration>,
    pub next_response: Option<BusinessDuration>,
    pub resolution: Option<BusinessDuration>,
}

impl WindowOverride {
    pub fn get(&self, timer: Timer) -> Option<BusinessDuration> {
        match timer {
            Timer::FirstResponse => self.first_response,
            Timer::NextResponse => self.next_response,
            Timer::Resolution => self.resolution,
            // Clients cannot be promised their own update rhythm (yet).
            Timer::PeriodicUpdate => None,
        }
    }
}

/// `[[clients]]`. Domains and addresses are lower-cased and belong to no
/// other client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub domains: Vec<String>,
    pub addresses: Vec<String>,
    /// By request type id; all declared.
    pub overrides: BTreeMap<String, WindowOverride>,
    /// Jira project keys (upper-cased) whose issues are this client's.
    pub jira_projects: Vec<String>,
    /// Linear team keys (upper-cased) whose issues are this client's.
    pub linear_teams: Vec<String>,
    /// Basecamp project (bucket) ids whose recordings are this client's.
    pub basecamp_projects: Vec<u64>,
    /// `report_to`: who gets the monthly report of the client's record
    /// (lower-cased addresses; empty: no report).
    pub report_to: Vec<String>,
    /// Slack channel ids (upper-cased) shared with this client.
    pub slack_channels: Vec<String>,
    /// Slack workspace (team) ids (upper-cased) whose members are this
    /// client, for a message in a channel no client claims.
    pub slack_teams: Vec<String>,
}

/// A valid contract. Built only by [`parse`].
#[derive(Debug, Clone)]
pub struct Contract {
    info: ContractInfo,
    calendars: Vec<CalendarDef>,
    channels: Vec<Channel>,
    request_types: Vec<RequestType>,
    contacts: Vec<Contact>,
    clients: Vec<Client>,
    default_type: usize,
    by_address: HashMap<String, usize>,
    by_domain: HashMap<String, usize>,
    version: String,
}

impl Contract {
    /// Assembles a contract whose parts the parser already checked.
    fn assemble(
        info: ContractInfo,
        calendars: Vec<CalendarDef>,
        channels: Vec<Channel>,
        request_types: Vec<RequestType>,
        contacts: Vec<Contact>,
        clients: Vec<Client>,
    ) -> Contract {
        let default_type = request_types.iter().position(|t| t.default).unwrap_or(0);
        let mut by_address = HashMap::new();
        let mut by_domain = HashMap::new();
        for (i, client) in clients.iter().enumerate() {
            by_address.extend(client.addresses.iter().map(|a| (a.clone(), i)));
            by_domain.extend(client.domains.iter().map(|d| (d.clone(), i)));
        }
        let mut contract = Contract {
            info,
            calendars,
            channels,
            request_types,
            contacts,
            clients,
            default_type,
            by_address,
            by_domain,
            version: String::new(),
        };
        contract.version = version::version(&contract);
        contract
    }

    pub fn info(&self) -> &ContractInfo {
        &self.info
    }
    /// In file order.
    pub fn calendars(&self) -> &[CalendarDef] {
        &self.calendars
    }
    /// In file order.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }
    /// In contract order, which is the order classification tries them.
    pub fn request_types(&self) -> &[RequestType] {
        &self.request_types
    }
    /// In file order.
    pub fn contacts(&self) -> &[Contact] {
        &self.contacts
    }
    /// In file order.
    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// SHA-256 (hex) of the canonical content: formatting, comments, key
    /// order and equivalent spellings do not change it.
    pub fn version(&self) -> &str {
        &self.version
    }
    /// The first 12 hex digits of [`Contract::version`], for display.
    pub fn version_short(&self) -> &str {
        &self.version[..12]
    }

    pub fn calendar(&self, id: &str) -> Option<&CalendarDef> {
        self.calendars.iter().find(|c| c.id == id)
    }
    pub fn channel(&self, id: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.id == id)
    }
    pub fn contact(&self, id: &str) -> Option<&Contact> {
        self.contacts.iter().find(|c| c.id == id)
    }
    pub fn request_type(&self, id: &str) -> Option<&RequestType> {
        self.request_types.iter().find(|t| t.id == id)
    }
    pub fn default_request_type(&self) -> &RequestType {
        &self.request_types[self.default_type]
    }
    pub fn client(&self, id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.id == id)
    }

    /// The one way a client is named to people: the contract's name, "Unknown
    /// senders" for [`UNKNOWN_CLIENT`], else the id as stored (a client a
    /// later version dropped keeps being named by its id).
    pub fn client_name(&self, id: &str) -> String {
        match self.client(id) {
            Some(c) => c.name.clone(),
            None if id == UNKNOWN_CLIENT => "Unknown senders".into(),
            None => id.to_string(),
        }
    }

    /// The calendar a request type's windows are counted on.
    pub fn calendar_for(&self, type_id: &str) -> Option<&Calendar> {
        let request_type = self.request_type(type_id)?;
        self.calendar(&request_type.calendar)
            .map(CalendarDef::calendar)
    }

    /// The declared client a sender belongs to: its exact address first, then
    /// its domain, then each parent domain (`eu.acme.com` → `acme.com`), so
    /// the most specific declaration wins. Case-insensitive.
    pub fn client_for_email(&self, address: &str) -> Option<&Client> {
        let address = address.trim().to_lowercase();
        if let Some(&i) = self.by_address.get(&address) {
            return Some(&self.clients[i]);
        }
        let (_, mut domain) = address.rsplit_once('@')?;
        loop {
            if let Some(&i) = self.by_domain.get(domain) {
                return Some(&self.clients[i]);
            }
            domain = domain.split_once('.')?.1;
        }
    }

    /// The client id to file a sender under: a declared client, else
    /// [`UNKNOWN_CLIENT`], or `None` when the contract ignores unknown senders.
    pub fn client_id_for_email(&self, address: &str) -> Option<&str> {
        match (self.client_for_email(address), self.info.unknown_senders) {
            (Some(client), _) => Some(&client.id),
            (None, UnknownSenders::Track) => Some(UNKNOWN_CLIENT),
            (None, UnknownSenders::Ignore) => None,
        }
    }

    /// The window a timer allows, with the client's override applied. `None`
    /// when the type is unknown or promises nothing for this timer. Client ids
    /// without overrides (including [`UNKNOWN_CLIENT`]) get the type's window.
    pub fn window(
        &self,
        type_id: &str,
        client_id: Option<&str>,
        timer: Timer,
    ) -> Option<BusinessDuration> {
        let request_type = self.request_type(type_id)?;
        client_id
            .and_then(|id| self.client(id))
            .and_then(|client| client.overrides.get(type_id))
            .and_then(|o| o.get(timer))
            .or_else(|| request_type.window(timer))
    }

    /// When a timer started at `at` runs out, in the request type's calendar
    /// zone. Unlike [`Contract::window`], an undeclared client id is an error
    /// here: a typo on the command line must not silently drop an override.
    pub fn due(
        &self,
        type_id: &str,
        client_id: Option<&str>,
        timer: Timer,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Tz>, ContractError> {
        let request_type = self
            .request_type(type_id)
            .ok_or_else(|| ContractError::UnknownRequestType(type_id.to_string()))?;
        if let Some(id) = client_id
            && id != UNKNOWN_CLIENT
            && self.client(id).is_none()
        {
            return Err(ContractError::UnknownClient(id.to_string()));
        }
        let window =
            self.window(type_id, client_id, timer)
                .ok_or_else(|| ContractError::NoWindow {
                    type_id: type_id.to_string(),
                    timer,
                })?;
        let calendar = self
            .calendar(&request_type.calendar)
            .map(CalendarDef::calendar)
            .expect("parse resolved every request type's calendar");
        let due = calendar.add(at, window)?;
        Ok(due.with_timezone(&calendar.timezone()))
    }

    /// Warn threshold of a request type in percent (README, "The contract").
    pub fn warn_percent(&self, type_id: &str) -> Option<u8> {
        self.request_type(type_id).map(RequestType::warn_percent)
    }

    /// The request type clients should use for urgent matters: the first one
    /// marked `urgent = true`; without one, the non-default type with the
    /// shortest first-response window (days counted as 24 h, which ranks an
    /// "around the clock" 30 minutes above 4 business hours), the earliest on
    /// a tie. `None` when the default is the only type.
    pub fn urgent_request_type(&self) -> Option<&RequestType> {
        if let Some(marked) = self.request_types.iter().find(|t| t.urgent) {
            return Some(marked);
        }
        let nominal = |d: BusinessDuration| u64::from(d.days) * 86_400 + d.seconds;
        self.request_types
            .iter()
            .filter(|t| !t.default)
            .min_by_key(|t| nominal(t.first_response))
    }

    /// A contact's working-hours calendar (`None`: reachable at any hour).
    pub fn contact_calendar(&self, contact: &Contact) -> Option<&Calendar> {
        contact
            .calendar
            .as_deref()
            .and_then(|id| self.calendar(id))
            .map(CalendarDef::calendar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_round_trips() {
        for timer in Timer::ALL {
            assert_eq!(timer.as_str().parse::<Timer>(), Ok(timer));
        }
        assert!("first-response".parse::<Timer>().is_err());
    }

    struct Fixed;
    impl ResolveSecret for Fixed {
        fn resolve(&self, reference: &SecretRef) -> Result<String, String> {
            match reference {
                SecretRef::Env(v) if v == "PD_KEY" => Ok("pd-secret-0042".into()),
                other => Err(format!("{} is not known", other.written())),
            }
        }
    }

    #[test]
    fn references_keep_the_version_and_never_show_the_secret() {
        let source = include_str!("../../tests/fixtures/contracts/fast.toml")
            .replace("webhook = \"WEBHOOK_URL\"", "pagerduty = \"env:PD_KEY\"");
        let unresolved = parse(&source, "c.toml").unwrap();
        let resolved = parse_with(&source, "c.toml", &Fixed).unwrap();
        // The version is of the contract as written, whatever the secret.
        assert_eq!(unresolved.version(), resolved.version());
        let oncall = resolved.contact("oncall").unwrap();
        let target = oncall.pagerduty.as_ref().unwrap();
        assert_eq!(target.value(), Some("pd-secret-0042"));
        assert_eq!(target.written.written(), "env:PD_KEY");
        assert_eq!(
            unresolved.contact("oncall").unwrap().pagerduty,
            oncall.pagerduty
        );
        assert!(!format!("{oncall:?}").contains("pd-secret"), "{oncall:?}");
        assert!(oncall.literal_secrets().is_empty());
        // A literal is a secret too: Debug does not print it.
        let literal = include_str!("../../tests/fixtures/contracts/fast.toml")
            .replace("WEBHOOK_URL", "https://hooks.example/T0/secret");
        let c = parse(&literal, "c.toml").unwrap();
        let oncall = c.contact("oncall").unwrap();
        assert!(!format!("{oncall:?}").contains("secret"), "{oncall:?}");
        assert_eq!(oncall.literal_secrets(), [TargetKind::Webhook]);
        let unknown = source.replace("env:PD_KEY", "env:OTHER");
        let errors = parse_with(&unknown, "c.toml", &Fixed).unwrap_err();
        assert!(
            errors
                .to_string()
                .contains("contact \"oncall\": pagerduty = \"env:OTHER\": env:OTHER is not known"),
            "{errors}"
        );
    }

    #[test]
    fn percent_bounds() {
        assert!(Percent::new(0).is_none());
        assert_eq!(Percent::new(100).map(Percent::get), Some(100));
        assert!(Percent::new(101).is_none());
    }

    #[test]
    fn clients_are_named_one_way() {
        let source = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml"),
        )
        .unwrap();
        let contract = parse(&source, "contract.toml").unwrap();
        let declared = &contract.clients()[0];
        assert_eq!(contract.client_name(&declared.id), declared.name);
        assert_eq!(contract.client_name(UNKNOWN_CLIENT), "Unknown senders");
        assert_eq!(contract.client_name("dropped-since"), "dropped-since");
    }
}
