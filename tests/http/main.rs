//! The real app over HTTP and the built binary: the API, webhooks, security
//! findings, the OpenAPI document under schemathesis, `serve`, dashboards,
//! `kill -9` and several processes on one PostgreSQL.
//!
//! One test binary per group (each links the whole app), a module per area.

#[path = "../common/mod.rs"]
mod common;
#[path = "../support/mod.rs"]
mod support;

mod alert_targets;
mod api;
mod client_record;
mod contract_changes;
mod dashboards;
mod focus;
mod ingest_github;
mod ingest_slack;
mod ingest_tickets;
mod openapi;
mod processes;
mod refused;
mod retention;
mod security;
mod serve;
mod status_page;
mod team_dashboard;
