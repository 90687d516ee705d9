//! Builds the real adapters and the Alipay client once per Lambda sandbox (at init, before
//! the first request), from a validated [`Config`]. Secrets are read from Secrets Manager or,
//! for local runs, from files; they live in `SecretString`s and key types whose `Debug`
//! redacts them, and no error carries a secret's value. The merchant API keys are read at
//! init too, and, when kept in Secrets Manager, again on the request path (see [`KeyRing`]).

use crate::config::{Config, DEFAULT_AWS_ATTEMPT_TIMEOUT_MS, Function, NotifyConfig, SecretSource};
use crate::key_ring::{KeyRing, KeyRingError};
use crate::tls::TrustRoots;
use alipay::client::{AlipayClient, ClientConfig};
use alipay::{AlipayVerifier, PrivateKey, PublicKey};
use aws_adapters::{
    DynamoNonceStore, DynamoOrderStore, SecretsLoader, SqsExpiryScheduler, aws_sdk_dynamodb,
    aws_sdk_secretsmanager, aws_sdk_sqs,
};
use aws_config::SdkConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use chrono::Utc;
use domain::auth::MerchantKeys;
use secrecy::{ExposeSecret, SecretString};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error("{what} could not be read from {source_name}: {reason}")]
    Secret {
        what: &'static str,
        source_name: String,
        reason: String,
    },
    #[error("{what} is not usable: {reason}")]
    Invalid { what: &'static str, reason: String },
}

/// Everything a function needs, built once.
#[derive(Debug, Clone)]
pub struct Adapters {
    pub orders: DynamoOrderStore,
    pub nonces: DynamoNonceStore,
    /// Present for functions configured with `EXPIRY_QUEUE_URL`.
    pub expiry: Option<SqsExpiryScheduler>,
    pub alipay: AlipayClient,
    pub merchant_keys: KeyRing,
}

/// Builds the adapters with the SDK's default chain (`AWS_ENDPOINT_URL` honoured).
pub async fn build(config: &Config) -> Result<Adapters, WiringError> {
    let sdk = aws_config().await?;
    build_with(config, &sdk).await
}

/// The SDK's configuration chain (`aws_adapters::config_loader`), with an HTTP
/// client that trusts the functions' roots (see [`crate::tls`]): neither the loader's own
/// clients nor the service clients read the certificate store.
pub async fn aws_config() -> Result<SdkConfig, WiringError> {
    let http = TrustRoots::for_functions()
        .and_then(|roots| roots.aws_http_client())
        .map_err(|e| WiringError::Invalid {
            what: "the AWS HTTP client",
            reason: e.to_string(),
        })?;
    Ok(aws_adapters::config_loader().http_client(http).load().await)
}

/// Builds the adapters with a given SDK configuration (tests point it at the emulator).
///
/// The functions' root certificates (see [`crate::tls`]) are trusted by the Alipay client
/// and, unless `sdk` brings an HTTP client of its own, by the AWS clients.
pub async fn build_with(config: &Config, sdk: &SdkConfig) -> Result<Adapters, WiringError> {
    let roots = TrustRoots::for_functions().map_err(|e| WiringError::Invalid {
        what: "the trusted root certificates",
        reason: e.to_string(),
    })?;
    let shared_roots;
    let sdk = if sdk.http_client().is_some() {
        sdk
    } else {
        shared_roots = roots.aws_config(sdk).map_err(|e| WiringError::Invalid {
            what: "the AWS HTTP client",
            reason: e.to_string(),
        })?;
        &shared_roots
    };
    let sdk = &with_attempt_timeout(sdk, config.knobs.aws_attempt_timeout);
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let secrets = SecretsLoader::new(aws_sdk_secretsmanager::Client::new(sdk));
    let reading = Instant::now();
    // Three independent reads at cold start: one round trip instead of three.
    let (private_key_text, public_key_text, merchant_keys) = tokio::try_join!(
        read_secret(
            &secrets,
            "the Alipay app private key",
            &config.alipay.app_private_key,
        ),
        read_secret(
            &secrets,
            "the Alipay public key",
            &config.alipay.alipay_public_key,
        ),
        merchant_key_ring(&secrets, config),
    )?;
    tracing::info!(
        secrets_ms = reading.elapsed().as_secs_f64() * 1000.0,
        from_secrets_manager = secrets_manager_reads(config),
        "secrets read"
    );
    let app_private_key =
        PrivateKey::parse(private_key_text.expose_secret()).map_err(|e| WiringError::Invalid {
            what: "the Alipay app private key",
            reason: e.to_string(),
        })?;
    let alipay_public_key =
        PublicKey::parse(public_key_text.expose_secret()).map_err(|e| WiringError::Invalid {
            what: "the Alipay public key",
            reason: e.to_string(),
        })?;
    let mut client_config = ClientConfig::new(
        config.alipay.gateway_url.clone(),
        config.alipay.app_id.clone(),
        app_private_key,
        AlipayVerifier::PublicKey(alipay_public_key),
    )
    .with_timeouts(config.alipay.connect_timeout, config.alipay.request_timeout);
    if let Some(url) = &config.alipay.notify_url {
        client_config = client_config.with_notify_url(url.clone());
    }
    client_config = client_config.with_root_certificates(roots.certificates().clone());
    let alipay = AlipayClient::new(client_config).map_err(|e| WiringError::Invalid {
        what: "the Alipay client configuration",
        reason: e.to_string(),
    })?;
    Ok(Adapters {
        orders: DynamoOrderStore::new(dynamo.clone(), config.orders_table.clone())
            .acting_as(config.function.name()),
        nonces: DynamoNonceStore::new(dynamo, config.nonces_table.clone()),
        expiry: config
            .expiry_queue_url
            .as_ref()
            .map(|url| SqsExpiryScheduler::new(aws_sdk_sqs::Client::new(sdk), url.clone())),
        alipay,
        merchant_keys,
    })
}

/// `sdk` with each call's attempt bounded by `attempt`, and without the SDK's stalled-stream
/// protection, which that bound replaces for these small bodies: it watches every request's
/// and response's throughput with a timer of its own, about 0.05 ms of CPU a call, a tenth of
/// a payment creation's (see `functions/pay/benches/create_cpu.rs`).
fn with_attempt_timeout(sdk: &SdkConfig, attempt: Duration) -> SdkConfig {
    let timeouts = sdk
        .timeout_config()
        .map_or_else(TimeoutConfig::builder, TimeoutConfig::to_builder)
        .operation_attempt_timeout(attempt)
        .build();
    sdk.to_builder()
        .timeout_config(timeouts)
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .build()
}

/// How many of the secrets read at init come from Secrets Manager.
fn secrets_manager_reads(config: &Config) -> usize {
    [
        Some(&config.alipay.app_private_key),
        Some(&config.alipay.alipay_public_key),
        config.merchant_keys.as_ref(),
    ]
    .into_iter()
    .flatten()
    .filter(|source| matches!(source, SecretSource::SecretsManager(_)))
    .count()
}

/// What the notify function needs: the store and Alipay's public key.
#[derive(Debug, Clone)]
pub struct NotifyAdapters {
    pub orders: DynamoOrderStore,
    pub verifier: AlipayVerifier,
}

/// Builds the notify function's adapters (no Secrets Manager read: the public key is inline
/// or in a file).
pub async fn build_notify(
    config: &NotifyConfig,
    sdk: &SdkConfig,
) -> Result<NotifyAdapters, WiringError> {
    let sdk = &with_attempt_timeout(sdk, Duration::from_millis(DEFAULT_AWS_ATTEMPT_TIMEOUT_MS));
    let secrets = SecretsLoader::new(aws_sdk_secretsmanager::Client::new(sdk));
    let text = read_secret(&secrets, "the Alipay public key", &config.alipay_public_key).await?;
    let key = PublicKey::parse(text.expose_secret()).map_err(|e| WiringError::Invalid {
        what: "the Alipay public key",
        reason: e.to_string(),
    })?;
    Ok(NotifyAdapters {
        orders: DynamoOrderStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            config.orders_table.clone(),
        )
        .acting_as(Function::Notify.name()),
        verifier: AlipayVerifier::PublicKey(key),
    })
}

/// Keys kept in Secrets Manager are read again every `merchant_keys_refresh`; keys from a
/// file or inline are read once.
async fn merchant_key_ring(
    secrets: &SecretsLoader,
    config: &Config,
) -> Result<KeyRing, WiringError> {
    const WHAT: &str = "the merchant API keys";
    let invalid = |reason: String| WiringError::Invalid { what: WHAT, reason };
    let Some(source) = &config.merchant_keys else {
        // A function that serves no merchant request accepts no key.
        return Ok(KeyRing::fixed(MerchantKeys::default()));
    };
    match source {
        SecretSource::SecretsManager(arn) => KeyRing::from_secret(
            secrets.clone(),
            arn.clone(),
            config.merchant_keys_refresh,
            Utc::now(),
        )
        .await
        .map_err(|error| match error {
            KeyRingError::Read(e) => WiringError::Secret {
                what: WHAT,
                source_name: arn.clone(),
                reason: e.to_string(),
            },
            KeyRingError::Invalid(e) => invalid(e.to_string()),
        }),
        source => {
            let text = read_secret(secrets, WHAT, source).await?;
            MerchantKeys::from_json(text.expose_secret())
                .map(KeyRing::fixed)
                .map_err(|e| invalid(e.to_string()))
        }
    }
}

async fn read_secret(
    secrets: &SecretsLoader,
    what: &'static str,
    source: &SecretSource,
) -> Result<SecretString, WiringError> {
    match source {
        SecretSource::SecretsManager(arn) => {
            secrets.load(arn).await.map_err(|e| WiringError::Secret {
                what,
                source_name: arn.clone(),
                reason: e.to_string(),
            })
        }
        SecretSource::File(path) => std::fs::read_to_string(path)
            .map(SecretString::from)
            .map_err(|e| WiringError::Secret {
                what,
                source_name: path.display().to_string(),
                reason: e.kind().to_string(),
            }),
        SecretSource::Inline(value) => Ok(value.clone()),
    }
}
