//! A private chromedriver + headless Chromium per test, stopped (by its
//! process group) when closed or dropped — also when the test panics. Missing binaries fail the test loudly: the test command
//! installs them.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn binary(env: &str, default: &str) -> String {
    let path = std::env::var(env).unwrap_or_else(|_| default.to_string());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} not found: the browser tests need Chromium and ChromeDriver \
         (`apt-get install chromium chromium-driver`; ./scripts/test installs them), \
         or set {env}"
    );
    path
}

impl Browser {
    /// A browser with a window of `width` × `height` CSS pixels.
    pub async fn start(width: u32, height: u32) -> Browser {
        let chromedriver = binary("KEEPWORD_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = binary("KEEPWORD_CHROMIUM", "/usr/bin/chromium");
        let port = free_port();
        // Its own process group, which the Chromium it starts joins: killing
        // the group ends them all (killing chromedriver alone orphans
        // Chromium, which then runs until the machine stops).
        let driver = Command::new(chromedriver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let mut caps = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        // A desktop window cannot be narrower than Chromium's minimum (about
        // 500 px): a phone is emulated instead, at its real width.
        if width < 500 {
            caps["goog:chromeOptions"]["mobileEmulation"] =
                json!({ "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0 } });
        }
        let caps: serde_json::Map<String, Value> = caps.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if started.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot start a Chromium session through chromedriver: {e}"),
            }
        };
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn text(&self) -> String {
        self.eval("return document.body.innerText")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    pub async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    /// Waits (up to `within`) for `script` to return true; returns how long
    /// it took, or panics with `what`.
    pub async fn wait_for(&self, script: &str, within: Duration, what: &str) -> Duration {
        let started = Instant::now();
        loop {
            if self.eval(script).await == Value::Bool(true) {
                return started.elapsed();
            }
            assert!(started.elapsed() < within, "waited {within:?} for {what}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Signs in on the dashboard at `base` with `password` and waits for
    /// the answer's page.
    pub async fn sign_in(&self, base: &str, password: &str) {
        self.goto(&format!("{base}/login")).await;
        self.fill("#password", password).await;
        // The click returns before the answer has replaced the page: wait for
        // the next document, or a goto right after could race the form's post.
        self.eval("window.__before_sign_in = true; return true")
            .await;
        self.click("form.login button[type=submit]").await;
        self.wait_for(
            "return window.__before_sign_in === undefined && document.readyState === 'complete'",
            Duration::from_secs(10),
            "the sign-in's answer",
        )
        .await;
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let e = self.client.find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(value).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Presses keys with focus on the page body.
    pub async fn keys(&self, keys: &str) {
        self.client
            .find(Locator::Css("body"))
            .await
            .unwrap()
            .send_keys(keys)
            .await
            .unwrap();
    }

    /// Saves a screenshot as `target/browser-screenshots/NAME.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Runs axe-core on the page: the violations of impact `serious` or
    /// `critical`, as "id (impact): help — N nodes".
    pub async fn serious_violations(&self) -> Vec<String> {
        let axe = axe_source();
        self.client.execute(&axe, vec![]).await.unwrap();
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                    .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5) }))))
                    .catch(e => done([{ id: 'axe-error', impact: 'critical', help: String(e), nodes: [] }]));",
                vec![],
            )
            .await
            .unwrap();
        found
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| {
                format!(
                    "{} ({}): {} — {}",
                    v["id"], v["impact"], v["help"], v["nodes"]
                )
            })
            .collect()
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.stop();
    }

    /// Ends chromedriver and every Chromium process of its group.
    fn stop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop();
    }
}

/// axe-core's `axe.min.js` (npm, installed by the test command into
/// `tests/browser/node_modules`), or `KEEPWORD_AXE`.
fn axe_source() -> String {
    let path = std::env::var("KEEPWORD_AXE").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/node_modules/axe-core/axe.min.js"
        )
        .into()
    });
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read axe-core at {path} ({e}): run `npm ci --prefix tests/browser` (./scripts/test does)")
    })
}
