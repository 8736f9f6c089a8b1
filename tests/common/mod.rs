//! Shared by the integration tests: fresh databases on both backends.
// Each test crate (pure, storage, http, mail) includes these helpers and
// uses a different part of them; rustc's dead-code analysis runs per crate,
// so an allow is the price of sharing them without a separate helper crate.
#![allow(dead_code)]

pub mod app;
pub mod binary;

/// Writes a test once for both backends: for each `body`, a module `body`
/// with the tests `sqlite` and `postgres`, each calling `body(url)` on a
/// fresh database of its backend (`url` as `&str` or `String`). `async`
/// bodies run on a two-thread runtime, as the service does.
#[macro_export]
macro_rules! both_backends {
    (async $($body:ident),+ $(,)?) => {$(
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (_dir, url) = $crate::common::fresh_sqlite();
                super::$body(url.as_str().into()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = $crate::common::FreshPostgres::new();
                super::$body(db.url.as_str().into()).await;
            }
        }
    )+};
    ($($body:ident),+ $(,)?) => {$(
        mod $body {
            #[test]
            fn sqlite() {
                let (_dir, url) = $crate::common::fresh_sqlite();
                super::$body(url.as_str().into());
            }
            #[test]
            fn postgres() {
                let db = $crate::common::FreshPostgres::new();
                super::$body(db.url.as_str().into());
            }
        }
    )+};
}

/// Zones the business-time tests draw from: half-hour DST (Lord_Howe),
/// +05:45 (Kathmandu), midnight DST (Sao_Paulo, Havana), a skipped day
/// (Apia), and ordinary ones.
pub const ZONES: &[chrono_tz::Tz] = &[
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Asia::Kathmandu,
    chrono_tz::America::Sao_Paulo,
    chrono_tz::Europe::Berlin,
    chrono_tz::America::New_York,
    chrono_tz::Pacific::Apia,
    chrono_tz::Asia::Tehran,
    chrono_tz::America::Havana,
    chrono_tz::UTC,
];

use diesel::pg::PgConnection;
use diesel::prelude::*;

/// Where the test PostgreSQL server is; `./scripts/test` makes sure one runs.
pub fn postgres_admin_url() -> String {
    std::env::var("KEEPWORD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A PostgreSQL database created for one test and dropped when this is dropped.
pub struct FreshPostgres {
    pub url: String,
    name: String,
}

impl FreshPostgres {
    pub fn new() -> FreshPostgres {
        let admin = postgres_admin_url();
        let mut conn = PgConnection::establish(&admin).unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required for this test and is not reachable at {admin}: {e}\n\
                 Run ./scripts/test (it installs and starts PostgreSQL), or set \
                 KEEPWORD_TEST_DATABASE_URL to a server where the user may CREATE DATABASE."
            )
        });
        let name = format!("keepword_test_{}", uuid::Uuid::new_v4().simple());
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .expect("CREATE DATABASE");
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        FreshPostgres {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for FreshPostgres {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&postgres_admin_url()) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}

/// A SQLite file in a temporary folder (kept alive with the returned guard).
pub fn fresh_sqlite() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/keepword.db", dir.path().display());
    (dir, url)
}

/// The service over a fresh store with the shipped contract recorded, as
/// `keepword serve` would build it (without HTTP).
pub fn shipped_service(url: &str) -> keepword::service::Service {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml"),
    )
    .unwrap();
    service_with_contract(url, &text)
}

/// The service over a fresh store with the contract `text` recorded.
pub fn service_with_contract(url: &str, text: &str) -> keepword::service::Service {
    use keepword::service::{ContractHandle, LoadedContract};
    let store = keepword::store::Store::open(url).unwrap();
    let loaded =
        LoadedContract::from_source(text.to_string(), std::path::Path::new("contract.toml"))
            .unwrap();
    store
        .with(|c| {
            keepword::store::record_contract_version(
                c,
                &loaded.version,
                "shipped",
                &loaded.source,
                chrono::Utc::now(),
            )
        })
        .unwrap();
    keepword::service::Service::new(
        store,
        ContractHandle::new(loaded),
        keepword::metrics::Metrics::new(),
        "http://keepword.test",
        "example.com".into(),
    )
}

/// Writes `tests/fixtures/contracts/fast.toml` (minute windows, 24x7) into
/// `dir` with the webhook receiver's URL in it.
pub fn fast_contract(dir: &std::path::Path, webhook: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/contracts/fast.toml"),
    )
    .unwrap()
    .replace("WEBHOOK_URL", webhook);
    let path = dir.join("contract.toml");
    std::fs::write(&path, text).unwrap();
    path
}
