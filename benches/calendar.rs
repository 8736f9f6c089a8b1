//! `Calendar::add` / `between` on a Berlin business calendar (split Friday,
//! German public holidays), against a baseline in the same run: a naive
//! day-by-day walker that resolves each local day's intervals with chrono-tz
//! on every call, with no tables and no cache.
//!
//! cargo bench --bench calendar -- --warm-up-time 1 --measurement-time 3

use std::collections::BTreeSet;
use std::hint::black_box;

use chrono::{DateTime, Datelike, Days, LocalResult, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use keepword::calendar::{BusinessDuration, Calendar, OpenInterval, Week, weekdays};

const BERLIN: Tz = chrono_tz::Europe::Berlin;

fn week() -> Week {
    let mut week = weekdays(&[OpenInterval::hm(9, 0, 17, 0)]);
    week[4] = vec![
        OpenInterval::hm(9, 0, 12, 30),
        OpenInterval::hm(13, 30, 16, 0),
    ];
    week
}

fn holidays() -> BTreeSet<NaiveDate> {
    let days = [
        "2025-01-01",
        "2025-04-18",
        "2025-04-21",
        "2025-05-01",
        "2025-05-29",
        "2025-06-09",
        "2025-10-03",
        "2025-12-25",
        "2025-12-26",
        "2026-01-01",
        "2026-04-03",
        "2026-04-06",
        "2026-05-01",
        "2026-05-14",
        "2026-05-25",
        "2026-10-03",
        "2026-12-25",
        "2026-12-26",
    ];
    days.iter().map(|d| d.parse().unwrap()).collect()
}

/// Instants spread over 2025, at odd seconds, open and closed alike.
fn instants() -> Vec<DateTime<Utc>> {
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            start + TimeDelta::seconds((x % (365 * 86_400)) as i64)
        })
        .collect()
}

/// The baseline: walks local days one by one, resolving each day's intervals
/// from scratch.
struct Naive {
    tz: Tz,
    week: Week,
    holidays: BTreeSet<NaiveDate>,
}

impl Naive {
    fn resolve(&self, date: NaiveDate, secs: u32) -> DateTime<Utc> {
        let (date, secs) = if secs == 86_400 {
            (date + Days::new(1), 0)
        } else {
            (date, secs)
        };
        let mut local = date
            .and_hms_opt(secs / 3600, secs % 3600 / 60, secs % 60)
            .unwrap();
        loop {
            match self.tz.from_local_datetime(&local) {
                LocalResult::Single(t) => return t.with_timezone(&Utc),
                LocalResult::Ambiguous(a, b) => return a.min(b).with_timezone(&Utc),
                // Good enough for a baseline: gaps start and end on whole minutes.
                LocalResult::None => local += TimeDelta::minutes(1),
            }
        }
    }

    fn day(&self, date: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if self.holidays.contains(&date) {
            return Vec::new();
        }
        self.week[date.weekday().num_days_from_monday() as usize]
            .iter()
            .map(|iv| (self.resolve(date, iv.start), self.resolve(date, iv.end)))
            .filter(|(s, e)| s < e)
            .collect()
    }

    fn days_from(
        &self,
        t: DateTime<Utc>,
    ) -> impl Iterator<Item = Vec<(DateTime<Utc>, DateTime<Utc>)>> + '_ {
        let first = t.with_timezone(&self.tz).date_naive() - Days::new(1);
        first.iter_days().map(|d| self.day(d))
    }

    fn add_time(&self, t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
        let mut rest = d;
        for (s, e) in self.days_from(t).flatten() {
            if e <= t {
                continue;
            }
            let start = s.max(t);
            if rest.is_zero() {
                return start;
            }
            if rest <= e - start {
                return start + rest;
            }
            rest -= e - start;
        }
        unreachable!()
    }

    fn add(&self, t: DateTime<Utc>, d: BusinessDuration) -> DateTime<Utc> {
        let seconds = TimeDelta::seconds(d.seconds as i64);
        if d.days == 0 {
            return self.add_time(t, seconds);
        }
        let s = self.add_time(t, TimeDelta::zero());
        let mut open_days = self.days_from(s).filter(|d| !d.is_empty());
        let mut p = TimeDelta::zero();
        for day in open_days.by_ref() {
            if day.iter().any(|&(a, b)| a <= s && s < b) {
                p = day
                    .iter()
                    .map(|&(a, b)| (b.min(s) - a).max(TimeDelta::zero()))
                    .sum();
                break;
            }
        }
        let k = if p.is_zero() { d.days - 1 } else { d.days };
        let target = if k == 0 {
            self.day(s.with_timezone(&self.tz).date_naive())
        } else {
            open_days.nth(k as usize - 1).unwrap()
        };
        let mut x = target.last().unwrap().1;
        if !p.is_zero() {
            for &(a, b) in &target {
                if p <= b - a {
                    x = a + p;
                    break;
                }
                p -= b - a;
            }
        }
        if seconds.is_zero() {
            x
        } else {
            self.add_time(x, seconds)
        }
    }

    fn between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> TimeDelta {
        let mut total = TimeDelta::zero();
        for (s, e) in self.days_from(a).flatten() {
            if s >= b {
                break;
            }
            total += (e.min(b) - s.max(a)).max(TimeDelta::zero());
        }
        total
    }
}

fn bench(c: &mut Criterion) {
    let cal = Calendar::new(BERLIN, week(), holidays()).unwrap();
    let naive = Naive {
        tz: BERLIN,
        week: week(),
        holidays: holidays(),
    };
    let ts = instants();

    let mut group = c.benchmark_group("add");
    group.throughput(Throughput::Elements(ts.len() as u64));
    for window in ["30m", "4h", "1d", "5d"] {
        let d: BusinessDuration = window.parse().unwrap();
        // The two must agree, or the comparison means nothing.
        for &t in &ts {
            assert_eq!(
                cal.add(t, d).unwrap(),
                naive.add(t, d),
                "add({t}, {window})"
            );
        }
        group.bench_with_input(BenchmarkId::new("calendar", window), &d, |b, &d| {
            b.iter(|| {
                for &t in &ts {
                    black_box(cal.add(black_box(t), d).unwrap());
                }
            })
        });
        group.bench_with_input(BenchmarkId::new("naive", window), &d, |b, &d| {
            b.iter(|| {
                for &t in &ts {
                    black_box(naive.add(black_box(t), d));
                }
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("between");
    group.throughput(Throughput::Elements(ts.len() as u64));
    for (name, span) in [("week", TimeDelta::days(7)), ("year", TimeDelta::days(365))] {
        for &t in &ts {
            assert_eq!(
                cal.between(t, t + span).unwrap(),
                naive.between(t, t + span)
            );
        }
        group.bench_function(BenchmarkId::new("calendar", name), |b| {
            b.iter(|| {
                for &t in &ts {
                    black_box(cal.between(black_box(t), t + span).unwrap());
                }
            })
        });
        // A year of days per call: sample fewer instants to keep the run short.
        let step = if name == "year" { 64 } else { 1 };
        let sample: Vec<_> = ts.iter().step_by(step).copied().collect();
        group.throughput(Throughput::Elements(sample.len() as u64));
        group.bench_function(BenchmarkId::new("naive", name), |b| {
            b.iter(|| {
                for &t in &sample {
                    black_box(naive.between(black_box(t), t + span));
                }
            })
        });
        group.throughput(Throughput::Elements(ts.len() as u64));
    }
    group.finish();
}

/// First use of a year: `add` on a fresh calendar builds that year's table.
fn cold(c: &mut Criterion) {
    let t = Utc.with_ymd_and_hms(2025, 3, 4, 10, 0, 0).unwrap();
    let d: BusinessDuration = "4h".parse().unwrap();
    c.bench_function("cold/new+add (builds one year)", |b| {
        b.iter_batched(
            || Calendar::new(BERLIN, week(), holidays()).unwrap(),
            |cal| black_box(cal.add(t, d).unwrap()),
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench, cold);
criterion_main!(benches);
