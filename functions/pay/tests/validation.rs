//! Every refusal of a create request is a 4xx JSON error with its field, and writes nothing:
//! no order, no event, no expiry, no Alipay call.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn bad_bodies_are_refused_with_their_field_and_nothing_is_written() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let code = auth_code("00", 0);
    let cases: Vec<(String, u16, &str, Option<&str>)> = vec![
        ("not json".into(), 400, "invalid_json", None),
        ("[1,2]".into(), 400, "invalid_json", None),
        ("".into(), 400, "invalid_json", None),
        (
            json!({"amount_fen": "100", "subject": "s", "scene": "qr"}).to_string(),
            400,
            "invalid_field",
            Some("amount_fen"),
        ),
        (
            r#"{"amount_fen": 1.0, "subject": "s", "scene": "qr"}"#.into(),
            400,
            "invalid_field",
            Some("amount_fen"),
        ),
        (
            r#"{"amount_fen": 0.015, "subject": "s", "scene": "qr"}"#.into(),
            400,
            "invalid_field",
            Some("amount_fen"),
        ),
        (
            r#"{"amount_fen": 1.005, "subject": "s", "scene": "qr"}"#.into(),
            400,
            "invalid_field",
            Some("amount_fen"),
        ),
        (
            json!({"amount_fen": 0, "subject": "s", "scene": "qr"}).to_string(),
            400,
            "invalid_field",
            Some("amount_fen"),
        ),
        (
            json!({"amount_fen": -100, "subject": "s", "scene": "qr"}).to_string(),
            400,
            "invalid_field",
            Some("amount_fen"),
        ),
        (
            json!({"amount_fen": 10_000_000_001_i64, "subject": "s", "scene": "qr"}).to_string(),
            400,
            "invalid_field",
            Some("amount_fen"),
        ),
        (
            json!({"amount_fen": true, "subject": "s", "scene": "qr"}).to_string(),
            400,
            "invalid_field",
            Some("amount_fen"),
        ),
        (
            json!({"amount": "1.005", "subject": "s", "scene": "qr"}).to_string(),
            400,
            "unknown_field",
            Some("amount"),
        ),
        (
            json!({"subject": "s", "scene": "qr"}).to_string(),
            400,
            "missing_field",
            Some("amount_fen"),
        ),
        (
            json!({"out_trade_no": "T-1", "amount_fen": 1, "subject": "s", "scene": "qr"})
                .to_string(),
            400,
            "invalid_field",
            Some("out_trade_no"),
        ),
        (
            json!({"out_trade_no": "T 1", "amount_fen": 1, "subject": "s", "scene": "qr"})
                .to_string(),
            400,
            "invalid_field",
            Some("out_trade_no"),
        ),
        (
            json!({"out_trade_no": "x".repeat(65), "amount_fen": 1, "subject": "s", "scene": "qr"})
                .to_string(),
            400,
            "invalid_field",
            Some("out_trade_no"),
        ),
        (
            json!({"amount_fen": 1, "subject": "a&b=c", "scene": "qr"}).to_string(),
            400,
            "invalid_field",
            Some("subject"),
        ),
        (
            json!({"amount_fen": 1, "subject": "a/b", "scene": "qr"}).to_string(),
            400,
            "invalid_field",
            Some("subject"),
        ),
        (
            json!({"amount_fen": 1, "subject": "line\nbreak", "scene": "qr"}).to_string(),
            400,
            "invalid_field",
            Some("subject"),
        ),
        (
            json!({"amount_fen": 1, "subject": "x".repeat(257), "scene": "qr"}).to_string(),
            400,
            "invalid_field",
            Some("subject"),
        ),
        (
            json!({"amount_fen": 1, "subject": "s", "scene": "qr", "auth_code": code}).to_string(),
            400,
            "invalid_field",
            Some("auth_code"),
        ),
        (
            json!({"out_trade_no": "V1", "amount_fen": 1, "subject": "s", "scene": "barcode"})
                .to_string(),
            400,
            "missing_field",
            Some("auth_code"),
        ),
        (
            json!({"amount_fen": 1, "subject": "s", "scene": "barcode", "auth_code": code})
                .to_string(),
            400,
            "missing_field",
            Some("out_trade_no"),
        ),
        (
            json!({"out_trade_no": "V1", "amount_fen": 1, "subject": "s", "scene": "barcode", "auth_code": "12ab"})
                .to_string(),
            400,
            "invalid_field",
            Some("auth_code"),
        ),
        (
            json!({"amount_fen": 1, "subject": "s", "scene": "card"}).to_string(),
            400,
            "invalid_field",
            Some("scene"),
        ),
        (
            json!({"amount_fen": 1, "subject": "s", "scene": "qr", "store_id": "门店"}).to_string(),
            400,
            "invalid_field",
            Some("store_id"),
        ),
        (
            json!({"amount_fen": 1, "subject": "s", "scene": "qr", "timeout_seconds": 7201})
                .to_string(),
            400,
            "invalid_field",
            Some("timeout_seconds"),
        ),
        (
            format!(
                r#"{{"amount_fen":1,"subject":"{}","scene":"qr"}}"#,
                "x".repeat(17 * 1024)
            ),
            413,
            "body_too_large",
            None,
        ),
    ];
    for (body, status, code, field) in &cases {
        let response = pay
            .api
            .handle(env.signed("POST", "/v1/payments", body))
            .await;
        let error = body_json(&response);
        assert_eq!(response.status().as_u16(), *status, "{body:.80}: {error}");
        assert_eq!(error["code"], *code, "{body:.80}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        if let Some(field) = field {
            assert_eq!(error["field"], *field, "{body:.80}");
        }
    }
    assert_eq!(env.items("ORDER").await?, 0, "no order written");
    assert_eq!(env.items("EVENT#").await?, 0, "no event written");
    assert_eq!(env.queued_expiries().await?, 0, "no expiry scheduled");
    assert!(env.trades().await?.is_empty(), "Alipay never called");
    assert!(
        !captured_logs().contains(&code),
        "the refused payment code was not logged"
    );
    Ok(())
}

#[tokio::test]
async fn unknown_routes_and_methods_are_refused() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let response = pay.api.handle(env.signed("GET", "/v1/payments", "")).await;
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(body_json(&response)["code"], "method_not_allowed");
    let response = pay
        .api
        .handle(env.signed("POST", "/v1/refunds", "{}"))
        .await;
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(body_json(&response)["code"], "not_found");
    Ok(())
}
