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
mod outbox;
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
