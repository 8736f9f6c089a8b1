//! The real application in-process, zero2prod style: built from settings on
//! port 0 over a fresh database, served until dropped or stopped.

use std::path::PathBuf;

use keepword::app::Application;
use keepword::clock::Clock;
use keepword::config::{Secret, Settings, Tls};
use tokio_util::sync::CancellationToken;

/// The bearer token every spawned app accepts.
pub const TOKEN: &str = "test-token";

/// Which database a test runs on; both-backend tests run once per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database of `backend`, kept alive by the returned guard.
pub enum FreshDatabase {
    Sqlite(tempfile::TempDir, String),
    Postgres(super::FreshPostgres),
}

impl FreshDatabase {
    pub fn new(backend: Backend) -> FreshDatabase {
        match backend {
            Backend::Sqlite => {
                let (dir, url) = super::fresh_sqlite();
                FreshDatabase::Sqlite(dir, url)
            }
            Backend::Postgres => FreshDatabase::Postgres(super::FreshPostgres::new()),
        }
    }

    pub fn url(&self) -> &str {
        match self {
            FreshDatabase::Sqlite(_, url) => url,
            FreshDatabase::Postgres(db) => &db.url,
        }
    }
}

/// The real app, served in-process: the one way tests start it.
pub struct Served {
    pub base: String,
    pub port: u16,
    /// What the handlers see (contract in force, metrics, service).
    pub state: keepword::web::AppState,
    pub token: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Builds the app from `settings` on a free loopback port (whatever `bind`
/// says) with time from `clock`, and serves it until `token` is cancelled.
pub async fn serve(mut settings: Settings, clock: Clock) -> Served {
    settings.bind = "127.0.0.1:0".parse().unwrap();
    let app = Application::build_with_clock(settings, clock)
        .await
        .expect("app builds");
    let port = app.port();
    let state = app.state().clone();
    let token = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(token.clone(), None));
    Served {
        base: format!("http://127.0.0.1:{port}"),
        port,
        state,
        token,
        task,
    }
}

impl Served {
    /// Stops it the way SIGTERM does and waits (20 s at most) for it.
    pub async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(20), self.task)
            .await
            .expect("the app stops within 20 s")
            .unwrap()
            .unwrap();
    }
}

/// A running app over its own fresh database, and what a test needs to
/// talk to it.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub clock: Clock,
    served: Served,
    _db: FreshDatabase,
}

/// Builds and serves the real app on port 0 with `contract`, a fresh
/// database of `backend`, SMTP on `smtp_port` and time from `clock`.
pub async fn spawn_app(
    backend: Backend,
    contract: PathBuf,
    smtp_port: u16,
    clock: Clock,
) -> TestApp {
    let db = FreshDatabase::new(backend);
    let mut settings = Settings {
        database_url: db.url().to_string(),
        contract,
        api_tokens: vec![Secret::new(TOKEN)],
        ..Default::default()
    };
    settings.smtp.port = smtp_port;
    settings.smtp.tls = Tls::None;
    let served = serve(settings, clock.clone()).await;
    TestApp {
        base: served.base.clone(),
        http: reqwest::Client::new(),
        clock,
        served,
        _db: db,
    }
}

impl TestApp {
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or_default())
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or_default())
    }

    /// Stops the app the way SIGTERM does and waits for it.
    pub async fn stop(self) {
        self.served.stop().await;
    }
}
