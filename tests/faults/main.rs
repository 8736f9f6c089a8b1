//! The fault harness (README, "Faults"): recording receivers
//! (tests/support/recorders.rs) act out a fault and log every delivery
//! before they do; keepword runs through it (the outbox worker in-process,
//! or the built binary, killed or stopped in the narrow windows that the
//! `failpoints` feature opens); the offline checker (`checker`) reads the
//! recorded history and reports lost, duplicated, unexpected and late
//! deliveries.
//!
//! `cargo test --test faults` runs the smoke subset (the most likely faults,
//! on both backends); `cargo test --features failpoints --test faults` adds
//! the crash windows; `scripts/faults` runs the whole matrix, the ignored
//! long ones and a seeded random mix, and writes the report.

#[path = "../common/mod.rs"]
mod common;
#[path = "../support/mod.rs"]
mod support;

mod checker;
mod crash;
mod database;
mod disk;
mod imap;
mod outbox;
mod poison;
mod rig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_send_sqlite() {
    let (_dir, url) = common::fresh_sqlite();
    crash::sigterm_mid_send(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_send_postgres() {
    let db = common::FreshPostgres::new();
    crash::sigterm_mid_send(&db.url).await;
}

#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_after_send_sqlite() {
    let (_dir, url) = common::fresh_sqlite();
    crash::kill_nine_after_send(&url, std::time::Duration::from_secs(15)).await;
}

/// The rows wait out their two-minute lease: in the full matrix only.
#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "waits out a 2-minute lease; scripts/faults runs it"]
async fn kill_nine_after_send_postgres() {
    let db = common::FreshPostgres::new();
    crash::kill_nine_after_send(&db.url, std::time::Duration::from_secs(150)).await;
}

#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_between_claim_and_send_sqlite() {
    let (_dir, url) = common::fresh_sqlite();
    crash::kill_nine_between_claim_and_send(&url, std::time::Duration::from_secs(15)).await;
}

#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "waits out a 2-minute lease; scripts/faults runs it"]
async fn kill_nine_between_claim_and_send_postgres() {
    let db = common::FreshPostgres::new();
    crash::kill_nine_between_claim_and_send(&db.url, std::time::Duration::from_secs(150)).await;
}

#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_not_committed_sqlite() {
    let (_dir, url) = common::fresh_sqlite();
    crash::outcomes_not_committed(&url).await;
}

#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "waits out a 2-minute lease; scripts/faults runs it"]
async fn stalled_past_its_lease_postgres() {
    let db = common::FreshPostgres::new();
    crash::stalled_past_its_lease(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_fast() {
    database::postgres_restarted("fast").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_immediate() {
    database::postgres_restarted("immediate").await;
}

#[tokio::test]
async fn imap_cut_mid_fetch() {
    imap::cut_mid_fetch().await;
}

/// The drop noticed at the end of a 2 s IDLE, DONE unanswered for 2 s.
#[tokio::test]
async fn imap_silent_drop_in_idle() {
    let timing = keepword::imap::PollerTiming {
        idle_timeout: std::time::Duration::from_secs(2),
        liveness_timeout: std::time::Duration::from_secs(2),
        backoff_min: std::time::Duration::from_millis(100),
        backoff_max: std::time::Duration::from_millis(400),
        ..Default::default()
    };
    let within = timing.idle_timeout + timing.liveness_timeout;
    imap::silent_drop_in_idle(timing, within, "IMAP silent drop in IDLE (2 s IDLE)").await;
}

/// The same with production's tuning: noticed within 75 s.
#[tokio::test]
#[ignore = "waits out production's IDLE period (75 s); scripts/faults runs it"]
async fn imap_silent_drop_in_idle_production_timing() {
    let timing = keepword::imap::PollerTiming {
        backoff_min: std::time::Duration::from_millis(100),
        backoff_max: std::time::Duration::from_millis(400),
        ..Default::default()
    };
    let within = timing.idle_timeout + timing.liveness_timeout;
    imap::silent_drop_in_idle(timing, within, "IMAP silent drop in IDLE").await;
}

/// The same inbox read twice by the built binary, without and with the
/// 25 MB mail: the ordinary mail's acknowledgements on time in both, the
/// big one read, the peak memory compared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "moves 25 MB through Dovecot and the binary twice; scripts/faults runs it"]
async fn poison_input_a_25_mb_mail() {
    let without = poison::run(false).await;
    let with = poison::run(true).await;
    let mut report = with.report.clone();
    report.injected = format!(
        "a {} MB mail between {} ordinary ones: the big one {}; peak RSS {} MiB (without it: {} MiB); ordinary mail stored after {:.1} s (without: {:.1} s), acknowledged after {:.1} s (without: {:.1} s)",
        poison::BIG >> 20,
        2 * 10,
        with.big.as_deref().unwrap_or("?"),
        with.peak_kib >> 10,
        without.peak_kib >> 10,
        with.ordinary_stored.as_secs_f64(),
        without.ordinary_stored.as_secs_f64(),
        with.acknowledged.as_secs_f64(),
        without.acknowledged.as_secs_f64(),
    );
    eprintln!("{}", report.injected);
    let mut baseline = without.report.clone();
    baseline.injected = format!(
        "none: the same {} ordinary mails alone (the baseline): peak RSS {} MiB, stored after {:.1} s",
        2 * 10,
        without.peak_kib >> 10,
        without.ordinary_stored.as_secs_f64()
    );
    baseline.assert_kept();
    report.assert_kept();
    assert_eq!(with.big.as_deref(), Some("stored"), "{}", report.injected);
    assert!(
        with.peak_kib <= without.peak_kib + poison::PEAK_ALLOWANCE_KIB,
        "peak memory not bounded: {}",
        report.injected
    );
}

#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "waits out a 2-minute lease; scripts/faults runs it"]
async fn one_of_two_partitioned_from_postgres() {
    let db = common::FreshPostgres::new();
    database::one_of_two_partitioned(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs fiu-utils (libfiu); scripts/faults installs it and runs it"]
async fn sqlite_fsync_failing() {
    disk::sqlite_fsync_failing().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "mounts a tmpfs (root) under a private cluster; scripts/faults runs it"]
async fn postgres_tablespace_full() {
    disk::postgres_tablespace_full().await;
}

/// Down past the pool's 10 s wait: input refused, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped() {
    database::postgres_restarted(database::STOPPED).await;
}

#[tokio::test]
async fn imap_large_mails_in_bounded_batches() {
    imap::large_mails_in_bounded_batches().await;
}
