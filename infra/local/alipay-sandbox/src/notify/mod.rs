//! Asynchronous trade notifications (`trade_status_sync`) to the merchant's `notify_url`:
//! what is sent ([`compose`]), the record of each notification and its attempts ([`record`]),
//! the switches that make deliveries misbehave on purpose ([`switches`]), and the HTTP
//! delivery itself ([`delivery`]). Scheduling lives with the state (`state.rs`), which decides
//! when an attempt is due.

pub mod compose;
pub mod delivery;
pub mod record;
pub mod switches;

pub use record::{Attempt, Notification};
pub use switches::{Switches, SwitchesPatch};
