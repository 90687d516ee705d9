//! The SDK configuration of a function.
//!
//! [`aws_config`] loads the standard chain: region and credentials from the Lambda
//! environment, and `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_<SERVICE>`) as an endpoint
//! override, which points every client at the local emulator in the local stack and in
//! tests. Adapters are then built from a client and their resource name:
//!
//! ```no_run
//! # async fn demo() {
//! use aws_adapters::{DynamoOrderStore, SqsExpiryScheduler, aws_sdk_dynamodb, aws_sdk_sqs};
//! let config = aws_adapters::aws_config().await;
//! let orders = DynamoOrderStore::new(aws_sdk_dynamodb::Client::new(&config), "orders");
//! let expiry = SqsExpiryScheduler::new(aws_sdk_sqs::Client::new(&config), "https://queue/url");
//! # let _ = (orders, expiry); }
//! ```

use aws_config::{BehaviorVersion, SdkConfig};

/// The default configuration chain with the latest behavior version.
pub async fn aws_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}
