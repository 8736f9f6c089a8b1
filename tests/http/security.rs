//! Issue 12: the service probed as an attacker or a careless operator would
//! probe it, over loopback — each finding as a test that fails without its
//! fix, on SQLite and PostgreSQL where a database is involved.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::binary::{sigterm, spawn_binary, wait_exit};
use keepword::clock::Clock;
use keepword::config::{Secret, Settings};
use keepword::ingest::github_signature;
use keepword::web::BODY_READ_TIMEOUT;
use serde_json::{Value, json};

const TOKEN: &str = "sec-token";
const GITHUB_SECRET: &str = "sec-github-secret";

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The app, served with the test's token and GitHub secret.
struct Running(common::app::Served);

impl std::ops::Deref for Running {
    type Target = common::app::Served;
    fn deref(&self) -> &common::app::Served {
        &self.0
    }
}

impl Running {
    async fn start(database_url: String) -> Running {
        let mut settings = Settings {
            database_url,
            contract: repo("config/contract.toml"),
            api_tokens: vec![Secret::new(TOKEN)],
            ..Default::default()
        };
        settings.github.webhook_secret = Secret::new(GITHUB_SECRET);
        Running(common::app::serve(settings, Clock::system()).await)
    }

    async fn post_event(&self, body: &Value) -> (u16, Value) {
        self.post("/api/v1/events", body).await
    }

    async fn github(&self, delivery: &str, body: &[u8]) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/webhooks/github", self.base))
            .header("X-GitHub-Event", "issues")
            .header("X-GitHub-Delivery", delivery)
            .header("Content-Type", "application/json")
            .header(
                "X-Hub-Signature-256",
                github_signature(GITHUB_SECRET.as_bytes(), body),
            )
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn stop(self) {
        self.0.stop().await;
    }
}

/// Sends `head` (and `body`) over a raw socket and returns the status line's
/// code and how long the answer took. `None`: no answer before `wait`.
fn raw_request(port: u16, head: &str, body: &[u8], wait: Duration) -> Option<(u16, Duration)> {
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).ok().filter(|n| *n > 0)?;
    let text = String::from_utf8_lossy(&buf[..n]);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, started.elapsed()))
}

fn event(id: &str, thread: &str) -> Value {
    json!({
        "id": id, "channel": "tickets", "thread": thread, "direction": "inbound",
        "from": "jane@acme.com", "subject": "Export fails", "body": "Since Monday.",
    })
}

/// Items 4, 5 and 9 on one backend: what the API answers and what state it
/// leaves.
async fn events_leave_no_stray_state(database_url: String) {
    let app = Running::start(database_url).await;

    // 4. A duplicate id with a different thread changes nothing.
    let (status, first) = app.post_event(&event("dup-1", "T-A")).await;
    assert_eq!(status, 201, "{first}");
    let (status, dup) = app.post_event(&event("dup-1", "T-B")).await;
    assert_eq!(status, 200, "{dup}");
    assert_eq!(dup["duplicate"], true);
    assert_eq!(dup["message_id"], first["message_id"]);
    assert_eq!(dup["conversation_id"], first["conversation_id"]);
    let (_, list) = app.get("/api/v1/conversations").await;
    let threads: Vec<&str> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["thread"].as_str().unwrap())
        .collect();
    assert_eq!(
        threads,
        ["T-A"],
        "no conversation for the duplicate's thread"
    );

    // 5. NUL in an id or a thread key is the caller's mistake, the same on
    // both backends, and never "retry".
    let (status, body) = app.post_event(&event("nul-thread", "T\u{0}nul")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["fields"][0]["field"], "thread", "{body}");
    let (status, body) = app.post_event(&event("nul\u{0}id", "T-N")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["fields"][0]["field"], "id", "{body}");
    let (status, body) = app.post_event(&event("nul\u{FFFD}id", "T-N")).await;
    assert_eq!(status, 201, "U+FFFD is an ordinary character: {body}");
    // NUL in free text is kept (as U+FFFD) rather than refused.
    let mut with_nul_body = event("nul-body", "T-N");
    with_nul_body["body"] = json!("a\u{0}b");
    let (status, body) = app.post_event(&with_nul_body).await;
    assert_eq!(status, 201, "{body}");

    // 9. Instants the calendar does not cover are refused, naming the range.
    for at in ["0000-01-01T00:00:00Z", "1677-09-20T00:00:00Z"] {
        let mut old = event(&format!("old-{at}"), "T-OLD");
        old["at"] = json!(at);
        let (status, body) = app.post_event(&old).await;
        assert_eq!(status, 422, "{at}: {body}");
        assert_eq!(body["fields"][0]["field"], "at", "{body}");
        let problem = body["fields"][0]["problem"].as_str().unwrap();
        assert!(
            problem.contains("1900") && problem.contains("2199"),
            "{problem}"
        );
    }
    let (_, list) = app.get("/api/v1/conversations").await;
    assert_eq!(
        list["conversations"].as_array().unwrap().len(),
        2,
        "T-A and T-N only: {list}"
    );
    app.stop().await;
}

crate::both_backends!(async events_leave_no_stray_state);

/// Item 11: a correctly signed body replayed with a new `X-GitHub-Delivery` is
/// the same event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_github_body_under_a_new_delivery_is_a_duplicate() {
    let (_dir, url) = common::fresh_sqlite();
    let app = Running::start(url).await;
    let opened = std::fs::read(repo("tests/fixtures/github/issues.opened.1.json")).unwrap();
    let (status, first) = app.github("d-1", &opened).await;
    assert_eq!(status, 201, "{first}");
    let (status, replay) = app.github("d-2-replayed", &opened).await;
    assert_eq!(status, 200, "{replay}");
    assert_eq!(replay["duplicate"], true);
    assert_eq!(replay["message_id"], first["message_id"]);
    app.stop().await;
}

/// Item 2: invented method names share one `other` series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_methods_do_not_grow_the_metrics() {
    let (_dir, url) = common::fresh_sqlite();
    let app = Running::start(url).await;
    let port = app.port;
    let before = app.metrics().await.lines().count();
    tokio::task::spawn_blocking(move || {
        for i in 0..60 {
            let head = format!("M{i:05} /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            raw_request(port, &head, b"", Duration::from_secs(5)).expect("an answer");
        }
    })
    .await
    .unwrap();
    let after = app.metrics().await;
    assert!(!after.contains("M00001"), "a method name became a label");
    assert!(
        after.contains(r#"method="other""#),
        "counted under other: {after}"
    );
    // One new counter series plus one histogram (buckets, sum, count) for
    // route `unmatched` + `other`, whatever the number of names.
    assert!(
        after.lines().count() <= before + 40,
        "{before} lines before, {} after",
        after.lines().count()
    );
    app.stop().await;
}

/// Item 3: a body that never arrives. Without a token (or, for GitHub, a
/// signature header) the answer is 401 at once, the body not waited for;
/// with one, 408 once the body deadline passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_timed_out_and_the_token_checked_first() {
    let (_dir, url) = common::fresh_sqlite();
    let app = Running::start(url).await;
    let port = app.port;
    let wait = BODY_READ_TIMEOUT + Duration::from_secs(5);
    let results = tokio::task::spawn_blocking(move || {
        let stalled = move |path: &str, extra: &str| {
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: 1000\r\n{extra}\r\n"
            );
            raw_request(port, &head, b"{", wait)
        };
        let handles = [
            std::thread::spawn(move || stalled("/api/v1/events", "")),
            std::thread::spawn(move || {
                stalled(
                    "/api/v1/events",
                    &format!("Authorization: Bearer {TOKEN}\r\n"),
                )
            }),
            std::thread::spawn(move || {
                stalled(
                    "/webhooks/github",
                    &format!(
                        "X-GitHub-Event: issues\r\nX-GitHub-Delivery: d\r\n\
                         X-Hub-Signature-256: sha256={}\r\n",
                        "0".repeat(64)
                    ),
                )
            }),
            std::thread::spawn(move || {
                stalled(
                    "/webhooks/github",
                    "X-GitHub-Event: issues\r\nX-GitHub-Delivery: d\r\n",
                )
            }),
        ];
        handles.map(|h| h.join().unwrap())
    })
    .await
    .unwrap();
    let [no_token, with_token, github, unsigned] = results;
    for (name, result) in [("api", no_token), ("github", unsigned)] {
        let (status, took) = result.unwrap_or_else(|| panic!("{name}: no answer"));
        assert_eq!(status, 401, "{name}");
        assert!(took < Duration::from_secs(2), "{name} took {took:?}");
    }
    for (name, result) in [("api", with_token), ("github", github)] {
        let (status, took) = result.unwrap_or_else(|| panic!("{name}: no answer in {wait:?}"));
        assert_eq!(status, 408, "{name}");
        assert!(
            took >= BODY_READ_TIMEOUT - Duration::from_millis(500),
            "{name}: {took:?}"
        );
    }
    app.stop().await;
}

/// Item 8: `/readyz` with the database gone answers within a second and names no
/// host, port or database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_quickly_and_generically_when_the_database_is_gone() {
    let db = common::FreshPostgres::new();
    let name = db.url.rsplit('/').next().unwrap().to_string();
    let app = Running::start(db.url.clone()).await;
    drop(db); // DROP DATABASE … WITH (FORCE): every later connection fails
    for _ in 0..2 {
        let started = Instant::now();
        let r = app
            .http
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(r.status(), 503);
        let body = r.text().await.unwrap();
        assert!(took < Duration::from_millis(1500), "took {took:?}");
        assert!(!body.contains(&name), "{body}");
        assert!(
            !body.contains("127.0.0.1") && !body.contains("5432"),
            "{body}"
        );
    }
    app.stop().await;
}

fn contract_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::copy(
        repo("config/contract.toml"),
        dir.path().join("config/contract.toml"),
    )
    .unwrap();
    dir
}

/// Item 1: the shipped placeholder secrets on an address others can reach
/// stop the start, naming each key and how to set it. 192.0.2.1 is TEST-NET,
/// so nothing is ever bound there, with or without the fix.
#[test]
fn placeholder_secrets_on_a_public_address_stop_the_start() {
    let dir = contract_dir();
    let out = spawn_binary(dir.path(), &[("KEEPWORD_BIND", "192.0.2.1:8080")])
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 192.0.2.1:8080"),
        "{err}"
    );
    for named in [
        "api_tokens",
        "KEEPWORD_API_TOKENS",
        "github.webhook_secret",
        "KEEPWORD_GITHUB__WEBHOOK_SECRET",
        "dashboard_password",
        "KEEPWORD_DASHBOARD_PASSWORD",
    ] {
        assert!(err.contains(named), "{named}: {err}");
    }
    assert!(
        !err.contains("cannot listen"),
        "refused before binding: {err}"
    );
}

/// Issue 25 item 1: an empty dashboard password (a compose file's unset
/// variable) stops the start on any address; beyond loopback a short one is
/// refused like the placeholder, naming the key and never the value.
#[test]
fn empty_and_short_dashboard_passwords_stop_the_start() {
    let dir = contract_dir();
    let real = [
        ("KEEPWORD_API_TOKENS", "a-real-api-token"),
        ("KEEPWORD_GITHUB__WEBHOOK_SECRET", "a-real-webhook-secret"),
    ];
    for (bind, password, expect) in [
        ("127.0.0.1:0", "", "`dashboard_password` is empty"),
        ("192.0.2.1:8080", "", "`dashboard_password` is empty"),
        ("192.0.2.1:8080", "k", "at least 12"),
        ("192.0.2.1:8080", "pw-eleven-c", "at least 12"),
    ] {
        let mut env = real.to_vec();
        env.push(("KEEPWORD_BIND", bind));
        env.push(("KEEPWORD_DASHBOARD_PASSWORD", password));
        let mut child = spawn_binary(dir.path(), &env);
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{bind} `{password}`: keepword started instead of refusing");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bind} `{password}`: {err}");
        assert!(err.contains(expect), "{bind} `{password}`: {err}");
        assert!(err.contains("dashboard_password"), "{err}");
        assert!(
            !err.contains("cannot listen"),
            "refused before binding: {err}"
        );
        if password.len() > 1 {
            assert!(!err.contains(password), "the value is never shown: {err}");
        }
    }
}

/// Issue 25 item 13: with `metrics_token` set, `/metrics` (breach counts
/// per client) asks for it as a bearer token, and no other; the public
/// OpenAPI document names no client, a token holder's lists them.
#[tokio::test]
async fn metrics_ask_for_their_token_and_the_public_document_names_no_client() {
    const METRICS_TOKEN: &str = "metrics-0123456789abcdef";
    let db = common::app::FreshDatabase::new(common::app::Backend::Sqlite);
    let settings = Settings {
        metrics_token: Secret::new(METRICS_TOKEN),
        ..common::app::dashboard_settings(db.url())
    };
    let app = common::app::serve(settings, Clock::system()).await;
    let get = |path: &'static str, bearer: Option<&'static str>| {
        let mut r = app.http.get(format!("{}{path}", app.base));
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            let challenge = r.headers().get("www-authenticate").cloned();
            (status, challenge, r.text().await.unwrap())
        }
    };
    for bearer in [None, Some("wrong"), Some(common::app::TOKEN)] {
        let (status, challenge, body) = get("/metrics", bearer).await;
        assert_eq!(status, 401, "{bearer:?}");
        assert_eq!(challenge.unwrap(), "Bearer");
        assert!(!body.contains("keepword_"), "{body}");
    }
    let (status, _, body) = get("/metrics", Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200);
    assert!(body.contains("keepword_build_info"), "{body}");

    let event_client = |text: &str| {
        let v: Value = serde_json::from_str(text).unwrap();
        v["components"]["schemas"]["Event"]["properties"]["client"].clone()
    };
    for bearer in [None, Some("wrong"), Some(METRICS_TOKEN)] {
        let (status, _, text) = get("/api/v1/openapi.json", bearer).await;
        assert_eq!(status, 200);
        for client in ["acme", "globex", "initech"] {
            assert!(!text.contains(client), "{bearer:?}: `{client}` is public");
        }
        let field = event_client(&text);
        assert!(field.get("enum").is_none(), "{field}");
    }
    let (_, _, text) = get("/api/v1/openapi.json", Some(common::app::TOKEN)).await;
    let ids = event_client(&text)["enum"].clone();
    for client in ["acme", "globex", "initech"] {
        assert!(ids.as_array().unwrap().contains(&json!(client)), "{ids}");
    }
    app.stop().await;
}

/// Issue 25 item 6: a dashboard POST is answered before its body is read
/// when the session (or the sign-in form's cookie) is missing, a
/// cross-site form is refused the same way, and a form over the small
/// limit is a 413 — not a 6 MiB read and a 10 s wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_posts_check_the_session_before_the_body() {
    let app = common::app::spawn_dashboard(common::app::Backend::Sqlite, Clock::system()).await;
    let port = app.port;
    let session = app.sign_in().await;
    let with_session = format!("Cookie: {session}\r\n");
    for (path, cookie, extra, expect) in [
        ("/conversations/1/solve", "", "", 303),
        ("/logout", "", "", 303),
        ("/login", "", "", 403),
        (
            "/conversations/1/solve",
            with_session.as_str(),
            "Sec-Fetch-Site: cross-site\r\n",
            403,
        ),
        ("/conversations/1/solve", with_session.as_str(), "", 413),
    ] {
        // Announces 6 MB and sends five bytes of them.
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 6000000\r\n{cookie}{extra}\r\n"
        );
        let answer = tokio::task::spawn_blocking(move || {
            raw_request(port, &head, b"csrf=", Duration::from_secs(5))
        })
        .await
        .unwrap();
        let (status, took) = answer.unwrap_or_else(|| panic!("{path}: no answer within 5 s"));
        assert_eq!(status, expect, "{path} {cookie}{extra}");
        assert!(took < Duration::from_secs(2), "{path}: {took:?}");
    }
    // A form of a reasonable size still works.
    let (_, page) = app.page(&session, "/").await;
    let csrf = common::app::hidden(&page, "csrf").unwrap();
    let r = common::app::Served::browser_like()
        .post(format!("{}/logout", app.base))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(app.page(&session, "/").await.0, 303, "signed out");
    app.stop().await;
}

/// The binary's stderr, line by line.
fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Lines up to "keepword serving" (or the end), and the port it reported.
fn until_serving(rx: &std::sync::mpsc::Receiver<String>) -> (Vec<String>, Option<u16>) {
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let port = line
            .contains("keepword serving")
            .then(|| line.rsplit("port=").next().unwrap().trim().parse().unwrap());
        lines.push(line);
        if port.is_some() {
            return (lines, port);
        }
    }
    (lines, None)
}

/// Items 1 (loopback: a warning), 6 (numeric secrets are strings) and 7 (a
/// password in the URL's query is never logged), through the built binary.
#[test]
fn numeric_secrets_work_and_database_passwords_never_reach_the_log() {
    let db = common::FreshPostgres::new();
    // The query's password is the one the server checks when it checks any
    // (the admin URL's, else a made-up one under trust authentication).
    let (without, password) = match db.url.split_once("://").and_then(|(_, rest)| {
        let (userinfo, host) = rest.rsplit_once('@')?;
        let (user, password) = userinfo.split_once(':')?;
        Some((format!("postgres://{user}@{host}"), password.to_string()))
    }) {
        Some(split) => split,
        None => (db.url.clone(), "QuerySecret99".to_string()),
    };
    let url = format!("{without}?password={password}");
    let dir = contract_dir();
    let mut child = spawn_binary(
        dir.path(),
        &[
            ("KEEPWORD_BIND", "127.0.0.1:0"),
            ("KEEPWORD_DATABASE_URL", &url),
            ("KEEPWORD_GITHUB__WEBHOOK_SECRET", "123456789"),
            ("KEEPWORD_SMTP__PASSWORD", "987654321"),
        ],
    );
    let rx = stderr_lines(&mut child);
    let (mut log, port) = until_serving(&rx);
    let port = port.unwrap_or_else(|| panic!("did not start: {log:#?}"));
    assert!(
        log.iter()
            .any(|l| l.contains("placeholder secret") && l.contains("api_tokens")),
        "loopback warns about the placeholders left: {log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("github.webhook_secret")),
        "the numeric webhook secret is a real secret: {log:#?}"
    );
    assert!(
        log.iter().any(|l| l.contains("password=***")),
        "the URL is logged redacted: {log:#?}"
    );

    // A delivery signed with the numeric secret is accepted.
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         X-GitHub-Event: ping\r\nX-GitHub-Delivery: p-1\r\nContent-Type: application/json\r\n\
         X-Hub-Signature-256: {}\r\nContent-Length: {}\r\n\r\n",
        github_signature(b"123456789", ping),
        ping.len()
    )
    .unwrap();
    s.write_all(ping).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");

    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(15));
    log.extend(until_serving(&rx).0);
    assert!(status.success(), "SIGTERM: {status:?}\n{log:#?}");
    let all = log.join("\n");
    for secret in [
        format!("password={password}"),
        format!(":{password}@"),
        "123456789".into(),
        "987654321".into(),
    ] {
        assert!(!all.contains(&secret), "{secret} logged: {all}");
    }

    // A connection error does not show it either.
    let refused = format!(
        "postgres://u:p@ss@127.0.0.1:{}/db?password=QuerySecret99",
        free_port()
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keepword"))
        .args(["migrate", "--database-url", &refused])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open database"), "{err}");
    assert!(
        !err.contains("QuerySecret99") && !err.contains("p@ss"),
        "{err}"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
