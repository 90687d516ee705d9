//! Secrets Manager: loading a secret string (a private key, an API key) by ARN.
//!
//! The value is returned as a [`SecretString`], whose `Debug` prints `[REDACTED]`; errors
//! name the ARN, never the value.

use crate::error::describe;
use aws_sdk_secretsmanager::Client;
use secrecy::SecretString;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {arn} could not be loaded: {reason}")]
    Unavailable { arn: String, reason: String },
    #[error("secret {arn} has no string value (a binary secret?)")]
    NotAString { arn: String },
}

#[derive(Debug, Clone)]
pub struct SecretsLoader {
    client: Client,
}

impl SecretsLoader {
    pub fn new(client: Client) -> SecretsLoader {
        SecretsLoader { client }
    }

    /// The current (`AWSCURRENT`) string value of a secret; `arn` may also be its name.
    pub async fn load(&self, arn: &str) -> Result<SecretString, SecretError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| {
                let reason = describe(&e);
                tracing::warn!(arn, operation = "load_secret", outcome = "error", error = %reason);
                SecretError::Unavailable {
                    arn: arn.to_owned(),
                    reason,
                }
            })?;
        match output.secret_string {
            Some(value) => {
                tracing::info!(arn, operation = "load_secret", outcome = "loaded");
                Ok(SecretString::from(value))
            }
            None => Err(SecretError::NotAString {
                arn: arn.to_owned(),
            }),
        }
    }
}
