//! One scheduler step: the conversations whose check time has come.

use chrono::{DateTime, Utc};

use super::*;

/// What one scheduler step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DueReport {
    pub conversations: usize,
    pub fired: usize,
    /// The next instant any conversation must be looked at.
    pub next_check: Option<DateTime<Utc>>,
}

impl Deadlines {
    /// One scheduler step: every conversation whose check time has come is
    /// re-evaluated at `now`; what fell due fires.
    pub fn due_work(&self, now: DateTime<Utc>) -> Result<DueReport, ServiceError> {
        let (count, fired, effects) = self.store().transaction(|conn| {
            let due = store::claim_due_conversations(conn, now, DUE_BATCH)?;
            let mut all = Effects::default();
            let mut fired = 0;
            // The batch's events, timers and fired steps in one query each,
            // not three round trips per conversation; and only the engine's
            // columns, never a conversation's mail.
            let convs: Vec<&ConversationRow> = due.iter().collect();
            for e in self.refresh_many(conn, &convs, HashMap::new(), now)? {
                fired += e.escalations.len() + e.breaches.len();
                all.merge(e);
            }
            // Digests whose time has come, in the same transaction as the
            // warnings they collect (README, "Urgency and focus").
            let digests = self.assemble_digests(conn, now)?;
            all.notified |= digests.digests > 0;
            Ok::<_, ServiceError>((due.len(), fired, all))
        })?;
        self.after.apply(effects);
        let next_check = self.store().with(|c| {
            let conversation = store::earliest_check(c)?;
            let digest = store::outbox::earliest_digest(c)?;
            Ok::<_, StoreError>(match (conversation, digest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            })
        })?;
        // The client's monthly report and the team's weekly digest, once
        // every deadline due by now is recorded (here or by another
        // process), so they count what is late. A failure here must not
        // hold up the deadlines: it is logged and asked again next step.
        if next_check.is_none_or(|t| t > now)
            && let Err(e) = self.reports_due(now)
        {
            tracing::error!(error = %e, "reports could not be prepared; retrying");
        }
        let next_check = match (next_check, self.next_report(now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(DueReport {
            conversations: count,
            fired,
            next_check,
        })
    }
}
