//! `keepword backtest` on a history with known answers, from an mbox and
//! from a Maildir, in each output format.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn mail(from: &str, to: &str, subject: &str, id: &str, date: &str, extra: &str) -> String {
    format!(
        "From: {from}\nTo: {to}\nSubject: {subject}\nMessage-ID: {id}\nDate: {date}\n{extra}\nHello.\nFrom the team, with a From line in the body.\n"
    )
}

fn history() -> Vec<String> {
    vec![
        // ACME question Monday 09:00 Berlin, answered 10:00: 1 business hour (window 2h).
        mail(
            "jane@acme.com",
            "support@example.com",
            "Footer",
            "<a1@acme.com>",
            "Mon, 30 Nov 2026 09:00:00 +0100",
            "",
        ),
        mail(
            "lead@example.com",
            "jane@acme.com",
            "Re: Footer",
            "<r1@example.com>",
            "Mon, 30 Nov 2026 10:00:00 +0100",
            "In-Reply-To: <a1@acme.com>\n",
        ),
        // Its out-of-office noise: automatic, no conversation.
        mail(
            "bob@acme.com",
            "support@example.com",
            "Out of office",
            "<oo@acme.com>",
            "Mon, 30 Nov 2026 09:05:00 +0100",
            "Auto-Submitted: auto-replied\n",
        ),
        // Initech question Monday 09:00, answered Tuesday 09:00: 8 business hours (window 4h).
        mail(
            "eve@initech.example",
            "support@example.com",
            "Invoice",
            "<i1@initech.example>",
            "Mon, 30 Nov 2026 09:00:00 +0100",
            "",
        ),
        mail(
            "lead@example.com",
            "eve@initech.example",
            "Re: Invoice",
            "<r2@example.com>",
            "Tue, 01 Dec 2026 09:00:00 +0100",
            "References: <i1@initech.example>\n",
        ),
        // Globex outage on Saturday 10:00, answered 10:20 around the clock (window 30m).
        mail(
            "ops@globex.example",
            "support@example.com",
            "Site down",
            "<g1@globex.example>",
            "Sat, 05 Dec 2026 10:00:00 +0100",
            "",
        ),
        mail(
            "oncall@example.com",
            "ops@globex.example",
            "Re: Site down",
            "<r3@example.com>",
            "Sat, 05 Dec 2026 10:20:00 +0100",
            "In-Reply-To: <g1@globex.example>\n",
        ),
    ]
}

fn keepword(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keepword"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn check(report: &Value) {
    assert_eq!(report["messages"], 7);
    assert_eq!(report["automatic"], 1);
    assert_eq!(report["conversations"], 3);
    let rows = report["rows"].as_array().unwrap();
    let row = |t: &str, c: &str| {
        rows.iter()
            .find(|r| r["request_type"] == t && r["client"] == c)
            .unwrap_or_else(|| panic!("no row {t}/{c}: {rows:?}"))
    };
    let acme = row("question", "acme");
    assert_eq!(acme["within_window_pct"], 100.0);
    assert_eq!(acme["p50_business_seconds"], 3600);
    let initech = row("question", "initech");
    assert_eq!(initech["within_window_pct"], 0.0);
    assert_eq!(initech["p50_business_seconds"], 8 * 3600);
    assert!(initech["breaches"].as_u64().unwrap() >= 1);
    let globex = row("urgent", "globex");
    assert_eq!(globex["p90_business_seconds"], 20 * 60);
    assert_eq!(globex["breaches"], 0);
    assert_eq!(globex["client_name"], "Globex Logistics");
    assert_eq!(
        globex["request_type_name"],
        "Urgent: production down or security incident"
    );
    // Most breaches first, and a totals row over everything.
    let breaches: Vec<u64> = rows
        .iter()
        .map(|r| r["breaches"].as_u64().unwrap())
        .collect();
    assert!(breaches.windows(2).all(|w| w[0] >= w[1]), "{breaches:?}");
    let totals = &report["totals"];
    assert_eq!(totals["conversations"], 3);
    assert_eq!(totals["first_responses"], 3);
    assert_eq!(totals["within_window"], 2);
    assert_eq!(
        totals["breaches"].as_u64().unwrap(),
        breaches.iter().sum::<u64>()
    );
    assert_eq!(totals["p90_business_seconds"], 8 * 3600);
}

#[test]
fn backtest_reports_compliance_from_mbox_and_maildir() {
    let dir = tempfile::tempdir().unwrap();
    let contract = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml");
    let contract = contract.to_str().unwrap();

    let mbox = dir.path().join("history.mbox");
    let text: String = history()
        .iter()
        .map(|m| {
            format!(
                "From sender@x Mon Nov 30 00:00:00 2026\n{}",
                m.replace("\nFrom the team", "\n>From the team")
            )
        })
        .collect();
    std::fs::write(&mbox, text).unwrap();
    let json = keepword(&[
        "backtest",
        "--contract",
        contract,
        "--mbox",
        mbox.to_str().unwrap(),
        "--team",
        "@example.com",
        "--format",
        "json",
    ]);
    check(&serde_json::from_str(&json).unwrap());

    let maildir = dir.path().join("Maildir");
    std::fs::create_dir_all(maildir.join("cur")).unwrap();
    std::fs::create_dir_all(maildir.join("new")).unwrap();
    for (i, m) in history().iter().enumerate() {
        let sub = if i % 2 == 0 { "cur" } else { "new" };
        std::fs::write(maildir.join(sub).join(format!("{i}.eml")), m).unwrap();
    }
    let json = keepword(&[
        "backtest",
        "--contract",
        contract,
        "--maildir",
        maildir.to_str().unwrap(),
        "--team",
        "@example.com",
        "--format",
        "json",
    ]);
    check(&serde_json::from_str(&json).unwrap());

    let text = keepword(&[
        "backtest",
        "--contract",
        contract,
        "--maildir",
        maildir.to_str().unwrap(),
        "--team",
        "@example.com",
    ]);
    assert!(
        text.contains("Questions and change requests")
            && text.contains("Initech")
            && text.contains("100.0%")
            && text.contains("Total"),
        "{text}"
    );
    let html = keepword(&[
        "backtest",
        "--contract",
        contract,
        "--maildir",
        maildir.to_str().unwrap(),
        "--team",
        "@example.com",
        "--format",
        "html",
    ]);
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("<td>Globex Logistics</td>"),
        "{html}"
    );
    assert!(
        html.contains("<tr class=\"total\"><td>Total</td>"),
        "{html}"
    );
    assert!(html.contains("<svg"), "a chart per request type");
    assert!(!html.contains("<script"), "{html}");
}

/// The history as a Maildir in `dir`.
fn maildir(dir: &Path) -> std::path::PathBuf {
    let maildir = dir.join("Maildir");
    std::fs::create_dir_all(maildir.join("cur")).unwrap();
    for (i, m) in history().iter().enumerate() {
        std::fs::write(maildir.join("cur").join(format!("{i}.eml")), m).unwrap();
    }
    maildir
}

#[test]
fn backtest_against_a_baseline_sets_both_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml");
    let source = std::fs::read_to_string(&shipped).unwrap();
    // The new contract: questions get 8 hours, and invoices their own type.
    let billing = "[[request_types]]\nid = \"billing\"\nname = \"Billing\"\n\
                   definition = \"Invoices and payments.\"\nchannels = [\"email\"]\n\
                   match = { keywords = [\"invoice\"] }\ncalendar = \"business\"\nfirst_response = \"10h\"\n\n";
    let new = source
        .replacen(
            "calendar = \"business\"\nfirst_response = \"4h\"",
            "calendar = \"business\"\nfirst_response = \"8h\"",
            1,
        )
        .replacen(
            "[[request_types]]\nid = \"question\"",
            &format!("{billing}[[request_types]]\nid = \"question\""),
            1,
        );
    assert_ne!(new, source);
    let new_path = dir.path().join("new.toml");
    std::fs::write(&new_path, new).unwrap();
    let maildir = maildir(dir.path());
    let args = |format: &str| {
        keepword(&[
            "backtest",
            "--contract",
            new_path.to_str().unwrap(),
            "--baseline",
            shipped.to_str().unwrap(),
            "--maildir",
            maildir.to_str().unwrap(),
            "--team",
            "@example.com",
            "--format",
            format,
        ])
    };
    let report: Value = serde_json::from_str(&args("json")).unwrap();
    check(&report["baseline"]);
    let rows = report["rows"].as_array().unwrap();
    let row = |t: &str, c: &str| {
        rows.iter()
            .find(|r| r["request_type"] == t && r["client"] == c)
            .unwrap_or_else(|| panic!("no row {t}/{c}: {rows:#?}"))
    };
    // Initech's invoice question: a question (late) before, billing (in time) now.
    let before = row("question", "initech");
    assert_eq!(before["baseline"]["within_window_pct"], 0.0);
    assert!(before["contract"].is_null(), "{before}");
    let now = row("billing", "initech");
    assert!(now["baseline"].is_null(), "{now}");
    assert_eq!(now["contract"]["within_window_pct"], 100.0);
    assert_eq!(now["request_type_name"], "Billing");
    assert_eq!(now["client_name"], "Initech");
    // ACME keeps its 2-hour override under both.
    let acme = row("question", "acme");
    assert_eq!(acme["baseline"]["within_window_pct"], 100.0);
    assert_eq!(acme["contract"]["within_window_pct"], 100.0);
    let totals = &report["totals"];
    assert_eq!(totals["baseline"]["within_window"], 2);
    assert_eq!(totals["contract"]["within_window"], 3);
    // Before: Initech's late first response, and the 5-day resolutions of
    // Initech and ACME run out on Friday. Now billing promises no
    // resolution, and answers in time.
    assert_eq!(totals["baseline"]["breaches"], 3);
    assert_eq!(totals["contract"]["breaches"], 1);
    let most: Vec<u64> = rows
        .iter()
        .map(|r| r["contract"]["breaches"].as_u64().unwrap_or(0))
        .collect();
    assert!(most.windows(2).all(|w| w[0] >= w[1]), "{most:?}");

    let text = args("text");
    assert!(text.contains("baseline → new contract"), "{text}");
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.starts_with(needle) && l.contains("Initech"))
            .unwrap_or_else(|| panic!("no {needle} line:\n{text}"))
            .to_string()
    };
    assert!(
        line("Questions and change requests").contains("0.0% → —"),
        "{text}"
    );
    assert!(line("Billing").contains("— → 100.0%"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("Total")), "{text}");

    let html = args("html");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(!html.contains("<script"), "{html}");
    let billing_chart = html
        .split("<figure>")
        .find(|f| f.starts_with("<figcaption>Billing</figcaption>"))
        .unwrap_or_else(|| panic!("no Billing chart: {html}"));
    assert!(
        billing_chart.contains("baseline: no such request type"),
        "{billing_chart}"
    );
    let questions = html
        .split("<figure>")
        .find(|f| f.starts_with("<figcaption>Questions and change requests</figcaption>"))
        .unwrap();
    assert!(
        questions.contains("window 4 h") && questions.contains("window 8 h"),
        "{questions}"
    );
    assert_eq!(
        questions.matches("<svg").count(),
        1,
        "one chart, both contracts"
    );
}
