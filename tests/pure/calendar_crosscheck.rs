//! Cross-check of `Calendar::add` / `between` against independent oracles in
//! Python (tests/crosscheck/oracle.py): a brute-force walker that resolves
//! local days with `zoneinfo`, and pandas `CustomBusinessHour` where it is
//! comparable.
//!
//! Cases are random but seeded: the seed is printed, and
//! `KEEPWORD_CROSSCHECK_SEED=<n>` replays it; `KEEPWORD_CROSSCHECK_CASES`
//! changes the count. Python comes from `KEEPWORD_PYTHON`, by default
//! `.venv/bin/python` in the crate (created by `./scripts/test` from
//! tests/crosscheck/requirements.txt). Without it the test fails: it never
//! skips silently.
use crate::common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use keepword::calendar::{BusinessDuration, Calendar, OpenInterval, Week};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use common::ZONES;

/// Zones without DST at the dates used for pandas cases (Tehran: from 2023).
const PANDAS_ZONES: &[(Tz, i32)] = &[
    (chrono_tz::Asia::Kathmandu, 2000),
    (chrono_tz::UTC, 2000),
    (chrono_tz::Asia::Tehran, 2023),
];

const CALENDARS: usize = 150;
const DEFAULT_CASES: usize = 20_000;

fn python() -> PathBuf {
    match std::env::var_os("KEEPWORD_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
    }
}

fn require_python(python: &PathBuf) {
    let hint = "run `./scripts/test` (it creates .venv from tests/crosscheck/requirements.txt), \
                or: python3 -m venv .venv && .venv/bin/pip install -r tests/crosscheck/requirements.txt; \
                or point KEEPWORD_PYTHON at a Python with those packages";
    let probe = Command::new(python)
        .args(["-c", "import pandas, tzdata, zoneinfo"])
        .output();
    match probe {
        Err(e) => panic!(
            "calendar cross-check needs Python at {}: {e}.\n{hint}",
            python.display()
        ),
        Ok(out) if !out.status.success() => panic!(
            "calendar cross-check: {} cannot import pandas/tzdata:\n{}\n{hint}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Ok(_) => {}
    }
}

fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
    )
}

struct Spec {
    cal: Calendar,
    json: Value,
    /// First year for pandas cases, when this calendar is pandas-comparable.
    pandas_from: Option<i32>,
}

fn random_interval(rng: &mut StdRng) -> OpenInterval {
    let minute = |rng: &mut StdRng, lo: u32, hi: u32| rng.random_range(lo..hi) * 60;
    let (start, end) = match rng.random_range(0..4) {
        // Around the small hours, where clocks change.
        0 => {
            let s = minute(rng, 0, 300);
            (s, s + minute(rng, 1, 240))
        }
        // Until 24:00.
        1 => (minute(rng, 1080, 1440), 86_400),
        2 => (9 * 3600, 17 * 3600),
        _ => {
            let s = minute(rng, 0, 1439);
            (s, (s + minute(rng, 1, 1440)).min(86_400))
        }
    };
    OpenInterval { start, end }
}

/// At least two days with two or more open hours, so walks stay short.
fn random_week(rng: &mut StdRng) -> Week {
    let mut week: Week = Default::default();
    for day in week.iter_mut() {
        for _ in 0..rng.random_range(0..=3) {
            day.push(random_interval(rng));
        }
    }
    for _ in 0..2 {
        let d = rng.random_range(0..7);
        week[d].push(OpenInterval::hm(10, 0, 12, 0));
    }
    week
}

fn random_date(rng: &mut StdRng, from_year: i32) -> NaiveDate {
    let from = NaiveDate::from_ymd_opt(from_year, 1, 1).unwrap();
    let to = NaiveDate::from_ymd_opt(2041, 1, 1).unwrap();
    from + chrono::Days::new(rng.random_range(0..(to - from).num_days() as u64))
}

fn random_holidays(rng: &mut StdRng, from_year: i32) -> BTreeSet<NaiveDate> {
    let n = rng.random_range(0..200);
    (0..n).map(|_| random_date(rng, from_year)).collect()
}

fn week_json(week: &Week) -> Value {
    week.iter()
        .map(|day| {
            day.iter()
                .map(|iv| json!([iv.start, iv.end]))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn random_spec(rng: &mut StdRng) -> Spec {
    let holidays_json =
        |h: &BTreeSet<NaiveDate>| h.iter().map(|d| d.to_string()).collect::<Vec<_>>();
    match rng.random_range(0..10) {
        0 => {
            let tz = ZONES[rng.random_range(0..ZONES.len())];
            Spec {
                cal: Calendar::always(tz),
                json: json!({"tz": tz.name(), "always": true, "week": [], "holidays": []}),
                pandas_from: None,
            }
        }
        1 | 2 => {
            // pandas-comparable: one whole-hour interval on the open weekdays.
            let (tz, from_year) = PANDAS_ZONES[rng.random_range(0..PANDAS_ZONES.len())];
            let start = rng.random_range(0..12u32);
            let end = rng.random_range(start + 1..=23);
            let mut week: Week = Default::default();
            for (d, day) in week.iter_mut().enumerate() {
                if d < 2 || rng.random_bool(0.6) {
                    day.push(OpenInterval::hm(start, 0, end, 0));
                }
            }
            let holidays = random_holidays(rng, from_year);
            Spec {
                json: json!({"tz": tz.name(), "always": false, "week": week_json(&week),
                             "holidays": holidays_json(&holidays)}),
                cal: Calendar::new(tz, week, holidays).unwrap(),
                pandas_from: Some(from_year),
            }
        }
        _ => {
            let tz = ZONES[rng.random_range(0..ZONES.len())];
            let week = random_week(rng);
            let holidays = random_holidays(rng, 2000);
            Spec {
                json: json!({"tz": tz.name(), "always": false, "week": week_json(&week),
                             "holidays": holidays_json(&holidays)}),
                cal: Calendar::new(tz, week, holidays).unwrap(),
                pandas_from: None,
            }
        }
    }
}

/// UTC instants (seconds) where `tz` changes offset, 2000–2040, found by
/// sampling every 6 hours.
fn transitions(tz: Tz) -> Vec<i64> {
    let offset = |s: i64| {
        tz.offset_from_utc_datetime(&DateTime::from_timestamp(s, 0).unwrap().naive_utc())
            .fix()
            .local_minus_utc()
    };
    let (from, to) = (946_684_800i64, 2_240_524_800i64);
    let mut out = Vec::new();
    let mut s = from;
    while s < to {
        if offset(s) != offset(s + 6 * 3600) {
            out.push(s);
        }
        s += 6 * 3600;
    }
    out
}

fn random_instant(rng: &mut StdRng, tz: Tz, from_year: i32, near: &[i64]) -> DateTime<Utc> {
    let secs = if !near.is_empty() && rng.random_bool(0.4) {
        // Within three days of a DST change.
        near[rng.random_range(0..near.len())] + rng.random_range(-3 * 86_400..3 * 86_400)
    } else {
        let d = random_date(rng, from_year);
        tz.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap())
            .timestamp()
            + rng.random_range(0..86_400)
    };
    let secs = match rng.random_range(0..3) {
        0 => secs - secs.rem_euclid(3600),
        1 => secs - secs.rem_euclid(60),
        _ => secs,
    };
    let nanos = if rng.random_bool(0.2) {
        rng.random_range(0..1_000_000_000)
    } else {
        0
    };
    DateTime::from_timestamp(secs, nanos).unwrap()
}

fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap()
}

#[test]
fn calendar_agrees_with_python_oracles() {
    let python = python();
    require_python(&python);

    let seed = env_number("KEEPWORD_CROSSCHECK_SEED").unwrap_or_else(rand::random);
    let count = env_number("KEEPWORD_CROSSCHECK_CASES").map_or(DEFAULT_CASES, |n| n as usize);
    eprintln!(
        "calendar cross-check: seed {seed} (replay with KEEPWORD_CROSSCHECK_SEED={seed}), {count} cases"
    );
    let mut rng = StdRng::seed_from_u64(seed);

    let specs: Vec<Spec> = (0..CALENDARS).map(|_| random_spec(&mut rng)).collect();
    let near: Vec<Vec<i64>> = specs
        .iter()
        .map(|s| transitions(s.cal.timezone()))
        .collect();

    let mut cases = Vec::with_capacity(count);
    let mut expected = Vec::with_capacity(count);
    for _ in 0..count {
        let c = rng.random_range(0..specs.len());
        let spec = &specs[c];
        let tz = spec.cal.timezone();
        if let Some(from_year) = spec.pandas_from.filter(|_| rng.random_bool(0.7)) {
            // pandas keeps stray nanoseconds when it rolls an instant to the
            // opening (it resets microseconds only): stay at microseconds.
            let t = random_instant(&mut rng, tz, from_year, &[]);
            let t =
                t - chrono::TimeDelta::nanoseconds(i64::from(t.timestamp_subsec_nanos() % 1000));
            let hours = rng.random_range(1..=40u64);
            let r = spec
                .cal
                .add(t, BusinessDuration::from_hours(hours))
                .unwrap();
            cases.push(json!({"cal": c, "op": "add", "t": nanos(t), "days": 0,
                              "seconds": hours * 3600, "pandas": true}));
            expected.push(nanos(r) as i128);
            continue;
        }
        let t = random_instant(&mut rng, tz, spec.pandas_from.unwrap_or(2000), &near[c]);
        match rng.random_range(0..10) {
            0..=5 => {
                let seconds = match rng.random_range(0..4) {
                    0 => rng.random_range(0..=2 * 86_400),
                    1 => rng.random_range(0..=48 * 60) * 60,
                    2 => [0, 1800, 4 * 3600, 8 * 3600][rng.random_range(0..4)],
                    _ => rng.random_range(0..=5 * 24) * 3600,
                };
                let days = if rng.random_bool(0.3) {
                    rng.random_range(1..=5)
                } else {
                    0
                };
                let d = BusinessDuration { days, seconds };
                let r = spec.cal.add(t, d).unwrap();
                cases.push(json!({"cal": c, "op": "add", "t": nanos(t), "days": days,
                                  "seconds": seconds}));
                expected.push(nanos(r) as i128);
            }
            _ => {
                let b = t + chrono::TimeDelta::seconds(rng.random_range(-86_400..30 * 86_400));
                let r = spec.cal.between(t, b).unwrap();
                cases.push(json!({"cal": c, "op": "between", "a": nanos(t), "b": nanos(b)}));
                expected.push(r.num_nanoseconds().unwrap() as i128);
            }
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cases.json");
    let output = dir.path().join("results.json");
    let calendars: Vec<&Value> = specs.iter().map(|s| &s.json).collect();
    std::fs::write(
        &input,
        serde_json::to_vec(&json!({"calendars": calendars, "cases": cases})).unwrap(),
    )
    .unwrap();

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/crosscheck/oracle.py");
    let started = Instant::now();
    let run = Command::new(&python)
        .arg(&script)
        .arg(&input)
        .arg(&output)
        .output()
        .expect("run the Python oracle");
    assert!(
        run.status.success(),
        "oracle.py failed (seed {seed}):\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!("python oracles took {:.1?}", started.elapsed());
    let results: Value = serde_json::from_slice(&std::fs::read(&output).unwrap()).unwrap();
    let results = results["results"].as_array().unwrap();
    assert_eq!(results.len(), cases.len());

    let as_i128 = |v: &Value| -> Option<i128> { v.as_i64().map(i128::from) };
    let mut disagreements = Vec::new();
    let mut pandas_checked = 0;
    for (i, (case, result)) in cases.iter().zip(results).enumerate() {
        let rust = expected[i];
        let walker = as_i128(&result["walker"]);
        let pandas = as_i128(&result["pandas"]);
        pandas_checked += usize::from(pandas.is_some());
        if walker != Some(rust) || pandas.is_some_and(|p| p != rust) {
            disagreements.push((i, case, rust, walker, pandas));
        }
    }
    eprintln!(
        "{} cases ({} also against pandas), {} calendars, {} disagreements",
        cases.len(),
        pandas_checked,
        specs.len(),
        disagreements.len()
    );
    for (i, case, rust, walker, pandas) in disagreements.iter().take(5) {
        let cal = &specs[case["cal"].as_u64().unwrap() as usize].json;
        let is_add = case["op"] == "add";
        let show = |n: i128| -> String {
            match i64::try_from(n) {
                Ok(n) if is_add => {
                    format!("{n} ({})", DateTime::from_timestamp_nanos(n).to_rfc3339())
                }
                _ => format!("{n} ns"),
            }
        };
        eprintln!(
            "\ncase {i}: {case}\n  calendar: {cal}\n  rust:   {}\n  walker: {}\n  pandas: {}",
            show(*rust),
            walker.map_or("-".into(), show),
            pandas.map_or("-".into(), show),
        );
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} cases disagree (seed {seed}; replay with KEEPWORD_CROSSCHECK_SEED={seed})",
        disagreements.len(),
        cases.len()
    );
    assert!(
        pandas_checked > count / 20,
        "too few pandas cases: {pandas_checked}"
    );
}
