//! `alipay.trade.pay` and every payment-code convention.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn code_00_pays_at_once() -> TestResult {
    let h = Harness::start().await?;
    let node = h.pay("bar_ok", "25.50", &auth_code("00", 0)).await?;
    assert_success(&node);
    assert_eq!(node["out_trade_no"], "bar_ok");
    assert_eq!(node["total_amount"], "25.50");
    assert_eq!(node["receipt_amount"], "25.50");
    // OpenID mode (the default): the buyer is known by an app-specific id only.
    assert_eq!(
        node["buyer_open_id"],
        alipay_sandbox::ids::open_id(&h.app_id, "2088100012345678")
    );
    assert!(node.get("buyer_user_id").is_none(), "{node}");
    // Funding sources only when query_options asks for them.
    assert!(node.get("fund_bill_list").is_none(), "{node}");
    assert!(alipay::time::is_wire_time(
        node["gmt_payment"].as_str().unwrap_or_default()
    ));
    assert_eq!(h.query("bar_ok").await?["trade_status"], "TRADE_SUCCESS");
    assert_sub_code(
        &h.pay("bar_ok", "25.50", &auth_code("00", 0)).await?,
        "40004",
        "ACQ.TRADE_HAS_SUCCESS",
    );
    assert_sub_code(
        &h.pay("bar_ok", "25.51", &auth_code("00", 0)).await?,
        "40004",
        "ACQ.CONTEXT_INCONSISTENT",
    );
    Ok(())
}

#[tokio::test]
async fn code_01_waits_then_the_buyer_pays() -> TestResult {
    let h = Harness::start().await?;
    let node = h.pay("bar_wait", "1.00", &auth_code("01", 30)).await?;
    assert_eq!(node["code"], "10003", "{node}");
    assert!(node["trade_no"].is_string());
    assert_eq!(h.query("bar_wait").await?["trade_status"], "WAIT_BUYER_PAY");
    // Re-sending while the buyer confirms answers 10003 again.
    assert_eq!(
        h.pay("bar_wait", "1.00", &auth_code("01", 30)).await?["code"],
        "10003"
    );
    h.advance(25.0).await?;
    assert_eq!(h.query("bar_wait").await?["trade_status"], "WAIT_BUYER_PAY");
    h.advance(6.0).await?;
    let paid = h.query("bar_wait").await?;
    assert_eq!(paid["trade_status"], "TRADE_SUCCESS");
    assert!(paid["send_pay_date"].is_string());
    Ok(())
}

#[tokio::test]
async fn code_01_completes_on_its_own_under_time_scale() -> TestResult {
    let h = Harness::start_with(|c| c.time_scale = 100.0).await?;
    assert_eq!(
        h.pay("bar_scaled", "1.00", &auth_code("01", 20)).await?["code"],
        "10003"
    );
    // 20 sandbox seconds are 0.2 s of real time; the scheduler completes it without a call.
    for _ in 0..100 {
        let trade = h.control_get("/sandbox/trades/bar_scaled").await?;
        if trade["trade_status"] == "TRADE_SUCCESS" {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Err(err("the delayed payment never completed"))
}

#[tokio::test]
async fn code_02_waits_until_closed() -> TestResult {
    let h = Harness::start().await?;
    assert_eq!(
        h.pay("bar_forever", "1.00", &auth_code("02", 0)).await?["code"],
        "10003"
    );
    h.advance(3600.0).await?;
    assert_eq!(
        h.query("bar_forever").await?["trade_status"],
        "WAIT_BUYER_PAY"
    );
    let closed = h
        .call(CLOSE, json!({"out_trade_no": "bar_forever"}))
        .await?;
    assert_success(&closed);
    assert!(closed["trade_no"].is_string());
    assert_eq!(
        h.query("bar_forever").await?["trade_status"],
        "TRADE_CLOSED"
    );
    assert_sub_code(
        &h.pay("bar_forever", "1.00", &auth_code("02", 0)).await?,
        "40004",
        "ACQ.TRADE_HAS_CLOSE",
    );
    // The control API can still make a waiting barcode buyer pay.
    assert_eq!(
        h.pay("bar_forever_2", "1.00", &auth_code("02", 0)).await?["code"],
        "10003"
    );
    h.control("/sandbox/trades/bar_forever_2/pay", json!({}))
        .await?;
    assert_eq!(
        h.query("bar_forever_2").await?["trade_status"],
        "TRADE_SUCCESS"
    );
    Ok(())
}

#[tokio::test]
async fn code_02_closes_at_expiry() -> TestResult {
    let h = Harness::start().await?;
    let node = h
        .call(
            PAY,
            json!({
                "out_trade_no": "bar_exp", "total_amount": "1.00", "subject": "s",
                "scene": "bar_code", "auth_code": auth_code("02", 0), "timeout_express": "1m",
            }),
        )
        .await?;
    assert_eq!(node["code"], "10003");
    h.advance(61.0).await?;
    assert_eq!(h.query("bar_exp").await?["trade_status"], "TRADE_CLOSED");
    Ok(())
}

#[tokio::test]
async fn code_03_waits_then_the_buyer_declines() -> TestResult {
    let h = Harness::start().await?;
    assert_eq!(
        h.pay("bar_decline", "1.00", &auth_code("03", 10)).await?["code"],
        "10003"
    );
    h.advance(11.0).await?;
    assert_eq!(
        h.query("bar_decline").await?["trade_status"],
        "TRADE_CLOSED"
    );
    Ok(())
}

#[tokio::test]
async fn codes_04_05_06_answer_20000_with_different_truths() -> TestResult {
    let h = Harness::start().await?;
    let paid = h.pay("unk_paid", "1.00", &auth_code("04", 0)).await?;
    assert_sub_code(&paid, "20000", "isp.unknow-error");
    assert_eq!(h.query("unk_paid").await?["trade_status"], "TRADE_SUCCESS");

    let none = h.pay("unk_none", "1.00", &auth_code("05", 0)).await?;
    assert_sub_code(&none, "20000", "isp.unknow-error");
    assert_sub_code(&h.query("unk_none").await?, "40004", "ACQ.TRADE_NOT_EXIST");

    let waiting = h.pay("unk_wait", "1.00", &auth_code("06", 0)).await?;
    assert_sub_code(&waiting, "20000", "isp.unknow-error");
    assert_eq!(h.query("unk_wait").await?["trade_status"], "WAIT_BUYER_PAY");
    Ok(())
}

#[tokio::test]
async fn definitive_failures() -> TestResult {
    let h = Harness::start().await?;
    let invalid = h.pay("fail_10", "1.00", &auth_code("10", 0)).await?;
    assert_sub_code(&invalid, "40004", "ACQ.PAYMENT_AUTH_CODE_INVALID");
    assert_sub_code(&h.query("fail_10").await?, "40004", "ACQ.TRADE_NOT_EXIST");
    for (i, code) in ["123", "280000", "290000000000000001", "289900000000000001"]
        .iter()
        .enumerate()
    {
        let node = h.pay(&format!("fail_bad_{i}"), "1.00", code).await?;
        assert_sub_code(&node, "40004", "ACQ.PAYMENT_AUTH_CODE_INVALID");
    }
    for (selector, sub_code) in [
        ("11", "ACQ.BUYER_BALANCE_NOT_ENOUGH"),
        ("12", "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH"),
        ("13", "ACQ.PAYMENT_FAIL"),
        ("14", "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR"),
    ] {
        let out_trade_no = format!("fail_{selector}");
        let node = h
            .pay(&out_trade_no, "1.00", &auth_code(selector, 0))
            .await?;
        assert_sub_code(&node, "40004", sub_code);
        assert_eq!(
            h.query(&out_trade_no).await?["trade_status"],
            "TRADE_CLOSED"
        );
        assert_sub_code(
            &h.pay(&out_trade_no, "1.00", &auth_code("00", 0)).await?,
            "40004",
            "ACQ.TRADE_HAS_CLOSE",
        );
    }
    Ok(())
}

#[tokio::test]
async fn pay_validates_scene_and_auth_code() -> TestResult {
    let h = Harness::start().await?;
    let node = h
        .call(PAY, json!({"out_trade_no": "sc", "total_amount": "1.00", "subject": "s", "scene": "wave_code", "auth_code": auth_code("00", 0)}))
        .await?;
    assert_sub_code(&node, "40004", "ACQ.INVALID_PARAMETER");
    let node = h
        .call(PAY, json!({"out_trade_no": "sc", "total_amount": "1.00", "subject": "s", "scene": "bar_code"}))
        .await?;
    assert_sub_code(&node, "40004", "ACQ.INVALID_PARAMETER");
    let node = h
        .call(PAY, json!({"out_trade_no": "sc", "total_amount": "1.00", "subject": "s", "scene": "security_code", "auth_code": auth_code("00", 0)}))
        .await?;
    assert_success(&node);
    Ok(())
}
