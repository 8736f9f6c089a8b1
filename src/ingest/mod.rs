//! Ingest: what arrives from outside becomes typed events at this edge.
//!
//! - [`webhook`]: the generic ticket event (`POST /api/v1/events`) and GitHub
//!   `issues` / `issue_comment` deliveries → [`IncomingEvent`], with every bad
//!   field named, and GitHub signature verification.
//!
//! Pure: no IO and no clock; the HTTP handlers read the body and the headers
//! and pass `now` in, so the rest of the program only ever sees an
//! [`IncomingEvent`].

pub mod email;
pub mod imap;
pub mod webhook;

pub use webhook::{
    EventError, FieldError, GithubOutcome, IncomingEvent, MAX_BODY_BYTES, MAX_FUTURE_SECS,
    MAX_ID_CHARS, MAX_SUBJECT_CHARS, SignatureError, github_signature, parse_generic, parse_github,
    verify_github_signature,
};
