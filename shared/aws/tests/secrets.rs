//! `SecretsLoader` against moto.

// Test code: a failing unwrap is a failing test. clippy.toml allows that in #[test] functions;
// this extends it to the helpers of this file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_adapters::aws_sdk_secretsmanager;
use aws_adapters::aws_sdk_secretsmanager::primitives::Blob;
use aws_adapters::{SecretError, SecretsLoader};
use secrecy::ExposeSecret;
use test_support::{MotoServer, unique_name};

const VALUE: &str = "-----BEGIN PRIVATE KEY-----\nMIIEv-not-a-real-key\n-----END PRIVATE KEY-----";

#[tokio::test]
async fn a_secret_string_is_loaded_by_arn_and_never_printed() {
    let moto = MotoServer::shared().await.unwrap();
    let client = aws_sdk_secretsmanager::Client::new(&moto.sdk_config());
    let created = client
        .create_secret()
        .name(unique_name("merchant-key"))
        .secret_string(VALUE)
        .send()
        .await
        .unwrap();
    let arn = created.arn.unwrap();

    let loader = SecretsLoader::new(client.clone());
    let secret = loader.load(&arn).await.unwrap();
    assert_eq!(secret.expose_secret(), VALUE);
    let debug = format!("{secret:?}");
    assert!(!debug.contains("MIIEv"), "{debug}");
    assert!(debug.contains("REDACTED"), "{debug}");
}

#[tokio::test]
async fn errors_name_the_arn() {
    let moto = MotoServer::shared().await.unwrap();
    let client = aws_sdk_secretsmanager::Client::new(&moto.sdk_config());
    let loader = SecretsLoader::new(client.clone());

    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf";
    let error = loader.load(missing).await.unwrap_err();
    assert!(
        matches!(error, SecretError::Unavailable { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(missing), "{error}");

    let binary = client
        .create_secret()
        .name(unique_name("binary"))
        .secret_binary(Blob::new(VALUE.as_bytes()))
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let error = loader.load(&binary).await.unwrap_err();
    assert!(matches!(error, SecretError::NotAString { .. }), "{error:?}");
    assert!(!format!("{error} {error:?}").contains("MIIEv"));
}
