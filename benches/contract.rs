//! Parse + validate cost of a contract: the shipped one, and a generated large
//! one (50 request types, 200 clients), each next to a baseline of plain
//! `toml::from_str::<toml::Value>` on the same text, so the cost of our own
//! walk and checks can be told apart from TOML parsing itself.
//!
//! Run: `cargo bench --bench contract`. Needs the real calendar (durations).

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

fn large_contract(types: usize, clients: usize) -> String {
    let mut s = String::from(
        "[contract]\nname = \"Generated\"\neffective = \"2026-11-01\"\ntimezone = \"Europe/Berlin\"\n\n\
         [calendars.business]\ntimezone = \"Europe/Berlin\"\nmon = \"09:00-17:00\"\ntue = \"09:00-17:00\"\n\
         wed = \"09:00-17:00\"\nthu = \"09:00-17:00\"\nfri = \"09:00-12:30, 13:30-17:00\"\n\
         holidays = [\"2026-12-24\", \"2026-12-25\", \"2026-12-26\", \"2027-01-01\"]\n\n\
         [calendars.always]\nalways = true\n\n\
         [channels.email]\nkind = \"email\"\naddress = \"support@example.com\"\n\n\
         [channels.tickets]\nkind = \"ticket\"\n\n\
         [contacts]\nlead = { email = \"lead@example.com\" }\noncall = { email = \"oncall@example.com\" }\n\n",
    );
    for i in 0..types {
        let _ = write!(
            s,
            "[[request_types]]\nid = \"type-{i}\"\nname = \"Request type {i}\"\n\
             definition = \"Requests of kind {i}, defined in writing.\"\n{}\
             channels = [\"email\", \"tickets\"]\n\
             match = {{ keywords = [\"word{i}\", \"other{i}\"], priorities = [\"p{i}\"] }}\n\
             calendar = \"{}\"\nfirst_response = \"{}h\"\nnext_response = \"8h\"\nresolution = \"5d\"\n\
             escalation = [{{ at = \"50%\", notify = [\"oncall\"] }}, {{ after_due = \"30m\", notify = [\"lead\"] }}]\n\n",
            if i == 0 { "default = true\n" } else { "" },
            if i % 5 == 0 { "always" } else { "business" },
            1 + i % 8,
        );
    }
    for i in 0..clients {
        let _ = write!(
            s,
            "[[clients]]\nid = \"client-{i}\"\nname = \"Client number {i}\"\n\
             domains = [\"client{i}.example\", \"client{i}-group.example\"]\n\
             addresses = [\"boss@partner{i}.example\"]\n\
             overrides = {{ type-{} = {{ first_response = \"1h\" }} }}\n\n",
            i % types,
        );
    }
    s
}

fn bench(c: &mut Criterion) {
    let shipped = include_str!("../config/contract.toml");
    let large = large_contract(50, 200);
    // Fail loudly rather than benchmark the error path.
    keepword::contract::parse(shipped, "contract.toml").unwrap_or_else(|d| panic!("{d}"));
    keepword::contract::parse(&large, "large.toml").unwrap_or_else(|d| panic!("{d}"));

    for (name, source) in [("shipped", shipped), ("large_50x200", large.as_str())] {
        let mut group = c.benchmark_group(format!("contract/{name}"));
        group.bench_function("toml_value_baseline", |b| {
            b.iter(|| toml::from_str::<toml::Value>(black_box(source)).unwrap())
        });
        group.bench_function("parse_validate", |b| {
            b.iter(|| keepword::contract::parse(black_box(source), "c.toml").unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
