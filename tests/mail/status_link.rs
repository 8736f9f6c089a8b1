//! The status link of a real acknowledgement (README, "HTTP API"): a mail comes in,
//! the acknowledgement arrives at a real SMTP server greeting the sender by
//! name, and the link in it opens the conversation's status page. The
//! team's stored copy of the acknowledgement does not hold the token.

use crate::common;
use crate::support;

use std::path::Path;
use std::time::Duration;

use chrono::{Timelike, Utc};
use keepword::clock::Clock;
use keepword::ingest::email::FolderKind;
use keepword::service::{FetchedMail, MailboxContext};

use common::app::{Backend, spawn_app};
use support::{SmtpServer, eventually};

fn link_in(text: &str) -> Option<String> {
    let start = text.find("http://127.0.0.1:8080/status/")?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

async fn the_link_in_the_acknowledgement_opens_the_page(backend: Backend) {
    let smtp = SmtpServer::start();
    let contract = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml");
    let app = spawn_app(backend, contract, smtp.port, Clock::system()).await;
    let raw = format!(
        "From: Ann <ann@acme.com>\r\nTo: support@example.com\r\nSubject: New team photo\r\n\
         Message-ID: <photo-1@acme.com>\r\nDate: {}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nPlease put the new photo on the about page.\r\n",
        Utc::now().with_nanosecond(0).unwrap().to_rfc2822()
    );
    let service = app.service.clone();
    let report = tokio::task::spawn_blocking(move || {
        let mailbox = MailboxContext {
            name: "support".into(),
            channel: "email".into(),
            team: vec!["@example.com".into()],
            own: vec!["support@example.com".into()],
        };
        let now = service.core.now();
        service.intake.ingest_mail_batch(
            &mailbox,
            "INBOX",
            FolderKind::Inbox,
            1,
            vec![FetchedMail {
                uid: 1,
                raw: raw.into_bytes(),
            }],
            now,
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(report.acknowledged, 1, "{report:?}");
    assert!(
        eventually(Duration::from_secs(15), || smtp.received().len() == 1).await,
        "no acknowledgement arrived"
    );
    let ack = &smtp.received()[0];
    let parsed = mail_parser::MessageParser::default()
        .parse(ack.data.as_bytes())
        .expect("the acknowledgement parses");
    let text = parsed.body_text(0).expect("a text part").to_string();
    let html = parsed
        .body_html(0)
        .expect("an HTML part")
        .replace("&#x2f;", "/");
    assert!(
        text.starts_with("Hello Ann,"),
        "the greeting names the person:\n{text}"
    );
    assert!(!text.contains("Hello ACME"), "{text}");
    let link = link_in(&text).unwrap_or_else(|| panic!("no status link in:\n{text}"));
    assert_eq!(
        link_in(&html).as_deref(),
        Some(link.as_str()),
        "the HTML part links the same page"
    );
    let token = link.rsplit('/').next().unwrap();
    assert!(token.len() >= 32, "at least 128 bits: {token}");

    let page = app
        .http
        .get(link.replace("http://127.0.0.1:8080", &app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(body.contains("New team photo"), "{body}");
    assert!(body.contains("Questions and change requests"), "{body}");
    assert!(body.contains("We will reply by "), "{body}");

    // The acknowledgement as the team's timeline keeps it: no token.
    let list: serde_json::Value = app.get("/api/v1/conversations").await.1;
    let id = list["conversations"][0]["id"].as_i64().unwrap();
    let (_, detail) = app.get(&format!("/api/v1/conversations/{id}")).await;
    let kept = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["direction"] == "auto")
        .expect("the acknowledgement is kept as an auto message")
        .clone();
    let kept_body = kept["body"].as_str().unwrap();
    assert!(
        kept_body.contains("/status/…"),
        "the link is named: {kept_body}"
    );
    assert!(
        !detail.to_string().contains(token),
        "the token is not stored"
    );
    // Nor is it kept in the delivered outbox row.
    let store = app.service.core.store().clone();
    let payloads = move || {
        use diesel::prelude::*;
        use keepword::store::schema::outbox::dsl::*;
        store
            .with(|c| {
                Ok(outbox
                    .filter(sent_at.is_not_null())
                    .select(payload)
                    .load::<String>(c)?)
            })
            .unwrap()
    };
    let token_owned = token.to_string();
    assert!(
        eventually(Duration::from_secs(10), || {
            let p = payloads();
            !p.is_empty() && p.iter().all(|p| !p.contains(&token_owned))
        })
        .await,
        "the delivered acknowledgement still holds the token: {:?}",
        payloads()
    );
    assert!(payloads()[0].contains("/status/…"));
    app.stop().await;
}

mod link_opens_page {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        the_link_in_the_acknowledgement_opens_the_page(Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        the_link_in_the_acknowledgement_opens_the_page(Backend::Postgres).await;
    }
}
