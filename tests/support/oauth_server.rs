//! The OAuth 2.0 authorization server of the OAuth tests: npm
//! `oauth2-mock-server` (tests/oauth_server, installed by ./scripts/test)
//! run by node as a child process. It signs real RS256 JWTs; Dovecot
//! validates them with the public key it prints. Commands go to its stdin,
//! and every token request it answers is recorded (see server.mjs).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::dovecot::OAuthIssuer;

pub struct OAuthServer {
    child: Child,
    stdin: Option<ChildStdin>,
    pub port: u16,
    pub issuer: OAuthIssuer,
    lines: Arc<(Mutex<Vec<Value>>, Condvar)>,
    next_id: u64,
}

impl OAuthServer {
    /// oauth2-mock-server (server.mjs).
    pub fn start() -> OAuthServer {
        Self::start_script("server.mjs", "oauth2-mock-server")
    }

    /// oidc-provider with the device authorization grant (device.mjs): its
    /// client is `keepword-device`, public, scope `openid offline_access
    /// mail`; [`OAuthServer::command`] `{"approve": CODE, "login": ADDRESS}`
    /// plays the person signing in.
    pub fn start_device() -> OAuthServer {
        Self::start_script("device.mjs", "oidc-provider")
    }

    fn start_script(script: &str, package: &str) -> OAuthServer {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oauth_server");
        assert!(
            dir.join("node_modules").join(package).exists(),
            "{package} is not installed: run ./scripts/test (it runs \
             `npm ci --prefix tests/oauth_server`)"
        );
        let mut child = Command::new("node")
            .arg(dir.join(script))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node (the OAuth test server needs Node.js)");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let hello: Value = serde_json::from_str(&first)
            .unwrap_or_else(|e| panic!("the OAuth test server did not start ({e}): {first:?}"));
        let lines: Arc<(Mutex<Vec<Value>>, Condvar)> = Arc::default();
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in stdout.lines() {
                    let Ok(line) = line else { break };
                    let Ok(v) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    lines.0.lock().unwrap().push(v);
                    lines.1.notify_all();
                }
            });
        }
        OAuthServer {
            stdin: child.stdin.take(),
            child,
            port: hello["port"].as_u64().unwrap() as u16,
            issuer: OAuthIssuer {
                issuer: hello["issuer"].as_str().unwrap().to_string(),
                kid: hello["kid"].as_str().unwrap().to_string(),
                alg: hello["alg"].as_str().unwrap_or("RS256").to_string(),
                public_pem: hello["pem"].as_str().unwrap().to_string(),
            },
            lines,
            next_id: 0,
        }
    }

    pub fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// Sends a command (see server.mjs, device.mjs) and waits until it is
    /// applied; its acknowledgement.
    pub fn command(&mut self, mut cmd: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        cmd["id"] = json!(id);
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        let (lock, cv) = &*self.lines;
        let guard = lock.lock().unwrap();
        let (guard, timeout) = cv
            .wait_timeout_while(guard, Duration::from_secs(10), |lines| {
                !lines
                    .iter()
                    .any(|l| l["event"] == "ack" && l["id"] == json!(id))
            })
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "the OAuth test server did not apply {cmd}"
        );
        let ack = lines_ack(&guard, id);
        assert!(ack["error"].is_null(), "{cmd} failed: {}", ack["error"]);
        ack
    }

    /// Every line the server printed: token answers, errors, acks.
    pub fn events(&self) -> Vec<Value> {
        self.lines.0.lock().unwrap().clone()
    }

    /// Every token request answered so far: what the client sent.
    pub fn token_requests(&self) -> Vec<Value> {
        self.lines
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l["event"] == "token")
            .map(|l| l["body"].clone())
            .collect()
    }
}

fn lines_ack(lines: &[Value], id: u64) -> Value {
    lines
        .iter()
        .find(|l| l["event"] == "ack" && l["id"] == json!(id))
        .cloned()
        .unwrap_or_default()
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        // Closing stdin stops it; the kill is for a server that hangs.
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
