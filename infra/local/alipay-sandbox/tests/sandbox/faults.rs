//! Faults on demand: error codes, "unknown" outcomes with the real effect behind them, delays
//! beyond a client timeout, dropped connections, unsigned and wrongly signed answers.

use crate::common::*;
use alipay::response::ResponseError;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn error_code_fault_applies_the_given_number_of_times() -> TestResult {
    let h = Harness::start().await?;
    h.pay("f_q", "1.00", &auth_code("00", 0)).await?;
    let fault = h
        .control("/sandbox/faults", json!({"method": QUERY, "code": "40004", "sub_code": "ACQ.SYSTEM_ERROR", "sub_msg": "系统错误", "times": 2}))
        .await?;
    assert_eq!(fault["remaining"], 2);
    assert_eq!(
        h.control_get("/sandbox/faults")
            .await?
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    for _ in 0..2 {
        assert_sub_code(&h.query("f_q").await?, "40004", "ACQ.SYSTEM_ERROR");
    }
    assert_eq!(h.query("f_q").await?["trade_status"], "TRADE_SUCCESS");
    assert_eq!(
        h.control_get("/sandbox/faults")
            .await?
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    // Other methods are not affected; DELETE clears pending faults.
    h.control(
        "/sandbox/faults",
        json!({"method": REFUND, "code": "20000", "times": 5}),
    )
    .await?;
    assert_eq!(h.query("f_q").await?["code"], "10000");
    let response = h.http.delete(h.url("/sandbox/faults")).send().await?;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        h.control_get("/sandbox/faults")
            .await?
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    Ok(())
}

#[tokio::test]
async fn unknown_fault_with_and_without_the_real_effect() -> TestResult {
    let h = Harness::start().await?;
    h.control(
        "/sandbox/faults",
        json!({"method": PAY, "code": "20000", "apply": true}),
    )
    .await?;
    let node = h.pay("f_applied", "1.00", &auth_code("00", 0)).await?;
    assert_sub_code(&node, "20000", "isp.unknow-error");
    assert_eq!(h.query("f_applied").await?["trade_status"], "TRADE_SUCCESS");

    h.control("/sandbox/faults", json!({"method": PAY, "code": "20000"}))
        .await?;
    let node = h.pay("f_not_applied", "1.00", &auth_code("00", 0)).await?;
    assert_sub_code(&node, "20000", "isp.unknow-error");
    assert_sub_code(
        &h.query("f_not_applied").await?,
        "40004",
        "ACQ.TRADE_NOT_EXIST",
    );
    Ok(())
}

#[tokio::test]
async fn cancel_system_error_asks_for_a_retry() -> TestResult {
    let h = Harness::start().await?;
    h.pay("f_cx", "1.00", &auth_code("02", 0)).await?;
    h.control(
        "/sandbox/faults",
        json!({"method": CANCEL, "code": "40004", "sub_code": "ACQ.SYSTEM_ERROR"}),
    )
    .await?;
    let node = h.call(CANCEL, json!({"out_trade_no": "f_cx"})).await?;
    assert_sub_code(&node, "40004", "ACQ.SYSTEM_ERROR");
    assert_eq!(node["retry_flag"], "Y");
    let node = h.call(CANCEL, json!({"out_trade_no": "f_cx"})).await?;
    assert_eq!(node["retry_flag"], "N");
    assert_eq!(node["action"], "close");
    Ok(())
}

#[tokio::test]
async fn delay_beyond_the_client_timeout_still_processes_the_call() -> TestResult {
    let h = Harness::start().await?;
    h.control("/sandbox/faults", json!({"method": PAY, "delay_ms": 1500}))
        .await?;
    let signed = h.sign(
        PAY,
        &json!({"out_trade_no": "f_slow", "total_amount": "1.00", "subject": "s", "scene": "bar_code", "auth_code": auth_code("00", 0)}),
        None,
    )?;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()?;
    let outcome = impatient
        .post(format!("{}?{}", h.running.gateway_url(), signed.query))
        .header(
            "content-type",
            "application/x-www-form-urlencoded;charset=utf-8",
        )
        .body(signed.body.clone())
        .send()
        .await;
    let error = outcome.err().ok_or_else(|| err("expected a timeout"))?;
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(h.query("f_slow").await?["trade_status"], "TRADE_SUCCESS");
    Ok(())
}

#[tokio::test]
async fn dropped_connection_gives_the_client_no_response() -> TestResult {
    let h = Harness::start().await?;
    h.control(
        "/sandbox/faults",
        json!({"method": PAY, "drop_connection": true, "apply": true, "times": 2}),
    )
    .await?;
    // reqwest sees a connection error, not a timeout and not an HTTP status.
    let signed = h.sign(
        PAY,
        &json!({"out_trade_no": "f_drop", "total_amount": "1.00", "subject": "s", "scene": "bar_code", "auth_code": auth_code("00", 0)}),
        None,
    )?;
    let outcome = h
        .http
        .post(format!("{}?{}", h.running.gateway_url(), signed.query))
        .header(
            "content-type",
            "application/x-www-form-urlencoded;charset=utf-8",
        )
        .body(signed.body.clone())
        .send()
        .await;
    let error = outcome
        .err()
        .ok_or_else(|| err("expected a connection error"))?;
    assert!(!error.is_timeout() && error.status().is_none(), "{error:?}");
    assert_eq!(
        h.query("f_drop").await?["trade_status"],
        "TRADE_SUCCESS",
        "apply: the payment happened"
    );

    // On the wire: the request is read, then the connection closes with zero bytes of answer.
    let mut stream = tokio::net::TcpStream::connect(h.running.addr()).await?;
    let request = format!(
        "POST /gateway.do?{} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded;charset=utf-8\r\nContent-Length: {}\r\n\r\n{}",
        signed.query,
        signed.body.len(),
        signed.body
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await?;
    // A reset is as good as a close here: no HTTP response either way.
    eprintln!("DEBUG read {read:?} {answer:?}");
    if read.is_ok() {
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }
    Ok(())
}

#[tokio::test]
async fn unsigned_and_wrongly_signed_answers() -> TestResult {
    let h = Harness::start().await?;
    h.pay("f_sig", "1.00", &auth_code("00", 0)).await?;
    h.control(
        "/sandbox/faults",
        json!({"method": QUERY, "unsigned": true}),
    )
    .await?;
    let body = h
        .call_raw(QUERY, &json!({"out_trade_no": "f_sig"}), None)
        .await?;
    assert!(
        matches!(
            alipay::response::verify(&body, QUERY, &h.verifier),
            Err(ResponseError::Unsigned { .. })
        ),
        "{body}"
    );
    h.control(
        "/sandbox/faults",
        json!({"method": QUERY, "bad_signature": true}),
    )
    .await?;
    let body = h
        .call_raw(QUERY, &json!({"out_trade_no": "f_sig"}), None)
        .await?;
    assert!(body.contains("\"sign\":"), "{body}");
    assert!(
        matches!(
            alipay::response::verify(&body, QUERY, &h.verifier),
            Err(ResponseError::BadSignature(_))
        ),
        "{body}"
    );
    h.verified(
        &h.call_raw(QUERY, &json!({"out_trade_no": "f_sig"}), None)
            .await?,
        QUERY,
    )?;
    Ok(())
}

#[tokio::test]
async fn invalid_faults_are_refused() -> TestResult {
    let h = Harness::start().await?;
    for body in [
        json!({}),
        json!({"method": "alipay.trade.nope", "code": "40004"}),
        json!({"code": "4004"}),
        json!({"code": "40004", "times": 0}),
        json!({"code": "40004", "surprise": true}),
        json!({"unsigned": true, "bad_signature": true}),
    ] {
        let (status, answer) = h.control_post("/sandbox/faults", body.clone()).await?;
        assert_eq!(status, 400, "{body} → {answer}");
        assert!(answer["error"].is_string());
    }
    Ok(())
}
