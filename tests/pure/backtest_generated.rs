//! `keepword backtest` on a generated mailbox with every threading case
//! (long References chains, In-Reply-To only, header-stripped replies,
//! quoted replies without a prefix, colleagues asking the same thing,
//! replies across the 14-day window, duplicate and missing Message-IDs,
//! undated and unparseable mail, mail out of date order) against reports
//! recorded with the backtest before its memory work (issue 9): the report
//! and the per-message trace must stay byte for byte what they were.
//!
//! To record them again after a deliberate change of results, run with
//! `KEEPWORD_BLESS=1` and review the diff of tests/fixtures/backtest/.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Duration, FixedOffset, Utc};

/// A small deterministic generator (xorshift), so the mailbox is the same
/// on every run and machine.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// (client people, their colleagues' addresses for Cc).
const PEOPLE: &[&str] = &[
    "Jane Doe <jane@acme.com>",
    "bob@acme.com",
    "Ann <ANN@Acme.com>",
    "ops@globex.example",
    "kim@globex-logistics.example",
    "ops@globex-partners.example",
    "eve@initech.example",
    "tom@initech.example",
    "p1@stranger.example",
    "p2@stranger.example",
    "someone@other.example",
];
const AGENTS: &[&str] = &[
    "Lead <lead@example.com>",
    "agent1@example.com",
    "Agent Two <agent2@EXAMPLE.com>",
];
const TOPICS: &[&str] = &[
    "Question about contract renewal",
    "Footer colour",
    "Site down",
    "Login broken after update",
    "Invoice 2026-11",
    "Error on checkout page",
    "New landing page idea",
    "Security incident report",
    "Export to CSV",
    "[ACME-12] Staging access",
];

struct Thread {
    /// Message-IDs so far, oldest first.
    ids: Vec<String>,
    subject: String,
    opener: &'static str,
}

fn reply_subject(rng: &mut Rng, subject: &str) -> String {
    match rng.below(8) {
        0 => format!("RE:  {}", subject.to_uppercase()),
        1 => format!("AW: {subject}"),
        2 => format!("Re: Re: {subject}"),
        3 => format!("Fwd: {subject}"),
        4 => format!("[ACME-99] Re: {subject}"),
        _ => format!("Re: {subject}"),
    }
}

/// `n` raw messages in file order (mostly by date, some swapped, some at
/// the same second).
fn mailbox(n: usize) -> Vec<String> {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let zones = [3600, 0, -5 * 3600, 9 * 3600];
    let mut at: DateTime<Utc> = "2026-11-02T07:30:00Z".parse().unwrap();
    let mut threads: Vec<Thread> = Vec::new();
    let mut out: Vec<String> = Vec::with_capacity(n);
    for i in 0..n {
        at += match rng.below(40) {
            0 => Duration::days(15),
            1 => Duration::zero(),
            2..=9 => Duration::hours(rng.below(30) as i64),
            _ => Duration::minutes(1 + rng.below(90) as i64),
        };
        let zone = FixedOffset::east_opt(*rng.pick(&zones)).unwrap();
        let date = at.with_timezone(&zone).to_rfc2822();
        let mut id = format!("<m{i}.{}@gen.example>", rng.below(1000));
        let mut headers = String::new();
        let mut body =
            String::from("Hello,\nsee below.\nFrom the team, a From line in the body.\n");
        let (from, to, subject);
        let mut thread = None;
        let kind = rng.below(100);
        if kind < 5 {
            from = *rng.pick(PEOPLE);
            to = "support@example.com".to_string();
            subject = "Automatic reply: out of office".to_string();
            headers.push_str("Auto-Submitted: auto-replied\n");
        } else if kind < 40 || threads.is_empty() {
            from = *rng.pick(PEOPLE);
            to = if rng.below(6) == 0 {
                "support@example.com, billing@example.com".to_string()
            } else {
                "Support <support@example.com>".to_string()
            };
            subject = rng.pick(TOPICS).to_string();
            if rng.below(5) == 0 {
                body.push_str("We have an outage since this morning.\n");
            }
            threads.push(Thread {
                ids: Vec::new(),
                subject: subject.clone(),
                opener: from,
            });
            thread = Some(threads.len() - 1);
        } else {
            // A fifth of the replies go to the first thread, which grows long.
            let t = if rng.below(5) == 0 {
                0
            } else {
                threads.len() - 1 - rng.below(threads.len().min(30) as u64) as usize
            };
            thread = Some(t);
            let th = &threads[t];
            let team = rng.below(2) == 0;
            from = if team {
                *rng.pick(AGENTS)
            } else if rng.below(4) == 0 {
                *rng.pick(PEOPLE)
            } else {
                th.opener
            };
            to = if team {
                let mut to = th.opener.to_string();
                if rng.below(3) == 0 {
                    to.push_str(", ");
                    let cc: &&str = rng.pick(PEOPLE);
                    to.push_str(cc);
                }
                to
            } else {
                "support@example.com".to_string()
            };
            if team && rng.below(3) == 0 {
                headers.push_str("Cc: support@example.com, Lead <lead@example.com>\n");
            }
            let last = th.ids.last().cloned();
            // The long thread keeps its headers, as most clients do, so its
            // References grow to hundreds of ids.
            let style = rng.below(if t == 0 { 9 } else { 20 });
            subject = if style < 17 {
                reply_subject(&mut rng, &th.subject)
            } else {
                th.subject.clone()
            };
            match (style, last) {
                (0..=8, Some(last)) => {
                    headers.push_str(&format!("In-Reply-To: {last}\n"));
                    let mut refs = th.ids.join(" ");
                    if rng.below(4) == 0 {
                        refs = format!("<missing.{i}@nowhere.example> {refs}");
                    }
                    headers.push_str(&format!("References: {refs}\n"));
                }
                (9..=11, Some(last)) => headers.push_str(&format!("In-Reply-To: {last}\n")),
                (12..=13, Some(_)) => {
                    let tail = &th.ids[th.ids.len().saturating_sub(3)..];
                    headers.push_str(&format!(
                        "References: {} <missing.{i}@nowhere.example>\n",
                        tail.join("\n ")
                    ));
                }
                (14..=16, _) => {} // header-stripped, reply prefix
                (17..=18, _) => {
                    body.push_str("On Monday, Jane wrote:\n> the earlier mail\n");
                }
                _ => {} // no reply signs at all: a new request
            }
            if rng.below(50) == 0 {
                // A client resending under an earlier id.
                if let Some(first) = th.ids.first() {
                    id = first.clone();
                }
            }
        }
        let mut raw = format!("From: {from}\nTo: {to}\nSubject: {subject}\n");
        if rng.below(50) != 0 {
            raw.push_str(&format!("Message-ID: {id}\n"));
        }
        if rng.below(100) != 0 {
            raw.push_str(&format!("Date: {date}\n"));
        }
        raw.push_str(&headers);
        raw.push('\n');
        raw.push_str(&body);
        if let Some(t) = thread {
            threads[t].ids.push(id);
        }
        if rng.below(300) == 0 {
            out.push("this is not mail at all\n".into());
        }
        out.push(raw);
    }
    for i in (1..out.len()).step_by(7) {
        if rng.below(3) == 0 {
            out.swap(i - 1, i);
        }
    }
    out
}

fn mbox_text(raws: &[String]) -> String {
    raws.iter()
        .map(|m| {
            let quoted: String = m
                .lines()
                .map(|l| {
                    if l.starts_with("From ") {
                        format!(">{l}\n")
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect();
            format!("From sender@mbox Mon Nov  2 00:00:00 2026\n{quoted}")
        })
        .collect()
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

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/backtest")
        .join(name)
}

/// Compares `got` with the recorded fixture (or records it when blessing).
fn same_as_recorded(name: &str, got: &str) {
    let path = fixture(name);
    if std::env::var_os("KEEPWORD_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (record with KEEPWORD_BLESS=1)", path.display()));
    if want != got {
        let line = want
            .lines()
            .zip(got.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(got.lines().count()));
        panic!(
            "{name} differs from the recorded report at line {}:\nrecorded: {:?}\nnow:      {:?}",
            line + 1,
            want.lines().nth(line),
            got.lines().nth(line)
        );
    }
}

const N: usize = 4000;

#[test]
fn generated_mailbox_reports_as_recorded() {
    let raws = mailbox(N);
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("generated.mbox");
    std::fs::write(&mbox, mbox_text(&raws)).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml");
    let source = std::fs::read_to_string(&shipped).unwrap();
    let json = keepword(&[
        "backtest",
        "--contract",
        shipped.to_str().unwrap(),
        "--mbox",
        mbox.to_str().unwrap(),
        "--team",
        "@example.com",
        "--format",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    // Guards that the mailbox still exercises what it is meant to.
    assert_eq!(report["messages"], raws.len());
    assert!(report["unparseable"].as_u64().unwrap() > 10, "{report}");
    assert!(report["automatic"].as_u64().unwrap() > 100, "{report}");
    assert!(report["conversations"].as_u64().unwrap() > 500, "{report}");
    same_as_recorded("generated.json", &json);

    // Under a second contract that routes billing@ by recipient.
    let billing = source.replacen(
        "[[request_types]]\nid = \"bug\"",
        "[[request_types]]\nid = \"billing\"\nname = \"Billing\"\n\
         definition = \"Invoices and payments.\"\nchannels = [\"email\"]\n\
         match = { recipients = [\"billing@example.com\"] }\ncalendar = \"business\"\n\
         first_response = \"1d\"\n\n[[request_types]]\nid = \"bug\"",
        1,
    );
    assert_ne!(billing, source);
    let new = dir.path().join("new.toml");
    std::fs::write(&new, billing).unwrap();
    let json = keepword(&[
        "backtest",
        "--contract",
        new.to_str().unwrap(),
        "--baseline",
        shipped.to_str().unwrap(),
        "--mbox",
        mbox.to_str().unwrap(),
        "--team",
        "@example.com",
        "--format",
        "json",
    ]);
    same_as_recorded("generated-baseline.json", &json);
}

#[test]
fn generated_mailbox_traces_as_recorded() {
    let raws: Vec<Vec<u8>> = mailbox(N).into_iter().map(String::into_bytes).collect();
    let contract = keepword::contract::parse(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml"),
        )
        .unwrap(),
        "contract.toml",
    )
    .unwrap();
    let traced = keepword::backtest::trace(&contract, &raws, &["@example.com".to_string()]);
    let longest = {
        let mut sizes = std::collections::HashMap::new();
        for t in &traced {
            if let Some(c) = t.conversation {
                *sizes.entry(c).or_insert(0usize) += 1;
            }
        }
        sizes.into_values().max().unwrap_or(0)
    };
    assert!(longest > 300, "a long thread: {longest}");
    let text: String = traced
        .iter()
        .map(|t| {
            format!(
                "{}\t{}\t{}\t{}\t{}\n",
                t.message_id.as_deref().unwrap_or("-"),
                t.direction.as_str(),
                t.client.as_deref().unwrap_or("-"),
                t.conversation.map_or("-".into(), |c| c.to_string()),
                t.request_type.as_deref().unwrap_or("-"),
            )
        })
        .collect();
    same_as_recorded("generated-trace.tsv", &text);
}
