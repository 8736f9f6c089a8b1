//! The shipped example as a new user's first `./scripts/serve` runs it:
//! nothing it configures reaches past this machine until the user says so.

use std::path::Path;

use keepword::config::Settings;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `(key path, value)` of every http(s) URL in `v`.
fn urls(path: &str, v: &toml::Value, out: &mut Vec<(String, String)>) {
    match v {
        toml::Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
            out.push((path.to_string(), s.clone()))
        }
        toml::Value::Table(t) => {
            for (k, v) in t {
                urls(&format!("{path}.{k}"), v, out);
            }
        }
        toml::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                urls(&format!("{path}[{i}]"), v, out);
            }
        }
        _ => {}
    }
}

/// Issue 25 item 14: the example contract's alerts go to the SMTP server on
/// this machine only; a URL it holds is either loopback or a link shown to
/// readers (the contract's own address, a channel's), never a target
/// keepword posts to.
#[test]
fn the_shipped_example_sends_nothing_off_the_machine() {
    let text = std::fs::read_to_string(repo("config/contract.toml")).unwrap();
    let contract: toml::Value = toml::from_str(&text).unwrap();
    let mut found = Vec::new();
    urls("", &contract, &mut found);
    let shown_to_readers = |key: &str| {
        key == ".contract.public_url"
            || (key.starts_with(".channels.") && key.ends_with(".address"))
    };
    for (key, url) in found.iter().filter(|(k, _)| !shown_to_readers(k)) {
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        assert!(
            is_loopback(&host),
            "config/contract.toml `{key}` posts to {url}, off this machine"
        );
    }
    let settings = Settings::load_from(Some(&repo("config/keepword.toml")), &[]).unwrap();
    assert!(is_loopback(&settings.smtp.host), "{}", settings.smtp.host);
    assert!(settings.mailboxes.is_empty(), "no mailbox is polled");
}
