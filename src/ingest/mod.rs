//! Ingest: what arrives from outside becomes typed events at this edge.
//!
//! - [`webhook`]: the generic ticket event (`POST /api/v1/events`) and GitHub
//!   `issues` / `issue_comment` deliveries → [`IncomingEvent`], with every bad
//!   field named, and GitHub signature verification.
//!
//! - [`email`]: raw MIME → [`email::ParsedEmail`], automatic-mail rules,
//!   subject normalisation and the threading rule (pure).
//! - [`imap`]: the IMAP poller (the one adapter here that does IO): batches
//!   from the inbox and sent folder handed to a [`imap::MailSink`].
//!
//! `webhook` and `email` are pure: no IO and no clock; callers pass `now` in,
//! so the rest of the program only ever sees typed values.

pub mod email;
pub mod imap;
pub mod webhook;

pub use webhook::{
    EventError, FieldError, GithubOutcome, IncomingEvent, MAX_BODY_BYTES, MAX_FUTURE_SECS,
    MAX_ID_CHARS, MAX_SUBJECT_CHARS, SignatureError, github_signature, parse_generic, parse_github,
    signature_digest, verify_github_signature,
};
