//! `keepword serve`: the real app on port 0 over HTTP, in-process and as the
//! built binary (signals, exit codes, first start on SQLite).

use crate::common;

use common::binary::{get, serve_binary, sighup, sigterm, spawn_binary, wait_exit};

use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use keepword::clock::Clock;
use keepword::config::Settings;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn settings(database_url: String) -> Settings {
    Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url,
        contract: repo("config/contract.toml"),
        ..Default::default()
    }
}

async fn check_endpoints(database_url: String) {
    let common::app::Served {
        base,
        state,
        token,
        task: running,
        ..
    } = common::app::serve(settings(database_url), Clock::system()).await;
    let expected_version = state.contract.current().version.clone();
    let http = reqwest::Client::new();

    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["database"],
        "ok"
    );

    let r = http.get(format!("{base}/contract")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(
        r.headers()["x-contract-version"].to_str().unwrap(),
        expected_version
    );
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Northwind"),
        "the rendered contract names the team"
    );
    assert!(html.contains("Urgent"), "and its request types");

    let r = http.get(format!("{base}/nope/42")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "keepword_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"keepword_http_requests_total{method="GET",route="/healthz",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"route="unmatched",status="404""#),
        "unmatched paths share one series: {metrics}"
    );
    assert!(
        metrics.contains("keepword_http_request_duration_seconds_bucket"),
        "{metrics}"
    );

    token.cancel();
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("graceful stop")
        .unwrap()
        .unwrap();
}

crate::both_backends!(async check_endpoints);

#[tokio::test]
async fn readyz_fails_when_the_database_is_gone() {
    let db = common::FreshPostgres::new();
    let common::app::Served {
        base,
        token,
        task: running,
        ..
    } = common::app::serve(settings(db.url.clone()), Clock::system()).await;
    drop(db); // DROP DATABASE … WITH (FORCE) kills the pool's connections
    let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(r.status(), 503);
    let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(r.status(), 200, "liveness does not depend on the database");
    token.cancel();
    running.await.unwrap().unwrap();
}

#[test]
fn first_start_without_config_uses_sqlite_under_data_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // Only the shipped contract, as in a fresh checkout: no keepword.toml.
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::copy(
        repo("config/contract.toml"),
        dir.path().join("config/contract.toml"),
    )
    .unwrap();
    let mut served = serve_binary(dir.path(), &[("KEEPWORD_BIND", "127.0.0.1:0")]);
    assert_eq!(get(served.port, "/healthz").0, 200);
    assert_eq!(get(served.port, "/readyz").0, 200);
    assert!(
        dir.path().join("data/keepword.db").exists(),
        "SQLite file created under ./data"
    );
    sigterm(&served.child);
    let status = wait_exit(&mut served.child, Duration::from_secs(15));
    assert!(status.success(), "SIGTERM is a clean stop: {status}");
    let log: Vec<String> = served.stderr.try_iter().collect();
    assert!(log.iter().any(|l| l.contains("stopped")), "{log:?}");
}

#[test]
fn sighup_reloads_a_valid_contract_and_keeps_the_old_one_when_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let contract = dir.path().join("contract.toml");
    let original = std::fs::read_to_string(repo("config/contract.toml")).unwrap();
    std::fs::write(&contract, &original).unwrap();
    let db = format!("sqlite://{}/k.db", dir.path().display());
    let mut served = serve_binary(
        dir.path(),
        &[
            ("KEEPWORD_BIND", "127.0.0.1:0"),
            ("KEEPWORD_CONTRACT", contract.to_str().unwrap()),
            ("KEEPWORD_DATABASE_URL", &db),
        ],
    );
    let (_, _, v1) = get(served.port, "/contract");
    let v1 = v1.expect("version header");

    // Invalid: rejected, counted, previous version stays.
    std::fs::write(
        &contract,
        original.replace("first_response = \"4h\"", "first_response = \"4 hours\""),
    )
    .unwrap();
    sighup(&served.child);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics, _) = get(served.port, "/metrics");
        if metrics.contains("keepword_contract_reload_failures_total 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reload failure not counted: {metrics}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        get(served.port, "/contract").2.as_deref(),
        Some(v1.as_str())
    );

    // Valid and changed: the new version is served.
    std::fs::write(
        &contract,
        original.replace("first_response = \"4h\"", "first_response = \"3h\""),
    )
    .unwrap();
    sighup(&served.child);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body, v) = get(served.port, "/contract");
        if v.as_deref() != Some(v1.as_str()) {
            assert!(
                body.contains("3 business hours") || body.contains("3 hours"),
                "new window rendered"
            );
            break;
        }
        assert!(Instant::now() < deadline, "contract not reloaded");
        std::thread::sleep(Duration::from_millis(100));
    }
    sigterm(&served.child);
    assert!(wait_exit(&mut served.child, Duration::from_secs(15)).success());
}

#[test]
fn invalid_contract_or_config_exits_non_zero_with_the_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let original = std::fs::read_to_string(repo("config/contract.toml")).unwrap();
    std::fs::write(
        &bad,
        original.replace("calendar = \"business\"", "calendar = \"bussiness\""),
    )
    .unwrap();
    let out = spawn_binary(
        dir.path(),
        &[
            ("KEEPWORD_CONTRACT", bad.to_str().unwrap()),
            ("KEEPWORD_BIND", "127.0.0.1:0"),
        ],
    )
    .wait_with_output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:", bad.display())) && err.contains("bussiness"),
        "{err}"
    );
    assert!(err.contains("did you mean"), "{err}");

    let out = spawn_binary(dir.path(), &[("KEEPWORD_SMTP__PORT", "lots")])
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("smtp.port"), "{err}");
}

/// Keys of a serialised settings value: `bind`, `smtp.host`, … (lists of
/// tables are described by their first element).
fn keys(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
    if let serde_json::Value::Object(m) = v {
        for (k, v) in m {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                serde_json::Value::Object(_) => keys(&path, v, out),
                serde_json::Value::Array(items) if items.first().is_some_and(|i| i.is_object()) => {
                    keys(&path, &items[0], out)
                }
                _ => out.push(path),
            }
        }
    }
}

/// CI checks what can drift (issue 7): every key of `Settings` is in the
/// shipped `config/keepword.toml` (set, or shown commented out) in its
/// section, with a comment that documents it.
#[test]
fn the_shipped_config_names_and_documents_every_setting() {
    let mut settings = serde_json::to_value(Settings::default()).unwrap();
    let mailbox: keepword::config::MailboxSettings = serde_json::from_value(serde_json::json!({
        "name": "support", "host": "imap.example.com", "username": "support@example.com"
    }))
    .unwrap();
    settings["mailboxes"] = serde_json::json!([serde_json::to_value(mailbox).unwrap()]);
    // The ticket sources are off by default: shown with every key set.
    let ticket =
        serde_json::json!({"webhook_secret": "s", "webhook_secret_file": "f", "channel": "c"});
    let jira: keepword::config::TicketWebhookSettings =
        serde_json::from_value(ticket.clone()).unwrap();
    let mut basecamp = ticket;
    basecamp["company_ids"] = serde_json::json!([1]);
    let basecamp: keepword::config::BasecampSettings = serde_json::from_value(basecamp).unwrap();
    settings["jira"] = serde_json::to_value(&jira).unwrap();
    settings["linear"] = serde_json::to_value(&jira).unwrap();
    settings["basecamp"] = serde_json::to_value(&basecamp).unwrap();
    settings["retention"] = serde_json::json!({"bodies": "365d"});
    let mut all = Vec::new();
    keys("", &settings, &mut all);
    assert!(all.len() > 20, "{all:?}");

    let text = std::fs::read_to_string(repo("config/keepword.toml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut missing = Vec::new();
    for key in &all {
        let (section, name) = match key.rsplit_once('.') {
            Some((s, n)) => (s, n),
            None => ("", key.as_str()),
        };
        // The section's lines: from its header (`[smtp]`, or a commented
        // `# [[mailboxes]]` example) to the next header.
        let is_header = |l: &str| {
            let l = l.trim_start_matches('#').trim();
            l.starts_with('[') && l.ends_with(']') && !l.contains('=')
        };
        let start = if section.is_empty() {
            0
        } else {
            match lines.iter().position(|l| {
                let l = l.trim_start_matches('#').trim();
                l == format!("[{section}]") || l == format!("[[{section}]]")
            }) {
                Some(i) => i + 1,
                None => {
                    missing.push(format!("{key} (no [{section}] section)"));
                    continue;
                }
            }
        };
        let end = lines[start..]
            .iter()
            .position(|l| is_header(l))
            .map_or(lines.len(), |i| start + i);
        let found = (start..end).find(|&i| {
            let l = lines[i].trim_start_matches('#').trim_start();
            l.strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        });
        match found {
            None => missing.push(format!("{key} (not in the file)")),
            Some(i) => {
                let value_part = lines[i].trim_start_matches('#');
                let commented_inline = value_part.contains(" #");
                let above = (start..i)
                    .rev()
                    .map(|j| lines[j].trim())
                    .find(|l| !l.is_empty());
                // A comment line above that is not itself a commented-out key.
                let documented_above = above.is_some_and(|l| {
                    l.starts_with('#') && !l.trim_start_matches('#').trim().contains(" = ")
                });
                if !(commented_inline || documented_above) {
                    missing.push(format!("{key} (no comment documents it)"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "config/keepword.toml lacks or leaves undocumented: {missing:#?}"
    );
}
