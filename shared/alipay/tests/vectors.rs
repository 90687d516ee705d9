//! Alipay's published test vectors: a signed `alipay.trade.pay` response and a signed trade
//! notification (including the `sign_type` trap), verified on every compiled backend.

use alipay::keys::VerifyError;
use alipay::notify::{self, NotifyError, TradeStatus};
use alipay::response::{self, ResponseError};
use alipay::{AlipayVerifier, Backend, Fen, PublicKey, canonical};

const PAY_NODE: &str = include_str!("fixtures/trade_pay_response_node.json");
const PAY_SIGN: &str = include_str!("fixtures/trade_pay_response_sign.txt");
const PAY_KEY: &str = include_str!("fixtures/alipay_public_key_10_1.txt");
const NOTIFY_PARAMS: &str = include_str!("fixtures/trade_notification_params.json");
const NOTIFY_CONTENT: &str = include_str!("fixtures/trade_notification_sign_content.txt");
const NOTIFY_KEY: &str = include_str!("fixtures/alipay_public_key_10_2.txt");

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn verifier(key_text: &str, backend: Backend) -> Result<AlipayVerifier, alipay::KeyError> {
    Ok(AlipayVerifier::PublicKey(PublicKey::parse_with(
        key_text, backend,
    )?))
}

fn pay_body() -> String {
    format!(
        r#"{{"alipay_trade_pay_response":{PAY_NODE},"sign":"{}"}}"#,
        PAY_SIGN.trim()
    )
}

#[test]
fn pay_response_node_verifies_on_every_backend() -> TestResult {
    for &backend in Backend::ALL {
        let key = PublicKey::parse_with(PAY_KEY, backend)?;
        key.verify_base64(PAY_NODE.as_bytes(), PAY_SIGN.trim())?;
    }
    Ok(())
}

#[test]
fn pay_response_body_verifies_and_fields_come_from_the_signed_text() -> TestResult {
    for &backend in Backend::ALL {
        let body = pay_body();
        let verified = response::verify(&body, "alipay.trade.pay", &verifier(PAY_KEY, backend)?)?;
        assert_eq!(verified.node, PAY_NODE);
        let status = verified.status()?;
        assert_eq!(status.code, "10000");
        #[derive(serde::Deserialize)]
        struct Pay {
            total_amount: String,
            trade_no: String,
        }
        let pay: Pay = verified.fields()?;
        assert_eq!(Fen::from_yuan(&pay.total_amount)?, Fen::new(1));
        assert_eq!(pay.trade_no, "2019082922001432790585537960");
    }
    Ok(())
}

#[test]
fn one_flipped_byte_anywhere_in_the_node_fails() -> TestResult {
    let key = PublicKey::parse(PAY_KEY)?;
    let original = PAY_NODE.as_bytes();
    for position in [0, 10, original.len() / 2, original.len() - 1] {
        let mut tampered = original.to_vec();
        tampered[position] ^= 0x01;
        assert_eq!(
            key.verify_base64(&tampered, PAY_SIGN.trim()),
            Err(VerifyError::Mismatch),
            "flipped byte at {position}"
        );
    }
    Ok(())
}

#[test]
fn a_tampered_amount_in_the_body_is_refused() -> TestResult {
    let body = pay_body().replace(r#""total_amount":"0.01""#, r#""total_amount":"0.02""#);
    let result = response::verify(
        &body,
        "alipay.trade.pay",
        &verifier(PAY_KEY, Backend::default())?,
    );
    assert_eq!(
        result,
        Err(ResponseError::BadSignature(VerifyError::Mismatch))
    );
    Ok(())
}

#[test]
fn the_wrong_public_key_fails() -> TestResult {
    let wrong = PublicKey::parse(NOTIFY_KEY)?;
    assert_eq!(
        wrong.verify_base64(PAY_NODE.as_bytes(), PAY_SIGN.trim()),
        Err(VerifyError::Mismatch)
    );
    Ok(())
}

#[test]
fn a_repeated_root_node_is_refused_even_with_a_valid_signature() -> TestResult {
    let forged = format!(
        r#"{{"alipay_trade_pay_response":{PAY_NODE},"sign":"{}","alipay_trade_pay_response":{{"code":"10000","total_amount":"9999.00"}}}}"#,
        PAY_SIGN.trim()
    );
    let result = response::verify(
        &forged,
        "alipay.trade.pay",
        &verifier(PAY_KEY, Backend::default())?,
    );
    assert_eq!(
        result,
        Err(ResponseError::RepeatedRootNode(
            "alipay_trade_pay_response".into()
        ))
    );
    Ok(())
}

fn notify_params() -> Result<Vec<(String, String)>, serde_json::Error> {
    serde_json::from_str(NOTIFY_PARAMS)
}

/// URL-encodes the decoded parameters into a form body the way Alipay sends it.
fn form_body(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            let key: String = form_urlencoded::byte_serialize(k.as_bytes()).collect();
            let value: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[test]
fn notification_content_matches_the_reference_string() -> TestResult {
    let params = notify_params()?;
    let content =
        canonical::notification_content(params.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
    assert_eq!(String::from_utf8(content)?, NOTIFY_CONTENT);
    Ok(())
}

#[test]
fn notification_verifies_from_its_raw_form_body_on_every_backend() -> TestResult {
    let params = notify_params()?;
    let plus_spaces = form_body(&params);
    // Spaces may arrive as `+` or as `%20`; `+` in the signature is always `%2B`.
    let percent_spaces = plus_spaces.replace('+', "%20");
    for &backend in Backend::ALL {
        for body in [&plus_spaces, &percent_spaces] {
            let verified = notify::verify(body.as_bytes(), &verifier(NOTIFY_KEY, backend)?)?;
            let trade = verified.trade()?;
            assert_eq!(trade.out_trade_no, "20190815155618536-564-57");
            assert_eq!(trade.trade_status, TradeStatus::TradeSuccess);
            assert_eq!(trade.total_amount, Fen::new(10));
            assert_eq!(trade.app_id, "2019073166072302");
            assert_eq!(trade.seller_id.as_deref(), Some("2088531891668739"));
            assert_eq!(verified.get("subject"), Some("语雀空间 500人规模"));
        }
    }
    Ok(())
}

#[test]
fn signing_content_with_sign_type_left_in_is_invalid() -> TestResult {
    let params = notify_params()?;
    let sign = params
        .iter()
        .find(|(k, _)| k == "sign")
        .map(|(_, v)| v.clone())
        .ok_or("fixture has no sign")?;
    let mut with_sign_type: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| k != "sign")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    with_sign_type.sort_unstable();
    let content = with_sign_type
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let key = PublicKey::parse(NOTIFY_KEY)?;
    assert_eq!(
        key.verify_base64(content.as_bytes(), &sign),
        Err(VerifyError::Mismatch)
    );
    key.verify_base64(NOTIFY_CONTENT.as_bytes(), &sign)?;
    Ok(())
}

#[test]
fn an_unencoded_plus_in_sign_is_refused() -> TestResult {
    let params = notify_params()?;
    let body = form_body(&params);
    assert!(body.contains("%2B"), "the fixture's sign contains `+`");
    // A sender that forgot to encode `+` makes it a space after decoding.
    let broken = body.replace("%2B", "+");
    let result = notify::verify(
        broken.as_bytes(),
        &verifier(NOTIFY_KEY, Backend::default())?,
    );
    assert_eq!(
        result,
        Err(NotifyError::BadSignature(VerifyError::SignatureNotBase64))
    );
    Ok(())
}

#[test]
fn a_tampered_or_extra_parameter_is_refused() -> TestResult {
    let mut params = notify_params()?;
    for (k, v) in params.iter_mut() {
        if k == "total_amount" {
            *v = "1000.10".into();
        }
    }
    let result = notify::verify(
        form_body(&params).as_bytes(),
        &verifier(NOTIFY_KEY, Backend::default())?,
    );
    assert_eq!(
        result,
        Err(NotifyError::BadSignature(VerifyError::Mismatch))
    );

    let mut params = notify_params()?;
    params.push(("refund_fee".into(), "0.10".into()));
    let result = notify::verify(
        form_body(&params).as_bytes(),
        &verifier(NOTIFY_KEY, Backend::default())?,
    );
    assert_eq!(
        result,
        Err(NotifyError::BadSignature(VerifyError::Mismatch))
    );
    Ok(())
}

#[test]
fn a_notification_decoded_twice_is_refused() -> TestResult {
    // Double encoding on the wire means single decoding leaves `%XX` sequences: the
    // verifier must not "helpfully" decode again.
    let params = notify_params()?;
    let body = form_body(&params);
    let double: String = form_urlencoded::byte_serialize(body.as_bytes()).collect();
    let double = format!("x={double}");
    assert!(
        notify::verify(
            double.as_bytes(),
            &verifier(NOTIFY_KEY, Backend::default())?
        )
        .is_err()
    );
    Ok(())
}
