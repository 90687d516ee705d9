//! `alipay.trade.precreate` and the buyer's side of QR payments (scan, pay, abandon, expiry).

use crate::common::*;
use serde_json::{Value, json};

fn order(out_trade_no: &str, amount: &str) -> Value {
    json!({"out_trade_no": out_trade_no, "total_amount": amount, "subject": "QR order"})
}

#[tokio::test]
async fn precreate_validates_its_parameters() -> TestResult {
    let h = Harness::start().await?;
    let long = "a".repeat(65);
    let cases = [
        (
            json!({"out_trade_no": "bad-char", "total_amount": "1.00", "subject": "s"}),
            "ACQ.INVALID_PARAMETER",
        ),
        (
            json!({"out_trade_no": long, "total_amount": "1.00", "subject": "s"}),
            "ACQ.INVALID_PARAMETER",
        ),
        (
            json!({"total_amount": "1.00", "subject": "s"}),
            "ACQ.INVALID_PARAMETER",
        ),
        (
            json!({"out_trade_no": "v1", "total_amount": "1.001", "subject": "s"}),
            "ACQ.INVALID_PARAMETER",
        ),
        (
            json!({"out_trade_no": "v1", "total_amount": "0", "subject": "s"}),
            "ACQ.INVALID_PARAMETER",
        ),
        (
            json!({"out_trade_no": "v1", "total_amount": "0.00", "subject": "s"}),
            "ACQ.INVALID_PARAMETER",
        ),
        (
            json!({"out_trade_no": "v1", "total_amount": "100000000.01", "subject": "s"}),
            "ACQ.TOTAL_FEE_EXCEED",
        ),
        (
            json!({"out_trade_no": "v1", "total_amount": "1.00"}),
            "ACQ.INVALID_PARAMETER",
        ),
        (
            json!({"out_trade_no": "v1", "total_amount": "1.00", "subject": "s", "timeout_express": "1.5h"}),
            "ACQ.INVALID_PARAMETER",
        ),
        (
            json!({"out_trade_no": "v1", "total_amount": "1.00", "subject": "s", "time_expire": "tomorrow"}),
            "ACQ.INVALID_PARAMETER",
        ),
    ];
    for (biz, sub_code) in cases {
        let node = h.call(PRECREATE, biz.clone()).await?;
        assert_sub_code(&node, "40004", sub_code);
    }
    let node = h.call(PRECREATE, order("v_max", "100000000.00")).await?;
    assert_success(&node);
    let node = h.call(PRECREATE, order("v_min", "0.01")).await?;
    assert_success(&node);
    Ok(())
}

#[tokio::test]
async fn identical_precreate_returns_the_same_qr_code_and_changes_are_inconsistent() -> TestResult {
    let h = Harness::start().await?;
    let first = h.call(PRECREATE, order("idem_1", "9.99")).await?;
    assert_success(&first);
    let qr = first["qr_code"].as_str().unwrap_or_default().to_owned();
    assert!(qr.starts_with("https://qr.alipay.com/"), "{qr}");
    let again = h.call(PRECREATE, order("idem_1", "9.99")).await?;
    assert_eq!(again["qr_code"], qr.as_str());
    let changed_amount = h.call(PRECREATE, order("idem_1", "9.98")).await?;
    assert_sub_code(&changed_amount, "40004", "ACQ.CONTEXT_INCONSISTENT");
    let changed_subject = h
        .call(
            PRECREATE,
            json!({"out_trade_no": "idem_1", "total_amount": "9.99", "subject": "other"}),
        )
        .await?;
    assert_sub_code(&changed_subject, "40004", "ACQ.CONTEXT_INCONSISTENT");
    Ok(())
}

#[tokio::test]
async fn no_trade_exists_until_the_buyer_scans() -> TestResult {
    let h = Harness::start().await?;
    let biz = json!({
        "out_trade_no": "scan_1", "total_amount": "12.34", "subject": "QR order",
        "store_id": "S001", "terminal_id": "T01", "operator_id": "op7",
    });
    assert_success(&h.call(PRECREATE, biz).await?);
    for method in [QUERY, CLOSE] {
        let node = h.call(method, json!({"out_trade_no": "scan_1"})).await?;
        assert_sub_code(&node, "40004", "ACQ.TRADE_NOT_EXIST");
    }
    let node = h
        .call(
            REFUND,
            json!({"out_trade_no": "scan_1", "refund_amount": "1.00"}),
        )
        .await?;
    assert_sub_code(&node, "40004", "ACQ.TRADE_NOT_EXIST");

    h.control(
        "/sandbox/trades/scan_1/scan",
        json!({"buyer_id": "2088000000000042"}),
    )
    .await?;
    let waiting = h.query("scan_1").await?;
    assert_success(&waiting);
    assert_eq!(waiting["trade_status"], "WAIT_BUYER_PAY");
    assert_eq!(
        waiting["buyer_open_id"],
        alipay_sandbox::ids::open_id(&h.app_id, "2088000000000042")
    );
    assert_eq!(waiting["total_amount"], "12.34");
    assert_eq!(waiting["store_id"], "S001");
    assert_eq!(waiting["terminal_id"], "T01");
    assert!(waiting.get("send_pay_date").is_none());
    let trade_no = waiting["trade_no"].as_str().unwrap_or_default().to_owned();
    assert_eq!(trade_no.len(), 28, "{trade_no}");
    assert_eq!(&trade_no[8..13], "22001");

    h.control("/sandbox/trades/scan_1/pay", json!({})).await?;
    let paid = h.call(QUERY, json!({"trade_no": trade_no})).await?;
    assert_eq!(paid["trade_status"], "TRADE_SUCCESS");
    assert_eq!(paid["out_trade_no"], "scan_1");
    assert_eq!(paid["receipt_amount"], "12.34");
    assert_eq!(paid["buyer_pay_amount"], "12.34");
    assert!(alipay::time::is_wire_time(
        paid["send_pay_date"].as_str().unwrap_or_default()
    ));
    assert!(
        paid["buyer_logon_id"]
            .as_str()
            .unwrap_or_default()
            .contains("****")
    );
    // A paid QR order cannot be precreated again.
    let node = h
        .call(
            PRECREATE,
            json!({
                "out_trade_no": "scan_1", "total_amount": "12.34", "subject": "QR order",
                "store_id": "S001", "terminal_id": "T01", "operator_id": "op7",
            }),
        )
        .await?;
    assert_sub_code(&node, "40004", "ACQ.TRADE_HAS_SUCCESS");
    // Mismatched identifiers find nothing.
    let node = h
        .call(
            QUERY,
            json!({"out_trade_no": "scan_1", "trade_no": "2026010122001000000000000000"}),
        )
        .await?;
    assert_sub_code(&node, "40004", "ACQ.TRADE_NOT_EXIST");
    Ok(())
}

#[tokio::test]
async fn pay_in_one_go_and_buyer_conflicts() -> TestResult {
    let h = Harness::start().await?;
    assert_success(&h.call(PRECREATE, order("oneshot", "1.00")).await?);
    let trade = h.control("/sandbox/trades/oneshot/pay", json!({})).await?;
    assert_eq!(trade["trade_status"], "TRADE_SUCCESS");
    let (status, _) = h
        .control_post("/sandbox/trades/oneshot/pay", json!({}))
        .await?;
    assert_eq!(status, 409);
    let (status, _) = h
        .control_post("/sandbox/trades/nothing/scan", json!({}))
        .await?;
    assert_eq!(status, 404);
    let (status, _) = h
        .control_post("/sandbox/trades/oneshot/scan", json!({"buyer_id": "123"}))
        .await?;
    assert_eq!(status, 400);
    Ok(())
}

#[tokio::test]
async fn scanned_unpaid_trade_closes_at_expiry() -> TestResult {
    let h = Harness::start().await?;
    let biz = json!({"out_trade_no": "exp_1", "total_amount": "1.00", "subject": "s", "timeout_express": "5m"});
    assert_success(&h.call(PRECREATE, biz).await?);
    h.control("/sandbox/trades/exp_1/scan", json!({})).await?;
    h.advance(290.0).await?;
    assert_eq!(h.query("exp_1").await?["trade_status"], "WAIT_BUYER_PAY");
    h.advance(15.0).await?;
    assert_eq!(h.query("exp_1").await?["trade_status"], "TRADE_CLOSED");
    let (status, _) = h
        .control_post("/sandbox/trades/exp_1/pay", json!({}))
        .await?;
    assert_eq!(status, 409);
    Ok(())
}

#[tokio::test]
async fn qr_code_lapses_unscanned_after_two_hours() -> TestResult {
    let h = Harness::start().await?;
    assert_success(&h.call(PRECREATE, order("lapse_1", "1.00")).await?);
    h.advance(2.0 * 3600.0 + 1.0).await?;
    let (status, body) = h
        .control_post("/sandbox/trades/lapse_1/scan", json!({}))
        .await?;
    assert_eq!(status, 409, "{body}");
    assert_sub_code(&h.query("lapse_1").await?, "40004", "ACQ.TRADE_NOT_EXIST");
    let node = h.call(PRECREATE, order("lapse_1", "1.00")).await?;
    assert_sub_code(&node, "40004", "ACQ.TRADE_HAS_CLOSE");
    Ok(())
}

#[tokio::test]
async fn time_expire_wins_over_timeout_express() -> TestResult {
    let h = Harness::start().await?;
    let now_ms = h.now_ms().await?;
    let expire = chrono::DateTime::from_timestamp_millis(now_ms + 10 * 60 * 1000)
        .ok_or_else(|| err("time"))?;
    let biz = json!({
        "out_trade_no": "te_1", "total_amount": "1.00", "subject": "s",
        "timeout_express": "1d", "time_expire": alipay::time::format_beijing(expire),
    });
    assert_success(&h.call(PRECREATE, biz).await?);
    h.control("/sandbox/trades/te_1/scan", json!({})).await?;
    h.advance(11.0 * 60.0).await?;
    assert_eq!(h.query("te_1").await?["trade_status"], "TRADE_CLOSED");
    Ok(())
}

#[tokio::test]
async fn cancel_before_scan_voids_the_order_for_good_under_the_local_rule() -> TestResult {
    let h = Harness::start_with(|c| c.rules.cancel_voids_unknown = true).await?;
    assert_success(&h.call(PRECREATE, order("void_1", "1.00")).await?);
    let node = h.call(CANCEL, json!({"out_trade_no": "void_1"})).await?;
    assert_success(&node);
    assert_eq!(node["action"], "close");
    assert_eq!(node["retry_flag"], "N");
    let (status, _) = h
        .control_post("/sandbox/trades/void_1/scan", json!({}))
        .await?;
    assert_eq!(status, 409);
    assert_sub_code(&h.query("void_1").await?, "40004", "ACQ.TRADE_NOT_EXIST");
    let node = h.call(PRECREATE, order("void_1", "1.00")).await?;
    assert_sub_code(&node, "40004", "ACQ.TRADE_HAS_CLOSE");
    Ok(())
}

#[tokio::test]
async fn abandoned_trade_keeps_waiting_until_closed() -> TestResult {
    let h = Harness::start().await?;
    assert_success(&h.call(PRECREATE, order("ab_1", "1.00")).await?);
    h.control("/sandbox/trades/ab_1/scan", json!({})).await?;
    let trade = h.control("/sandbox/trades/ab_1/abandon", json!({})).await?;
    assert_eq!(trade["abandoned"], true);
    assert_eq!(h.query("ab_1").await?["trade_status"], "WAIT_BUYER_PAY");
    assert_success(&h.call(CLOSE, json!({"out_trade_no": "ab_1"})).await?);
    assert_eq!(h.query("ab_1").await?["trade_status"], "TRADE_CLOSED");
    Ok(())
}
