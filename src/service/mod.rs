//! Use cases: where the pure core meets storage and notification. The
//! service is a few roles, each a type with its dependencies explicit and
//! built once by [`Service::from_parts`]:
//!
//! - [`Core`]: the store, the contract in force (and the versions
//!   conversations opened under), the clock, links and Message-IDs.
//! - [`Intake`]: every channel's arrivals through the one batch writer
//!   (`ConversationBatch`): a ticket event, a mail or a Slack
//!   message is stored once (idempotency key), its conversation opened or
//!   updated, timers derived by the SLA engine, due escalations fired — all
//!   in one transaction.
//! - [`Deadlines`]: evaluation against the contract, and one scheduler step
//!   ([`Deadlines::due_work`]) — conversations whose `next_check_at` has
//!   come are re-evaluated; breaches and escalation steps are recorded in
//!   the same transaction as their outbox rows, so a restart (even `kill -9`)
//!   neither repeats nor skips one; reports, digests, the team's status
//!   changes, retention, the compliance summaries' rebuild.
//! - [`Reads`]: the read models of the pages and the API.
//! - [`AfterCommit`]: the one consumer of what a transaction did.
//!
//! Every function here is blocking (diesel); async callers use
//! `spawn_blocking`. Metrics are counted after the commit, from what the
//! transaction did, so a rolled-back attempt counts nothing.

pub mod connections;
mod contract;
mod dashboard;
mod due;
mod email;
pub mod erasure;
mod events;
mod focus;
pub mod health;
mod intake;
mod live;
mod mailbox;
mod notifications;
mod record;
mod refresh;
mod refused;
mod reports;
mod retention;
pub mod sessions;
mod slack;
mod status;
mod tally;
mod views;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::contract::{Contract, Timer, UNKNOWN_CLIENT};
use crate::ingest::{FieldError, IncomingEvent};
use crate::metrics::Metrics;
use crate::outbox::templates::AckTemplates;
use crate::sla::{
    self, ActionKind, ClassifyInput, Direction, Event, EventKind, Policy, TicketStatus, TimerStatus,
};
use crate::store::{
    self, AnyConnection, ConversationRow, EventRow, FiredStep, MailboxLease, NewConversation,
    NewMessage, Store, StoreError, TimerUpdate,
};

/// The filters of the queue and the API's list, as the web passes them.
pub use crate::store::{ConversationFilter, QueueFilter};
pub use contract::{
    ContractErrors, ContractHandle, LoadedContract, Reload, VersionChanges, record_version,
};
pub use dashboard::{
    ComplianceRow, QUEUE_PAGE, QueueRow, QueueView, Timeline, local_words, span_words,
};
pub use due::DueReport;
pub use email::{EmailSink, MailBatchReport, MailboxContext};
pub(crate) use events::Opening;
pub use events::{EVENT_BATCH, Recorded};
pub use focus::{
    DigestItem, InflatedClient, KIND_DIGEST, URGENT_SHARE_DAYS, UrgencyReport, UrgentRequest,
    UrgentShare,
};
pub use live::{ChangeSet, Changes};
pub use mailbox::{FetchedMail, FolderCheckpoint, MailSink};
pub use record::{
    BROKEN_LISTED, BrokenPromise, ClientPage, ClientRecord, DEFAULT_RECORD_DAYS, KindRecord,
    OpenRequest, RECORD_DAYS, TypeRecord, WeekRecord, client_url, new_client_link, record_period,
};
use refresh::Effects;
pub use refused::RefusedNotification;
pub use reports::AuthorRow;
pub use retention::{RETENTION_BATCH, RetentionReport};
pub use slack::SlackFailure;
pub use status::{
    StatusKind, StatusPage, UrgentView, describe as describe_status, status_url, token_hash,
};
pub use tally::{TALLY_RULES, TallyRebuild, tally_rules};
pub use views::{ConversationDetail, ConversationSummary, MessageView, StepView, TimerView};
pub use views::{NotificationView, PauseView};

/// How many due conversations one scheduler step takes (and locks) at most.
/// Its alerts go out when it commits: a burst of dues starts reaching its
/// receivers after one batch, not after all of it.
pub const DUE_BATCH: i64 = 100;

/// Steps and breaches that fell due longer ago than this are recorded (late)
/// but not notified: they come from importing old history (a first start on
/// a mailbox with last month's mail), where hundreds of alerts about long-gone
/// dues would bury the ones that matter. The dashboard, the API and the
/// metrics still show them.
const MAX_ALERT_AGE: chrono::Duration = chrono::Duration::hours(24);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The caller sent something wrong; each field is named.
    #[error("invalid input: {}", crate::ingest::webhook::summary(.0))]
    Invalid(Vec<FieldError>),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("contract version {0} is not in the database")]
    MissingContract(String),
    /// The service cannot take the work now (its event writer stopped).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A database failure said again for each of several callers (a
    /// [`StoreError`] cannot be copied).
    #[error("{0}")]
    Database(String),
}

impl From<diesel::result::Error> for ServiceError {
    fn from(e: diesel::result::Error) -> Self {
        ServiceError::Store(StoreError::Query(e))
    }
}

/// Why [`Intake::record_event`]'s transaction did not commit: a failure,
/// or a key seen before (rolled back on purpose, so a duplicate leaves no
/// trace).
enum RecordError {
    Service(ServiceError),
    Duplicate,
}

impl From<ServiceError> for RecordError {
    fn from(e: ServiceError) -> Self {
        RecordError::Service(e)
    }
}

impl From<StoreError> for RecordError {
    fn from(e: StoreError) -> Self {
        RecordError::Service(e.into())
    }
}

impl From<diesel::result::Error> for RecordError {
    fn from(e: diesel::result::Error) -> Self {
        RecordError::Service(e.into())
    }
}

/// Stores acknowledgements built in a batch: the outbox rows and, at the
/// same places, the team's copies. An existing dedupe key means that
/// conversation was acknowledged already: not again, and no second copy.
/// The copies are their conversations' latest messages (the rows were
/// refreshed before the acknowledgements could name the first-response
/// due). Returns how many were stored.
fn store_acknowledgements(
    conn: &mut AnyConnection,
    outbox: &[store::NewOutbox],
    copies: Vec<NewMessage>,
    now: DateTime<Utc>,
) -> Result<usize, ServiceError> {
    let enqueued = store::enqueue_many(conn, outbox)?;
    let copies: Vec<NewMessage> = copies
        .into_iter()
        .zip(&enqueued)
        .filter(|(_, enqueued)| **enqueued)
        .map(|(copy, _)| copy)
        .collect();
    store::insert_messages(conn, &copies)?;
    let acked: Vec<i64> = copies.iter().filter_map(|c| c.conversation_id).collect();
    store::advance_last_message(conn, &acked, now)?;
    Ok(copies.len())
}

fn invalid(field: &str, problem: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(vec![FieldError {
        field: field.into(),
        problem: problem.into(),
    }])
}

/// What every role shares: the store, the contract in force and the
/// versions conversations opened under, the clock, and how links and
/// Message-IDs are made. Cheap to clone.
#[derive(Clone)]
pub struct Core {
    inner: Arc<CoreParts>,
}

struct CoreParts {
    store: Store,
    contract: ContractHandle,
    /// Parsed contracts by version: conversations keep the version they
    /// opened under, and re-parsing a stored source on every event would waste
    /// the hot path.
    versions: Mutex<HashMap<String, Arc<Contract>>>,
    public_url: String,
    message_id_domain: String,
    templates: AckTemplates,
    clock: Clock,
}

impl Core {
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn contract(&self) -> &ContractHandle {
        &self.inner.contract
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Base of the links in alerts and status pages, without a trailing `/`.
    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// The domain of the Message-IDs of what keepword sends.
    pub fn message_id_domain(&self) -> &str {
        &self.inner.message_id_domain
    }

    pub fn templates(&self) -> &AckTemplates {
        &self.inner.templates
    }

    /// The contract a conversation opened under.
    fn contract_version(
        &self,
        conn: &mut AnyConnection,
        version: &str,
    ) -> Result<Arc<Contract>, ServiceError> {
        let current = self.inner.contract.current();
        if current.version == version {
            return Ok(current.contract.clone());
        }
        if let Some(c) = self.versions().get(version) {
            return Ok(c.clone());
        }
        let row = store::contract_version(conn, version)?
            .ok_or_else(|| ServiceError::MissingContract(version.into()))?;
        // It validated when it was stored; it can only fail if the validator
        // grew stricter since, and then the conversation cannot be evaluated.
        let label = format!("contract {version}");
        // Its targets resolve as they do now; one whose variable or file is
        // gone is left unresolved (no alert to it) rather than making the
        // conversation impossible to evaluate.
        let parsed = crate::contract::parse_with(&row.source, &label, &contract::ProcessSecrets)
            .or_else(|_| crate::contract::parse(&row.source, &label))
            .map_err(|_| ServiceError::MissingContract(version.into()))?;
        let parsed = Arc::new(parsed);
        self.versions().insert(version.into(), parsed.clone());
        Ok(parsed)
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Contract>>> {
        self.inner
            .versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// What happens after a commit, from what the transaction did: metrics,
/// the outbox's and the scheduler's wake-ups, live changes. The one
/// consumer of a transaction's effects; a rolled-back attempt reaches none of
/// it.
#[derive(Clone)]
pub struct AfterCommit {
    metrics: Metrics,
    outbox_wake: Arc<Notify>,
    plan: crate::scheduler::Plan,
    changes: Changes,
}

impl AfterCommit {
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// What changed, after each commit (the dashboard's live stream).
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// Notified after a commit that enqueued notifications.
    pub fn outbox_wake(&self) -> Arc<Notify> {
        self.outbox_wake.clone()
    }

    /// The scheduler's plan, which a commit that moves the earliest check
    /// earlier wakes.
    pub fn plan(&self) -> &crate::scheduler::Plan {
        &self.plan
    }
}

/// Each role reads the shared core through the same few names, so a use
/// case reads the same whichever role it belongs to.
macro_rules! shares_core {
    ($($role:ty),*) => {$(
        impl $role {
            pub fn clock(&self) -> &Clock {
                self.core.clock()
            }
            fn store(&self) -> &Store {
                self.core.store()
            }
            fn contract(&self) -> &ContractHandle {
                self.core.contract()
            }
            pub fn now(&self) -> DateTime<Utc> {
                self.core.now()
            }
        }
    )*};
}

impl Intake {
    fn metrics(&self) -> &Metrics {
        &self.after.metrics
    }

    /// The lease on a mailbox that lets one process poll it (PostgreSQL:
    /// held for as long as the returned lease lives).
    pub fn try_lease_mailbox(&self, mailbox: &str) -> Result<Option<MailboxLease>, StoreError> {
        self.store().try_lease_mailbox(mailbox)
    }
}

impl Deadlines {
    fn metrics(&self) -> &Metrics {
        &self.after.metrics
    }

    /// How many scheduler steps may run at once in a burst of dues.
    pub fn burst_steps(&self) -> usize {
        self.store().burst_steps()
    }
}

impl Reads {
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

shares_core!(Intake, Deadlines, Reads);

/// Intake: every channel's arrivals (events, mail, Slack) into the one
/// batch writer, each stored once, acknowledged, and evaluated in the same
/// transaction.
#[derive(Clone)]
pub struct Intake {
    core: Core,
    deadlines: Deadlines,
    after: AfterCommit,
    /// The event writers' queues, started on the first submitted event.
    event_writers: Arc<Mutex<events::EventWriters>>,
    /// Clients whose rows this process saw committed, with their names.
    known_clients: Arc<Mutex<HashMap<String, String>>>,
}

/// Deadlines: conversations evaluated against their contract, due steps
/// and breaches fired exactly once, alerts and digests queued with them,
/// the reports that fall due, the team's status changes, retention, the
/// compliance summaries' rebuild.
#[derive(Clone)]
pub struct Deadlines {
    core: Core,
    reads: Reads,
    after: AfterCommit,
    /// Dedupe keys of reports and digests known to be in the outbox, so a
    /// scheduler step does not ask the database again.
    reports_sent: Arc<Mutex<std::collections::HashSet<String>>>,
}

/// Read models: the queue, timelines, compliance, the client's record and
/// status pages, urgency, contract changes, rejected input, and the gauges
/// computed at scrape time. They write nothing.
#[derive(Clone)]
pub struct Reads {
    core: Core,
    metrics: Metrics,
}

/// The service's roles, built once from explicit parts. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    pub core: Core,
    pub intake: Intake,
    pub deadlines: Deadlines,
    pub reads: Reads,
    pub after: AfterCommit,
}

/// What a [`Service`] is built from, each dependency explicit.
pub struct ServiceParts {
    pub store: Store,
    pub contract: ContractHandle,
    pub metrics: Metrics,
    /// Base of the links in alerts and status pages.
    pub public_url: String,
    /// The domain of the Message-IDs of what keepword sends.
    pub message_id_domain: String,
    /// Acknowledgement templates (from `config/templates/`).
    pub templates: AckTemplates,
    /// Where time comes from (tests pass a manual clock).
    pub clock: Clock,
    /// Where committed changes are published (PostgreSQL: to every process).
    pub changes: Changes,
}

impl Service {
    /// A service with the built-in templates, the system clock and live
    /// changes in this process only.
    pub fn new(
        store: Store,
        contract: ContractHandle,
        metrics: Metrics,
        public_url: &str,
        message_id_domain: String,
    ) -> Service {
        Service::from_parts(ServiceParts {
            store,
            contract,
            metrics,
            public_url: public_url.to_string(),
            message_id_domain,
            templates: AckTemplates::load(None).expect("the built-in templates compile"),
            clock: Clock::system(),
            changes: Changes::local(),
        })
    }

    pub fn from_parts(parts: ServiceParts) -> Service {
        let ServiceParts {
            store,
            contract,
            metrics,
            public_url,
            message_id_domain,
            templates,
            clock,
            changes,
        } = parts;
        let core = Core {
            inner: Arc::new(CoreParts {
                store,
                contract,
                versions: Mutex::new(HashMap::new()),
                public_url: public_url.trim_end_matches('/').to_string(),
                message_id_domain,
                templates,
                clock,
            }),
        };
        let after = AfterCommit {
            metrics: metrics.clone(),
            outbox_wake: Arc::new(Notify::new()),
            plan: crate::scheduler::Plan::new(),
            changes,
        };
        let reads = Reads {
            core: core.clone(),
            metrics,
        };
        let deadlines = Deadlines {
            core: core.clone(),
            reads: reads.clone(),
            after: after.clone(),
            reports_sent: Default::default(),
        };
        let intake = Intake {
            core: core.clone(),
            deadlines: deadlines.clone(),
            after: after.clone(),
            event_writers: Arc::new(Mutex::new(events::EventWriters::NotStarted)),
            known_clients: Default::default(),
        };
        Service {
            core,
            intake,
            deadlines,
            reads,
            after,
        }
    }
}
