//! Gateway-level checks: system parameters, signatures, charsets, and the shape of answers.

use crate::common::*;
use alipay::canonical;
use serde_json::{Value, json};

/// Signs `params` (all of them, as a merchant would) and splits them into a query string
/// (everything but biz_content) and a form body (biz_content).
fn manual(harness: &Harness, params: &[(&str, &str)]) -> TestResult<(String, String)> {
    let content = canonical::request_content(params.iter().copied());
    let sign = harness.app_key.sign_base64(content.as_bytes())?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        if *k == "biz_content" {
            body.append_pair(k, v);
        } else {
            query.append_pair(k, v);
        }
    }
    query.append_pair("sign", &sign);
    Ok((query.finish(), body.finish()))
}

type Params<'a> = Vec<(&'a str, &'a str)>;

fn system_params<'a>(app_id: &'a str, timestamp: &'a str, biz: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("app_id", app_id),
        ("method", QUERY),
        ("format", "JSON"),
        ("charset", "utf-8"),
        ("sign_type", "RSA2"),
        ("timestamp", timestamp),
        ("version", "1.0"),
        ("biz_content", biz),
    ]
}

#[tokio::test]
async fn precreate_answer_is_signed_with_code_first_and_escaped_slashes() -> TestResult {
    let h = Harness::start().await?;
    let biz = json!({"out_trade_no": "gw_1", "total_amount": "0.10", "subject": "x"});
    let body = h.call_raw(PRECREATE, &biz, None).await?;
    assert!(
        body.starts_with(r#"{"alipay_trade_precreate_response":{"code":"10000","msg":"Success","#),
        "{body}"
    );
    assert!(
        body.contains(r#""qr_code":"https:\/\/qr.alipay.com\/"#),
        "{body}"
    );
    let node = h.verified(&body, PRECREATE)?;
    assert_eq!(node["out_trade_no"], "gw_1");
    Ok(())
}

#[tokio::test]
async fn signature_failure_echoes_the_verification_string() -> TestResult {
    let h = Harness::start().await?;
    let (other_key, _) = alipay::PrivateKey::generate()?;
    let timestamp = alipay::time::format_beijing(chrono::Utc::now());
    let biz = json!({"out_trade_no": "sig_1", "subject": "a\"b"}).to_string();
    let params = alipay::request::SystemParams {
        app_id: &h.app_id,
        method: QUERY,
        timestamp: &timestamp,
        notify_url: None,
        app_cert_sn: None,
        alipay_root_cert_sn: None,
    };
    let signed = alipay::request::sign_request(&params, &biz, &other_key)?;
    let body = h.post_gateway(&signed.query, &signed.body).await?;
    assert!(matches!(
        alipay::response::verify(&body, QUERY, &h.verifier),
        Err(alipay::response::ResponseError::Unsigned { .. })
    ));
    let (node_name, node) = h.unsigned(&body)?;
    assert_eq!(node_name, "alipay_trade_query_response");
    assert_sub_code(&node, "40002", "isv.invalid-signature");
    assert_eq!(node["msg"], "Invalid Arguments");
    let escaped = signed
        .sign_content
        .replace('&', "&amp;")
        .replace('"', "&quot;");
    assert_eq!(
        node["sub_msg"].as_str().unwrap_or_default(),
        format!(
            "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：{escaped}"
        )
    );
    // A body changed after signing fails the same way.
    let signed = h.sign(QUERY, &json!({"out_trade_no": "sig_2"}), None)?;
    let tampered = signed.body.replace("sig_2", "sig_3");
    let body = h.post_gateway(&signed.query, &tampered).await?;
    assert_sub_code(&h.unsigned(&body)?.1, "40002", "isv.invalid-signature");
    Ok(())
}

#[tokio::test]
async fn timestamp_in_a_bad_format_is_refused() -> TestResult {
    let h = Harness::start().await?;
    let biz = json!({"out_trade_no": "t"}).to_string();
    for bad in ["2024/01/01 12:00:00", "2024-01-01T12:00:00", "1700000000"] {
        let (query, body) = manual(&h, &system_params(&h.app_id, bad, &biz))?;
        let (name, node) = h.unsigned(&h.post_gateway(&query, &body).await?)?;
        assert_eq!(name, "alipay_trade_query_response");
        assert_sub_code(&node, "40002", "isv.invalid-timestamp");
    }
    Ok(())
}

#[tokio::test]
async fn unknown_app_id_is_refused() -> TestResult {
    let h = Harness::start().await?;
    let timestamp = alipay::time::format_beijing(chrono::Utc::now());
    let biz = json!({"out_trade_no": "t"}).to_string();
    let (query, body) = manual(&h, &system_params("2021000000009999", &timestamp, &biz))?;
    let (name, node) = h.unsigned(&h.post_gateway(&query, &body).await?)?;
    assert_eq!(name, "alipay_trade_query_response");
    assert_sub_code(&node, "40002", "isv.invalid-app-id");
    Ok(())
}

#[tokio::test]
async fn missing_and_invalid_system_parameters_are_refused_unsigned() -> TestResult {
    let h = Harness::start().await?;
    let timestamp = alipay::time::format_beijing(chrono::Utc::now());
    let biz = json!({"out_trade_no": "t"}).to_string();
    let base = system_params(&h.app_id, &timestamp, &biz);
    let without = |key: &str| -> Vec<(&str, &str)> {
        base.iter().copied().filter(|(k, _)| *k != key).collect()
    };
    let with = |key: &'static str, value: &'static str| -> Vec<(&str, &str)> {
        base.iter()
            .map(|&(k, v)| if k == key { (k, value) } else { (k, v) })
            .collect()
    };
    let node = "alipay_trade_query_response";
    let cases: Vec<(Params, &str, &str, &str)> = vec![
        (
            without("method"),
            "error_response",
            "40001",
            "isv.missing-method",
        ),
        (
            with("method", "alipay.trade.nonsense"),
            "error_response",
            "40002",
            "isv.invalid-method",
        ),
        (without("app_id"), node, "40001", "isv.missing-app-id"),
        (
            with("charset", "latin1"),
            node,
            "40002",
            "isv.invalid-charset",
        ),
        (
            without("sign_type"),
            node,
            "40001",
            "isv.missing-signature-type",
        ),
        (
            with("sign_type", "RSA"),
            node,
            "40002",
            "isv.invalid-signature-type",
        ),
        (without("timestamp"), node, "40001", "isv.missing-timestamp"),
        (without("version"), node, "40001", "isv.missing-version"),
        (
            with("version", "2.0"),
            node,
            "40002",
            "isv.invalid-parameter",
        ),
    ];
    for (params, expected_node, code, sub_code) in cases {
        let (query, body) = manual(&h, &params)?;
        let (name, answer) = h.unsigned(&h.post_gateway(&query, &body).await?)?;
        assert_eq!(name, expected_node, "{sub_code}");
        assert_sub_code(&answer, code, sub_code);
    }
    // A request without `sign` at all.
    let (query, body) = manual(&h, &base)?;
    let query: String = query
        .split('&')
        .filter(|p| !p.starts_with("sign="))
        .collect::<Vec<_>>()
        .join("&");
    let (_, answer) = h.unsigned(&h.post_gateway(&query, &body).await?)?;
    assert_sub_code(&answer, "40001", "isv.missing-signature");
    Ok(())
}

#[tokio::test]
async fn invalid_biz_content_is_a_signed_business_refusal() -> TestResult {
    let h = Harness::start().await?;
    let timestamp = alipay::time::format_beijing(chrono::Utc::now());
    let (query, body) = manual(&h, &system_params(&h.app_id, &timestamp, "not json"))?;
    let node = h.verified(&h.post_gateway(&query, &body).await?, QUERY)?;
    assert_sub_code(&node, "40004", "ACQ.INVALID_PARAMETER");
    Ok(())
}

#[tokio::test]
async fn gbk_requests_are_decoded_and_answered_in_gbk() -> TestResult {
    let h = Harness::start().await?;
    let timestamp = alipay::time::format_beijing(chrono::Utc::now());
    let biz =
        json!({"out_trade_no": "gbk_1", "total_amount": "1.00", "subject": "测试商品"}).to_string();
    let params = [
        ("app_id", h.app_id.as_str()),
        ("method", PRECREATE),
        ("charset", "gbk"),
        ("sign_type", "RSA2"),
        ("timestamp", timestamp.as_str()),
        ("version", "1.0"),
        ("biz_content", biz.as_str()),
    ];
    // Signed over GBK bytes, values percent-encoded as GBK bytes.
    let content = canonical::request_content(params.iter().copied());
    let sign = h
        .app_key
        .sign_base64(&encoding_rs::GBK.encode(&content).0)?;
    let encode = |v: &str| -> String {
        form_urlencoded::byte_serialize(&encoding_rs::GBK.encode(v).0).collect()
    };
    let mut query: Vec<String> = params
        .iter()
        .filter(|(k, _)| *k != "biz_content")
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    query.push(format!("sign={}", encode(&sign)));
    let response = h
        .http
        .post(format!("{}?{}", h.running.gateway_url(), query.join("&")))
        .header(
            "content-type",
            "application/x-www-form-urlencoded;charset=GBK",
        )
        .body(format!("biz_content={}", encode(&biz)))
        .send()
        .await?;
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.contains("GBK"), "{content_type}");
    let bytes = response.bytes().await?;
    let text = encoding_rs::GBK
        .decode_without_bom_handling_and_without_replacement(&bytes)
        .ok_or_else(|| err("not GBK"))?;
    let parts = alipay::response::split(&text, PRECREATE)?;
    let sign = parts.sign.ok_or_else(|| err("unsigned"))?;
    h.alipay_public_key
        .verify_base64(&encoding_rs::GBK.encode(parts.node).0, &sign)?;
    let node: Value = serde_json::from_str(parts.node)?;
    assert_success(&node);
    let trade = h.control_get("/sandbox/trades/gbk_1").await?;
    assert_eq!(trade["subject"], "测试商品");
    Ok(())
}

#[tokio::test]
async fn bill_method_answers_bill_not_exist_for_now() -> TestResult {
    let h = Harness::start().await?;
    let node = h
        .call(
            BILL,
            json!({"bill_type": "trade", "bill_date": "2026-01-01"}),
        )
        .await?;
    assert_sub_code(&node, "40004", "isp.bill_not_exist");
    Ok(())
}
