//! The order domain of face-to-face payments, independent of AWS and of Lambda.
//!
//! - [`amount`]: order amounts (integer fen, bounded as Alipay bounds them).
//! - [`out_trade_no`]: the merchant's order number and a generator for callers without one.
//! - [`out_request_no`]: the merchant's number for one refund of an order.
//! - [`order`]: an order, its status, its refunds, and the transitions that are the only way
//!   to change them.
//! - [`ports`]: the small traits handlers are generic over (store, scheduler, gateway, clock).
//! - [`converge`]: ask Alipay what happened to an order and apply the matching transition,
//!   planning again from the stored order when a write loses a race.
//! - [`fence`]: side-effecting Alipay calls only under a lease that covers them.
//! - [`refunding`]: refund an order exactly once: claim, fenced send, and resolution of an
//!   unknown outcome by Alipay's refund query; refund notifications.
//! - [`anomaly`]: money at Alipay that contradicts an order, recorded durably.
//! - [`notification`]: a notification as received, kept for audit with what became of it.
//! - [`auth`]: the merchant API's request signing scheme.
//! - [`bills`]: where daily bills are stored for reconciliation.
//! - [`business_event`]: the events other systems subscribe to, published from the audit
//!   events (the outbox), and the port they are sent through.
//! - [`console`]: what the operator console reads (a day's orders page by page, an order's
//!   history, anomalies by status).
//! - `memory` (feature `memory`, for tests): in-memory adapters of the ports with the AWS
//!   adapters' semantics.

pub mod amount;
pub mod anomaly;
pub mod auth;
pub mod bills;
pub mod business_event;
pub mod console;
pub mod converge;
pub mod fence;
#[cfg(feature = "memory")]
pub mod memory;
pub mod notification;
pub mod order;
pub mod out_request_no;
pub mod out_trade_no;
pub mod ports;
pub mod refunding;
#[cfg(test)]
mod test_orders;

pub use alipay::Fen;
pub use amount::OrderAmount;
pub use order::{Order, OrderStatus, Scene};
pub use out_request_no::OutRequestNo;
pub use out_trade_no::OutTradeNo;

/// The calendar day in Beijing (UTC+8 all year, no daylight saving since 1991) of an instant:
/// the day Alipay's bills file it under, and the day of the indexes.
pub fn beijing_day(at: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDate {
    const BEIJING_UTC_OFFSET_SECONDS: i32 = 8 * 3600;
    chrono::FixedOffset::east_opt(BEIJING_UTC_OFFSET_SECONDS).map_or(at.date_naive(), |beijing| {
        at.with_timezone(&beijing).date_naive()
    })
}
