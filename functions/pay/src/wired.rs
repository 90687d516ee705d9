//! The pay function over the real adapters, as `main` runs it (and the local stack and the
//! integration tests, so that they run exactly what Lambda runs).

use crate::{PayApi, Payments, Settings};
use alipay::client::AlipayClient;
use aws_adapters::{DynamoNonceStore, DynamoOrderStore, SqsExpiryScheduler};
use f2f_runtime::SystemClock;
use f2f_runtime::config::Config;
use f2f_runtime::wiring::{Adapters, WiringError};

/// The pay function with DynamoDB, SQS, the Alipay client and the system clock.
pub type WiredPayApi =
    PayApi<DynamoOrderStore, SqsExpiryScheduler, AlipayClient, SystemClock, DynamoNonceStore>;

impl WiredPayApi {
    /// Assembles the function from its configuration and the adapters built from it.
    pub fn wired(config: &Config, adapters: Adapters) -> Result<WiredPayApi, WiringError> {
        let expiry = adapters.expiry.ok_or_else(|| WiringError::Invalid {
            what: "the expiry queue",
            reason: "EXPIRY_QUEUE_URL is required".into(),
        })?;
        Ok(PayApi {
            payments: Payments::new(
                adapters.orders,
                expiry,
                adapters.alipay,
                SystemClock,
                Settings::from_config(config),
            ),
            nonces: adapters.nonces,
            keys: adapters.merchant_keys,
            max_body_bytes: config.knobs.max_body_bytes,
        })
    }
}
