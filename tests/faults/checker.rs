//! The offline checker: reads the history the recording receivers wrote
//! (tests/support/recorders.rs) after a scenario ran, against what was
//! expected, and reports lost, duplicated (with the same identity, or with
//! another), unexpected and late deliveries, and refusals that were retried.
//! It knows nothing of keepword's own view; only what the receivers got.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::support::recorders::{Answer, Delivery};

/// What a notification must come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Must {
    /// Taken by its receiver at least once.
    Deliver,
    /// Refused for good by its receiver: attempted once, never again.
    BeRefused,
}

/// One notification the scenario enqueued.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The key the receivers record it under (the email's subject, the
    /// webhook body's `key`; `rcpt:ADDRESS` for a recipient refused at RCPT).
    pub key: String,
    /// The identity it carries (Message-ID, `webhook-id`); empty: not known.
    pub identity: String,
    pub must: Must,
}

/// The checker's findings for one scenario.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub scenario: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// What was injected, in words.
    pub injected: String,
    pub expected: usize,
    /// Attempts the receivers recorded, whatever their answer.
    pub attempts: usize,
    /// Notifications taken at least once.
    pub delivered: usize,
    pub lost: Vec<String>,
    /// Taken more than once, always with the same identity: allowed after an
    /// attempt whose outcome was unknown.
    pub duplicated_same_identity: Vec<String>,
    /// Taken more than once under different identities: never allowed.
    pub duplicated_other_identity: Vec<String>,
    /// Recorded but never enqueued, or carrying an identity other than the
    /// one enqueued.
    pub unexpected: Vec<String>,
    /// First taken later than the stated bound after the fault ended.
    pub late: Vec<String>,
    /// Refused for good, and attempted again anyway.
    pub refusals_retried: Vec<String>,
    /// The stated bound, in milliseconds.
    pub bound_ms: u64,
    /// From the end of the fault to the last first delivery, in milliseconds.
    pub recovered_ms: u64,
    /// Attempts whose outcome keepword could not know (from its metric).
    pub uncertain: u64,
}

impl Report {
    /// Whether the delivery promise held: nothing lost or late, no
    /// duplicate under another identity, nothing unexpected, no refusal
    /// retried, and duplicates only after uncertain attempts.
    pub fn kept(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated_other_identity.is_empty()
            && self.unexpected.is_empty()
            && self.late.is_empty()
            && self.refusals_retried.is_empty()
            && (self.duplicated_same_identity.len() as u64) <= self.uncertain
    }

    /// Panics with the whole report unless [`Report::kept`]; appends it as
    /// one JSON line to `$FAULTS_JSONL` when that is set (what
    /// scripts/faults turns into its report).
    pub fn assert_kept(&self) {
        if let Ok(path) = std::env::var("FAULTS_JSONL") {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap();
            writeln!(f, "{}", serde_json::to_string(self).unwrap()).unwrap();
        }
        assert!(self.kept(), "the delivery promise broke: {self:#?}");
    }
}

/// The backend a database URL names.
pub fn backend_of(url: &str) -> &'static str {
    if url.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    }
}

/// Checks `history` against `expected`. `fault_ended`: when the receivers
/// stopped acting out faults (for lateness); `bound`: how long after it every
/// notification must have been taken.
pub fn check(
    scenario: &str,
    injected: &str,
    expected: &[Expected],
    history: &[Delivery],
    fault_ended: Instant,
    bound: Duration,
    uncertain: u64,
) -> Report {
    let mut report = Report {
        scenario: scenario.into(),
        injected: injected.into(),
        expected: expected.len(),
        attempts: history.len(),
        bound_ms: bound.as_millis() as u64,
        uncertain,
        ..Report::default()
    };
    let mut by_key: BTreeMap<&str, Vec<&Delivery>> = BTreeMap::new();
    for d in history {
        by_key.entry(d.key.as_str()).or_default().push(d);
    }
    let known: BTreeSet<&str> = expected.iter().map(|e| e.key.as_str()).collect();
    for d in history {
        if !known.contains(d.key.as_str()) {
            report
                .unexpected
                .push(format!("{} at {}: never enqueued", d.key, d.receiver));
        }
    }
    let mut recovered = Duration::ZERO;
    for e in expected {
        let seen = by_key.remove(e.key.as_str()).unwrap_or_default();
        if !e.identity.is_empty() {
            for d in seen.iter().filter(|d| d.identity != e.identity) {
                report.unexpected.push(format!(
                    "{} carried identity {:?}, enqueued as {:?}",
                    e.key, d.identity, e.identity
                ));
            }
        }
        match e.must {
            Must::Deliver => {
                let taken: Vec<&&Delivery> = seen.iter().filter(|d| d.answer.taken()).collect();
                let Some(first) = seen.iter().find(|d| d.answer == Answer::Accepted) else {
                    report.lost.push(e.key.clone());
                    continue;
                };
                report.delivered += 1;
                if taken.len() > 1 {
                    let identities: BTreeSet<&str> =
                        taken.iter().map(|d| d.identity.as_str()).collect();
                    let line = format!("{} ×{}", e.key, taken.len());
                    if identities.len() == 1 {
                        report.duplicated_same_identity.push(line);
                    } else {
                        report.duplicated_other_identity.push(line);
                    }
                }
                let after = first.at.saturating_duration_since(fault_ended);
                recovered = recovered.max(after);
                if after > bound {
                    report.late.push(format!(
                        "{}: {} ms after the fault",
                        e.key,
                        after.as_millis()
                    ));
                }
            }
            Must::BeRefused => {
                if seen.len() > 1 {
                    report.refusals_retried.push(format!(
                        "{} attempted {} times",
                        e.key,
                        seen.len()
                    ));
                }
                if seen.iter().any(|d| d.answer.taken()) {
                    report
                        .unexpected
                        .push(format!("{} was taken, expected a refusal", e.key));
                }
            }
        }
    }
    report.recovered_ms = recovered.as_millis() as u64;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(key: &str, identity: &str, answer: Answer, at: Instant) -> Delivery {
        Delivery {
            receiver: "r".into(),
            key: key.into(),
            identity: identity.into(),
            answer,
            at,
        }
    }

    fn e(key: &str, identity: &str, must: Must) -> Expected {
        Expected {
            key: key.into(),
            identity: identity.into(),
            must,
        }
    }

    /// The checker itself finds each kind of broken promise.
    #[test]
    fn the_checker_tells_each_fault_apart() {
        let t = Instant::now();
        let late = t + Duration::from_secs(60);
        let expected = [
            e("ok", "i1", Must::Deliver),
            e("lost", "i2", Must::Deliver),
            e("twice", "i3", Must::Deliver),
            e("other", "i4", Must::Deliver),
            e("late", "i5", Must::Deliver),
            e("gone", "i6", Must::BeRefused),
        ];
        let history = [
            d("ok", "i1", Answer::Transient("500".into()), t),
            d("ok", "i1", Answer::Accepted, t),
            d("lost", "i2", Answer::Transient("451".into()), t),
            d("twice", "i3", Answer::None("never answered".into()), t),
            d("twice", "i3", Answer::Accepted, t),
            d("other", "i4", Answer::Accepted, t),
            d("other", "x", Answer::Accepted, t),
            d("late", "i5", Answer::Accepted, late),
            d("gone", "i6", Answer::Refused("410".into()), t),
            d("gone", "i6", Answer::Refused("410".into()), t),
            d("stray", "i9", Answer::Accepted, t),
        ];
        let r = check("s", "i", &expected, &history, t, Duration::from_secs(5), 1);
        assert_eq!(r.lost, ["lost"]);
        assert_eq!(r.duplicated_same_identity, ["twice ×2"]);
        assert_eq!(r.duplicated_other_identity, ["other ×2"]);
        assert_eq!(r.late.len(), 1);
        assert_eq!(r.refusals_retried.len(), 1);
        assert_eq!(r.unexpected.len(), 2, "{:?}", r.unexpected);
        assert_eq!(r.delivered, 4);
        assert!(!r.kept());

        let clean = check(
            "s",
            "i",
            &expected[..1],
            &history[..2],
            t,
            Duration::from_secs(5),
            0,
        );
        assert!(clean.kept(), "{clean:#?}");
        // A duplicate with the same identity needs an uncertain attempt.
        let twice = check(
            "s",
            "i",
            &expected[2..3],
            &history[3..5],
            t,
            Duration::from_secs(5),
            0,
        );
        assert!(!twice.kept());
    }
}
