//! An AWS endpoint that accepts connections and never answers (a stalled connection): the
//! wired adapters give up after `AWS_ATTEMPT_TIMEOUT_MS` per attempt and 3 attempts, and the
//! store reports an error, instead of holding the invocation until Lambda's timeout.

// Test code: a failing unwrap is a failing test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use domain::OutTradeNo;
use domain::ports::OrderStore;
use f2f_runtime::config::{Config, Function};
use f2f_runtime::wiring;
use std::collections::HashMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// Accepts every connection and keeps it open without reading or answering.
fn silent_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    format!("http://{address}")
}

#[tokio::test]
async fn a_call_to_a_silent_endpoint_fails_after_its_attempts_time_out() {
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "test",
        )))
        .endpoint_url(silent_endpoint())
        .retry_config(RetryConfig::standard())
        .build();
    let dir = tempfile::tempdir().unwrap();
    let (key, pem) = alipay::PrivateKey::generate().unwrap();
    let private_key_file = dir.path().join("app_private_key.pem");
    std::fs::write(&private_key_file, pem.as_str()).unwrap();
    let keys_file = dir.path().join("merchant_keys.json");
    std::fs::write(
        &keys_file,
        r#"{"pos-1":"a-merchant-secret-of-thirty-two-bytes"}"#,
    )
    .unwrap();
    let vars = HashMap::from([
        ("ORDERS_TABLE", "orders".to_owned()),
        ("ALIPAY_APP_ID", "2021000000000000".to_owned()),
        (
            "ALIPAY_GATEWAY_URL",
            "http://127.0.0.1:9/gateway.do".to_owned(),
        ),
        (
            "ALIPAY_APP_PRIVATE_KEY_FILE",
            private_key_file.display().to_string(),
        ),
        ("ALIPAY_PUBLIC_KEY", key.public_key().unwrap().to_pem()),
        ("MERCHANT_API_KEYS_FILE", keys_file.display().to_string()),
        ("AWS_ATTEMPT_TIMEOUT_MS", "300".to_owned()),
    ]);
    let config = Config::from_lookup(Function::Query, &|name| vars.get(name).cloned()).unwrap();
    assert_eq!(config.knobs.aws_attempt_timeout, Duration::from_millis(300));
    let adapters = wiring::build_with(&config, &sdk).await.unwrap();

    let started = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        adapters.orders.get(&OutTradeNo::parse("T100").unwrap()),
    )
    .await
    .expect("the call was still waiting after 30 s: no attempt timeout");
    let elapsed = started.elapsed();
    assert!(answer.is_err(), "{answer:?}");
    // 3 attempts of 300 ms with the standard policy's backoff between them (under 2 s each).
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}
