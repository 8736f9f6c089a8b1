//! The `keepword` command line: `contract check`, `render`, `due` and
//! `migrate`, as a user runs them. `contract due` is cross-checked against
//! the independent Python walker (tests/crosscheck/oracle.py) in odd zones.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

fn keepword(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keepword"))
        .args(args)
        .env_remove("KEEPWORD_CONFIG")
        .output()
        .expect("run keepword")
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_accepts_the_shipped_contract() {
    let out = keepword(&[
        "contract",
        "check",
        repo("config/contract.toml").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(": ok (version "));
}

#[test]
fn check_lists_every_mistake_with_line_and_column() {
    let file = repo("tests/fixtures/contracts/many_mistakes.toml");
    let out = keepword(&["contract", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let prefix = format!("{}:", file.display());
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(": error: "))
        .collect();
    // Every line the fixture marks with `# LINE:COL` is reported at that spot.
    let fixture = std::fs::read_to_string(&file).unwrap();
    let mut expected = Vec::new();
    for line in fixture.lines() {
        if let Some((_, comment)) = line.split_once("# ")
            && let Some((pos, _)) = comment.split_once(' ')
            && pos.split(':').count() == 2
            && pos.split(':').all(|n| n.parse::<u32>().is_ok())
        {
            expected.push(pos.to_string());
        }
    }
    assert!(expected.len() >= 10, "fixture marks its mistakes");
    for pos in &expected {
        let needle = format!("{prefix}{pos}: error: ");
        assert!(
            errors.iter().any(|l| l.starts_with(&needle)),
            "no error at {pos}:\n{err}"
        );
    }
    assert!(err.contains("did you mean"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert!(
        err.contains(&format!("{} errors found", errors.len())),
        "{err}"
    );
}

#[test]
fn check_reports_bad_toml_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[contract]\nname = \"x\n").unwrap();
    let out = keepword(&["contract", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("{}:2:", bad.display())),
        "{}",
        text(&out.stderr)
    );
    let out = keepword(&["contract", "check", "/nonexistent/contract.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read contract"));
}

#[test]
fn render_writes_markdown_and_html() {
    let file = repo("config/contract.toml");
    let md = keepword(&[
        "contract",
        "render",
        file.to_str().unwrap(),
        "--format",
        "md",
    ]);
    assert!(md.status.success());
    let md = text(&md.stdout);
    assert!(md.starts_with("# "), "{md}");
    assert!(md.contains("Northwind Studio"));
    assert!(md.contains("4 business hours"), "{md}");
    let html = keepword(&[
        "contract",
        "render",
        file.to_str().unwrap(),
        "--format",
        "html",
    ]);
    let html = text(&html.stdout);
    assert!(
        html.starts_with("<!DOCTYPE html>") || html.starts_with("<!doctype html>"),
        "{}",
        &html[..80]
    );
    assert!(
        html.contains("24 December 2026") || html.contains("2026-12-24") || html.contains("Dec"),
        "holidays listed"
    );
}

#[test]
fn due_prints_one_rfc3339_line_in_the_calendar_zone() {
    let file = repo("config/contract.toml");
    let f = file.to_str().unwrap();
    // Friday 16:00 Berlin + 4 business hours: Friday closes at 17:00, so
    // three hours remain for Monday: 12:00.
    let out = keepword(&[
        "contract",
        "due",
        f,
        "--type",
        "question",
        "--at",
        "2026-11-27T16:00:00+01:00",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "2026-11-30T12:00:00+01:00\n");
    // ACME's override: 2 business hours.
    let out = keepword(&[
        "contract",
        "due",
        f,
        "--type",
        "question",
        "--client",
        "acme",
        "--at",
        "2026-11-27T16:00:00+01:00",
    ]);
    assert_eq!(text(&out.stdout), "2026-11-30T10:00:00+01:00\n");
    let out = keepword(&[
        "contract",
        "due",
        f,
        "--type",
        "urgent",
        "--timer",
        "resolution",
        "--at",
        "2026-11-27T16:00:00Z",
    ]);
    assert_eq!(text(&out.stdout), "2026-11-28T01:00:00+01:00\n");
    for bad in [
        vec!["--type", "nope", "--at", "2026-11-27T16:00:00Z"],
        vec![
            "--type",
            "question",
            "--client",
            "acmee",
            "--at",
            "2026-11-27T16:00:00Z",
        ],
        vec!["--type", "question", "--at", "yesterday"],
        vec![
            "--type",
            "question",
            "--timer",
            "lunch",
            "--at",
            "2026-11-27T16:00:00Z",
        ],
    ] {
        let mut args = vec!["contract", "due", f];
        args.extend(bad.iter().copied());
        let out = keepword(&args);
        assert!(!out.status.success(), "{bad:?} must fail");
        assert!(!text(&out.stderr).is_empty());
    }
}

#[test]
fn migrate_creates_the_schema_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/m.db", dir.path().display());
    let out = keepword(&["migrate", "--database-url", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.path().join("m.db").exists());
    let out = keepword(&[
        "migrate",
        "--database-url",
        "postgres://nobody@127.0.0.1:1/x",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("127.0.0.1"),
        "{}",
        text(&out.stderr)
    );
}

const ODD_ZONES: [&str; 7] = [
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "America/Sao_Paulo",
    "Pacific/Apia",
    "Asia/Tehran",
    "America/Havana",
    "Europe/Berlin",
];

fn hhmm(secs: u32) -> String {
    format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60)
}

/// `keepword contract due` (the whole path: TOML → contract → calendar →
/// RFC 3339 output) against the independent Python walker.
#[test]
fn due_agrees_with_the_python_walker_in_odd_zones() {
    let python = std::env::var_os("KEEPWORD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo(".venv/bin/python"));
    assert!(
        python.exists(),
        "no Python at {}: run ./scripts/test",
        python.display()
    );
    let seed: u64 = std::env::var("KEEPWORD_CROSSCHECK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("cli cross-check seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut calendars = Vec::new();
    let mut cases = Vec::new();
    let mut rust = Vec::new();
    for (c, zone) in ODD_ZONES.iter().enumerate() {
        // Hours around midnight and DST hours on purpose: 00:00-02:30 and a
        // day interval, weekdays only, plus a holiday.
        let early = rng.random_range(1..=3) * 1800 + 3600;
        let start = rng.random_range(7..=10) * 3600;
        let end = start + rng.random_range(4..=9) * 3600;
        let hours = format!("00:00-{}, {}-{}", hhmm(early), hhmm(start), hhmm(end));
        let holiday = format!("20{}-12-25", rng.random_range(20..=30));
        let week: Vec<Value> = (0..7)
            .map(|d| {
                if d < 5 {
                    json!([[0, early], [start, end]])
                } else {
                    json!([])
                }
            })
            .collect();
        calendars.push(json!({"tz": zone, "always": false, "week": week, "holidays": [holiday]}));
        let windows = ["30m", "4h", "1h30m", "1d", "2d3h", "5d"];
        let mut toml = format!(
            "[contract]\nname = \"x\"\neffective = \"2026-01-01\"\ntimezone = \"{zone}\"\n\n\
             [calendars.c]\ntimezone = \"{zone}\"\n"
        );
        for d in ["mon", "tue", "wed", "thu", "fri"] {
            toml.push_str(&format!("{d} = \"{hours}\"\n"));
        }
        toml.push_str(&format!("holidays = [\"{holiday}\"]\n\n[channels.email]\nkind = \"email\"\naddress = \"s@example.com\"\n\n"));
        for (i, w) in windows.iter().enumerate() {
            toml.push_str(&format!(
                "[[request_types]]\nid = \"t{i}\"\nname = \"T{i}\"\ndefinition = \"d\"\nchannels = [\"email\"]\n\
                 calendar = \"c\"\nfirst_response = \"{w}\"\n{}\n",
                if i == 0 { "default = true\n" } else { "" }
            ));
        }
        let file = dir.path().join(format!("c{c}.toml"));
        std::fs::write(&file, toml).unwrap();
        for _ in 0..12 {
            let i = rng.random_range(0..windows.len());
            let (days, seconds) = match windows[i] {
                "30m" => (0, 1800),
                "4h" => (0, 14_400),
                "1h30m" => (0, 5_400),
                "1d" => (1, 0),
                "2d3h" => (2, 10_800),
                _ => (5, 0),
            };
            let t: DateTime<Utc> = Utc
                .timestamp_opt(rng.random_range(1_577_836_800..1_924_992_000), 0)
                .unwrap()
                + Duration::minutes(rng.random_range(0..60));
            let out = keepword(&[
                "contract",
                "due",
                file.to_str().unwrap(),
                "--type",
                &format!("t{i}"),
                "--at",
                &t.to_rfc3339(),
            ]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            let printed = text(&out.stdout);
            let due = DateTime::parse_from_rfc3339(printed.trim()).expect("RFC 3339 output");
            rust.push((
                t,
                windows[i],
                printed.trim().to_string(),
                due.with_timezone(&Utc),
            ));
            cases.push(
                json!({"cal": c, "op": "add", "t": t.timestamp_nanos_opt().unwrap(),
                              "days": days, "seconds": seconds}),
            );
        }
    }
    let input = dir.path().join("cases.json");
    let output = dir.path().join("results.json");
    std::fs::write(
        &input,
        serde_json::to_vec(&json!({"calendars": calendars, "cases": cases})).unwrap(),
    )
    .unwrap();
    let run = Command::new(&python)
        .arg(repo("tests/crosscheck/oracle.py"))
        .arg(&input)
        .arg(&output)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));
    let results: Value = serde_json::from_slice(&std::fs::read(&output).unwrap()).unwrap();
    let mut wrong = Vec::new();
    for ((t, w, printed, due), r) in rust.iter().zip(results["results"].as_array().unwrap()) {
        let walker = r["walker"].as_i64().unwrap();
        if due.timestamp_nanos_opt().unwrap() != walker {
            wrong.push(format!(
                "{t} + {w}: keepword {printed}, walker {}",
                DateTime::from_timestamp_nanos(walker)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "seed {seed}: {} of {} disagree:\n{}",
        wrong.len(),
        rust.len(),
        wrong.join("\n")
    );
}

/// Targets given as `env:VAR` and `file:PATH` resolve when the contract
/// loads; a missing variable or file is an error naming the contact and the
/// key (and never the value); a literal webhook URL still works, with a
/// warning that it is a secret written into the contract.
#[test]
fn check_resolves_target_references_and_names_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("opsgenie");
    std::fs::write(&key_file, "og-key-from-file\n").unwrap();
    let base = std::fs::read_to_string(repo("tests/fixtures/contracts/fast.toml")).unwrap();
    let write = |name: &str, contacts: &str| {
        let text = base.replace(
            "oncall = { email = \"oncall@example.com\", webhook = \"WEBHOOK_URL\" }",
            contacts,
        );
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let check = |path: &Path, env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keepword"));
        cmd.args(["contract", "check", path.to_str().unwrap()])
            .env_remove("KEEPWORD_CONFIG")
            .env_remove("KW_TEST_PD_KEY")
            .env_remove("KW_TEST_TEAMS_URL")
            .env_remove("KW_TEST_EMAIL");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let referenced = write(
        "referenced.toml",
        &format!(
            "oncall = {{ pagerduty = \"env:KW_TEST_PD_KEY\", opsgenie = \"file:{}\", teams = \"env:KW_TEST_TEAMS_URL\", email = \"env:KW_TEST_EMAIL\" }}",
            key_file.display()
        ),
    );
    let out = check(
        &referenced,
        &[
            ("KW_TEST_PD_KEY", "pd-secret-key"),
            ("KW_TEST_TEAMS_URL", "https://teams.example/workflows/x"),
            ("KW_TEST_EMAIL", "Oncall@Example.com"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );

    // Unset variable, missing file: each named with its contact and key.
    let missing = write(
        "missing.toml",
        &format!(
            "oncall = {{ pagerduty = \"env:KW_TEST_PD_KEY\", opsgenie = \"file:{}/nope\" }}",
            dir.path().display()
        ),
    );
    let out = check(&missing, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "error: contact \"oncall\": pagerduty = \"env:KW_TEST_PD_KEY\": environment variable KW_TEST_PD_KEY is not set"
        ),
        "{err}"
    );
    assert!(
        err.contains("error: contact \"oncall\": opsgenie = \"file:")
            && err.contains("/nope\": cannot read file"),
        "{err}"
    );

    // Reading the contract does not need the secrets; the page names the
    // route, not the reference.
    let out = Command::new(env!("CARGO_BIN_EXE_keepword"))
        .args(["contract", "render", missing.to_str().unwrap()])
        .env_remove("KEEPWORD_CONFIG")
        .env_remove("KW_TEST_PD_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(
        page.contains("alerted through PagerDuty and Opsgenie"),
        "{page}"
    );
    assert!(
        !page.contains("KW_TEST_PD_KEY") && !page.contains("nope"),
        "{page}"
    );

    // A variable that resolves to something that is not a URL: named, the
    // value not quoted.
    let out = check(
        &referenced,
        &[
            ("KW_TEST_PD_KEY", "pd-secret-key"),
            ("KW_TEST_TEAMS_URL", "not-a-url-secret"),
            ("KW_TEST_EMAIL", "nobody"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "contact \"oncall\": teams (from env:KW_TEST_TEAMS_URL) is not an http(s) URL"
        ),
        "{err}"
    );
    assert!(!err.contains("not-a-url-secret"), "{err}");
    assert!(
        err.contains("contact \"oncall\": email (from env:KW_TEST_EMAIL) is not an email address"),
        "{err}"
    );

    // A literal webhook URL keeps working, with a warning.
    let literal = write(
        "literal.toml",
        "oncall = { webhook = \"https://chat.example.com/hooks/abc\" }",
    );
    let out = check(&literal, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "warning: contact \"oncall\": webhook is written into the contract, and it is a secret"
        ),
        "{err}"
    );
}

/// A contract with a `slack` channel needs `[slack]` in the service config:
/// `contract check` says so, naming both, and passes once it is there.
#[test]
fn check_wants_slack_settings_for_a_slack_channel() {
    let dir = tempfile::tempdir().unwrap();
    let contract = dir.path().join("contract.toml");
    let source = std::fs::read_to_string(repo("config/contract.toml"))
        .unwrap()
        .replacen(
            "[channels.email]",
            "[channels.slack]\nkind = \"slack\"\ndescription = \"our shared channel\"\n\n[channels.email]",
            1,
        );
    std::fs::write(&contract, source).unwrap();
    let check = |config: &Path| {
        keepword(&[
            "contract",
            "check",
            contract.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ])
    };
    let without = dir.path().join("without.toml");
    std::fs::write(&without, "log_format = \"text\"\n").unwrap();
    let out = check(&without);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("channel \"slack\" is kind = \"slack\"") && err.contains("no [slack]"),
        "{err}"
    );
    assert!(err.contains(&without.display().to_string()), "{err}");

    let with = dir.path().join("with.toml");
    std::fs::write(
        &with,
        "[slack]\nsigning_secret = \"abc\"\nbot_token = \"xoxb-1\"\nteam_ids = [\"T0AGENCY\"]\n",
    )
    .unwrap();
    let out = check(&with);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // [slack] naming a channel the contract does not have is an error too.
    std::fs::write(
        &with,
        "[slack]\nsigning_secret = \"abc\"\nbot_token = \"xoxb-1\"\nteam_ids = [\"T0AGENCY\"]\nchannel = \"chat\"\n",
    )
    .unwrap();
    let out = check(&with);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("channel = \"chat\""),
        "{}",
        text(&out.stderr)
    );
}
