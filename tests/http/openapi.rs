//! The OpenAPI document against the running service: it names every route,
//! each route answers as described, every API error has the one JSON shape,
//! and schemathesis (property-based requests from the document, every check)
//! finds no server error and no answer the document does not allow.

use crate::common;
use crate::support;

use keepword::clock::Clock;
use keepword::config::{Secret, Settings, Tls};
use reqwest::Method;
use serde_json::{Value, json};

const TOKEN: &str = "test-token";

struct Running {
    served: common::app::Served,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    _hooks: support::HookReceiver,
}

impl std::ops::Deref for Running {
    type Target = common::app::Served;
    fn deref(&self) -> &common::app::Served {
        &self.served
    }
}

impl Running {
    async fn start() -> Running {
        let (db_dir, database_url) = common::fresh_sqlite();
        let hooks = support::HookReceiver::start(0).await;
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings {
            bind: "127.0.0.1:0".parse().unwrap(),
            database_url,
            contract: common::fast_contract(dir.path(), &hooks.url),
            api_tokens: vec![Secret::new(TOKEN)],
            ..Default::default()
        };
        settings.smtp.port = support::free_port();
        settings.smtp.tls = Tls::None;
        settings.github.webhook_secret = Secret::new("gh-secret");
        Running {
            served: common::app::serve(settings, Clock::system()).await,
            _dirs: (db_dir, dir),
            _hooks: hooks,
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    async fn stop(self) {
        self.served.stop().await;
    }
}

/// Status, headers and the body as JSON; panics when the body is not JSON
/// in the API's error shape (for a 4xx/5xx) — that is the point.
async fn answer(r: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = r.send().await.expect("request sent");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text:.200}"));
    if status >= 400 {
        assert_eq!(
            headers["content-type"], "application/json",
            "{status} {text}"
        );
        let keys: Vec<&String> = body.as_object().expect("an object").keys().collect();
        assert!(body["error"].is_string(), "{status}: no `error`: {body}");
        assert!(
            keys.iter().all(|k| *k == "error" || *k == "fields"),
            "{status}: not the error shape: {body}"
        );
    }
    (status, headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_describes_every_route_and_each_answers_as_described() {
    let app = Running::start().await;
    let (status, _, doc) = answer(app.request(Method::GET, "/api/v1/openapi.json")).await;
    assert_eq!(status, 200, "public, no token");
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer", "description": "One of the configured `api_tokens`."})
    );
    let github = &doc["paths"]["/webhooks/github"]["post"];
    let headers: Vec<&str> = github["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for h in ["X-Hub-Signature-256", "X-GitHub-Delivery", "X-GitHub-Event"] {
        assert!(headers.contains(&h), "{h} not documented: {headers:?}");
    }
    // The served document is the contract's: its channels are the enum.
    assert_eq!(
        doc["components"]["schemas"]["Event"]["properties"]["channel"]["enum"],
        json!(["tickets", "email"])
    );

    let described = keepword::web::openapi::described_routes(&doc);
    assert_eq!(described, keepword::web::openapi::registered_routes());
    for path in doc["paths"].as_object().unwrap().keys() {
        let methods: Vec<String> = described
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, m)| m.clone())
            .collect();
        let concrete = path.replace("{id}", "1");
        // A method the document does not list: 405 naming the ones it does.
        let (status, headers, body) = answer(app.request(Method::PATCH, &concrete)).await;
        assert_eq!(status, 405, "PATCH {path}: {body}");
        assert_eq!(headers["allow"], methods.join(", "), "PATCH {path}");
        // Each listed method reaches its handler: never the unknown-path 404.
        for m in &methods {
            let method = Method::from_bytes(m.as_bytes()).unwrap();
            let (status, _, body) = answer(app.request(method, &concrete)).await;
            let op = &doc["paths"][path][m.to_lowercase()];
            let documented = op["responses"]
                .as_object()
                .unwrap()
                .contains_key(&status.to_string());
            assert!(
                documented,
                "{m} {path} answered {status}, undocumented: {body}"
            );
            assert!(
                !body["error"].as_str().unwrap_or("").starts_with("no route"),
                "{m} {path}: {body}"
            );
        }
    }
    app.stop().await;
}

fn event(id: &str, body: &str) -> Value {
    json!({"id": id, "channel": "tickets", "thread": id, "direction": "inbound",
           "from": "jane@acme.com", "subject": "Limits", "body": body})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_error_has_one_json_shape() {
    let app = Running::start().await;
    let authed = |m: Method, p: &str| app.request(m, p).bearer_auth(TOKEN);

    let (status, _, body) = answer(authed(Method::GET, "/api/v1/conversations/abc")).await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("`abc`"), "{body}");
    let (status, _, _) = answer(authed(Method::POST, "/api/v1/conversations/1.5/solve")).await;
    assert_eq!(status, 404);
    let (status, _, body) = answer(authed(Method::GET, "/api/v1/rejected/x/raw")).await;
    assert_eq!(status, 404, "{body}");

    let (status, _, body) = answer(authed(Method::GET, "/api/v1/nothing-here")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "no route GET /api/v1/nothing-here");
    let (status, _, _) = answer(app.request(Method::POST, "/webhooks/gitlab")).await;
    assert_eq!(status, 404);

    let (status, headers, body) = answer(authed(Method::PUT, "/api/v1/events")).await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(headers["allow"], "POST");
    let (status, headers, _) = answer(authed(Method::DELETE, "/api/v1/conversations/7")).await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET");

    let (status, _, body) = answer(authed(Method::GET, "/api/v1/conversations?colour=red")).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("colour"), "{body}");
    let (status, _, _) = answer(authed(Method::GET, "/api/v1/rejected?limit=ten")).await;
    assert_eq!(status, 400);
    let (status, _, body) = answer(authed(Method::GET, "/api/v1/rejected?limit=0")).await;
    assert_eq!(status, 422);
    assert_eq!(body["fields"][0]["field"], "limit", "{body}");

    let (status, headers, _) = answer(app.request(Method::GET, "/api/v1/conversations")).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer");

    // A body field of exactly the documented 1 MiB is accepted; one byte more
    // is a 422 naming the field, not a 413 from the HTTP layer.
    let mib = 1 << 20;
    let (status, _, body) =
        answer(authed(Method::POST, "/api/v1/events").json(&event("one-mib", &"a".repeat(mib))))
            .await;
    assert_eq!(status, 201, "{body}");
    let (status, _, body) =
        answer(authed(Method::POST, "/api/v1/events").json(&event("over", &"a".repeat(mib + 1))))
            .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["fields"][0]["field"], "body", "{body}");
    // 1 MiB of characters JSON spells six bytes each still fits.
    let (status, _, body) = answer(
        authed(Method::POST, "/api/v1/events").json(&event("escaped", &"\u{1}".repeat(mib))),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Over the HTTP limit: 413 in the API's shape, for either route; without
    // a token the token is checked first, so the answer is 401.
    let huge = vec![b' '; keepword::web::api::BODY_LIMIT + 1];
    let (status, _, body) = answer(authed(Method::POST, "/api/v1/events").body(huge.clone())).await;
    assert_eq!(status, 413, "{body}");
    let (status, _, _) = answer(
        app.request(Method::POST, "/api/v1/events")
            .body(huge.clone()),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, body) = answer(
        app.request(Method::POST, "/webhooks/github")
            .header("X-GitHub-Event", "issues")
            .header("X-GitHub-Delivery", "d-1")
            .body(huge.clone()),
    )
    .await;
    // Without a signature header the body is never read.
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = answer(
        app.request(Method::POST, "/webhooks/github")
            .header("X-GitHub-Event", "issues")
            .header("X-GitHub-Delivery", "d-1")
            .header("X-Hub-Signature-256", format!("sha256={}", "0".repeat(64)))
            .body(huge),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    app.stop().await;
}

/// schemathesis, every check, a fixed seed and a bounded number of examples
/// per operation so the run is repeatable and short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_nonconformance() {
    // Server errors are logged; show them beside schemathesis' report.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("keepword=error")
        .with_test_writer()
        .try_init();
    let app = Running::start().await;
    let python = support::python();
    let schema = format!("{}/api/v1/openapi.json", app.base);
    let auth = format!("Authorization: Bearer {TOKEN}");
    let report = tempfile::tempdir().unwrap();
    let report_dir = report.path().to_owned();
    let mut cmd = std::process::Command::new(&python);
    cmd.args([
        "-c",
        "import sys; from schemathesis.cli import schemathesis; \
             sys.argv[0] = 'schemathesis'; sys.exit(schemathesis())",
        "run",
        &schema,
        "--checks",
        "all",
        "-H",
        &auth,
        "--max-examples",
        "40",
        "--seed",
        "20261124",
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--no-color",
        "--request-timeout",
        "20",
        "--report",
        "junit",
        "--report-junit-path",
        "junit.xml",
    ])
    .current_dir(report_dir);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("schemathesis runs (KEEPWORD_PYTHON needs tests/support/requirements.txt)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // Guard against a run that left operations out: each one is a test
    // case of the report.
    let junit = std::fs::read_to_string(report.path().join("junit.xml")).unwrap();
    let doc: Value = app
        .http
        .get(&schema)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, method) in keepword::web::openapi::described_routes(&doc) {
        // schemathesis leaves out the document it loaded; the test above
        // requests it.
        if path == "/api/v1/openapi.json" {
            continue;
        }
        let name = format!("{method} {path}");
        assert!(junit.contains(&name), "{name} was not tested:\n{junit}");
    }
    app.stop().await;
}
