//! Wiring: builds the running service from [`Settings`] — contract, store,
//! HTTP server — and runs it until the shutdown token is cancelled.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{MailboxSettings, Settings};
use crate::imap::{self, ImapMetrics};
use crate::metrics::Metrics;
use crate::notify::{self, OutboxWorker};
use crate::oauth::{OAuthMetrics, TokenSource};
use crate::outbox::templates::AckTemplates;
use crate::scheduler;
use crate::service::connections::Connections;
use crate::service::{
    Changes, ContractHandle, LoadedContract, MailboxContext, Service, ServiceParts, record_version,
};
use crate::store::{self, Store};
use crate::web::dashboard::Dashboard;
use crate::web::{AppState, Auth, head_as_get, headers, routes, track};

/// A built, listening service.
pub struct Application {
    port: u16,
    state: AppState,
    /// The service's roles; the web holds the ones it needs in `state`.
    service: Service,
    server: actix_web::dev::Server,
    settings: Settings,
    worker: OutboxWorker,
    imap_metrics: ImapMetrics,
    mailboxes: Vec<(MailboxSettings, MailboxContext)>,
    tokens: TokenSource,
    connections: Arc<Connections>,
}

impl Application {
    /// Loads the contract, opens the database (running migrations) and binds.
    /// `bind` with port 0 picks a free port (tests).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// [`Application::build`] reading time from `clock` (tests move it).
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Application> {
        // Before the database: a missing key is a config mistake, found
        // before anything is opened.
        let grants = crate::oauth::store::GrantStore::for_settings(&settings)
            .context("opening the store of OAuth grants (`secret_key_file`)")?;
        let loaded = LoadedContract::load(settings.contract_path()).map_err(|e| {
            anyhow::anyhow!(
                "contract {} is invalid:\n{e}",
                settings.contract_path().display()
            )
        })?;
        for warning in loaded.warnings() {
            tracing::warn!("{warning}");
        }
        let url = settings.database_url.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&url))
            .await
            .context("opening the database")??;
        let metrics = Metrics::new();
        {
            let (store, clock) = (store.clone(), clock.clone());
            let loaded = loaded.clone();
            tokio::task::spawn_blocking(move || record_version(&store, &loaded, clock.now()))
                .await??;
        }
        {
            let (s, now) = (store.clone(), clock.now());
            let released =
                tokio::task::spawn_blocking(move || s.release_stale_leases(now)).await??;
            if released > 0 {
                tracing::info!(
                    rows = released,
                    "outbox rows left by a previous run are due again"
                );
            }
        }
        let tokens = TokenSource::with_grants(&settings.oauth, OAuthMetrics::new(), grants)
            .context("setting up the OAuth credentials")?;
        for c in tokens.metrics().collectors() {
            metrics.register(c);
        }
        let connections = Arc::new(Connections::new(&settings, tokens.clone()));
        let mut senders =
            notify::Senders::from_settings(&settings).context("setting up the outbox worker")?;
        senders.smtp = Some(
            notify::SmtpSender::with_tokens(&settings.smtp, Some(tokens.clone()))
                .context("setting up the outbox worker")?,
        );
        let worker = OutboxWorker::new(store.clone(), senders, notify::WorkerConfig::default())
            .with_clock(clock.clone());
        for c in worker.collectors() {
            metrics.register(c);
        }
        tracing::info!(
            contract.version = %loaded.version,
            contract.path = %loaded.path.display(),
            database = %store::redact_url(&settings.database_url),
            "contract loaded"
        );
        let contract = ContractHandle::new(loaded);
        let templates_dir = settings
            .templates
            .exists()
            .then_some(settings.templates.as_path());
        let templates = AckTemplates::load(templates_dir).context("acknowledgement templates")?;
        let service = Service::from_parts(ServiceParts {
            store: store.clone(),
            contract: contract.clone(),
            metrics: metrics.clone(),
            public_url: settings.public_url.to_string(),
            message_id_domain: settings.smtp.from.domain(),
            templates,
            clock,
            changes: Changes::for_store(&store),
        });
        let state = AppState {
            sessions: crate::service::sessions::Sessions::new(
                store.clone(),
                service.core.clock().clone(),
            ),
            metrics,
            contract,
            intake: service.intake.clone(),
            deadlines: service.deadlines.clone(),
            reads: service.reads.clone(),
            changes: service.after.changes().clone(),
            auth: Arc::new(Auth {
                api_tokens: settings.api_tokens.clone(),
                github_secret: settings.github.webhook_secret.clone(),
                github_channel: settings.github.channel.clone(),
                jira: settings.jira.clone(),
                linear: settings.linear.clone(),
                basecamp: settings.basecamp.clone(),
                slack: settings.slack.clone(),
                metrics_token: settings.metrics_token.clone(),
            }),
            dashboard: Arc::new(
                Dashboard::new(
                    settings.dashboard_password.clone(),
                    settings.wall_tokens.clone(),
                    &settings.public_url,
                )
                .with_connections(connections.clone())
                .with_sign_in_pages(
                    &settings
                        .oauth
                        .values()
                        .filter(|o| o.grant == crate::oauth::Grant::Delegated)
                        .filter_map(|o| o.authorize_url())
                        .collect::<Vec<_>>(),
                ),
            ),
            stopping: CancellationToken::new(),
        };
        let imap_metrics = ImapMetrics::new();
        for c in imap_metrics.collectors() {
            state.metrics.register(c);
        }
        let mailboxes = imap::mailbox_contexts(&settings, &state.contract.current().contract)?;
        if let Some(ops) = &settings.ops_contact {
            let current = state.contract.current();
            if current.contract.contact(ops).is_none() {
                let known: Vec<&str> = current
                    .contract
                    .contacts()
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect();
                anyhow::bail!(
                    "config key `ops_contact`: `{ops}` is not a contact of the contract \
                     (its [contacts]: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                );
            }
        }
        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .wrap(from_fn(head_as_get))
                .wrap(from_fn(track))
                .wrap(from_fn(headers))
                .configure(routes)
        })
        // Signals are main's job (one shutdown path for every task).
        .disable_signals()
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        Ok(Application {
            port,
            state,
            service,
            server,
            settings,
            worker,
            imap_metrics,
            mailboxes,
            tokens,
            connections,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    /// The one stop signal of this process: cancelling it (main does, on
    /// SIGTERM or SIGINT) makes [`Self::run_until_stopped`] stop accepting,
    /// let requests in flight finish, and return; every task and live
    /// response watches it.
    pub fn shutdown(&self) -> CancellationToken {
        self.state.stopping.clone()
    }

    /// Serves until [`Self::shutdown`] is cancelled. `reload` (SIGHUP)
    /// re-reads the contract.
    pub async fn run_until_stopped(
        self,
        reload: Option<tokio::sync::mpsc::Receiver<()>>,
    ) -> anyhow::Result<()> {
        let shutdown = self.state.stopping.clone();
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        let scheduler = tokio::spawn(scheduler::run(
            self.service.deadlines.clone(),
            self.service.after.plan().clone(),
            shutdown.clone(),
        ));
        let retention = self.settings.retention.bodies.map(|days| {
            tokio::spawn(crate::retention::run(
                self.service.deadlines.clone(),
                days,
                shutdown.clone(),
            ))
        });
        let tally = tokio::spawn(crate::tally::run(
            self.service.deadlines.clone(),
            shutdown.clone(),
        ));
        let outbox = tokio::spawn(
            self.worker
                .run(shutdown.clone(), self.service.after.outbox_wake()),
        );
        let pollers: Vec<_> = self
            .mailboxes
            .into_iter()
            .map(|(settings, context)| {
                tokio::spawn(imap::poll_mailbox(
                    self.service.intake.clone(),
                    settings,
                    context,
                    self.imap_metrics.clone(),
                    self.tokens.clone(),
                    self.connections.clone(),
                    shutdown.clone(),
                ))
            })
            .collect();
        let renewal = {
            let (tokens, stop) = (self.tokens.clone(), shutdown.clone());
            tokio::spawn(async move { tokens.keep_fresh(stop).await })
        };
        let health = tokio::spawn(watch_health(
            self.service.deadlines.clone(),
            self.connections.clone(),
            self.settings.ops_contact.clone(),
            shutdown.clone(),
        ));
        if let Some(mut reload) = reload {
            let service = self.service.deadlines.clone();
            let path = self.settings.contract.clone();
            let token = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = token.cancelled() => break,
                        got = reload.recv() => {
                            if got.is_none() { break; }
                            let (service, path) = (service.clone(), path.clone());
                            if let Err(e) = tokio::task::spawn_blocking(move || service.reload_contract(&path)).await {
                                tracing::error!(error = %e, "contract reload failed");
                            }
                        }
                    }
                }
            });
        }
        shutdown.cancelled().await;
        tracing::info!("shutting down: draining HTTP requests");
        handle.stop(true).await;
        server.await??;
        // Both finish the item in hand before returning.
        scheduler.await?;
        if let Some(r) = retention {
            r.await?;
        }
        tally.await?;
        outbox.await?;
        for p in pollers {
            p.await?;
        }
        health.await?;
        renewal.await?;
        // Events accepted for clients that went away are stored before the
        // process ends, and no writer is inside the database driver at exit.
        let intake = self.service.intake.clone();
        tokio::task::spawn_blocking(move || intake.stop_event_writers()).await?;
        let changes = self.service.after.changes().clone();
        tokio::task::spawn_blocking(move || changes.stop()).await?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// How often the health watch looks at the Connections snapshot.
const HEALTH_TICK: std::time::Duration = std::time::Duration::from_secs(15);

/// Tells the `ops_contact` when a mailbox needs a person to sign in again
/// or has not been read for ten minutes, and when it recovers (see
/// `service::health`). Without an `ops_contact` it only logs.
async fn watch_health(
    service: crate::service::Deadlines,
    connections: Arc<Connections>,
    ops_contact: Option<String>,
    shutdown: CancellationToken,
) {
    let mut watch = crate::service::health::HealthWatch::new(service.now());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(HEALTH_TICK) => {}
            _ = service.clock().moved() => {}
        }
        let (mailboxes, smtp) = connections.snapshot();
        let events = watch.observe(&mailboxes, &smtp, service.now());
        if events.is_empty() {
            continue;
        }
        let Some(contact) = ops_contact.clone() else {
            for e in &events {
                tracing::warn!(problem = ?e.problem, about = %e.about, recovered = e.recovered,
                    "mail health changed (no ops_contact to tell)");
            }
            continue;
        };
        let (svc, told) = (service.clone(), events.clone());
        let failed = match tokio::task::spawn_blocking(move || svc.tell_ops(&contact, &told)).await
        {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(e) = failed {
            // Told on the next look instead.
            tracing::error!(error = %e, "cannot enqueue health notices");
            watch.forget(&events);
        }
    }
}
