//! The operator console's API (`/admin/...`): support staff and finance read every payment
//! with its history, and the anomalies to act on.
//!
//! - [`staff`]: who is asking, from the claims API Gateway's JWT authorizer verified (Cognito
//!   groups `viewer` and `operator`).
//! - [`http`]: the routes and their answers.
//! - [`resolve`]: an operator resolves an anomaly (dismiss, accept the payment, refund it).
//! - [`wired`]: the adapters Lambda (and the local stack) run it with.

pub mod http;
pub mod resolve;
pub mod staff;
pub mod wired;

pub use http::AdminApi;
pub use wired::{WiredAdmin, wired};
