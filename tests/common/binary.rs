//! The built `keepword` binary, started the way a user starts it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary, started the way a user starts it.
pub struct Served {
    pub child: Child,
    pub port: u16,
    pub stderr: std::sync::mpsc::Receiver<String>,
}

pub fn spawn_binary(cwd: &Path, env: &[(&str, &str)]) -> Child {
    spawn_binary_as(cwd, env, false)
}

/// [`spawn_binary`]; with `own_group` the process leads a process group of
/// its own. A test that stops it (SIGSTOP) needs that: stopped in the test's
/// group, the kernel continues it (SIGHUP, SIGCONT) as soon as that group is
/// orphaned, e.g. when another process of it exits.
pub fn spawn_binary_as(cwd: &Path, env: &[(&str, &str)], own_group: bool) -> Child {
    spawn_binary_under(&[], cwd, env, own_group)
}

/// [`spawn_binary_as`], run by `wrapper` (a program and its arguments
/// before the binary's path, e.g. `fiu-run -x`), which must exec it (the
/// child's PID is then the binary's).
pub fn spawn_binary_under(
    wrapper: &[&str],
    cwd: &Path,
    env: &[(&str, &str)],
    own_group: bool,
) -> Child {
    use std::os::unix::process::CommandExt;
    let binary = env!("CARGO_BIN_EXE_keepword");
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(binary);
            c
        }
        None => Command::new(binary),
    };
    if own_group {
        cmd.process_group(0);
    }
    cmd.arg("serve")
        .current_dir(cwd)
        .env_remove("KEEPWORD_CONFIG")
        .env("KEEPWORD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn keepword")
}

pub fn serve_binary(cwd: &Path, env: &[(&str, &str)]) -> Served {
    serve_binary_as(cwd, env, false)
}

/// [`serve_binary`]; `own_group` as for [`spawn_binary_as`].
pub fn serve_binary_as(cwd: &Path, env: &[(&str, &str)], own_group: bool) -> Served {
    serve_binary_under(&[], cwd, env, own_group)
}

/// [`serve_binary_as`], run by `wrapper` (see [`spawn_binary_under`]).
#[allow(clippy::zombie_processes)] // every caller waits for the child
pub fn serve_binary_under(
    wrapper: &[&str],
    cwd: &Path,
    env: &[(&str, &str)],
    own_group: bool,
) -> Served {
    let mut child = spawn_binary_under(wrapper, cwd, env, own_group);
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("keepword serve did not report its port in time");
        if line.contains("keepword serving") {
            let port = line
                .rsplit("port=")
                .next()
                .unwrap()
                .trim()
                .parse()
                .expect("port");
            return Served {
                child,
                port,
                stderr: rx,
            };
        }
    }
}

pub fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn sighup(child: &Child) {
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
}

pub fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "process did not exit in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A tiny blocking GET over std, so the binary tests need no runtime:
/// (status, body, X-Contract-Version).
pub fn get(port: u16, path: &str) -> (u16, String, Option<String>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let version = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("x-contract-version: ")
            .map(str::to_string)
    });
    (status, body.to_string(), version)
}
