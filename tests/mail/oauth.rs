//! OAuth 2.0 logins against real servers on loopback: Dovecot with passdb
//! oauth2 (local JWT validation) for IMAP and for its submission service,
//! which relays to the aiosmtpd test server; npm `oauth2-mock-server` as the
//! authorization server, signing real RS256 JWTs.

use crate::common;
use crate::support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keepword::clock::Clock;
use keepword::config::{MailboxSettings, Secret, Settings, SmtpSettings, Tls};
use keepword::imap::{
    FetchedMail, FolderCheckpoint, FolderKind, ImapError, ImapMetrics, MailSink, MailboxPoller,
    PollerTiming,
};
use keepword::notify::SmtpSender;
use keepword::notify::smtp::EmailParts;
use keepword::oauth::{
    AuthMethod, Grant, OAuthMetrics, OAuthSettings, Provider, Sasl, TokenSource,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use support::dovecot::Dovecot;
use support::oauth_server::OAuthServer;
use support::{SmtpServer, eventually, eventually_async};

const USER: &str = "support@test.local";
const PASS: &str = "supportpw";
const MAILBOX: &str = "support";
const CREDENTIAL: &str = "test";

/// The authorization server, Dovecot trusting it, and the SMTP server
/// Dovecot's submission service relays to.
struct Servers {
    oauth: OAuthServer,
    dovecot: Dovecot,
    smtp: SmtpServer,
}

fn servers() -> Servers {
    let smtp = SmtpServer::start();
    let mut oauth = OAuthServer::start();
    oauth.command(json!({"email": USER}));
    let dovecot = Dovecot::start_oauth(&[(USER, PASS)], &oauth.issuer, smtp.port);
    Servers {
        oauth,
        dovecot,
        smtp,
    }
}

fn credentials(oauth: &OAuthServer) -> BTreeMap<String, OAuthSettings> {
    BTreeMap::from([(
        CREDENTIAL.to_string(),
        OAuthSettings {
            provider: Provider::Generic,
            grant: Grant::ClientCredentials,
            tenant: None,
            client_id: "keepword".into(),
            client_secret: Secret::new("client-secret"),
            client_secret_file: None,
            service_account_file: None,
            token_url: Some(oauth.token_url()),
            authorize_url: None,
            device_url: None,
            scope: Some("mail".into()),
        },
    )])
}

fn tokens(credentials: &BTreeMap<String, OAuthSettings>) -> TokenSource {
    TokenSource::new(credentials, OAuthMetrics::new()).unwrap()
}

/// A mailbox that can only log in with a token: it has no password. No
/// sent folder, so one connection (one login) per mailbox.
fn mailbox(port: u16, sasl: Sasl) -> MailboxSettings {
    MailboxSettings {
        password: Secret::default(),
        sent: None,
        auth: AuthMethod::Oauth2,
        oauth: Some(CREDENTIAL.into()),
        sasl: Some(sasl),
        ..crate::email_e2e::mailbox(port)
    }
}

fn smtp_settings(port: u16) -> SmtpSettings {
    SmtpSettings {
        username: USER.into(),
        from: format!("Northwind Support <{USER}>").parse().unwrap(),
        auth: AuthMethod::Oauth2,
        oauth: Some(CREDENTIAL.into()),
        ..crate::tls::smtp("127.0.0.1", port, Tls::None, None)
    }
}

fn timing() -> PollerTiming {
    PollerTiming {
        // Long enough that mail seen within a test's wait came through IDLE.
        poll_interval: Duration::from_secs(60),
        command_timeout: Duration::from_secs(10),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..PollerTiming::default()
    }
}

fn mail(id: &str) -> Vec<u8> {
    format!(
        "From: Jane <jane@acme.com>\r\nTo: support@example.com\r\nSubject: Footer\r\nMessage-ID: <{id}>\r\n\
         Date: {}\r\n\r\nPlease change the footer.\r\n",
        chrono::Utc::now().to_rfc2822()
    )
    .into_bytes()
}

/// Keeps the Message-IDs it is handed, with checkpoints like the real sink.
#[derive(Default)]
struct Inbox {
    ids: Mutex<Vec<String>>,
    checkpoints: Mutex<HashMap<String, FolderCheckpoint>>,
}

impl Inbox {
    fn has(&self, id: &str) -> bool {
        self.ids.lock().unwrap().iter().any(|m| m.contains(id))
    }
}

impl MailSink for Inbox {
    fn checkpoint(&self, _: &str, folder: &str) -> Result<Option<FolderCheckpoint>, String> {
        Ok(self.checkpoints.lock().unwrap().get(folder).copied())
    }

    fn ingest(
        &self,
        _: &str,
        folder: &str,
        _: FolderKind,
        uidvalidity: u32,
        batch: Vec<FetchedMail>,
    ) -> Result<(), String> {
        let last_uid = batch.iter().map(|m| m.uid).max().unwrap_or_default();
        for m in batch {
            let text = String::from_utf8_lossy(&m.raw).into_owned();
            let id = text
                .lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .unwrap_or_default()
                .to_string();
            self.ids.lock().unwrap().push(id);
        }
        self.checkpoints.lock().unwrap().insert(
            folder.to_string(),
            FolderCheckpoint {
                uidvalidity,
                last_uid,
            },
        );
        Ok(())
    }
}

/// `oauth_grant_valid` of the test's credential and mailbox.
fn grant_valid(tokens: &TokenSource) -> i64 {
    tokens
        .metrics()
        .grant_valid
        .with_label_values(&[CREDENTIAL, USER])
        .get()
}

fn logins(dovecot: &Dovecot, method: &str) -> usize {
    dovecot
        .log()
        .lines()
        .filter(|l| {
            l.contains("imap-login: Info: Login:") && l.contains(&format!("method={method}"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xoauth2_and_oauthbearer_log_in_and_idle_brings_new_mail() {
    let s = servers();
    let creds = credentials(&s.oauth);
    let tokens = tokens(&creds);
    for (n, sasl) in [Sasl::Xoauth2, Sasl::Oauthbearer].into_iter().enumerate() {
        let inbox = Arc::new(Inbox::default());
        let metrics = ImapMetrics::new();
        let poller = MailboxPoller::new(
            mailbox(s.dovecot.port, sasl),
            inbox.clone(),
            metrics.clone(),
        )
        .with_tokens(tokens.clone())
        .with_timing(timing());
        let stop = CancellationToken::new();
        let task = tokio::spawn(poller.run(stop.clone()));
        let idling = metrics.idling.with_label_values(&[MAILBOX, "INBOX"]);
        assert!(
            eventually(Duration::from_secs(10), || idling.get() == 1).await,
            "{sasl:?}: no IDLE after an OAuth login:\n{}",
            s.dovecot.log()
        );
        assert_eq!(metrics.up.with_label_values(&[MAILBOX]).get(), 1);
        let id = format!("idle-{n}@acme.com");
        s.dovecot.append(USER, PASS, "INBOX", &mail(&id));
        assert!(
            eventually(Duration::from_secs(5), || inbox.has(&id)).await,
            "{sasl:?}: the new mail was not read"
        );
        stop.cancel();
        task.await.unwrap();
        assert_eq!(logins(&s.dovecot, sasl.as_str()), 1, "{}", s.dovecot.log());
    }
    // One token served both mechanisms: it stayed fresh in between.
    assert_eq!(s.oauth.token_requests().len(), 1);
    let request = &s.oauth.token_requests()[0];
    assert_eq!(request["grant_type"], "client_credentials");
    assert_eq!(request["client_id"], "keepword");
    assert_eq!(request["client_secret"], "client-secret");
    assert_eq!(request["scope"], "mail");
    assert_eq!(grant_valid(&tokens), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_answered_dropped_and_one_fresh_token_tried() {
    let mut s = servers();
    let creds = credentials(&s.oauth);
    for sasl in [Sasl::Xoauth2, Sasl::Oauthbearer] {
        // A token for another user: Dovecot refuses it after the initial
        // response and waits for the client to end the exchange.
        let before = s.oauth.token_requests().len();
        s.oauth
            .command(json!({"next_emails": ["intruder@test.local"]}));
        let inbox = Arc::new(Inbox::default());
        let mut poller = MailboxPoller::new(
            mailbox(s.dovecot.port, sasl),
            inbox.clone(),
            ImapMetrics::new(),
        )
        .with_tokens(tokens(&creds))
        .with_timing(timing());
        poller.poll_once().await.unwrap_or_else(|e| {
            panic!(
                "{sasl:?}: the fresh token should log in: {e}\n{}",
                s.dovecot.log()
            )
        });
        assert_eq!(s.oauth.token_requests().len() - before, 2, "{sasl:?}");

        // Refused twice: an error, quickly, after exactly two tokens.
        let before = s.oauth.token_requests().len();
        s.oauth
            .command(json!({"next_emails": ["intruder@test.local", "intruder@test.local"]}));
        let mut poller =
            MailboxPoller::new(mailbox(s.dovecot.port, sasl), inbox, ImapMetrics::new())
                .with_tokens(tokens(&creds))
                .with_timing(timing());
        let started = Instant::now();
        let e = poller.poll_once().await.unwrap_err();
        assert!(
            matches!(&e, ImapError::Login { reason, .. } if reason.contains("AUTHENTICATIONFAILED")),
            "{sasl:?}: {e}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{sasl:?}: {:?}\n{}",
            started.elapsed(),
            s.dovecot.log()
        );
        assert_eq!(s.oauth.token_requests().len() - before, 2, "{sasl:?}");
    }

    // SMTP: lettre meets the refusal as a challenge XOAUTH2 does not expect.
    let before = s.oauth.token_requests().len();
    s.oauth
        .command(json!({"next_emails": ["intruder@test.local"]}));
    let port = s.dovecot.submission_port.unwrap();
    let sender = SmtpSender::with_tokens(&smtp_settings(port), Some(tokens(&creds))).unwrap();
    let to = vec!["jane@acme.com".to_string()];
    sender
        .send(EmailParts {
            to: &to,
            subject: "Sent after a refused token",
            text: "hello",
            html: None,
            headers: &[],
            message_id: "<refused-then-sent@test.local>",
        })
        .await
        .unwrap();
    assert_eq!(s.oauth.token_requests().len() - before, 2);
    assert!(
        eventually(Duration::from_secs(5), || s.smtp.received().len() == 1).await,
        "nothing reached the SMTP server behind submission"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_mail_read_over_oauth_imap_is_acknowledged_over_smtp_xoauth2() {
    let s = servers();
    let (_dir, url) = common::fresh_sqlite();
    let served = common::app::serve(app_settings(&s, url), Clock::system()).await;
    s.dovecot
        .append(USER, PASS, "INBOX", &mail("e2e-1@acme.com"));
    assert!(
        eventually(Duration::from_secs(20), || !s.smtp.received().is_empty()).await,
        "no acknowledgement arrived:\n{}",
        s.dovecot.log()
    );
    let ack = &s.smtp.received()[0];
    assert_eq!(ack.rcpt_tos, ["jane@acme.com"]);
    assert_eq!(
        ack.header("In-Reply-To").as_deref(),
        Some("<e2e-1@acme.com>")
    );
    assert!(
        s.dovecot
            .log()
            .contains("submission-login: Info: Login: user=<support@test.local>, method=XOAUTH2"),
        "the acknowledgement did not go through an XOAUTH2 login:\n{}",
        s.dovecot.log()
    );
    let metrics = served.metrics().await;
    for line in [
        "keepword_imap_up{mailbox=\"support\"} 1",
        "keepword_oauth_grant_valid{account=\"support@test.local\",credential=\"test\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    let cookie = served.sign_in().await;
    let (status, html) = served.page(&cookie, "/connections").await;
    assert_eq!(status, 200);
    for needle in [
        "support@test.local at 127.0.0.1:",
        "OAuth 2.0 (XOAUTH2, credential test)",
        "Connected, IDLE (new mail is pushed)",
    ] {
        assert!(html.contains(needle), "{needle} missing from\n{html}");
    }
    assert!(!html.contains("no token"), "{html}");
    assert!(!html.contains("Needs sign-in"), "{html}");
    served.stop().await;
}

/// The app reading the test mailbox and sending through submission, both
/// with tokens of the test credential.
fn app_settings(s: &Servers, database_url: String) -> Settings {
    Settings {
        database_url,
        contract: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml"),
        api_tokens: vec![Secret::new(common::app::TOKEN)],
        dashboard_password: Secret::new(common::app::PASSWORD),
        mailboxes: vec![mailbox(s.dovecot.port, Sasl::Xoauth2)],
        oauth: credentials(&s.oauth),
        smtp: smtp_settings(s.dovecot.submission_port.unwrap()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connections_page_says_what_failed_and_how_to_fix_it() {
    let mut s = servers();
    // Every token names another user: Dovecot refuses them all, as
    // Microsoft does when the service principal may not open the mailbox.
    s.oauth.command(json!({"email": "intruder@test.local"}));
    let (_dir, url) = common::fresh_sqlite();
    let served = common::app::serve(app_settings(&s, url), Clock::system()).await;
    let cookie = served.sign_in().await;
    let refused = || async {
        let (_, html) = served.page(&cookie, "/connections").await;
        html.contains("AUTHENTICATIONFAILED").then_some(html)
    };
    let mut html = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while html.is_none() && Instant::now() < deadline {
        html = refused().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let html = html.expect("the refused login shows on the Connections page");
    assert!(html.contains("Not connected"), "{html}");
    assert!(
        html.contains("the service principal lacks access to the mailbox"),
        "{html}"
    );
    assert!(html.contains("Add-MailboxPermission"), "{html}");

    // The grant itself is refused: needs sign-in, on every page.
    s.oauth.command(json!({"fail": "invalid_grant"}));
    assert!(
        eventually_async(Duration::from_secs(20), || async {
            served.metrics().await.contains(
                "keepword_oauth_grant_valid{account=\"support@test.local\",credential=\"test\"} 0",
            )
        })
        .await
    );
    let (_, html) = served.page(&cookie, "/connections").await;
    assert!(html.contains("Needs sign-in"), "{html}");
    assert!(html.contains("invalid_grant"), "{html}");
    for path in ["/", "/compliance", "/connections"] {
        let (status, html) = served.page(&cookie, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            html.contains("Mail is not being read for support@test.local"),
            "{path} has no sign-in banner:\n{html}"
        );
    }
    assert!(
        served
            .metrics()
            .await
            .contains("keepword_imap_up{mailbox=\"support\"} 0")
    );
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_token_runs_out_reconnects_with_a_fresh_token() {
    let mut s = servers();
    s.oauth.command(json!({"ttl": 3}));
    let creds = credentials(&s.oauth);
    let inbox = Arc::new(Inbox::default());
    let metrics = ImapMetrics::new();
    let poller = MailboxPoller::new(
        mailbox(s.dovecot.port, Sasl::Xoauth2),
        inbox.clone(),
        metrics,
    )
    .with_tokens(tokens(&creds))
    .with_timing(timing());
    let stop = CancellationToken::new();
    let task = tokio::spawn(poller.run(stop.clone()));
    assert!(
        eventually(Duration::from_secs(10), || logins(&s.dovecot, "XOAUTH2")
            == 1)
        .await
    );
    // Past the first token's expiry: Dovecot would refuse it now.
    tokio::time::sleep(Duration::from_secs(4)).await;
    s.dovecot
        .append(USER, PASS, "INBOX", &mail("after-expiry@acme.com"));
    assert!(
        eventually(Duration::from_secs(5), || inbox
            .has("after-expiry@acme.com"))
        .await,
        "mail after the token ran out was not read:\n{}",
        s.dovecot.log()
    );
    assert!(
        logins(&s.dovecot, "XOAUTH2") >= 2,
        "no new login:\n{}",
        s.dovecot.log()
    );
    assert!(s.oauth.token_requests().len() >= 2);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_marks_the_account_and_the_poller_backs_off() {
    let mut s = servers();
    s.oauth.command(json!({"fail": "invalid_grant"}));
    let creds = credentials(&s.oauth);
    let tokens = tokens(&creds);
    let inbox = Arc::new(Inbox::default());
    let metrics = ImapMetrics::new();
    let poller = MailboxPoller::new(
        mailbox(s.dovecot.port, Sasl::Xoauth2),
        inbox.clone(),
        metrics.clone(),
    )
    .with_tokens(tokens.clone())
    .with_timing(PollerTiming {
        needs_sign_in_retry: Duration::from_secs(3),
        ..timing()
    });
    let stop = CancellationToken::new();
    let task = tokio::spawn(poller.run(stop.clone()));
    assert!(
        eventually(Duration::from_secs(5), || tokens
            .status(CREDENTIAL, USER)
            .needs_sign_in)
        .await
    );
    // Other errors retry after 50 ms here; this one waits its 3 s.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.oauth.token_requests().len(), 1);
    assert_eq!(grant_valid(&tokens), 0);
    assert_eq!(metrics.up.with_label_values(&[MAILBOX]).get(), 0);
    let status = tokens.status(CREDENTIAL, USER);
    assert!(status.last_error.unwrap().contains("invalid_grant"));

    // The grant works again (consent restored): the next try recovers.
    s.oauth.command(json!({"fail": null}));
    s.dovecot
        .append(USER, PASS, "INBOX", &mail("recovered@acme.com"));
    assert!(eventually(Duration::from_secs(6), || inbox.has("recovered@acme.com")).await);
    assert!(!tokens.status(CREDENTIAL, USER).needs_sign_in);
    assert_eq!(grant_valid(&tokens), 1);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_share_one_token_request() {
    let s = servers();
    let tokens = tokens(&credentials(&s.oauth));
    let all = futures::future::join_all((0..8).map(|_| tokens.token(CREDENTIAL, USER))).await;
    let first = all[0].as_ref().unwrap().secret.expose().to_string();
    assert!(
        all.iter()
            .all(|t| t.as_ref().unwrap().secret.expose() == first)
    );
    assert_eq!(s.oauth.token_requests().len(), 1);
    // Still fresh: served from memory.
    tokens.token(CREDENTIAL, USER).await.unwrap();
    assert_eq!(s.oauth.token_requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_bearer_assertion_is_rs256_signed_for_the_mailbox() {
    let s = servers();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let public = dir.path().join("public.pem");
    let ok = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(ok.success());
    let ok = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap();
    assert!(ok.success());
    let sa = dir.path().join("sa.json");
    std::fs::write(
        &sa,
        json!({
            "type": "service_account",
            "client_email": "keepword@project.iam.gserviceaccount.com",
            "private_key_id": "key-1",
            "private_key": std::fs::read_to_string(&key).unwrap(),
        })
        .to_string(),
    )
    .unwrap();
    let mut creds = credentials(&s.oauth);
    let google = creds.get_mut(CREDENTIAL).unwrap();
    google.provider = Provider::Google;
    google.grant = Grant::JwtBearer;
    google.scope = None;
    google.service_account_file = Some(sa);
    let mut poller = MailboxPoller::new(
        mailbox(s.dovecot.port, Sasl::Xoauth2),
        Arc::new(Inbox::default()),
        ImapMetrics::new(),
    )
    .with_tokens(tokens(&creds))
    .with_timing(timing());
    poller
        .poll_once()
        .await
        .expect("the assertion's token logs in");

    let requests = s.oauth.token_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0]["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    assert_eq!(requests[0]["scope"], "https://mail.google.com/");
    let assertion = requests[0]["assertion"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(assertion).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some("key-1"));
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[s.oauth.token_url()]);
    let claims = jsonwebtoken::decode::<keepword::oauth::jwt::Claims>(
        assertion,
        &jsonwebtoken::DecodingKey::from_rsa_pem(
            std::fs::read_to_string(&public).unwrap().as_bytes(),
        )
        .unwrap(),
        &validation,
    )
    .expect("signed by the service account's key")
    .claims;
    assert_eq!(claims.iss, "keepword@project.iam.gserviceaccount.com");
    assert_eq!(claims.sub, USER);
    assert_eq!(claims.scope, "https://mail.google.com/");
    assert_eq!(claims.exp - claims.iat, 3600);
}

/// `keepword oauth check` as an admin runs it, against the same servers.
fn oauth_check(config: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keepword"))
        .args(["oauth", "check"])
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_check_reports_each_step_with_the_answer_and_the_fix() {
    let mut s = servers();
    s.dovecot
        .append(USER, PASS, "Sent", &mail("sent-1@acme.com"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keepword.toml");
    std::fs::write(
        &config,
        format!(
            r#"database_url = "sqlite://{db}/keepword.db"
[smtp]
host = "127.0.0.1"
port = {submission}
username = "{USER}"
from = "Northwind Support <{USER}>"
auth = "oauth2"
oauth = "test"

[[mailboxes]]
name = "support"
host = "127.0.0.1"
port = {imap}
tls = "none"
username = "{USER}"
sent = "Sent"
auth = "oauth2"
oauth = "test"
sasl = "oauthbearer"

[oauth.test]
provider = "generic"
grant = "client_credentials"
client_id = "keepword"
client_secret = "client-secret"
token_url = "{token_url}"
scope = "mail"
"#,
            db = dir.path().display(),
            submission = s.dovecot.submission_port.unwrap(),
            imap = s.dovecot.port,
            token_url = s.oauth.token_url(),
        ),
    )
    .unwrap();

    let (code, out, err) = oauth_check(&config, &["test"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let imap = format!("127.0.0.1:{}", s.dovecot.port);
    for line in [
        "passed: token for support@test.local: issued, valid until ".to_string(),
        format!("passed: IMAP login to {imap} as support@test.local (OAUTHBEARER): logged in"),
        "passed: select INBOX: 0 messages".into(),
        "passed: select Sent: 1 messages".into(),
        "(nothing sent): authenticated".into(),
    ] {
        assert!(out.contains(&line), "{line} missing from\n{out}");
    }
    assert!(s.smtp.received().is_empty(), "the check sent mail");

    // Tokens for another user: both logins refused, with the fix.
    s.oauth.command(json!({"email": "intruder@test.local"}));
    let (code, out, _) = oauth_check(&config, &["test", "--smtp"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAILED: IMAP login to"), "{out}");
    assert!(out.contains("AUTHENTICATIONFAILED"), "{out}");
    assert!(
        out.contains("fix: the token was refused: the service principal lacks access"),
        "{out}"
    );
    assert!(out.contains("FAILED: SMTP AUTH XOAUTH2"), "{out}");

    // The token endpoint refuses the client: the provider's answer and fix.
    s.oauth.command(json!({"fail": "invalid_client"}));
    let (code, out, _) = oauth_check(&config, &["test", "--mailbox", "support"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAILED: token for support@test.local: the token endpoint refused credential `test` (HTTP 400): invalid_client"),
        "{out}"
    );
    assert!(
        out.contains("fix: the client id or secret is wrong"),
        "{out}"
    );
    assert!(
        !out.contains("IMAP login"),
        "no login without a token: {out}"
    );

    let (code, _, err) = oauth_check(&config, &["test", "--mailbox", "nope"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no mailbox named `nope`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_with_pkce_and_the_rotating_grant_is_kept_encrypted() {
    let mut s = servers();
    let (dir, url) = common::fresh_sqlite();
    let mut settings = app_settings(&s, url);
    let cred = settings.oauth.get_mut(CREDENTIAL).unwrap();
    cred.grant = Grant::Delegated;
    cred.client_secret = Secret::default();
    cred.authorize_url = Some(format!("http://127.0.0.1:{}/authorize", s.oauth.port));
    cred.scope = Some("mail".into());
    let key = dir.path().join("secret.key");

    // A configured key file that is missing stops the start, naming it.
    settings.secret_key_file = Some(key.clone());
    let e = keepword::app::Application::build(settings.clone())
        .await
        .err()
        .expect("no key, no start")
        .to_string();
    assert!(e.contains("secret_key_file"), "{e}");
    write_key(&key, 7);

    // Short-lived tokens, so the grant is refreshed (and rotated) soon.
    s.oauth.command(json!({"ttl": 4}));
    let (served, cookie) = serve_waiting_for_sign_in(settings).await;
    let (_, html) = served.page(&cookie, "/connections").await;
    assert!(html.contains("Sign in as support@test.local"), "{html}");
    assert!(html.contains("Needs sign-in"), "{html}");
    let csrf = common::app::hidden(&html, "csrf").unwrap();
    let http = common::app::Served::browser_like();
    let r = http
        .post(format!("{}/connections/sign-in", served.base))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("target", MAILBOX)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let authorize = r.headers()["location"].to_str().unwrap().to_string();
    for part in [
        "code_challenge_method=S256",
        "code_challenge=",
        "state=",
        "login_hint=support%40test.local",
        "scope=mail",
    ] {
        assert!(authorize.contains(part), "{part} missing from {authorize}");
    }
    // The provider signs the person in and sends the browser back.
    let r = http.get(&authorize).send().await.unwrap();
    let back = r.headers()["location"].to_str().unwrap().to_string();
    let query = back.split_once("/oauth/callback").unwrap().1.to_string();
    let callback = format!("{}/oauth/callback{query}", served.base);
    // Another dashboard session cannot finish it.
    let intruder = served.sign_in().await;
    let (status, _) = served
        .page(&intruder, &format!("/oauth/callback{query}"))
        .await;
    assert_eq!(status, 400);
    let r = http
        .get(&callback)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "{}", r.text().await.unwrap());
    // Used once.
    let (status, _) = served
        .page(&cookie, &format!("/oauth/callback{query}"))
        .await;
    assert_eq!(status, 400);
    let code_request = s
        .oauth
        .token_requests()
        .into_iter()
        .find(|r| r["grant_type"] == "authorization_code")
        .expect("the code was redeemed");
    assert!(code_request["code_verifier"].as_str().unwrap().len() >= 43);

    // The poller, waiting for a sign-in, logs in at once and reads mail;
    // the acknowledgement goes out over SMTP with the same grant.
    s.dovecot
        .append(USER, PASS, "INBOX", &mail("delegated-1@acme.com"));
    let acked = eventually(Duration::from_secs(15), || !s.smtp.received().is_empty()).await;
    assert!(
        acked,
        "no acknowledgement after sign-in:\n{}",
        s.dovecot.log()
    );
    // Tokens of 4 s: refreshes follow, each with the refresh token the
    // previous answer rotated in (stored, then used).
    assert!(
        eventually(Duration::from_secs(15), || {
            s.oauth
                .token_requests()
                .iter()
                .filter(|r| r["grant_type"] == "refresh_token")
                .count()
                >= 2
        })
        .await
    );
    let refreshes: Vec<String> = s
        .oauth
        .token_requests()
        .iter()
        .filter(|r| r["grant_type"] == "refresh_token")
        .map(|r| r["refresh_token"].as_str().unwrap().to_string())
        .collect();
    assert_ne!(
        refreshes[0], refreshes[1],
        "the rotated refresh token was not kept"
    );
    assert!(refreshes.iter().all(|r| r.len() > 20));

    // At rest: encrypted; another key cannot open it.
    // (A rotation in flight may have its temporary file beside the grant.)
    let files: Vec<_> = walk(&dir.path().join("oauth-grants"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "grant"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let raw = std::fs::read(&files[0]).unwrap();
    for r in &refreshes {
        assert!(
            !raw.windows(r.len()).any(|w| w == r.as_bytes()),
            "stored in the clear"
        );
    }
    let other_key = dir.path().join("other.key");
    let store = keepword::oauth::store::GrantStore::open(dir.path(), &other_key, true).unwrap();
    assert!(store.get(CREDENTIAL, USER).is_err());
    let store = keepword::oauth::store::GrantStore::open(dir.path(), &key, false).unwrap();
    assert!(store.get(CREDENTIAL, USER).unwrap().is_some());
    served.stop().await;
}

/// A grant key file as an admin makes one: 32 bytes, mode 0600.
fn write_key(path: &std::path::Path, byte: u8) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut f, &[byte; 32]).unwrap();
}

/// The app, signed in to its dashboard, once its Connections page says the
/// delegated mailbox waits for someone to sign in.
async fn serve_waiting_for_sign_in(settings: Settings) -> (common::app::Served, String) {
    let served = common::app::serve(settings, Clock::system()).await;
    let cookie = served.sign_in().await;
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            served
                .page(&cookie, "/connections")
                .await
                .1
                .contains("nobody has signed in yet")
        })
        .await
    );
    (served, cookie)
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `keepword oauth login` as a person runs it: the device flow against
/// npm `oidc-provider` (RFC 8628, its own sign-in pages), while the service
/// waits for a sign-in; the grant stored by the command is picked up by the
/// running service (another process) within seconds, and refreshed by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_from_the_command_line_with_the_device_flow() {
    let smtp = SmtpServer::start();
    let mut oauth = OAuthServer::start_device();
    let dovecot = Dovecot::start_oauth(&[(USER, PASS)], &oauth.issuer, smtp.port);
    let (dir, url) = common::fresh_sqlite();
    let key = dir.path().join("secret.key");
    let config = dir.path().join("keepword.toml");
    let device_url = format!("http://127.0.0.1:{}/device/auth", oauth.port);
    let token_url = format!("http://127.0.0.1:{}/token", oauth.port);
    std::fs::write(
        &config,
        format!(
            r#"database_url = "{url}"
secret_key_file = "{key}"
[smtp]
host = "127.0.0.1"
port = {submission}
tls = "none"
username = "{USER}"
from = "Northwind Support <{USER}>"
auth = "oauth2"
oauth = "dev"

[[mailboxes]]
name = "{MAILBOX}"
host = "127.0.0.1"
port = {imap}
tls = "none"
username = "{USER}"
auth = "oauth2"
oauth = "dev"

[oauth.dev]
provider = "generic"
grant = "delegated"
client_id = "keepword-device"
token_url = "{token_url}"
device_url = "{device_url}"
scope = "openid offline_access mail"
"#,
            key = key.display(),
            submission = dovecot.submission_port.unwrap(),
            imap = dovecot.port,
        ),
    )
    .unwrap();
    write_key(&key, 9);

    // The service starts before anyone signed in: the mailbox waits.
    let settings = || {
        let mut settings = Settings::load(Some(&config)).unwrap();
        settings.contract =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml");
        settings.api_tokens = vec![Secret::new(common::app::TOKEN)];
        settings.dashboard_password = Secret::new(common::app::PASSWORD);
        settings
    };
    let (served, cookie) = serve_waiting_for_sign_in(settings()).await;

    // A person declines: the command says so and stores nothing.
    let mut declined = login_command(&config);
    let code = user_code(&mut declined);
    oauth.command(json!({"deny": code}));
    let out = declined.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("access_denied"), "{stderr}");
    assert!(stderr.contains("the sign-in was declined"), "{stderr}");

    // Signs in: the command shows where and which code, waits, stores.
    let mut login = login_command(&config);
    let code = user_code(&mut login);
    let ack = oauth.command(json!({"approve": code, "login": USER}));
    assert_eq!(ack["page"], "Sign-in Success", "{ack}");
    let out = login.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("Signed in: {USER} under [oauth.dev]")),
        "{stdout}"
    );
    let device_grants = oauth
        .events()
        .iter()
        .filter(|e| {
            e["event"] == "token"
                && e["grant_type"] == "urn:ietf:params:oauth:grant-type:device_code"
        })
        .count();
    assert_eq!(device_grants, 1);

    // The running service notices the grant the command stored (within
    // seconds, though another process stored it), refreshes it and logs in;
    // then it reads new mail and acknowledges over SMTP with it.
    let logged_in = eventually(Duration::from_secs(15), || {
        dovecot.log().contains("method=XOAUTH2")
    })
    .await;
    assert!(
        logged_in,
        "the service did not log in after the device sign-in:\n{}",
        dovecot.log()
    );
    dovecot.append(USER, PASS, "INBOX", &mail("device-1@acme.com"));
    let acked = eventually(Duration::from_secs(30), || !smtp.received().is_empty()).await;
    if !acked {
        let (_, html) = served.page(&cookie, "/conversations/1").await;
        panic!(
            "no acknowledgement after the device sign-in:\n{}\n{html}\n{:?}",
            dovecot.log(),
            oauth.events()
        );
    }
    let refreshed = oauth
        .events()
        .iter()
        .any(|e| e["event"] == "token" && e["grant_type"] == "refresh_token");
    assert!(refreshed, "the service did not refresh the stored grant");
    let (_, html) = served.page(&cookie, "/connections").await;
    assert!(!html.contains("Needs sign-in"), "{html}");
    served.stop().await;

    // After a restart the stored grant logs in without anyone signing in:
    // the provider rotates refresh tokens and refuses a used one, so this
    // works only if each rotated token was stored before it was used.
    let logins = |log: String| log.matches("method=XOAUTH2").count();
    let before = logins(dovecot.log());
    let refreshes = |events: Vec<serde_json::Value>| {
        events
            .iter()
            .filter(|e| e["event"] == "token" && e["grant_type"] == "refresh_token")
            .count()
    };
    let refreshed_before = refreshes(oauth.events());
    let served = common::app::serve(settings(), Clock::system()).await;
    let again = eventually(Duration::from_secs(15), || logins(dovecot.log()) > before).await;
    assert!(
        again,
        "no login after the restart:\n{}\n{:?}",
        dovecot.log(),
        oauth.events()
    );
    assert!(refreshes(oauth.events()) > refreshed_before);
    assert!(
        !oauth
            .events()
            .iter()
            .any(|e| e["event"] == "token_error" && e["grant_type"] == "refresh_token"),
        "a refresh was refused: {:?}",
        oauth.events()
    );
    served.stop().await;
}

/// `keepword oauth login dev --account USER`, running; its output piped.
fn login_command(config: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_keepword"))
        .args(["oauth", "login", "dev", "--account", USER, "--config"])
        .arg(config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads the command's instructions up to the code it shows; the rest of
/// its output stays in the pipe for `wait_with_output`.
fn user_code(child: &mut std::process::Child) -> String {
    use std::io::Read;
    let stdout = child.stdout.as_mut().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some(rest) = text.split("and enter the code\n").nth(1)
            && let Some(line) = rest.lines().next()
            && rest.contains('\n')
        {
            assert!(text.contains("/device"), "{text}");
            return line.trim().to_string();
        }
        assert!(Instant::now() < deadline, "no code shown: {text}");
        match stdout.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => panic!("the command ended before showing a code: {text}"),
        }
    }
}

/// The `ops_contact` hears of keepword's own mail health through the
/// outbox: at once when the provider refuses the grant, and when the
/// mailbox has gone ten minutes unread; once each, however often the
/// watch looks. Its mail goes out through an SMTP server that does not
/// share the refused grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ops_contact_hears_of_a_refused_grant_and_an_unread_mailbox_once() {
    let mut s = servers();
    s.oauth.command(json!({"fail": "invalid_grant"}));
    let (_dir, url) = common::fresh_sqlite();
    let mut settings = app_settings(&s, url);
    settings.smtp = SmtpSettings {
        from: "keepword <keepword@test.local>".parse().unwrap(),
        ..crate::tls::smtp("127.0.0.1", s.smtp.port, Tls::None, None)
    };

    // A contact the contract lacks stops the start, naming the key.
    settings.ops_contact = Some("nobody".into());
    let e = keepword::app::Application::build(settings.clone())
        .await
        .err()
        .expect("an unknown ops_contact is refused")
        .to_string();
    assert!(e.contains("config key `ops_contact`: `nobody`"), "{e}");
    assert!(e.contains("oncall"), "{e}");

    settings.ops_contact = Some("oncall".into());
    let clock = Clock::manual(chrono::Utc::now());
    let served = common::app::serve(settings, clock.clone()).await;
    let notices = |subject: &str| {
        s.smtp
            .received()
            .into_iter()
            .filter(|m| {
                m.rcpt_tos == ["oncall@example.com"]
                    && m.header("Subject").is_some_and(|h| h.contains(subject))
            })
            .count()
    };
    let refused = "Mail for support@test.local is not being read";
    // The watch looks when the clock moves (and every 15 s).
    let told = eventually_async(Duration::from_secs(20), || async {
        clock.advance(chrono::Duration::seconds(1));
        notices(refused) == 1
    })
    .await;
    assert!(
        told,
        "no notice of the refused grant: {:?}",
        s.smtp.received()
    );
    let mail = s
        .smtp
        .received()
        .into_iter()
        .find(|m| m.header("Subject").is_some_and(|h| h.contains(refused)))
        .unwrap();
    assert!(mail.data.contains("invalid_grant"), "{}", mail.data);
    assert!(mail.data.contains("/connections"), "{}", mail.data);

    let unread = "Mailbox support has not been read for 10 minutes";
    clock.advance(chrono::Duration::minutes(11));
    let told = eventually_async(Duration::from_secs(20), || async {
        clock.advance(chrono::Duration::seconds(1));
        notices(unread) == 1
    })
    .await;
    assert!(
        told,
        "no notice of the unread mailbox: {:?}",
        s.smtp.received()
    );
    // More looks, the same episodes: nothing more.
    for _ in 0..5 {
        clock.advance(chrono::Duration::seconds(30));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(notices(refused), 1);
    assert_eq!(notices(unread), 1);
    served.stop().await;
}

/// The service renews tokens in the background ahead of time, so a login
/// or a send finds a fresh one and never waits for the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_renewed_before_anyone_has_to_wait_for_one() {
    let mut oauth = OAuthServer::start();
    oauth.command(json!({"email": USER, "ttl": 4}));
    let creds = credentials(&oauth);
    let tokens = tokens(&creds);
    let first = tokens.token(CREDENTIAL, USER).await.unwrap();
    let stop = CancellationToken::new();
    let renewal = {
        let (t, s) = (tokens.clone(), stop.clone());
        tokio::spawn(async move { t.keep_fresh(s).await })
    };
    // A 4 s token is fresh for 2 s; for 6 s one is always held fresh.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(6) {
        assert!(
            tokens.held_fresh(CREDENTIAL, USER).is_some(),
            "no fresh token held after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let requests = oauth.token_requests().len();
    assert!(
        (3..=8).contains(&requests),
        "{requests} token requests in 6 s"
    );
    let now = tokens.token(CREDENTIAL, USER).await.unwrap();
    assert_ne!(now.secret.expose(), first.secret.expose());
    stop.cancel();
    renewal.await.unwrap();
}
