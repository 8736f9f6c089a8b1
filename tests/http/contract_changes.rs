//! `GET /contract/changes` and `.md` (README, "The contract"): after a reload, every
//! version newest first with its effective date, its decision and what
//! changed in the client's words; internal changes stay off the page.

use crate::common;

use std::path::Path;

use chrono::{TimeZone, Utc};
use keepword::clock::Clock;

use common::app::{Backend, spawn_app};

async fn changes_are_listed_newest_first_with_their_decision(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("contract.toml");
    let v1 =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml"))
            .unwrap();
    std::fs::write(&path, &v1).unwrap();
    let clock = Clock::manual(Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap());
    let app = spawn_app(backend, path.clone(), 1, clock.clone()).await;

    let decision = v1
        .lines()
        .find(|l| l.starts_with("decision = "))
        .unwrap()
        .to_string();
    let v2 = v1
        .replacen(
            &decision,
            "decision = \"Clients asked for faster first replies; 2026's mail says we can <keep> it.\"",
            1,
        )
        .replacen("effective = \"2026-11-01\"", "effective = \"2027-01-01\"", 1)
        .replacen(
            "calendar = \"business\"\nfirst_response = \"4h\"",
            "calendar = \"business\"\nfirst_response = \"2h\"",
            1,
        )
        .replacen("\"2027-10-03\",", "\"2027-10-03\", \"2027-12-31\",", 1)
        .replacen("head@example.com", "boss@example.com", 1);
    std::fs::write(&path, &v2).unwrap();
    clock.set(Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap());
    let service = app.service.clone();
    let reload = tokio::task::spawn_blocking(move || service.deadlines.reload_contract(&path))
        .await
        .unwrap();
    assert!(
        matches!(reload, keepword::service::Reload::Replaced { .. }),
        "{reload:?}"
    );

    let r = app
        .http
        .get(format!("{}/contract/changes", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap().replace("&#x2f;", "/");
    let newer = html.find("In effect from 1 January 2027").expect(&html);
    let older = html.find("In effect from 1 November 2026").expect(&html);
    assert!(newer < older, "newest first");
    assert!(html.contains("1 January 2027 (in force now)"), "{html}");
    assert!(
        html.contains("2026&#x27;s mail says we can &lt;keep&gt; it."),
        "the decision, escaped: {html}"
    );
    assert!(
        html.contains(
            "<li>Questions and change requests: first response 4 business hours → 2 business hours</li>"
        ),
        "{html}"
    );
    assert!(
        html.contains("<li>holiday added: 31 December 2027</li>"),
        "{html}"
    );
    assert!(
        html.contains("<li>in effect from: 1 November 2026 → 1 January 2027</li>"),
        "{html}"
    );
    assert!(
        !html.contains("contact"),
        "internal changes stay off: {html}"
    );
    assert!(!html.contains("boss@"), "{html}");

    let md = app
        .http
        .get(format!("{}/contract/changes.md", app.base))
        .send()
        .await
        .unwrap();
    assert!(
        md.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    let md = md.text().await.unwrap();
    assert!(md.starts_with("# Changes to our contract\n"), "{md}");
    assert!(
        md.contains("## In effect from 1 January 2027 (in force now)"),
        "{md}"
    );
    assert!(
        md.contains("**Why:** Clients asked for faster first replies; 2026's mail says we can \\<keep\\> it."),
        "{md}"
    );
    assert!(
        md.contains(
            "- Questions and change requests: first response 4 business hours → 2 business hours\n"
        ),
        "{md}"
    );
    assert!(
        md.find("1 January 2027").unwrap() < md.find("1 November 2026").unwrap(),
        "{md}"
    );
    app.stop().await;
}

mod changes_page {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        changes_are_listed_newest_first_with_their_decision(Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        changes_are_listed_newest_first_with_their_decision(Backend::Postgres).await;
    }
}
