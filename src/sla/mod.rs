//! The SLA engine: a conversation's events → its timers, health and the
//! escalation actions that are due; and classification of a new request.
//!
//! Pure: no IO, no clock. [`evaluate`] is a function of the policy, the
//! events and `now`, so the caller (the service) stores the keys of the
//! actions it has fired and fires the ones it has not stored yet, and a
//! restart neither repeats nor skips a step (README, "Alerts").
//!
//! # Timers (README, "The contract")
//! - A conversation opens on its first inbound message: `first_response`
//!   and `resolution` start then. Events before it start nothing.
//! - `first_response` stops at the first outbound message.
//! - `next_response` starts at an inbound message when no response timer is
//!   running and the conversation has had its first response (an outbound,
//!   or a solve), and stops at the next outbound message. Each cycle is a new
//!   `seq` (0, 1, 2…). Counting a solve as "answered" is our rule: a client
//!   who writes to a solved conversation is owed an answer even if the team
//!   never wrote before the solve.
//! - `resolution` pauses while the conversation waits on the client (status
//!   `pending`, or an outbound with `awaiting_client`, which also sets the
//!   status to `pending`), resumes on the next inbound message or status
//!   `open`, and stops on `solved`. An inbound message or status `open`
//!   after `solved` reopens the conversation and resumes `resolution` with
//!   its elapsed time; status `pending` after `solved` reopens it paused.
//! - `periodic_update` (a request type's `update_every`): while the
//!   conversation is open and the team owes the next move, the client hears
//!   from the team at least that often. Cycle 0 starts when the
//!   conversation opens; every outbound message stops the running cycle
//!   (met, or missed when late) and starts the next one (`seq` + 1). It
//!   pauses while the conversation waits on the client (a question, status
//!   `pending`; a cycle started by a question starts paused), resumes on
//!   the next inbound message or status `open`, and stops on `solved`; a
//!   reopen after `solved` starts a new cycle.
//! - Solving stops a running response timer too.
//! - `auto` and `internal` messages never move a timer.
//! - A timer whose window the policy leaves out is not tracked.
//!
//! # Windows and dues
//! The engine counts whole seconds: event instants are rounded up to the
//! next whole second (so an answer a fraction of a second after a due is
//! late, consistently with the breach already recorded at the due). A timer's window in business seconds `W` is the window itself
//! when it has no days; a window with days (`5d`) is `W = between(start,
//! add(start, window))`, i.e. the business time the business-day rule gives
//! from the timer's start. The due is the first instant at which the
//! elapsed business time (pauses excluded) reaches `W`: while the timer has
//! never paused that is `calendar.add(start, window)` (the business-day rule
//! exactly); after a pause it is `calendar.add(resume, W - elapsed)`.
//!
//! A timer runs on half-open intervals `[start or resume, stop or pause)`:
//! an instant applies to it only inside one. So a timer stopped exactly at
//! its due is `met` and gets no breach; one paused exactly as its window ran
//! out is due at the first open instant after it resumes.
//!
//! # Status, warn, health
//! `met` iff stopped at or before the due, `missed` iff stopped after it,
//! `breached` iff running and `now >= due`, `paused` while paused. The warn
//! threshold is the policy's first `at` step (else 75%) of `W`, rounded up to
//! the second. Health: `breached` if a timer is breached, else `at_risk` if a
//! running timer passed its warn instant, else `on_track`; a solved
//! conversation is `on_track`.
//!
//! # Escalation
//! Every step applies to every timer instance, once: `at = X%` when the
//! elapsed time reaches `ceil(X% of W)` (so it moves with pauses; 100% is the
//! due), `after_due = D` at `calendar.add(due, D)`. A step is due when its
//! instant is `<= now` and the timer was running then. A breach action is due
//! for each timer whose due passed while it ran.
//!
//! `next_change` is the earliest instant after `now` at which, without a new
//! event, a timer's status, the health or the due actions change: a running
//! timer's due or step instant, or its warn instant while the conversation
//! is `on_track`.
//!
//! # Pause governance
//! A policy may carry `max_pause`: the business time a conversation may
//! spend waiting on the client, over all its pauses. A pause runs from the
//! moment the conversation starts waiting on the client until it stops
//! (client message, reopen, solve). The budget in business seconds is fixed
//! at the first pause like a window (`3d` = the business-day rule from that
//! instant). When the paused time reaches it, `resolution` resumes by itself
//! at that instant (the conversation stays `pending`), and waiting on the
//! client no longer pauses it. That instant is part of `next_change`.
//!
//! Instants outside the calendar's supported years (1900..=2199) have no
//! due: such a timer runs without ever breaching.

mod classify;
mod engine;

#[cfg(test)]
mod pause_tests;
#[cfg(test)]
mod tests;

pub use classify::{Classification, ClassifyInput, classify};
pub use engine::{
    ActionKind, ActionStep, ConversationState, Direction, DueAction, Event, EventKind, Health,
    ParseError, Policy, TicketStatus, TimerState, TimerStatus, breach_contacts, evaluate,
};
