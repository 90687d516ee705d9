//! What the client logs about a refused call, captured from a real call against a fake
//! gateway on 127.0.0.1. It has a test binary of its own so that no other test's events
//! reach the capturing subscriber, nor race with its installation.
// Test keys are generated with `PrivateKey::generate`, which needs the AWS-LC backend.
#![cfg(feature = "aws-lc")]

use alipay::api::PayRequest;
use alipay::client::{AlipayClient, ClientConfig};
use alipay::outcome::{Outcome, Rejection};
use alipay::{AlipayVerifier, Fen, PrivateKey, PublicKey};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::routing::post;
use serde_json::json;
use std::error::Error;
use std::io;
use std::sync::{Arc, Mutex};

type TestResult = Result<(), Box<dyn Error>>;

const AUTH_CODE: &str = "287654321098765432";

/// Alipay's answer to a request whose signature does not verify: unsigned, with a `sub_msg`
/// that quotes the whole string it verified, the buyer's `auth_code` included.
async fn signature_checking_gateway(
    State(app_public): State<Arc<PublicKey>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> String {
    let params: Vec<(String, String)> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .chain(form_urlencoded::parse(&body))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let content =
        alipay::canonical::request_content(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let sign = params
        .iter()
        .find(|(k, _)| k == "sign")
        .map_or("", |(_, v)| v.as_str());
    let node = if app_public.verify_base64(content.as_bytes(), sign).is_ok() {
        // This test signs with the wrong key on purpose; a good signature is a broken test.
        json!({"code": "40004", "msg": "Business Failed", "sub_code": "TEST.SIGNED_CORRECTLY"})
    } else {
        json!({
            "code": "40002", "msg": "Invalid Arguments",
            "sub_code": "isv.invalid-signature",
            "sub_msg": format!(
                "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：{content}"
            ),
        })
    };
    format!(r#"{{"alipay_trade_pay_response":{node}}}"#)
}

/// The captured log output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> Result<String, String> {
        let bytes = self.0.lock().map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .map_err(|e| io::Error::other(e.to_string()))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_refusal_quoting_the_auth_code_is_logged_without_it() -> TestResult {
    let (app, _) = PrivateKey::generate()?;
    let (wrong_app_key, _) = PrivateKey::generate()?;
    let (alipay, _) = PrivateKey::generate()?;

    let router = Router::new()
        .route("/gateway.do", post(signature_checking_gateway))
        .with_state(Arc::new(app.public_key()?));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/gateway.do", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let client = AlipayClient::new(ClientConfig::new(
        url,
        "2021000000000001",
        wrong_app_key,
        AlipayVerifier::PublicKey(alipay.public_key()?),
    ))?;

    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer({
            let captured = captured.clone();
            move || captured.clone()
        })
        .finish();
    // The test runtime is single-threaded: every event of the call is seen by this subscriber.
    let guard = tracing::subscriber::set_default(subscriber);
    let request = PayRequest::new("pay-1", Fen::new(10), "Coffee", AUTH_CODE);
    let outcome = client.pay(&request).await;
    drop(guard);

    let Outcome::Rejected(Rejection::Gateway { failure, signed }) = &outcome else {
        return Err(format!("expected a gateway rejection, got {outcome:?}").into());
    };
    assert!(!signed);
    assert_eq!(failure.sub_code.as_deref(), Some("isv.invalid-signature"));
    // The text stays available to code that needs it...
    assert!(
        failure
            .sub_msg
            .as_deref()
            .is_some_and(|m| m.contains(AUTH_CODE)),
        "the fake gateway did not quote the auth_code"
    );
    // ...but neither the log nor `Debug` shows it.
    let logs = captured.text()?;
    assert!(logs.contains("isv.invalid-signature"), "not logged: {logs}");
    assert!(
        !logs.contains(AUTH_CODE),
        "the auth_code is in the log: {logs}"
    );
    let debug = format!("{outcome:?}");
    assert!(debug.contains("isv.invalid-signature"), "{debug}");
    assert!(
        !debug.contains(AUTH_CODE),
        "the auth_code is in Debug: {debug}"
    );
    Ok(())
}
