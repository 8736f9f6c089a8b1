//! Erasure of a person or a client (README, "Erasure"): `keepword erase`.
//! Who is erased is resolved here (the person's address and the
//! conversations they opened; a client's conversations and the addresses
//! that wrote them); what goes from which table is `store::erasure`'s
//! policy. The erasure is one transaction; after it commits, the database
//! files are scrubbed so the removed bytes are gone from them too.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::store::erasure::{self, Counts, Subject};
use crate::store::schema::{conversations, messages};
use crate::store::{AnyConnection, Store, StoreError};

/// Whom to erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErasureRequest {
    /// A person, by email address (any case).
    Address(String),
    /// A client of the contract, by id, with everyone who wrote for it.
    Client(String),
}

impl ErasureRequest {
    /// The kind recorded in `erasures` (never whom).
    pub fn kind(&self) -> &'static str {
        match self {
            ErasureRequest::Address(_) => "address",
            ErasureRequest::Client(_) => "client",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error("`--address {0}` is not an email address")]
    NotAnAddress(String),
    #[error("no client `{0}` in the database (the id is the contract's `[clients.ID]`)")]
    UnknownClient(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for ErasureError {
    fn from(e: diesel::result::Error) -> Self {
        ErasureError::Store(StoreError::Query(e))
    }
}

/// What an erasure removed (or, dry, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasureReport {
    /// Rows per table (`table`, or `table.column` where an address was
    /// replaced inside text that stays).
    pub counts: Counts,
    /// Addresses erased (for a client: everyone who wrote for it).
    pub addresses: usize,
    /// Conversations whose every body went (their SLA facts stay).
    pub conversations: usize,
    /// Stored contract versions whose text names them: the contract file
    /// is the operator's to edit.
    pub in_contracts: usize,
    pub dry_run: bool,
}

/// Rolls a dry run back after it counted.
struct DryRun(Box<ErasureReport>);

enum Failed {
    Dry(DryRun),
    Error(ErasureError),
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Self {
        Failed::Error(e.into())
    }
}

impl From<ErasureError> for Failed {
    fn from(e: ErasureError) -> Self {
        Failed::Error(e)
    }
}

fn subject_of(conn: &mut AnyConnection, request: &ErasureRequest) -> Result<Subject, ErasureError> {
    match request {
        ErasureRequest::Address(given) => {
            let address = given.trim().to_lowercase();
            let valid = address
                .split_once('@')
                .is_some_and(|(user, domain)| !user.is_empty() && !domain.is_empty())
                && !address.contains(char::is_whitespace);
            if !valid {
                return Err(ErasureError::NotAnAddress(given.clone()));
            }
            let conversations: Vec<i64> = conversations::table
                .filter(conversations::opener.eq(&address))
                .select(conversations::id)
                .load(conn)?;
            Ok(Subject {
                addresses: vec![address],
                conversations,
                client: None,
            })
        }
        ErasureRequest::Client(id) => {
            if crate::store::client(conn, id)?.is_none() {
                return Err(ErasureError::UnknownClient(id.clone()));
            }
            let rows: Vec<(i64, String)> = conversations::table
                .filter(conversations::client_id.eq(id))
                .select((conversations::id, conversations::opener))
                .load(conn)?;
            let conversations: Vec<i64> = rows.iter().map(|(c, _)| *c).collect();
            let mut addresses: BTreeSet<String> = rows
                .into_iter()
                .map(|(_, opener)| opener)
                .filter(|o| !o.is_empty())
                .collect();
            for chunk in conversations.chunks(5_000) {
                let senders: Vec<String> = messages::table
                    .filter(messages::conversation_id.eq_any(chunk))
                    .filter(messages::direction.eq(crate::sla::Direction::Inbound.as_str()))
                    .select(messages::sender)
                    .distinct()
                    .load(conn)?;
                addresses.extend(
                    senders
                        .into_iter()
                        .map(|s| s.trim().to_lowercase())
                        .filter(|s| !s.is_empty() && s != erasure::ERASED),
                );
            }
            Ok(Subject {
                addresses: addresses.into_iter().collect(),
                conversations,
                client: Some(id.clone()),
            })
        }
    }
}

/// Erases `request` from `store`: one transaction, recorded in `erasures`,
/// then the files scrubbed ([`Store::scrub_files`]). With `dry_run` the same
/// work is done and rolled back, so the counts are exact and nothing
/// changes.
pub fn erase(
    store: &Store,
    request: &ErasureRequest,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<ErasureReport, ErasureError> {
    let outcome = store.erasing_transaction(|conn| {
        let subject = subject_of(conn, request)?;
        let counts = erasure::erase(conn, &subject)?;
        let report = ErasureReport {
            in_contracts: erasure::mentions_in_contracts(conn, &subject.addresses)?,
            addresses: subject.addresses.len(),
            conversations: subject.conversations.len(),
            counts,
            dry_run,
        };
        if dry_run {
            return Err(Failed::Dry(DryRun(Box::new(report))));
        }
        erasure::record(conn, now, request.kind(), &report.counts)?;
        Ok(report)
    });
    match outcome {
        Ok(report) => {
            let mut tables = erasure::touched_tables(&report.counts);
            tables.insert("erasures".into());
            store.scrub_files(&tables)?;
            Ok(report)
        }
        Err(Failed::Dry(DryRun(report))) => Ok(*report),
        Err(Failed::Error(e)) => Err(e),
    }
}
