//! Merchant authentication of `/v1/*` requests (the `domain::auth` scheme over the API
//! Gateway request): every refusal is a 401 with its own code and header, and writes nothing.

mod common;

use common::*;
use std::collections::BTreeMap;

type Tweak = Box<dyn FnOnce(&mut BTreeMap<String, String>)>;

fn with(
    name: &'static str,
    value: Option<&'static str>,
) -> impl FnOnce(&mut BTreeMap<String, String>) {
    move |headers| match value {
        Some(value) => {
            headers.insert(name.to_owned(), value.to_owned());
        }
        None => {
            headers.remove(name);
        }
    }
}

#[tokio::test]
async fn every_authentication_fault_is_refused_with_its_code() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let body = qr_body(&out_trade_no(), 1);
    let post = |key: &str, secret: &str, tweak: Tweak| {
        env.signed_with(key, secret, "POST", "/v1/payments", &body, tweak)
    };
    let now = chrono::Utc::now().timestamp();
    let skewed: &'static str = Box::leak((now - 301).to_string().into_boxed_str());
    let cases: Vec<(lambda_http::Request, &str, &str)> = vec![
        (
            post(KEY_ID, SECRET, Box::new(with("x-signature", None))),
            "auth_missing_header",
            "X-Signature",
        ),
        (
            post(KEY_ID, SECRET, Box::new(with("x-key-id", None))),
            "auth_missing_header",
            "X-Key-Id",
        ),
        (
            post(
                KEY_ID,
                SECRET,
                Box::new(with("x-timestamp", Some("yesterday"))),
            ),
            "auth_malformed_timestamp",
            "X-Timestamp",
        ),
        (
            post(KEY_ID, SECRET, Box::new(with("x-timestamp", Some(skewed)))),
            "auth_timestamp_skew",
            "X-Timestamp",
        ),
        (
            post(KEY_ID, SECRET, Box::new(with("x-nonce", Some("short")))),
            "auth_malformed_nonce",
            "X-Nonce",
        ),
        (
            post("nobody", SECRET, Box::new(|_| {})),
            "auth_unknown_key",
            "X-Key-Id",
        ),
        (
            post(KEY_ID, SECRET_2, Box::new(|_| {})),
            "auth_bad_signature",
            "X-Signature",
        ),
        // Headers changed after signing.
        (
            post(
                KEY_ID,
                SECRET,
                Box::new(with("x-nonce", Some("nonce-changed-after-signing"))),
            ),
            "auth_bad_signature",
            "X-Signature",
        ),
    ];
    for (request, code, field) in cases {
        let response = pay.api.handle(request).await;
        let error = body_json(&response);
        assert_eq!(response.status().as_u16(), 401, "{error}");
        assert_eq!(error["code"], code);
        assert_eq!(error["field"], field);
    }
    assert_eq!(env.items("ORDER").await?, 0);
    assert_eq!(
        env.items("NONCE").await?,
        0,
        "refused requests burn no nonce"
    );

    // A replayed request (same nonce) is refused after the first one is accepted.
    let request = env.signed("POST", "/v1/payments", &body);
    let replay = request_copy(&request);
    assert_eq!(pay.api.handle(request).await.status().as_u16(), 201);
    let response = pay.api.handle(replay).await;
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(body_json(&response)["code"], "auth_replayed_nonce");
    Ok(())
}

#[tokio::test]
async fn a_rotated_second_key_works_alongside_the_first() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    for (key, secret) in [(KEY_ID, SECRET), (KEY_ID_2, SECRET_2)] {
        let body = qr_body(&out_trade_no(), 1);
        let response = pay
            .api
            .handle(env.signed_with(key, secret, "POST", "/v1/payments", &body, |_| {}))
            .await;
        assert_eq!(response.status().as_u16(), 201, "{}", body_json(&response));
    }
    Ok(())
}

fn request_copy(request: &lambda_http::Request) -> lambda_http::Request {
    let headers: BTreeMap<String, String> = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let body = String::from_utf8_lossy(request.body().as_ref()).into_owned();
    api_gateway_request(request.method().as_str(), "/v1/payments", &headers, &body)
}
