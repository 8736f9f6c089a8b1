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
    pub http: reqwest::Client,
    /// The first of the app's API tokens, sent by [`Served::get`] and
    /// [`Served::post`].
    pub bearer: String,
    /// What the handlers see (contract in force, metrics, service).
    pub state: keepword::web::AppState,
    /// Every role of the service (the web holds only some).
    pub service: keepword::service::Service,
    pub token: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Builds the app from `settings` on a free loopback port (whatever `bind`
/// says) with time from `clock`, and serves it until `token` is cancelled.
pub async fn serve(mut settings: Settings, clock: Clock) -> Served {
    settings.bind = "127.0.0.1:0".parse().unwrap();
    serve_as_configured(settings, clock).await
}

/// [`serve`] on the address `settings.bind` names: for flows whose
/// redirects need `public_url` right before the app starts (an OAuth
/// sign-in in a browser comes back to it).
#[allow(dead_code)]
pub async fn serve_as_configured(settings: Settings, clock: Clock) -> Served {
    let bearer = settings
        .api_tokens
        .first()
        .map(|t| t.expose().to_string())
        .unwrap_or_default();
    let app = Application::build_with_clock(settings, clock)
        .await
        .expect("app builds");
    let port = app.port();
    let state = app.state().clone();
    let service = app.service().clone();
    let token = app.shutdown();
    let task = tokio::spawn(app.run_until_stopped(None));
    Served {
        base: format!("http://127.0.0.1:{port}"),
        port,
        http: reqwest::Client::new(),
        bearer,
        state,
        service,
        token,
        task,
    }
}

impl Served {
    /// POSTs JSON to `path` with the bearer token: (status, JSON body or null).
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.bearer)
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or_default())
    }

    /// GETs `path` with the bearer token: (status, JSON body or null).
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.bearer)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or_default())
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

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

/// A running app over its own fresh database; everything [`Served`] offers.
pub struct TestApp {
    pub clock: Clock,
    served: Served,
    _db: FreshDatabase,
}

impl std::ops::Deref for TestApp {
    type Target = Served;
    fn deref(&self) -> &Served {
        &self.served
    }
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
        clock,
        served,
        _db: db,
    }
}

impl TestApp {
    /// Stops the app the way SIGTERM does and waits for it.
    pub async fn stop(self) {
        self.served.stop().await;
    }
}

/// The dashboard password of [`spawn_dashboard`] apps.
pub const PASSWORD: &str = "correct horse battery staple";
/// Their wallboard token.
pub const WALL_TOKEN: &str = "wall-0123456789abcdef";

/// The app with the shipped contract, a dashboard password and a wallboard
/// token, over a fresh database of `backend` (or `url`, to share one).
pub async fn spawn_dashboard(backend: Backend, clock: Clock) -> TestApp {
    let db = FreshDatabase::new(backend);
    let served = serve_dashboard(db.url(), clock.clone()).await;
    TestApp {
        clock,
        served,
        _db: db,
    }
}

/// [`spawn_dashboard`]'s app on the database at `url` (another process of
/// the same deployment, when two share one PostgreSQL).
pub async fn serve_dashboard(url: &str, clock: Clock) -> Served {
    serve(dashboard_settings(url), clock).await
}

/// [`serve_dashboard`]'s settings, for a test that changes one of them.
pub fn dashboard_settings(url: &str) -> Settings {
    Settings {
        database_url: url.to_string(),
        contract: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml"),
        api_tokens: vec![Secret::new(TOKEN)],
        dashboard_password: Secret::new(PASSWORD),
        wall_tokens: vec![Secret::new(WALL_TOKEN)],
        ..Default::default()
    }
}

impl Served {
    /// A client that keeps cookies and does not follow redirects.
    pub fn browser_like() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// Signs in to the dashboard: the session cookie (`name=value`).
    pub async fn sign_in(&self) -> String {
        let form = self.login_form().await;
        let r = self.post_login(&form, PASSWORD, "/").await;
        assert_eq!(r.status().as_u16(), 303, "sign-in redirects");
        cookie_of(&r, "keepword_session").expect("a session cookie")
    }

    /// A fresh sign-in form: its cookie (`name=value`) and CSRF token.
    pub async fn login_form(&self) -> LoginForm {
        let form = Self::browser_like()
            .get(format!("{}/login", self.base))
            .send()
            .await
            .unwrap();
        let cookie = cookie_of(&form, "keepword_login").expect("the login form sets its cookie");
        let html = form.text().await.unwrap();
        let csrf = hidden(&html, "csrf").expect("the login form carries a CSRF token");
        LoginForm { cookie, csrf }
    }

    /// Submits `form` with `password` and `next`; redirects not followed.
    pub async fn post_login(
        &self,
        form: &LoginForm,
        password: &str,
        next: &str,
    ) -> reqwest::Response {
        Self::browser_like()
            .post(format!("{}/login", self.base))
            .header("cookie", &form.cookie)
            .form(&[
                ("password", password),
                ("csrf", form.csrf.as_str()),
                ("next", next),
            ])
            .send()
            .await
            .unwrap()
    }

    /// GETs a dashboard page with `cookie`: (status, body).
    pub async fn page(&self, cookie: &str, path: &str) -> (u16, String) {
        let r = Self::browser_like()
            .get(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// The sign-in form as a browser holds it.
#[derive(Debug, Clone)]
pub struct LoginForm {
    /// The form's cookie, `name=value`.
    pub cookie: String,
    pub csrf: String,
}

/// `name=value` of the cookie `name` a response sets.
pub fn cookie_of(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_string())
}

/// The value of the hidden input `name` in `html`.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_string())
}

/// A contract of one urgent request type (first response in 1 minute, on
/// an always-open calendar) whose escalation at half-time notifies the
/// contact `oncall` by the webhook at `hook`.
pub fn one_alert_contract(dir: &std::path::Path, hook: &str) -> PathBuf {
    let text = format!(
        r#"[contract]
name = "One alert"
effective = "2026-01-01"
timezone = "Europe/Berlin"

[calendars.always]
always = true

[channels.tickets]
kind = "ticket"

[[request_types]]
id = "urgent"
name = "Urgent"
definition = "Production is down."
default = true
channels = ["tickets"]
calendar = "always"
first_response = "1m"
escalation = [{{ at = "50%", notify = ["oncall"] }}]

[contacts]
oncall = {{ webhook = "{hook}" }}

[[clients]]
id = "acme"
name = "ACME Corp"
domains = ["acme.com"]
"#
    );
    let path = dir.join("contract.toml");
    std::fs::write(&path, text).unwrap();
    path
}
