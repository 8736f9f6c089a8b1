//! The delegated OAuth sign-in as a person does it, in headless Chromium:
//! the banner's button on a dashboard page, the provider's authorize
//! endpoint (npm oauth2-mock-server, which signs the person in at once and
//! sends the browser back), the callback, and the mailbox read with the
//! grant; a callback this session did not start is refused.

use std::time::Duration;

use keepword::clock::Clock;
use keepword::config::{MailboxSettings, Secret, Settings, SmtpSettings, Tls};
use keepword::oauth::{AuthMethod, Grant, OAuthSettings, Provider, Sasl};
use serde_json::json;

use crate::browser::Browser;
use crate::common;
use crate::support::dovecot::Dovecot;
use crate::support::oauth_server::OAuthServer;
use crate::support::{SmtpServer, free_port};

const USER: &str = "support@test.local";
const PASS: &str = "supportpw";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_from_the_banner_and_a_forged_callback_is_refused() {
    let smtp = SmtpServer::start();
    let mut oauth = OAuthServer::start();
    oauth.command(json!({"email": USER}));
    let dovecot = Dovecot::start_oauth(&[(USER, PASS)], &oauth.issuer, smtp.port);
    let (dir, url) = common::fresh_sqlite();
    let port = free_port();
    let settings = Settings {
        bind: format!("127.0.0.1:{port}").parse().unwrap(),
        public_url: format!("http://127.0.0.1:{port}").parse().unwrap(),
        database_url: url,
        contract: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml"),
        api_tokens: vec![Secret::new(common::app::TOKEN)],
        dashboard_password: Secret::new(common::app::PASSWORD),
        secret_key_file: Some(dir.path().join("secret.key")),
        mailboxes: vec![MailboxSettings {
            name: "support".into(),
            channel: "email".into(),
            host: "127.0.0.1".into(),
            port: dovecot.port,
            tls: Tls::None,
            username: USER.into(),
            password: Secret::default(),
            password_file: None,
            inbox: "INBOX".into(),
            sent: None,
            team_addresses: vec!["@test.local".into()],
            ca_file: None,
            auth: AuthMethod::Oauth2,
            oauth: Some("mail".into()),
            sasl: Some(Sasl::Xoauth2),
        }],
        smtp: SmtpSettings {
            host: "127.0.0.1".into(),
            port: smtp.port,
            tls: Tls::None,
            from: "Northwind Support <support@test.local>".parse().unwrap(),
            ..Settings::default().smtp
        },
        oauth: [(
            "mail".to_string(),
            OAuthSettings {
                provider: Provider::Generic,
                grant: Grant::Delegated,
                tenant: None,
                client_id: "keepword".into(),
                client_secret: Secret::default(),
                client_secret_file: None,
                service_account_file: None,
                token_url: Some(oauth.token_url()),
                authorize_url: Some(format!("http://127.0.0.1:{}/authorize", oauth.port)),
                device_url: None,
                scope: Some("mail".into()),
            },
        )]
        .into(),
        ..Default::default()
    };
    // The key file is made on first need (mode 0600) where it is named.
    std::fs::write(dir.path().join("secret.key"), [5u8; 32]).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join("secret.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let served = common::app::serve_as_configured(settings, Clock::system()).await;
    let b = Browser::start(1280, 900).await;
    b.goto(&format!("{}/login", served.base)).await;
    b.fill("#password", common::app::PASSWORD).await;
    b.click("form.login button[type=submit]").await;

    // Every page carries the banner with the button while nobody signed in.
    b.wait_for(
        "return !!document.querySelector('.sign-in-banner button')",
        Duration::from_secs(15),
        "the needs-sign-in banner",
    )
    .await;
    let text = b.text().await;
    assert!(
        text.contains("Mail is not being read for support@test.local"),
        "{text}"
    );
    let violations = b.serious_violations().await;
    assert!(violations.is_empty(), "{violations:#?}");
    b.screenshot("sign-in-banner").await;

    // A callback this session never started: refused, nothing stored.
    b.goto(&format!(
        "{}/oauth/callback?state=forged-state&code=stolen-code",
        served.base
    ))
    .await;
    let text = b.text().await;
    assert!(text.contains("Sign-in failed"), "{text}");
    assert!(
        text.contains("was not started from this dashboard session"),
        "{text}"
    );
    assert!(
        !oauth
            .token_requests()
            .iter()
            .any(|r| r["grant_type"] == "authorization_code"),
        "a forged callback redeemed a code"
    );

    // The button: to the provider and back; the mailbox is read.
    b.goto(&format!("{}/", served.base)).await;
    b.click(".sign-in-banner button").await;
    b.wait_for(
        "return location.pathname === '/connections' && !document.querySelector('.sign-in-banner')",
        Duration::from_secs(15),
        "the sign-in to come back to the Connections page",
    )
    .await;
    let redeemed = oauth
        .token_requests()
        .into_iter()
        .find(|r| r["grant_type"] == "authorization_code")
        .expect("the code was redeemed");
    assert!(redeemed["code_verifier"].as_str().unwrap().len() >= 43);
    // The poller, waiting for a sign-in, logs in at once with the grant.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        b.goto(&format!("{}/connections", served.base)).await;
        let text = b.text().await;
        if text.contains("Connected, IDLE") {
            assert!(
                !text.contains("nobody has signed in yet"),
                "an old error shown as current: {text}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not connected: {text}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        dovecot.log().contains("method=XOAUTH2"),
        "{}",
        dovecot.log()
    );
    b.screenshot("connections-signed-in").await;
    b.close().await;
    served.stop().await;
}
