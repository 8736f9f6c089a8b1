//! Shared by the integration tests: fresh databases on both backends.
#![allow(dead_code)]

pub mod binary;

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
