//! The `query` function: `GET /v1/payments/{out_trade_no}` answers with the order, first
//! bringing it in line with Alipay when it may have moved without us (PENDING, or an
//! abandoned claim) and was last synced longer ago than a few seconds.
//!
//! - [`sync`]: when to ask Alipay, and the convergence (`domain::converge`).
//! - [`http`]: `lambda_http::Request` → response.

pub mod http;
pub mod sync;

pub use http::QueryApi;
pub use sync::{Looked, Orders};
