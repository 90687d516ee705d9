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

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};

/// The default configuration chain with the latest behavior version.
pub async fn aws_config() -> SdkConfig {
    config_loader().load().await
}

/// The default configuration chain with the latest behavior version, except that credentials
/// given in the environment are read from there alone. Lambda gives a function its role's
/// credentials in `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, the
/// first place the default chain looks; building the whole chain anyway (profile files, web
/// identity with its STS client, containers, instance metadata) cost about a tenth of a cold
/// start's CPU (`make bench-init`). Without them, the default chain.
pub fn config_loader() -> ConfigLoader {
    let loader = aws_config::defaults(BehaviorVersion::latest());
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        loader.credentials_provider(EnvironmentVariableCredentialsProvider::new())
    } else {
        loader
    }
}
