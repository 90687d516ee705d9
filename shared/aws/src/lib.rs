//! The AWS side of the order domain's ports (`domain::ports`).
//!
//! - [`dynamo`]: one DynamoDB table holding orders, their audit events and merchant-API
//!   nonces: [`DynamoOrderStore`] ([`domain::ports::OrderStore`]), [`DynamoNonceStore`]
//!   ([`domain::ports::NonceStore`]) and [`dynamo::schema::create_table`].
//! - [`sqs`]: [`SqsExpiryScheduler`] ([`domain::ports::ExpiryScheduler`]) and the
//!   [`ExpiryMessage`] the timeout-close function reads; [`SqsEventSink`]
//!   ([`domain::business_event::EventSink`]), the business events queue.
//! - [`s3`]: [`S3Objects`] ([`domain::ports::ObjectStore`]), the bill bucket.
//! - [`secrets`]: loading a secret string from Secrets Manager.
//! - [`config`]: the SDK configuration of a function (honours `AWS_ENDPOINT_URL`, which the
//!   local emulator and the tests use).
//!
//! The SDK client crates are re-exported so callers build clients with the same versions.

pub mod config;
pub mod dynamo;
pub mod s3;
pub mod secrets;
pub mod sqs;

mod error;

pub use aws_sdk_dynamodb;
pub use aws_sdk_s3;
pub use aws_sdk_secretsmanager;
pub use aws_sdk_sqs;
pub use config::{aws_config, config_loader};
pub use dynamo::nonces::DynamoNonceStore;
pub use dynamo::orders::DynamoOrderStore;
pub use error::describe;
pub use s3::S3Objects;
pub use secrets::{SecretError, SecretsLoader};
pub use sqs::business_events::SqsEventSink;
pub use sqs::expiry::{ExpiryMessage, SqsExpiryScheduler};
