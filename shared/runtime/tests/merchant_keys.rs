//! Merchant API keys kept in Secrets Manager, as the functions' wiring builds them, against the
//! AWS emulator: a key removed from the secret is refused once the refresh interval has passed,
//! a secret that can no longer be read keeps the last good keys, and while one request re-reads
//! the secret the others use the keys at hand. Time is the `now` a handler passes (its clock).

// Test code: a failing unwrap is a failing test. clippy.toml allows that in #[test] functions;
// this extends it to the helpers of this file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_adapters::{aws_sdk_dynamodb, aws_sdk_secretsmanager};
use chrono::{DateTime, TimeDelta, Utc};
use domain::auth::{RequestToSign, sign, string_to_sign};
use f2f_runtime::config::{Config, Function};
use f2f_runtime::telemetry;
use f2f_runtime::wiring::{self, Adapters};
use lambda_http::{Body, Request};
use secrecy::SecretString;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use test_support::{MotoServer, unique_name};

const K1: &str = "merchant-a";
const S1: &str = "merchant-a-secret-0123456789-abcdefghij";
const K2: &str = "merchant-b";
const S2: &str = "merchant-b-secret-9876543210-zyxwvutsrq";
const K3: &str = "merchant-c";
const S3: &str = "merchant-c-secret-abcdefghij-0123456789";
/// `MERCHANT_API_KEYS_REFRESH_SECONDS` of these tests.
const REFRESH_SECONDS: i64 = 120;

/// Every log line of this test process, to check that no secret is ever written.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct CaptureWriter;

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(|| CaptureWriter)
            .try_init()
            .unwrap();
    });
}

fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

struct Fixture {
    secrets: aws_sdk_secretsmanager::Client,
    arn: String,
    adapters: Adapters,
    _moto: std::sync::Arc<MotoServer>,
    _dir: tempfile::TempDir,
}

/// An app private key generated once per test process (RSA generation is slow).
fn app_private_key() -> &'static (String, String) {
    static KEY: OnceLock<(String, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let (key, pem) = alipay::PrivateKey::generate().unwrap();
        (pem.as_str().to_owned(), key.public_key().unwrap().to_pem())
    })
}

/// A secret holding `keys`, and the query function's adapters built from variables naming it.
async fn fixture(keys: serde_json::Value) -> Fixture {
    capture_logs();
    let moto = MotoServer::shared().await.unwrap();
    let sdk = moto.sdk_config();
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let arn = secrets
        .create_secret()
        .name(unique_name("merchant-keys"))
        .secret_string(keys.to_string())
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let table = unique_name("orders");
    aws_adapters::dynamo::schema::create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (private_pem, public_pem) = app_private_key();
    let private_key_file = dir.path().join("app_private_key.pem");
    std::fs::write(&private_key_file, private_pem).unwrap();
    let vars = HashMap::from([
        ("ORDERS_TABLE", table),
        ("ALIPAY_APP_ID", "2021000000000000".to_owned()),
        // Never called by these tests.
        (
            "ALIPAY_GATEWAY_URL",
            "http://127.0.0.1:9/gateway.do".to_owned(),
        ),
        (
            "ALIPAY_APP_PRIVATE_KEY_FILE",
            private_key_file.display().to_string(),
        ),
        ("ALIPAY_PUBLIC_KEY", public_pem.clone()),
        ("MERCHANT_API_KEYS_SECRET_ARN", arn.clone()),
        (
            "MERCHANT_API_KEYS_REFRESH_SECONDS",
            REFRESH_SECONDS.to_string(),
        ),
    ]);
    let config = Config::from_lookup(Function::Query, &|name| vars.get(name).cloned()).unwrap();
    let adapters = wiring::build_with(&config, &sdk).await.unwrap();
    Fixture {
        secrets,
        arn,
        adapters,
        _moto: moto,
        _dir: dir,
    }
}

impl Fixture {
    async fn put_secret(&self, value: &str) {
        self.secrets
            .put_secret_value()
            .secret_id(&self.arn)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }

    /// A `GET` signed with `key_id` at `at`, authenticated at `at`: the key id, or the code
    /// of the refusal.
    async fn check(&self, key_id: &str, secret: &str, at: DateTime<Utc>) -> Result<String, &str> {
        let timestamp = at.timestamp().to_string();
        let nonce = unique_name("nonce-of-a-request");
        let to_sign = RequestToSign {
            method: "GET",
            path: "/v1/payments/T1",
            raw_query: "",
            body: b"",
        };
        let signature = sign(
            &SecretString::from(secret.to_owned()),
            &string_to_sign(&to_sign, &timestamp, &nonce).unwrap(),
        );
        let request: Request = lambda_http::http::Request::builder()
            .method("GET")
            .uri("/v1/payments/T1")
            .header("x-key-id", key_id)
            .header("x-timestamp", timestamp)
            .header("x-nonce", nonce)
            .header("x-signature", signature)
            .body(Body::Empty)
            .unwrap();
        f2f_runtime::auth::authenticate(
            &self.adapters.merchant_keys,
            &self.adapters.nonces,
            &request,
            at,
        )
        .await
        .map_err(|e| e.code)
    }
}

fn seconds(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

#[tokio::test]
async fn a_key_removed_from_the_secret_is_refused_after_the_refresh_interval() {
    let f = fixture(json!({ K1: S1, K2: S2 })).await;
    let t0 = Utc::now();
    assert_eq!(f.check(K2, S2, t0).await, Ok(K2.to_owned()));

    f.put_secret(&json!({ K1: S1 }).to_string()).await;
    // Read at most once per interval: still the keys read at start.
    assert_eq!(f.check(K2, S2, t0 + seconds(60)).await, Ok(K2.to_owned()));
    // Past the interval the secret is read again: the removed key is refused, the other kept.
    let later = t0 + seconds(REFRESH_SECONDS + 1);
    assert_eq!(f.check(K2, S2, later).await, Err("auth_unknown_key"));
    assert_eq!(f.check(K1, S1, later).await, Ok(K1.to_owned()));
}

#[tokio::test]
async fn a_secret_that_cannot_be_read_keeps_the_last_good_keys() {
    telemetry::init_metrics(Function::Query).unwrap();
    let f = fixture(json!({ K1: S1 })).await;
    let t0 = Utc::now();
    assert_eq!(f.check(K1, S1, t0).await, Ok(K1.to_owned()));

    // Not the expected JSON (cut short, after a secret): the keys read before stay in use.
    f.put_secret(&format!(r#"{{"{K3}": "{S3}", "#)).await;
    let t1 = t0 + seconds(REFRESH_SECONDS + 1);
    assert_eq!(f.check(K1, S1, t1).await, Ok(K1.to_owned()));

    // Readable again: picked up by a later request.
    f.put_secret(&json!({ K1: S1, K3: S3 }).to_string()).await;
    let t2 = t1 + seconds(REFRESH_SECONDS + 1);
    assert_eq!(f.check(K3, S3, t2).await, Ok(K3.to_owned()));

    // Gone altogether: still the last good keys.
    f.secrets
        .delete_secret()
        .secret_id(&f.arn)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let t3 = t2 + seconds(REFRESH_SECONDS + 1);
    assert_eq!(f.check(K3, S3, t3).await, Ok(K3.to_owned()));
    assert_eq!(f.check(K1, S1, t3).await, Ok(K1.to_owned()));

    let mut emf = Vec::new();
    telemetry::flush_metrics_to(&mut emf);
    let emf: serde_json::Value = serde_json::from_slice(&emf).unwrap();
    assert_eq!(emf["merchant_keys_refresh_failed"], 2, "{emf}");
    let logs = captured_logs();
    assert!(
        logs.contains("the merchant API keys could not be read again"),
        "{logs}"
    );
    for secret in [S1, S2, S3] {
        assert!(!logs.contains(secret), "{logs}");
    }
}

#[tokio::test]
async fn while_one_request_rereads_the_secret_the_others_use_the_keys_at_hand() {
    let f = fixture(json!({ K1: S1, K2: S2 })).await;
    let t0 = Utc::now();
    assert_eq!(f.check(K2, S2, t0).await, Ok(K2.to_owned()));
    f.put_secret(&json!({ K1: S1 }).to_string()).await;

    // Both find the keys due for a re-read; one reads (and refuses K2), the other does not
    // wait for it (and still accepts K2).
    let later = t0 + seconds(REFRESH_SECONDS + 1);
    let (first, second) = tokio::join!(f.check(K2, S2, later), f.check(K2, S2, later));
    let mut outcomes = [first, second];
    outcomes.sort();
    assert_eq!(outcomes, [Ok(K2.to_owned()), Err("auth_unknown_key")]);
    // The re-read keys are used from then on.
    assert_eq!(f.check(K2, S2, later).await, Err("auth_unknown_key"));
}
