//! The order state machine, model-checked: generated scripts interleave requests to the real
//! handlers (create, GET with its sync, refund and its GET, notifications delivered
//! duplicated, late and out of order, the expiry job's close and cancel, the daily
//! reconciliation) with buyers, Alipay's nondeterminism (answers lost, requests that never
//! arrive, `retry_flag`), store failures, crashed requests and passing time, over the
//! in-memory store of `domain::memory` and a model of Alipay; the invariants are checked after
//! every step, and once everything is settled the orders must agree with Alipay.
//!
//! - [`alipay`]: the model of Alipay (trades, refunds, notifications, bills).
//! - [`world`]: the ports the handlers run on, each call a suspension point of the script.
//! - [`script`]: the generated steps.
//! - [`run`]: the driver.
//! - [`check`]: the invariants.
//!
//! `tests/state_machine.rs` runs it under proptest (seeded, shrinking).

pub mod alipay;
pub mod check;
pub mod run;
pub mod script;
pub mod world;

pub use run::{Tally, run};
