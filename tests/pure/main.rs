//! The pure core and the CLI: business time against oracles, the contract,
//! the SLA engine's properties, the email corpus through the parser, the
//! backtest and `keepword contract …` as a user runs them.
//!
//! One test binary per group (each links the whole app), a module per area.

#[path = "../common/mod.rs"]
mod common;

mod backtest;
mod backtest_generated;
mod calendar_crosscheck;
mod calendar_props;
mod cli;
mod contract_diff;
mod contract_queries;
mod contract_record;
mod contract_render;
mod contract_urgency;
mod contract_validation;
mod contract_version;
mod email_corpus;
mod fuzz_corpus;
mod shipped_example;
mod sla_props;
mod sla_scenario;
