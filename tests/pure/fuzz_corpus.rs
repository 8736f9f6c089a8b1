//! Bounded, corpus-driven mutation run of the fuzz targets' entry points
//! (MIME, contract, generic event, GitHub, config), so their guarantees are
//! checked by every `cargo test` even where cargo-fuzz cannot run. Seeds are
//! the real corpora under `tests/fixtures` plus `fuzz/seeds`; mutations are
//! the ones that break parsers: bit flips, truncations, splices of two seeds,
//! inserted NULs, CRLFs, long lines and syntax characters. The invariants
//! themselves live in `fuzz/checks.rs`, shared with the libFuzzer targets.
//!
//! `FUZZ_CASES` raises the number of cases per target (default 192).

#[path = "../../fuzz/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.file_name().is_none_or(|n| n != "README.md") {
            out.push(path);
        }
    }
}

fn read_all(dirs: &[&str], min: usize) -> Vec<Vec<u8>> {
    let mut paths = Vec::new();
    for dir in dirs {
        files(Path::new(dir), &mut paths);
    }
    paths.sort();
    assert!(paths.len() >= min, "seed corpus went missing: {dirs:?}");
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn mail_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| read_all(&["tests/fixtures/mail", "fuzz/seeds/mime"], 250))
}

fn contract_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut seeds = read_all(&["tests/fixtures/contracts", "fuzz/seeds/contract"], 3);
        seeds.push(std::fs::read("config/contract.toml").unwrap());
        seeds
    })
}

fn event_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| read_all(&["fuzz/seeds/event"], 4))
}

/// `X-GitHub-Event` line + body, as the `github` target reads its input; the
/// event name is the fixture's file name up to the first dot.
fn github_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut paths = Vec::new();
        files(Path::new("tests/fixtures/github"), &mut paths);
        paths.sort();
        assert!(paths.len() >= 30, "GitHub fixtures went missing");
        let mut seeds: Vec<Vec<u8>> = paths
            .iter()
            .map(|p| {
                let name = p.file_name().unwrap().to_str().unwrap();
                let event = name.split('.').next().unwrap();
                let mut seed = format!("{event}\n").into_bytes();
                seed.extend(std::fs::read(p).unwrap());
                seed
            })
            .collect();
        seeds.extend(read_all(&["fuzz/seeds/github"], 0));
        seeds
    })
}

/// Source line + body, as the `tickets` target reads its input: every
/// published Jira, Linear and Basecamp payload under tests/fixtures.
fn ticket_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut seeds = Vec::new();
        for source in checks::TICKET_SOURCES {
            let mut paths = Vec::new();
            files(&Path::new("tests/fixtures").join(source), &mut paths);
            paths.sort();
            for p in paths
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
            {
                let mut seed = format!("{source}\n").into_bytes();
                seed.extend(std::fs::read(p).unwrap());
                seeds.push(seed);
            }
        }
        assert!(seeds.len() >= 10, "ticket fixtures went missing");
        seeds
    })
}

/// Every published Slack request under tests/fixtures/slack (the README
/// is not one).
fn slack_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut paths = Vec::new();
        files(Path::new("tests/fixtures/slack"), &mut paths);
        paths.sort();
        let seeds: Vec<Vec<u8>> = paths
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        assert!(seeds.len() >= 7, "Slack fixtures went missing");
        seeds
    })
}

fn config_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut seeds = read_all(&["fuzz/seeds/config"], 3);
        seeds.push(std::fs::read("config/keepword.toml").unwrap());
        seeds
    })
}

/// Pieces that sit on parser boundaries: MIME and TOML and JSON syntax,
/// encodings, line ends, numbers at the edge of their types.
const PIECES: &[&[u8]] = &[
    b"\0",
    b"\r\n",
    b"\r",
    b"\n\n",
    b"\r\n\r\n",
    b"\n ",
    b"\"",
    b"'''",
    b"\\",
    b"\\u0000",
    b"{",
    b"}",
    b"[",
    b"]]",
    b"[[",
    b":",
    b"=",
    b",",
    b"--",
    b"boundary=\"x\"\r\n--x\r\n",
    b"Content-Type: multipart/mixed; boundary=",
    b"Content-Transfer-Encoding: base64\r\n",
    b"=?utf-8?B?",
    b"=?iso-2022-jp?Q?=1B$B",
    b"?=",
    b"=\r\n",
    b"\xff\xfe",
    b"\xc3",
    b"\xe2\x80\xae",
    "é".as_bytes(),
    "\u{130}".as_bytes(),
    b"-9223372036854775809",
    b"18446744073709551616",
    b"1e999",
    b"9999-12-31T23:59:59Z",
    b"+262143-01-01",
    b"99999h",
    b"100%",
    b"24:00",
    b"00:00-00:00",
    b"null",
    b"true",
    b"[]",
    b"{}",
];

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Truncate(Index),
    Delete(Index, u8),
    Insert(Index, Index),
    InsertBytes(Index, Vec<u8>),
    LongLine(Index, u16),
    Duplicate(Index, u8),
    /// This seed up to a point, then another seed from a point.
    Splice(Index, Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), 1u8..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, p)| Mutation::Insert(i, p)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::InsertBytes(i, v)),
        (any::<Index>(), 500u16..20_000).prop_map(|(i, n)| Mutation::LongLine(i, n)),
        (any::<Index>(), 1u8..255).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(a, s, b)| Mutation::Splice(a, s, b)),
    ]
}

fn apply(seeds: &[Vec<u8>], mut data: Vec<u8>, m: &Mutation) -> Vec<u8> {
    // Positions index 0..=len, so an insert can land at the very end.
    let at = |i: &Index, len: usize| i.index(len + 1);
    match m {
        Mutation::FlipBit(i, bit) if !data.is_empty() => {
            let i = i.index(data.len());
            data[i] ^= 1 << bit;
        }
        Mutation::SetByte(i, b) if !data.is_empty() => {
            let i = i.index(data.len());
            data[i] = *b;
        }
        Mutation::Truncate(i) => data.truncate(at(i, data.len())),
        Mutation::Delete(i, n) => {
            let start = at(i, data.len());
            let end = (start + usize::from(*n)).min(data.len());
            data.drain(start..end);
        }
        Mutation::Insert(i, piece) => {
            let piece = PIECES[piece.index(PIECES.len())];
            let i = at(i, data.len());
            data.splice(i..i, piece.iter().copied());
        }
        Mutation::InsertBytes(i, bytes) => {
            let i = at(i, data.len());
            data.splice(i..i, bytes.iter().copied());
        }
        Mutation::LongLine(i, n) => {
            let i = at(i, data.len());
            data.splice(i..i, std::iter::repeat_n(b'a', usize::from(*n)));
        }
        Mutation::Duplicate(i, n) => {
            let start = at(i, data.len());
            let end = (start + usize::from(*n)).min(data.len());
            let copy = data[start..end].to_vec();
            data.splice(end..end, copy);
        }
        Mutation::Splice(a, other, b) => {
            let other = &seeds[other.index(seeds.len())];
            data.truncate(at(a, data.len()));
            data.extend_from_slice(&other[at(b, other.len())..]);
        }
        Mutation::FlipBit(..) | Mutation::SetByte(..) => {}
    }
    data
}

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .map(|v| v.parse().expect("FUZZ_CASES must be a number"))
        .unwrap_or(192)
}

/// Runs `check` on `cases()` mutated seeds; proptest shrinks a failure to
/// a short list of mutations of one seed.
fn run(seeds: &'static [Vec<u8>], check: impl Fn(&[u8])) {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        // The invariant failing is the finding; a panic message is enough.
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (any::<Index>(), prop::collection::vec(mutation(), 1..8));
    let result = runner.run(&strategy, |(seed, mutations)| {
        let mut data = seeds[seed.index(seeds.len())].clone();
        for m in &mutations {
            data = apply(seeds, data, m);
        }
        check(&data);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn seeds_keep_every_invariant_unmutated() {
    for seed in mail_seeds() {
        checks::mime(seed);
    }
    for seed in contract_seeds() {
        checks::contract(&String::from_utf8_lossy(seed));
    }
    for seed in event_seeds() {
        checks::event(seed);
    }
    for seed in github_seeds() {
        checks::github(seed);
    }
    for seed in ticket_seeds() {
        checks::tickets(seed);
    }
    for seed in slack_seeds() {
        checks::slack(seed);
    }
    let scratch = tempfile::NamedTempFile::new().unwrap();
    for seed in config_seeds() {
        checks::config(seed, scratch.path());
    }
}

/// Without this the contract run could only ever see rejected contracts.
#[test]
fn the_seeds_include_valid_and_invalid_inputs() {
    let parsed: Vec<bool> = contract_seeds()
        .iter()
        .map(|s| keepword::contract::parse(&String::from_utf8_lossy(s), "seed").is_ok())
        .collect();
    assert!(
        parsed.contains(&true) && parsed.contains(&false),
        "{parsed:?}"
    );
    let now = checks::now();
    let events: Vec<bool> = event_seeds()
        .iter()
        .map(|s| keepword::ingest::webhook::parse_generic(s, now).is_ok())
        .collect();
    assert!(
        events.contains(&true) && events.contains(&false),
        "{events:?}"
    );
}

#[test]
fn mutated_mail_keeps_the_mime_invariants() {
    run(mail_seeds(), checks::mime);
}

#[test]
fn mutated_contracts_validate_or_point_at_the_problem() {
    run(contract_seeds(), |data| {
        checks::contract(&String::from_utf8_lossy(data))
    });
}

#[test]
fn mutated_generic_events_parse_or_list_every_problem() {
    run(event_seeds(), checks::event);
}

#[test]
fn mutated_github_deliveries_parse_or_are_rejected() {
    run(github_seeds(), checks::github);
}

#[test]
fn mutated_ticket_deliveries_parse_or_are_rejected() {
    run(ticket_seeds(), checks::tickets);
}

#[test]
fn mutated_slack_requests_parse_or_are_rejected() {
    run(slack_seeds(), checks::slack);
}

/// What the fuzzer found first: a body of invalid UTF-8, which the check
/// measured against its bytes rather than the text they decode to.
#[test]
fn a_slack_body_of_invalid_utf8_passes_the_checks() {
    let mut body = b"{\n  \"token\": \"Jhj5dZrVaK7ZwHHjR".to_vec();
    body.extend([0xFF; 400]);
    body.extend_from_slice(b"yZWjbDl\",\n  \"challenge\": \"3eZbrw1aBm2rZgRNFdxV25\"\n}\n");
    checks::slack(&body);
}

#[test]
fn mutated_settings_files_load_or_are_rejected() {
    let scratch = tempfile::NamedTempFile::new().unwrap();
    run(config_seeds(), |data| checks::config(data, scratch.path()));
}
