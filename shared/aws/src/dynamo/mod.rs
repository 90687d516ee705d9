//! One DynamoDB table for the order domain, keyed by `pk` (S) and `sk` (S).
//!
//! | item | `pk` | `sk` | other attributes |
//! | --- | --- | --- | --- |
//! | order | `ORDER#<out_trade_no>` | `ORDER` | the order's fields (`status` S and `version` N among them, used in conditions), `gsi1pk` = `DAY#<yyyy-MM-dd, Beijing time, of created_at>`, `gsi1sk` = `<created_at RFC3339, microseconds, Z>#<out_trade_no>` |
//! | audit event | `ORDER#<out_trade_no>` | `EVENT#<version, 20 digits>` | the event's fields, and `order` (M): the order after the transition, for the business events published from the table's stream |
//! | notification | `ORDER#<out_trade_no>` (or `UNATTRIBUTED#<day>`) | `NOTIFICATION#<received_at>#<request_id>` | the raw body, headers, receive time and verdict (`domain::notification`); `ttl` only for unattributed ones |
//! | nonce | `NONCE#<key_id>#<nonce>` | `NONCE` | `ttl` N (unix seconds after which it is forgotten) |
//! | anomaly | `ORDER#<out_trade_no>` | `ANOMALY#<kind>` | `latest` (M, the latest sighting), `id`, `status`, `first_seen`, `last_seen`, `occurrences`; `gsi1pk` = `ANOMALY_DAY#<day of first_seen>`, `gsi2pk` = `ANOMALY#OPEN` or `ANOMALY#RESOLVED` |
//!
//! Global secondary index `gsi1` (`gsi1pk` / `gsi1sk`, projecting ALL) lists the orders of
//! one Beijing day for reconciliation and the anomalies of a day; `gsi2` (`gsi2pk` / `gsi2sk`)
//! lists anomalies by status. TTL on `ttl` deletes old nonces. The table's stream (new and old
//! images) feeds the business event publisher. See [`schema`].

pub mod anomalies;
pub mod console;
pub mod nonces;
pub mod notifications;
pub mod orders;
pub mod schema;

use aws_sdk_dynamodb::types::AttributeValue;

pub(crate) const PK: &str = "pk";
pub(crate) const SK: &str = "sk";

pub(crate) fn s(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

pub(crate) fn n(number: impl ToString) -> AttributeValue {
    AttributeValue::N(number.to_string())
}
