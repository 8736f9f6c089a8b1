//! The contract version: SHA-256 over a canonical JSON form of the typed model.
//!
//! Hashing the typed model rather than the file means comments, formatting,
//! key order and equivalent spellings (`"90m"` and `"1h30m"`, a quoted or a
//! TOML date, touching intervals) give the same version, so a reformat does
//! not look like a new promise to clients. Order is kept only where it
//! means something: request types (classification tries them in order),
//! a request type's channels (order of preference) and escalation steps.
//! Everything keyed is a `BTreeMap`, and struct fields serialise in
//! declaration order, so the JSON does not depend on serde_json features.
//!
//! Changing this form changes every version; bump `FORMAT` when you do.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{ChannelKind, Contract, EscalationTrigger, WindowOverride};
use crate::calendar::BusinessDuration;

const FORMAT: &str = "keepword-contract/1";

#[derive(Serialize)]
struct Canonical<'a> {
    format: &'static str,
    contract: Info<'a>,
    calendars: BTreeMap<&'a str, Cal>,
    channels: BTreeMap<&'a str, Chan<'a>>,
    request_types: Vec<Type<'a>>,
    contacts: BTreeMap<&'a str, Person<'a>>,
    clients: BTreeMap<&'a str, Org<'a>>,
}

#[derive(Serialize)]
struct Info<'a> {
    name: &'a str,
    effective: String,
    timezone: &'static str,
    public_url: Option<&'a str>,
    unknown_senders: &'static str,
    // Left out when absent, so versions written before the key existed
    // keep their hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<&'a str>,
    // Keys added later are left out when unset, so contracts that do not use
    // them keep their version.
    #[serde(skip_serializing_if = "Option::is_none")]
    urgent_share_limit_bp: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    weekly_digest: Option<Weekly<'a>>,
}

#[derive(Serialize)]
struct Weekly<'a> {
    to: BTreeSet<&'a str>,
    day: u32,
    at: String,
}

#[derive(Serialize)]
struct Cal {
    timezone: &'static str,
    always: bool,
    week: Vec<Vec<[u32; 2]>>,
    holidays: Vec<String>,
}

#[derive(Serialize)]
struct Chan<'a> {
    kind: &'static str,
    address: Option<&'a str>,
    description: Option<&'a str>,
}

#[derive(Serialize, Clone, Copy)]
struct Dur {
    days: u32,
    seconds: u64,
}

impl From<BusinessDuration> for Dur {
    fn from(d: BusinessDuration) -> Self {
        Dur {
            days: d.days,
            seconds: d.seconds,
        }
    }
}

#[derive(Serialize)]
struct Type<'a> {
    id: &'a str,
    name: &'a str,
    definition: &'a str,
    default: bool,
    channels: &'a [String],
    keywords: BTreeSet<&'a str>,
    priorities: BTreeSet<&'a str>,
    recipients: BTreeSet<&'a str>,
    clients: BTreeSet<&'a str>,
    calendar: &'a str,
    first_response: Dur,
    next_response: Option<Dur>,
    resolution: Option<Dur>,
    escalation: Vec<Step<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    update_every: Option<Dur>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    urgent: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_pause: Option<Dur>,
}

#[derive(Serialize)]
struct Step<'a> {
    at_percent: Option<u8>,
    after_due: Option<Dur>,
    notify: BTreeSet<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    page: bool,
}

#[derive(Serialize)]
struct Person<'a> {
    email: Option<String>,
    /// Targets as written: a reference, never the secret behind it.
    webhook: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    teams: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pagerduty: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    opsgenie: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    calendar: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    digest: Vec<String>,
}

#[derive(Serialize)]
struct Org<'a> {
    name: &'a str,
    domains: BTreeSet<&'a str>,
    addresses: BTreeSet<&'a str>,
    overrides: BTreeMap<&'a str, Windows>,
    // Skipped when empty so that contracts without them keep their version.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    jira_projects: BTreeSet<&'a str>,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    linear_teams: BTreeSet<&'a str>,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    basecamp_projects: BTreeSet<u64>,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    report_to: BTreeSet<&'a str>,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    slack_channels: BTreeSet<&'a str>,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    slack_teams: BTreeSet<&'a str>,
}

#[derive(Serialize)]
struct Windows {
    first_response: Option<Dur>,
    next_response: Option<Dur>,
    resolution: Option<Dur>,
}

impl From<&WindowOverride> for Windows {
    fn from(w: &WindowOverride) -> Self {
        Windows {
            first_response: w.first_response.map(Dur::from),
            next_response: w.next_response.map(Dur::from),
            resolution: w.resolution.map(Dur::from),
        }
    }
}

fn set(items: &[String]) -> BTreeSet<&str> {
    items.iter().map(String::as_str).collect()
}

/// The canonical JSON the version is computed from; public within the crate
/// so tests can show what changed when a version moves unexpectedly.
pub(crate) fn canonical_json(contract: &Contract) -> String {
    let info = &contract.info;
    let canonical = Canonical {
        format: FORMAT,
        contract: Info {
            name: &info.name,
            effective: info.effective.to_string(),
            timezone: info.timezone.name(),
            public_url: info.public_url.as_deref(),
            unknown_senders: info.unknown_senders.as_str(),
            decision: info.decision.as_deref(),
            urgent_share_limit_bp: info.urgent_share_limit.map(|l| l.basis_points()),
            weekly_digest: info.weekly_digest.as_ref().map(|w| Weekly {
                to: set(&w.to),
                day: w.day.num_days_from_monday(),
                at: w.at.format("%H:%M").to_string(),
            }),
        },
        calendars: contract
            .calendars
            .iter()
            .map(|c| {
                let cal = Cal {
                    timezone: c.timezone.name(),
                    always: c.always,
                    week: c
                        .week
                        .iter()
                        .map(|day| day.iter().map(|i| [i.start, i.end]).collect())
                        .collect(),
                    holidays: c.holidays.iter().map(|d| d.to_string()).collect(),
                };
                (c.id.as_str(), cal)
            })
            .collect(),
        channels: contract
            .channels
            .iter()
            .map(|c| {
                let chan = Chan {
                    kind: match c.kind {
                        ChannelKind::Email => "email",
                        ChannelKind::Ticket => "ticket",
                        ChannelKind::Manual => "manual",
                        ChannelKind::Slack => "slack",
                    },
                    address: c.address.as_deref(),
                    description: c.description.as_deref(),
                };
                (c.id.as_str(), chan)
            })
            .collect(),
        request_types: contract
            .request_types
            .iter()
            .map(|t| Type {
                id: &t.id,
                name: &t.name,
                definition: &t.definition,
                default: t.default,
                channels: &t.channels,
                keywords: set(&t.match_rules.keywords),
                priorities: set(&t.match_rules.priorities),
                recipients: set(&t.match_rules.recipients),
                clients: set(&t.match_rules.clients),
                calendar: &t.calendar,
                first_response: t.first_response.into(),
                next_response: t.next_response.map(Dur::from),
                resolution: t.resolution.map(Dur::from),
                escalation: t
                    .escalation
                    .iter()
                    .map(|s| Step {
                        at_percent: match s.trigger {
                            EscalationTrigger::At(p) => Some(p.get()),
                            EscalationTrigger::AfterDue(_) => None,
                        },
                        after_due: match s.trigger {
                            EscalationTrigger::At(_) => None,
                            EscalationTrigger::AfterDue(d) => Some(d.into()),
                        },
                        notify: set(&s.notify),
                        page: s.page,
                    })
                    .collect(),
                update_every: t.update_every.map(Dur::from),
                urgent: t.urgent,
                max_pause: t.max_pause.map(Dur::from),
            })
            .collect(),
        contacts: contract
            .contacts
            .iter()
            .map(|c| {
                let person = Person {
                    email: c.email.as_ref().map(|t| t.written.written()),
                    webhook: c.webhook.as_ref().map(|t| t.written.written()),
                    teams: c.teams.as_ref().map(|t| t.written.written()),
                    pagerduty: c.pagerduty.as_ref().map(|t| t.written.written()),
                    opsgenie: c.opsgenie.as_ref().map(|t| t.written.written()),
                    calendar: c.calendar.as_deref(),
                    digest: c
                        .digest
                        .iter()
                        .map(|t| t.format("%H:%M").to_string())
                        .collect(),
                };
                (c.id.as_str(), person)
            })
            .collect(),
        clients: contract
            .clients
            .iter()
            .map(|c| {
                let org = Org {
                    name: &c.name,
                    domains: set(&c.domains),
                    addresses: set(&c.addresses),
                    jira_projects: set(&c.jira_projects),
                    linear_teams: set(&c.linear_teams),
                    basecamp_projects: c.basecamp_projects.iter().copied().collect(),
                    report_to: set(&c.report_to),
                    slack_channels: set(&c.slack_channels),
                    slack_teams: set(&c.slack_teams),
                    overrides: c
                        .overrides
                        .iter()
                        .map(|(k, w)| (k.as_str(), Windows::from(w)))
                        .collect(),
                };
                (c.id.as_str(), org)
            })
            .collect(),
    };
    serde_json::to_string(&canonical).expect("the canonical form has only string keys")
}

/// Full lowercase hex SHA-256 of [`canonical_json`].
pub(crate) fn version(contract: &Contract) -> String {
    hex::encode(Sha256::digest(canonical_json(contract).as_bytes()))
}
