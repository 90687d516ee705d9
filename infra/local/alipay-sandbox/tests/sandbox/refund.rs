//! `alipay.trade.close`, `alipay.trade.cancel`, `alipay.trade.refund` and
//! `alipay.trade.fastpay.refund.query`.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn close_only_closes_waiting_trades() -> TestResult {
    let h = Harness::start().await?;
    h.pay("cl_wait", "1.00", &auth_code("02", 0)).await?;
    assert_success(&h.call(CLOSE, json!({"out_trade_no": "cl_wait"})).await?);
    assert_sub_code(
        &h.call(CLOSE, json!({"out_trade_no": "cl_wait"})).await?,
        "40004",
        "ACQ.TRADE_STATUS_ERROR",
    );
    h.pay("cl_paid", "1.00", &auth_code("00", 0)).await?;
    assert_sub_code(
        &h.call(CLOSE, json!({"out_trade_no": "cl_paid"})).await?,
        "40004",
        "ACQ.TRADE_STATUS_ERROR",
    );
    assert_sub_code(
        &h.call(CLOSE, json!({"out_trade_no": "cl_none"})).await?,
        "40004",
        "ACQ.TRADE_NOT_EXIST",
    );
    assert_sub_code(
        &h.call(CLOSE, json!({})).await?,
        "40004",
        "ACQ.INVALID_PARAMETER",
    );
    Ok(())
}

#[tokio::test]
async fn cancel_closes_unpaid_and_refunds_paid_trades() -> TestResult {
    let h = Harness::start().await?;
    h.pay("cx_wait", "3.00", &auth_code("02", 0)).await?;
    let node = h.call(CANCEL, json!({"out_trade_no": "cx_wait"})).await?;
    assert_success(&node);
    assert_eq!(node["action"], "close");
    assert_eq!(node["retry_flag"], "N");
    assert_eq!(h.query("cx_wait").await?["trade_status"], "TRADE_CLOSED");

    h.pay("cx_paid", "3.00", &auth_code("00", 0)).await?;
    let node = h.call(CANCEL, json!({"out_trade_no": "cx_paid"})).await?;
    assert_success(&node);
    assert_eq!(node["action"], "refund");
    // gmt_refund_pay is only for bank-indirect trades.
    assert!(node.get("gmt_refund_pay").is_none(), "{node}");
    assert_eq!(h.query("cx_paid").await?["trade_status"], "TRADE_CLOSED");
    let again = h.call(CANCEL, json!({"out_trade_no": "cx_paid"})).await?;
    assert_eq!(again["action"], "refund");
    let trade = h
        .running
        .sandbox()
        .trade("cx_paid")
        .await
        .ok_or_else(|| err("no trade"))?;
    assert_eq!(trade.refunds.len(), 1);
    assert!(trade.refunds[0].by_cancel);
    assert_eq!(trade.refunds[0].amount, alipay::Fen::new(300));
    Ok(())
}

#[tokio::test]
async fn cancel_times_out_after_24_hours() -> TestResult {
    let h = Harness::start().await?;
    h.pay("cx_old", "1.00", &auth_code("00", 0)).await?;
    h.advance(24.0 * 3600.0 + 1.0).await?;
    let node = h.call(CANCEL, json!({"out_trade_no": "cx_old"})).await?;
    assert_sub_code(&node, "40004", "ACQ.TRADE_CANCEL_TIME_OUT");
    assert_success(
        &h.call(
            REFUND,
            json!({"out_trade_no": "cx_old", "refund_amount": "1.00"}),
        )
        .await?,
    );
    Ok(())
}

#[tokio::test]
async fn cancel_of_an_unknown_order_blocks_later_payment_under_the_local_rule() -> TestResult {
    let h = Harness::start_with(|c| c.rules.cancel_voids_unknown = true).await?;
    let node = h.call(CANCEL, json!({"out_trade_no": "cx_lost"})).await?;
    assert_success(&node);
    assert_eq!(node["action"], "close");
    assert!(node.get("trade_no").is_none());
    assert_sub_code(
        &h.pay("cx_lost", "1.00", &auth_code("00", 0)).await?,
        "40004",
        "ACQ.TRADE_HAS_CLOSE",
    );
    let node = h
        .call(CANCEL, json!({"trade_no": "2026010122001000000000000000"}))
        .await?;
    assert_sub_code(&node, "40004", "ACQ.TRADE_NOT_EXIST");
    Ok(())
}

#[tokio::test]
async fn refund_rules() -> TestResult {
    let h = Harness::start().await?;
    h.pay("rf", "10.00", &auth_code("00", 0)).await?;
    let refund = |amount: &str, request: Option<&str>| {
        let mut biz = json!({"out_trade_no": "rf", "refund_amount": amount});
        if let Some(request) = request {
            biz["out_request_no"] = json!(request);
        }
        h.call(REFUND, biz)
    };
    assert_sub_code(
        &refund("5.00", None).await?,
        "40004",
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
    );
    assert_sub_code(
        &refund("1.001", Some("r1")).await?,
        "40004",
        "ACQ.INVALID_PARAMETER",
    );
    assert_sub_code(
        &refund("0", Some("r1")).await?,
        "40004",
        "ACQ.INVALID_PARAMETER",
    );

    let first = refund("3.00", Some("r1")).await?;
    assert_success(&first);
    assert_eq!(first["fund_change"], "Y");
    assert_eq!(first["refund_fee"], "3.00");
    assert!(first.get("send_back_fee").is_none(), "{first}");
    let repeat = refund("3.00", Some("r1")).await?;
    assert_success(&repeat);
    assert_eq!(repeat["fund_change"], "N");
    assert_eq!(repeat["refund_fee"], "3.00");
    assert_sub_code(
        &refund("4.00", Some("r1")).await?,
        "40004",
        "ACQ.DISCORDANT_REPEAT_REQUEST",
    );
    assert_sub_code(
        &refund("7.01", Some("r2")).await?,
        "40004",
        "ACQ.REASON_TRADE_REFUND_FEE_ERR",
    );
    assert_eq!(h.query("rf").await?["trade_status"], "TRADE_SUCCESS");

    let last = refund("7.00", Some("r2")).await?;
    assert_eq!(last["fund_change"], "Y");
    assert_eq!(last["refund_fee"], "10.00");
    assert_eq!(h.query("rf").await?["trade_status"], "TRADE_CLOSED");
    assert_sub_code(
        &refund("0.01", Some("r3")).await?,
        "40004",
        "ACQ.TRADE_STATUS_ERROR",
    );
    // Idempotent even after the trade closed.
    assert_eq!(refund("7.00", Some("r2")).await?["fund_change"], "N");

    h.pay("rf_wait", "1.00", &auth_code("02", 0)).await?;
    let node = h
        .call(
            REFUND,
            json!({"out_trade_no": "rf_wait", "refund_amount": "1.00"}),
        )
        .await?;
    assert_sub_code(&node, "40004", "ACQ.TRADE_STATUS_ERROR");
    let node = h
        .call(
            REFUND,
            json!({"out_trade_no": "rf_none", "refund_amount": "1.00"}),
        )
        .await?;
    assert_sub_code(&node, "40004", "ACQ.TRADE_NOT_EXIST");
    Ok(())
}

#[tokio::test]
async fn full_refund_without_out_request_no_and_refund_query() -> TestResult {
    let h = Harness::start().await?;
    h.pay("rq", "2.50", &auth_code("00", 0)).await?;
    let node = h
        .call(
            REFUND,
            json!({"out_trade_no": "rq", "refund_amount": "2.50", "refund_reason": "不要了"}),
        )
        .await?;
    assert_eq!(node["fund_change"], "Y");
    let found = h
        .call(
            REFUND_QUERY,
            json!({"out_trade_no": "rq", "out_request_no": "rq"}),
        )
        .await?;
    assert_success(&found);
    assert_eq!(found["refund_status"], "REFUND_SUCCESS");
    assert_eq!(found["refund_amount"], "2.50");
    assert_eq!(found["total_amount"], "2.50");
    let unknown = h
        .call(
            REFUND_QUERY,
            json!({"out_trade_no": "rq", "out_request_no": "nope"}),
        )
        .await?;
    assert_success(&unknown);
    assert!(unknown.get("refund_status").is_none());
    assert!(unknown.get("refund_amount").is_none());
    let missing = h.call(REFUND_QUERY, json!({"out_trade_no": "rq"})).await?;
    assert_sub_code(&missing, "40004", "ACQ.INVALID_PARAMETER");
    let no_trade = h
        .call(
            REFUND_QUERY,
            json!({"out_trade_no": "zz", "out_request_no": "zz"}),
        )
        .await?;
    assert_sub_code(&no_trade, "40004", "ACQ.TRADE_NOT_EXIST");
    Ok(())
}

#[tokio::test]
async fn trades_expose_every_field_bills_need() -> TestResult {
    let h = Harness::start().await?;
    h.call(
        PAY,
        json!({
            "out_trade_no": "bill_1", "total_amount": "8.80", "subject": "咖啡", "body": "大杯",
            "store_id": "NJ_001", "operator_id": "op_1", "terminal_id": "t_1",
            "scene": "bar_code", "auth_code": auth_code("00", 0),
        }),
    )
    .await?;
    h.call(
        REFUND,
        json!({"out_trade_no": "bill_1", "refund_amount": "1.80", "out_request_no": "b1r1"}),
    )
    .await?;
    let trades = h.running.sandbox().trades().await;
    let trade = trades
        .iter()
        .find(|t| t.out_trade_no == "bill_1")
        .ok_or_else(|| err("missing"))?;
    assert_eq!(trade.total_amount(), alipay::Fen::new(880));
    assert_eq!(trade.terms.subject, "咖啡");
    assert_eq!(trade.terms.body.as_deref(), Some("大杯"));
    assert_eq!(trade.terms.store_id.as_deref(), Some("NJ_001"));
    assert_eq!(trade.terms.operator_id.as_deref(), Some("op_1"));
    assert_eq!(trade.terms.terminal_id.as_deref(), Some("t_1"));
    assert!(trade.gmt_create.is_some() && trade.gmt_payment.is_some());
    assert_eq!(
        trade.buyer.as_ref().map(|b| b.user_id.as_str()),
        Some("2088100012345678")
    );
    assert_eq!(trade.refunds.len(), 1);
    assert_eq!(trade.refunds[0].amount, alipay::Fen::new(180));
    assert_eq!(trade.refunded_amount(), alipay::Fen::new(180));
    Ok(())
}
