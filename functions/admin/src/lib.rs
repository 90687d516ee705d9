//! The operator console's API (`/admin/...`): support staff and finance read every payment
//! with its history, and the anomalies to act on.
//!
//! - [`staff`]: who is asking, from the claims API Gateway's JWT authorizer verified (Cognito
//!   groups `viewer` and `operator`).
//! - [`http`]: the routes and their answers.

pub mod http;
pub mod staff;

pub use http::AdminApi;
