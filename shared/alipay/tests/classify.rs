//! How verified (and unverified) gateway bodies are classified, with real signatures: only the
//! method's own node, in the shape of its response type, can be a success or a definitive
//! failure.
// Test keys are generated with `PrivateKey::generate`, which needs the AWS-LC backend.
#![cfg(feature = "aws-lc")]

use alipay::api::{CloseResponse, PayResponse};
use alipay::outcome::{self, Outcome, Rejection, UnknownCause, Waiting};
use alipay::response::node_name;
use alipay::{AlipayVerifier, PrivateKey};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::error::Error;
use std::fmt::Debug;
use std::sync::OnceLock;

type TestResult = Result<(), Box<dyn Error>>;

const PAY: &str = "alipay.trade.pay";
const CLOSE: &str = "alipay.trade.close";

fn alipay_key() -> Result<&'static PrivateKey, String> {
    static KEY: OnceLock<Result<PrivateKey, String>> = OnceLock::new();
    KEY.get_or_init(|| {
        PrivateKey::generate()
            .map(|(key, _)| key)
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// `{"<node>":<node text>,"sign":"..."}`, signed by Alipay's key over the exact node text.
fn signed(node: &str, fields: &Value) -> Result<String, Box<dyn Error>> {
    let text = serde_json::to_string(fields)?;
    let sign = alipay_key()?.sign_base64(text.as_bytes())?;
    Ok(format!(r#"{{"{node}":{text},"sign":"{sign}"}}"#))
}

fn classify<T: DeserializeOwned>(
    body: &str,
    method: &str,
    waiting: Waiting,
) -> Result<Outcome<T>, Box<dyn Error>> {
    let verifier = AlipayVerifier::PublicKey(alipay_key()?.public_key()?);
    Ok(outcome::classify(body, method, &verifier, waiting))
}

fn unverifiable<T: Debug>(outcome: Outcome<T>) -> TestResult {
    match outcome {
        Outcome::Unknown(UnknownCause::Unverifiable(_)) => Ok(()),
        other => Err(format!("expected Unknown(Unverifiable), got {other:?}").into()),
    }
}

fn paid() -> Value {
    json!({
        "code": "10000", "msg": "Success",
        "trade_no": "2024010122001400001000000001", "out_trade_no": "pay-1",
        "total_amount": "0.10",
    })
}

fn auth_code_invalid() -> Value {
    json!({
        "code": "40004", "msg": "Business Failed",
        "sub_code": "ACQ.PAYMENT_AUTH_CODE_INVALID", "sub_msg": "支付失败，获取顾客账户信息失败",
    })
}

#[test]
fn the_methods_own_node_in_its_shape_is_a_success_or_a_failure() -> TestResult {
    let outcome =
        classify::<PayResponse>(&signed(&node_name(PAY), &paid())?, PAY, Waiting::Allowed)?;
    assert!(
        matches!(&outcome, Outcome::Success(r) if r.trade_no == "2024010122001400001000000001"),
        "{outcome:?}"
    );
    let body = signed(&node_name(PAY), &auth_code_invalid())?;
    let outcome = classify::<PayResponse>(&body, PAY, Waiting::Allowed)?;
    assert!(
        matches!(&outcome, Outcome::Failed(f) if f.sub_code_is("ACQ.PAYMENT_AUTH_CODE_INVALID")),
        "{outcome:?}"
    );
    Ok(())
}

#[test]
fn a_signed_error_response_with_code_10000_is_never_a_success() -> TestResult {
    // Every field of `CloseResponse` is optional, so only the node name stands between this
    // body and a success.
    let body = signed(
        "error_response",
        &json!({"code": "10000", "msg": "Success"}),
    )?;
    unverifiable(classify::<CloseResponse>(
        &body,
        CLOSE,
        Waiting::NotExpected,
    )?)?;
    // Nor with every field a pay needs, nor as 10003.
    let body = signed("error_response", &paid())?;
    unverifiable(classify::<PayResponse>(&body, PAY, Waiting::Allowed)?)?;
    let mut waiting = paid();
    waiting["code"] = json!("10003");
    let body = signed("error_response", &waiting)?;
    unverifiable(classify::<PayResponse>(&body, PAY, Waiting::Allowed)?)
}

#[test]
fn a_signed_error_response_is_never_a_definitive_failure() -> TestResult {
    let body = signed("error_response", &auth_code_invalid())?;
    unverifiable(classify::<PayResponse>(&body, PAY, Waiting::Allowed)?)?;
    // What `error_response` is for: a gateway-level refusal.
    let refusal = json!({
        "code": "40006", "msg": "Insufficient Permissions",
        "sub_code": "isv.insufficient-isv-permissions", "sub_msg": "ISV权限不足",
    });
    let outcome =
        classify::<PayResponse>(&signed("error_response", &refusal)?, PAY, Waiting::Allowed)?;
    assert!(
        matches!(
            &outcome,
            Outcome::Rejected(Rejection::Gateway { failure, signed: true })
                if failure.code == "40006"
        ),
        "{outcome:?}"
    );
    Ok(())
}

#[test]
fn a_success_without_the_fields_of_the_response_type_is_unknown() -> TestResult {
    let mut fields = paid();
    if let Some(node) = fields.as_object_mut() {
        node.remove("trade_no");
    }
    let body = signed(&node_name(PAY), &fields)?;
    unverifiable(classify::<PayResponse>(&body, PAY, Waiting::Allowed)?)?;
    fields["code"] = json!("10003");
    let body = signed(&node_name(PAY), &fields)?;
    unverifiable(classify::<PayResponse>(&body, PAY, Waiting::Allowed)?)
}

#[test]
fn a_failure_without_a_sub_code_is_unknown() -> TestResult {
    let body = signed(
        &node_name(PAY),
        &json!({"code": "40004", "msg": "Business Failed"}),
    )?;
    unverifiable(classify::<PayResponse>(&body, PAY, Waiting::Allowed)?)?;
    let body = signed(
        &node_name(PAY),
        &json!({"code": "40004", "msg": "Business Failed", "sub_code": ""}),
    )?;
    unverifiable(classify::<PayResponse>(&body, PAY, Waiting::Allowed)?)
}

#[test]
fn another_methods_node_is_unknown_even_signed() -> TestResult {
    // A signed answer of another method, success or failure, says nothing about this call.
    let query = json!({
        "code": "10000", "msg": "Success",
        "trade_no": "2024010122001400001000000001", "out_trade_no": "pay-1",
        "trade_status": "TRADE_SUCCESS", "total_amount": "0.10",
    });
    let body = signed(&node_name("alipay.trade.query"), &query)?;
    unverifiable(classify::<PayResponse>(&body, PAY, Waiting::Allowed)?)?;
    let body = signed(&node_name("alipay.trade.query"), &auth_code_invalid())?;
    unverifiable(classify::<PayResponse>(&body, PAY, Waiting::Allowed)?)?;
    let body = signed("alipay_trade_pay_responses", &paid())?;
    unverifiable(classify::<PayResponse>(&body, PAY, Waiting::Allowed)?)
}
