//! Ingest: what arrives from outside becomes typed events at this edge.
//!
//! - [`webhook`]: the generic ticket event (`POST /api/v1/events`) and GitHub
//!   `issues` / `issue_comment` deliveries → [`IncomingEvent`], with every bad
//!   field named, and GitHub signature verification.
//!
//! - [`email`]: raw MIME → [`email::ParsedEmail`], automatic-mail rules,
//!   subject normalisation and the threading rule (pure).
//!
//! Both are pure: no IO and no clock; callers pass `now` in, so the rest of
//! the program only ever sees typed values. The IMAP poller that fetches mail
//! is an adapter of its own ([`crate::imap`]).

pub mod email;
pub mod webhook;

pub use webhook::{
    EventError, FieldError, GithubOutcome, IncomingEvent, MAX_BODY_BYTES, MAX_FUTURE_SECS,
    MAX_ID_CHARS, MAX_SUBJECT_CHARS, SignatureError, github_signature, parse_generic, parse_github,
    signature_digest, verify_github_signature,
};
