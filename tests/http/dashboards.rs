//! The shipped alert rules and Grafana dashboard: promtool accepts and
//! unit-tests the rules, and every metric either names is one the service
//! really exports.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use keepword::config::Settings;

fn dashboards(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dashboards")
        .join(file)
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dashboards(""))
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool is needed for this test ({e}); ./scripts/test installs it (Debian package prometheus)")
        });
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_checks_and_unit_tests_the_alert_rules() {
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["test", "rules", "alerts.test.yml"]);
}

/// `keepword_…` names in a text, with histogram series suffixes removed.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("keepword_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let mut name = &tail[..end];
        for suffix in ["_bucket", "_sum", "_count"] {
            name = name.strip_suffix(suffix).unwrap_or(name);
        }
        names.push(name.to_string());
        rest = &tail[end..];
    }
    names.sort();
    names.dedup();
    names
}

#[tokio::test]
async fn every_metric_in_the_rules_and_dashboard_is_exported() {
    let (_dir, url) = common::fresh_sqlite();
    let settings = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url: url,
        contract: Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml"),
        ..Default::default()
    };
    let served = common::app::serve(settings, keepword::clock::Clock::system()).await;
    let exported = served.state.metrics.family_names();
    assert!(
        exported.contains(&"keepword_outbox_pending".to_string()),
        "{exported:?}"
    );
    for file in ["alerts.yml", "grafana.json"] {
        let text = std::fs::read_to_string(dashboards(file)).unwrap();
        let used = metric_names(&text);
        assert!(used.len() >= 5, "{file} uses keepword metrics");
        let missing: Vec<&String> = used.iter().filter(|n| !exported.contains(n)).collect();
        assert!(
            missing.is_empty(),
            "{file} names metrics the service does not export: {missing:?}"
        );
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dashboards("grafana.json")).unwrap())
            .unwrap();
    assert!(dashboard["panels"].as_array().unwrap().len() >= 8);
    served.stop().await;
}
