//! What the app runs per configured mailbox: the check that it feeds an
//! email channel of the contract, and the loop that polls it while this
//! process holds its lease.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{ImapMetrics, MailboxPoller};
use crate::config::{MailboxSettings, Settings};
use crate::contract::{ChannelKind, Contract};
use crate::oauth::TokenSource;
use crate::service::connections::Connections;
use crate::service::{EmailSink, Intake, MailboxContext};

/// What each configured mailbox feeds; a mailbox naming a channel the
/// contract lacks (or one that is not `email`) stops the start.
pub fn mailbox_contexts(
    settings: &Settings,
    contract: &Contract,
) -> anyhow::Result<Vec<(MailboxSettings, MailboxContext)>> {
    let mut out = Vec::new();
    for mb in &settings.mailboxes {
        let channel = contract.channel(&mb.channel).ok_or_else(|| {
            anyhow::anyhow!(
                "mailboxes `{}`: channel `{}` is not in the contract",
                mb.name,
                mb.channel
            )
        })?;
        if channel.kind != ChannelKind::Email {
            anyhow::bail!(
                "mailboxes `{}`: channel `{}` is a {} channel, not email",
                mb.name,
                mb.channel,
                channel.kind.as_str()
            );
        }
        let mut own = vec![settings.smtp.from.address()];
        own.extend(channel.address.clone());
        if mb.username.contains('@') {
            own.push(mb.username.clone());
        }
        out.push((
            mb.clone(),
            MailboxContext {
                name: mb.name.clone(),
                channel: mb.channel.clone(),
                team: mb.team_addresses.clone(),
                own,
            },
        ));
    }
    Ok(out)
}

/// Polls one mailbox while this process holds its lease (one poller per
/// mailbox across processes sharing a PostgreSQL).
pub async fn poll_mailbox(
    service: Intake,
    settings: MailboxSettings,
    context: MailboxContext,
    metrics: ImapMetrics,
    tokens: TokenSource,
    connections: Arc<Connections>,
    shutdown: CancellationToken,
) {
    let name = settings.name.clone();
    let lease = loop {
        let intake = service.clone();
        let n = name.clone();
        match tokio::task::spawn_blocking(move || intake.try_lease_mailbox(&n)).await {
            Ok(Ok(Some(lease))) => break lease,
            Ok(Ok(None)) => tracing::debug!(mailbox = %name, "another process polls this mailbox"),
            Ok(Err(e)) => tracing::warn!(mailbox = %name, error = %e, "cannot lease mailbox"),
            Err(e) => tracing::warn!(mailbox = %name, error = %e, "cannot lease mailbox"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {}
        }
    };
    tracing::info!(mailbox = %name, "polling mailbox");
    let clock = service.clock().clone();
    let sink = Arc::new(EmailSink {
        service,
        mailbox: context,
    });
    MailboxPoller::new(settings, sink, metrics)
        .with_clock(clock)
        .with_tokens(tokens)
        .with_health(connections)
        .run(shutdown)
        .await;
    drop(lease);
}
