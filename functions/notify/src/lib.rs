//! The `notify` function: `POST /alipay/notify`, called by Alipay (no merchant auth).
//!
//! 1. The raw form body is verified (RSA2, UTF-8 or `charset=GBK`) after the size and
//!    parameter caps; a body that fails is kept, recorded as an `untrusted_notification`
//!    anomaly and answered `success`, so a forgery is not sent again.
//! 2. `app_id` (or `auth_app_id`) and `seller_id` must be this merchant's
//!    (`foreign_notification` otherwise), and the order must exist (`unknown_order`).
//! 3. The fact it reports (paid, scanned, closed) is written as one conditional transition
//!    whose condition includes the order's amount and version, with the raw notification in
//!    the same transaction; a contradiction (amount, trade number, paid after close) is an
//!    anomaly; a repeat or late notification changes nothing.
//! 4. `success` (HTTP 200, `text/plain`) only once that is durable; a failure of ours answers
//!    `500 fail`, so Alipay sends it again.

pub mod delivery;
pub mod http;
pub mod receive;

pub use delivery::Delivery;
pub use receive::{Notifications, Outcome, Reply};
