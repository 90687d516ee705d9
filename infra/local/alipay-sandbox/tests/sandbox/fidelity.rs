//! Production fidelity: fields Alipay leaves out unless asked, what its refusals carry,
//! cancel without a trade, the request checks it makes, TRADE_FINISHED, and wire details
//! (the `10003` message, `Content-Type`, notification ids, the WAIT_BUYER_PAY notification,
//! OpenID). Each rule and its public source is in the README's table of rules.

use crate::common::*;
use alipay_sandbox::ids::open_id;
use serde_json::{Value, json};

const BUYER: &str = "2088100012345678";

fn order(out_trade_no: &str, amount: &str) -> Value {
    json!({"out_trade_no": out_trade_no, "total_amount": amount, "subject": "fidelity"})
}

fn with(mut biz: Value, key: &str, value: Value) -> Value {
    biz[key] = value;
    biz
}

/// The node text exactly as sent (what the signature covers), for field-order checks.
async fn raw_node(h: &Harness, method: &str, biz: &Value) -> TestResult<String> {
    let body = h.call_raw(method, biz, None).await?;
    let verified = alipay::response::verify(&body, method, &h.verifier)
        .map_err(|e| err(format!("{e}: {body}")))?;
    Ok(verified.node.into_owned())
}

#[tokio::test]
async fn fund_bill_list_only_when_asked_or_contracted() -> TestResult {
    let h = Harness::start().await?;
    let code = auth_code("00", 0);
    let pay = |no: &str, options: Option<Value>| {
        let mut biz = json!({"out_trade_no": no, "total_amount": "3.00", "subject": "s",
                             "scene": "bar_code", "auth_code": code});
        if let Some(options) = options {
            biz["query_options"] = options;
        }
        h.call(PAY, biz)
    };
    let plain = pay("fb_plain", None).await?;
    assert_success(&plain);
    assert!(plain.get("fund_bill_list").is_none(), "{plain}");
    let asked = pay("fb_asked", Some(json!(["fund_bill_list"]))).await?;
    assert_eq!(
        asked["fund_bill_list"],
        json!([{"fund_channel": "ALIPAYACCOUNT", "amount": "3.00"}])
    );
    assert_sub_code(
        &pay("fb_bad", Some(json!("fund_bill_list"))).await?,
        "40004",
        "ACQ.INVALID_PARAMETER",
    );
    assert!(h.query("fb_plain").await?.get("fund_bill_list").is_none());
    let queried = h
        .call(
            QUERY,
            json!({"out_trade_no": "fb_plain", "query_options": ["fund_bill_list"]}),
        )
        .await?;
    assert_eq!(queried["fund_bill_list"][0]["amount"], "3.00");

    let contracted = Harness::start_with(|c| c.rules.fund_bill_list_by_contract = true).await?;
    contracted.pay("fb_contract", "1.00", &code).await?;
    let node = contracted.query("fb_contract").await?;
    assert_eq!(node["fund_bill_list"][0]["fund_channel"], "ALIPAYACCOUNT");
    Ok(())
}

#[tokio::test]
async fn refund_detail_fields_only_when_asked_and_refund_query_returns_the_reason() -> TestResult {
    let h = Harness::start().await?;
    h.pay("rd", "10.00", &auth_code("00", 0)).await?;
    let refund = |no: &str, options: Option<Value>| {
        let mut biz = json!({"out_trade_no": "rd", "refund_amount": "1.00",
                             "out_request_no": no, "refund_reason": "坏了"});
        if let Some(options) = options {
            biz["query_options"] = options;
        }
        h.call(REFUND, biz)
    };
    let plain = refund("rd1", None).await?;
    assert_eq!(plain["fund_change"], "Y");
    assert!(plain["gmt_refund_pay"].is_string(), "{plain}");
    assert!(plain.get("send_back_fee").is_none(), "{plain}");
    assert!(plain.get("refund_detail_item_list").is_none(), "{plain}");
    let asked = refund("rd2", Some(json!(["refund_detail_item_list"]))).await?;
    assert_eq!(asked["send_back_fee"], "1.00");
    assert_eq!(
        asked["refund_detail_item_list"],
        json!([{"amount": "1.00", "fund_channel": "ALIPAYACCOUNT"}])
    );
    assert_eq!(asked["refund_fee"], "2.00");

    let query = |options: Option<Value>| {
        let mut biz = json!({"out_trade_no": "rd", "out_request_no": "rd1"});
        if let Some(options) = options {
            biz["query_options"] = options;
        }
        h.call(REFUND_QUERY, biz)
    };
    let plain = query(None).await?;
    assert_eq!(plain["refund_status"], "REFUND_SUCCESS");
    assert_eq!(plain["refund_reason"], "坏了");
    assert!(plain.get("gmt_refund_pay").is_none(), "{plain}");
    assert!(plain.get("send_back_fee").is_none(), "{plain}");
    let asked = query(Some(json!(["gmt_refund_pay", "refund_detail_item_list"]))).await?;
    assert!(alipay::time::is_wire_time(
        asked["gmt_refund_pay"].as_str().unwrap_or_default()
    ));
    assert_eq!(asked["send_back_fee"], "1.00");
    assert_eq!(asked["refund_detail_item_list"][0]["amount"], "1.00");
    Ok(())
}

#[tokio::test]
async fn refusals_carry_what_alipays_carry() -> TestResult {
    let h = Harness::start().await?;
    // A query for no trade echoes out_trade_no with zero amounts (a public capture's order).
    let node = raw_node(&h, QUERY, &json!({"out_trade_no": "nothing_here"})).await?;
    assert_eq!(
        node,
        r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在","buyer_pay_amount":"0.00","invoice_amount":"0.00","out_trade_no":"nothing_here","point_amount":"0.00","receipt_amount":"0.00"}"#
    );

    h.pay("rf_err", "5.00", &auth_code("00", 0)).await?;
    let not_total = raw_node(
        &h,
        REFUND,
        &json!({"out_trade_no": "rf_err", "refund_amount": "1.00"}),
    )
    .await?;
    assert_eq!(
        not_total,
        r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.REFUND_AMT_NOT_EQUAL_TOTAL","sub_msg":"撤销或退款金额与订单金额不一致","out_trade_no":"rf_err","refund_fee":"0.00","send_back_fee":"0.00"}"#
    );
    let too_much = h
        .call(
            REFUND,
            json!({"out_trade_no": "rf_err", "refund_amount": "5.01", "out_request_no": "x"}),
        )
        .await?;
    assert_sub_code(&too_much, "40004", "ACQ.REASON_TRADE_REFUND_FEE_ERR");
    assert_eq!(too_much["sub_msg"], "REASON_TRADE_REFUND_FEE_ERR");
    assert_eq!(too_much["out_trade_no"], "rf_err");
    assert_eq!(too_much["refund_fee"], "0.00");
    assert_eq!(too_much["send_back_fee"], "0.00");
    Ok(())
}

#[tokio::test]
async fn cancel_without_a_trade_reports_no_action_and_changes_nothing() -> TestResult {
    let h = Harness::start().await?;
    // A number Alipay never saw: success, no action, and a later payment still works.
    let node = raw_node(&h, CANCEL, &json!({"out_trade_no": "cx_never"})).await?;
    assert_eq!(
        node,
        r#"{"code":"10000","msg":"Success","out_trade_no":"cx_never","retry_flag":"N"}"#
    );
    assert_success(&h.pay("cx_never", "1.00", &auth_code("00", 0)).await?);
    // An unscanned QR order: no action, and its QR code can still be scanned and paid.
    assert_success(&h.call(PRECREATE, order("cx_qr", "1.00")).await?);
    let node = h.call(CANCEL, json!({"out_trade_no": "cx_qr"})).await?;
    assert_success(&node);
    assert!(node.get("action").is_none(), "{node}");
    h.control("/sandbox/trades/cx_qr/pay", json!({})).await?;
    assert_eq!(h.query("cx_qr").await?["trade_status"], "TRADE_SUCCESS");
    // An unknown trade_no: success without action, not ACQ.TRADE_NOT_EXIST.
    let node = h
        .call(CANCEL, json!({"trade_no": "2026010122001000000000000000"}))
        .await?;
    assert_success(&node);
    assert!(node.get("action").is_none() && node.get("out_trade_no").is_none());
    Ok(())
}

#[tokio::test]
async fn cancel_after_a_refund_is_refused_with_out_trade_no_and_retry_flag() -> TestResult {
    let h = Harness::start().await?;
    h.pay("cx_rf", "4.00", &auth_code("00", 0)).await?;
    let refunded = h
        .call(
            REFUND,
            json!({"out_trade_no": "cx_rf", "refund_amount": "1.00", "out_request_no": "r1"}),
        )
        .await?;
    assert_eq!(refunded["fund_change"], "Y");
    let node = raw_node(&h, CANCEL, &json!({"out_trade_no": "cx_rf"})).await?;
    assert_eq!(
        node,
        r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.REASON_TRADE_REFUND_FEE_ERR","sub_msg":"REASON_TRADE_REFUND_FEE_ERR","out_trade_no":"cx_rf","retry_flag":"N"}"#
    );
    assert_eq!(h.query("cx_rf").await?["trade_status"], "TRADE_SUCCESS");
    Ok(())
}

#[tokio::test]
async fn product_code_must_be_the_signed_product() -> TestResult {
    let h = Harness::start().await?;
    let f2f = with(
        order("pc_ok", "1.00"),
        "product_code",
        json!("FACE_TO_FACE_PAYMENT"),
    );
    assert_success(&h.call(PRECREATE, f2f).await?);
    let wap = with(
        order("pc_wap", "1.00"),
        "product_code",
        json!("QUICK_WAP_WAY"),
    );
    assert_sub_code(
        &h.call(PRECREATE, wap).await?,
        "40004",
        "ACQ.ACCESS_FORBIDDEN",
    );
    let pay = json!({"out_trade_no": "pc_pay", "total_amount": "1.00", "subject": "s",
                     "scene": "bar_code", "auth_code": auth_code("00", 0),
                     "product_code": "OFFLINE_PAYMENT"});
    assert_sub_code(
        &h.call(PAY, pay.clone()).await?,
        "40004",
        "ACQ.ACCESS_FORBIDDEN",
    );
    assert!(h.running.sandbox().trade("pc_pay").await.is_none());

    // An app signed for 当面付快捷版: OFFLINE_PAYMENT, and the default no longer fits.
    let quick = Harness::start_with(|c| c.rules.product_code = "OFFLINE_PAYMENT".into()).await?;
    assert_success(&quick.call(PAY, pay).await?);
    assert_sub_code(
        &quick.call(PRECREATE, order("pc_default", "1.00")).await?,
        "40004",
        "ACQ.ACCESS_FORBIDDEN",
    );
    Ok(())
}

#[tokio::test]
async fn timestamps_must_be_current_beijing_time() -> TestResult {
    let h = Harness::start().await?;
    let biz = order("ts_1", "1.00");
    let send = |at| send_at(&h, &biz, at);
    // UTC written as if it were Beijing time: 8 hours off.
    let utc_as_beijing = chrono::Utc::now() - chrono::TimeDelta::hours(8);
    let body = send(utc_as_beijing).await?;
    let (name, node) = h.unsigned(&body)?;
    assert_eq!(name, "alipay_trade_precreate_response");
    assert_sub_code(&node, "40002", "isv.invalid-timestamp");
    assert!(h.running.sandbox().trade("ts_1").await.is_none());
    let late = send(chrono::Utc::now() + chrono::TimeDelta::minutes(6)).await?;
    assert_sub_code(&h.unsigned(&late)?.1, "40002", "isv.invalid-timestamp");
    let skewed = send(chrono::Utc::now() - chrono::TimeDelta::minutes(4)).await?;
    assert_success(&h.verified(&skewed, PRECREATE)?);
    // Checked against real time: advancing the sandbox clock does not matter.
    h.advance(2.0 * 86_400.0).await?;
    assert_success(&h.call(PRECREATE, order("ts_2", "1.00")).await?);

    let lenient = Harness::start_with(|c| c.rules.max_timestamp_skew_seconds = 0).await?;
    let body = send_at(&lenient, &biz, utc_as_beijing).await?;
    assert_success(&lenient.verified(&body, PRECREATE)?);
    Ok(())
}

/// A precreate signed with the timestamp of `at`; the raw answer.
async fn send_at(
    h: &Harness,
    biz: &Value,
    at: chrono::DateTime<chrono::Utc>,
) -> TestResult<String> {
    let signed = h.sign_at(PRECREATE, biz, None, at)?;
    h.post_gateway(&signed.query, &signed.body).await
}

#[tokio::test]
async fn qr_code_timeout_express_bounds_the_code_and_the_order() -> TestResult {
    let h = Harness::start().await?;
    let biz = with(
        order("qrt_1", "1.00"),
        "qr_code_timeout_express",
        json!("5m"),
    );
    assert_success(&h.call(PRECREATE, biz.clone()).await?);
    assert_eq!(
        h.call(PRECREATE, biz).await?["code"],
        "10000",
        "the identical request again"
    );
    let other = with(
        order("qrt_1", "1.00"),
        "qr_code_timeout_express",
        json!("6m"),
    );
    assert_sub_code(
        &h.call(PRECREATE, other).await?,
        "40004",
        "ACQ.CONTEXT_INCONSISTENT",
    );
    h.advance(301.0).await?;
    let (status, _) = h
        .control_post("/sandbox/trades/qrt_1/scan", json!({}))
        .await?;
    assert_eq!(status, 409, "the QR code lapsed after 5 minutes");

    // Scanned in time, unpaid: the order closes at the same deadline.
    let biz = with(
        order("qrt_2", "1.00"),
        "qr_code_timeout_express",
        json!("5m"),
    );
    assert_success(&h.call(PRECREATE, biz).await?);
    h.control("/sandbox/trades/qrt_2/scan", json!({})).await?;
    h.advance(290.0).await?;
    assert_eq!(h.query("qrt_2").await?["trade_status"], "WAIT_BUYER_PAY");
    h.advance(15.0).await?;
    assert_eq!(h.query("qrt_2").await?["trade_status"], "TRADE_CLOSED");

    let bad = with(
        order("qrt_3", "1.00"),
        "qr_code_timeout_express",
        json!("1.5h"),
    );
    assert_sub_code(
        &h.call(PRECREATE, bad).await?,
        "40004",
        "ACQ.INVALID_PARAMETER",
    );
    Ok(())
}

#[tokio::test]
async fn subjects_with_forbidden_characters_are_refused() -> TestResult {
    let h = Harness::start().await?;
    for subject in ["a/b", "a=b", "tea & cake"] {
        let biz = json!({"out_trade_no": "subj", "total_amount": "1.00", "subject": subject});
        assert_sub_code(
            &h.call(PRECREATE, biz).await?,
            "40004",
            "ACQ.INVALID_PARAMETER",
        );
    }
    assert!(h.running.sandbox().trade("subj").await.is_none());
    let lenient = Harness::start_with(|c| c.rules.subject_special_chars = true).await?;
    let biz = json!({"out_trade_no": "subj", "total_amount": "1.00", "subject": "tea & cake"});
    assert_success(&lenient.call(PRECREATE, biz).await?);
    Ok(())
}

#[tokio::test]
async fn trades_finish_when_the_refund_window_ends() -> TestResult {
    let h = Harness::start().await?;
    h.pay("fin", "9.00", &auth_code("00", 0)).await?;
    let refund = |no: &str| {
        h.call(
            REFUND,
            json!({"out_trade_no": "fin", "refund_amount": "1.00", "out_request_no": no}),
        )
    };
    assert_eq!(refund("f1").await?["fund_change"], "Y");
    h.advance(89.0 * 86_400.0).await?;
    assert_eq!(h.query("fin").await?["trade_status"], "TRADE_SUCCESS");
    h.advance(86_400.0 + 1.0).await?;
    assert_eq!(h.query("fin").await?["trade_status"], "TRADE_FINISHED");
    let node = refund("f2").await?;
    assert_sub_code(&node, "40004", "ACQ.TRADE_HAS_FINISHED");
    assert_eq!(node["out_trade_no"], "fin");
    // The refund made before is still reported (idempotent repeat).
    assert_eq!(refund("f1").await?["fund_change"], "N");
    assert_sub_code(
        &h.call(CLOSE, json!({"out_trade_no": "fin"})).await?,
        "40004",
        "ACQ.TRADE_STATUS_ERROR",
    );
    let trade = h.control_get("/sandbox/trades/fin").await?;
    assert_eq!(trade["stage"], "TRADE_FINISHED");

    let year = Harness::start_with(|c| c.rules.refund_window_days = 365).await?;
    year.pay("fin_y", "1.00", &auth_code("00", 0)).await?;
    year.advance(200.0 * 86_400.0).await?;
    assert_eq!(year.query("fin_y").await?["trade_status"], "TRADE_SUCCESS");
    Ok(())
}

#[tokio::test]
async fn wire_details_match_alipays() -> TestResult {
    let h = Harness::start().await?;
    // 10003 keeps the leading space of Alipay's message.
    let body = h
        .call_raw(
            PAY,
            &json!({"out_trade_no": "w_wait", "total_amount": "1.00", "subject": "s",
                    "scene": "bar_code", "auth_code": auth_code("02", 0)}),
            None,
        )
        .await?;
    assert!(
        body.contains(r#""code":"10003","msg":" order success pay inprocess""#),
        "{body}"
    );
    // Content-Type: text/html although the body is JSON; application/json by rule.
    assert_eq!(answer_content_type(&h).await?, "text/html;charset=utf-8");
    let json_rule = Harness::start_with(|c| {
        c.rules.content_type = alipay_sandbox::rules::AnswerContentType::Json;
    })
    .await?;
    assert_eq!(
        answer_content_type(&json_rule).await?,
        "application/json;charset=utf-8"
    );
    Ok(())
}

/// The `Content-Type` of a query's answer.
async fn answer_content_type(h: &Harness) -> TestResult<String> {
    let signed = h.sign(QUERY, &json!({"out_trade_no": "w_wait"}), None)?;
    let response = h
        .http
        .post(format!("{}?{}", h.running.gateway_url(), signed.query))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(signed.body)
        .send()
        .await?;
    Ok(response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned())
}

#[tokio::test]
async fn scans_notify_wait_buyer_pay_with_34_digit_ids() -> TestResult {
    let h = Harness::start().await?;
    let receiver = Receiver::failing_first(0).await?;
    assert_success(
        &h.call_notify(PRECREATE, order("wbp", "7.00"), &receiver.url)
            .await?,
    );
    h.control("/sandbox/trades/wbp/scan", json!({"buyer_id": BUYER}))
        .await?;
    let received = receiver.wait_for(1).await?;
    let waiting = verify_notification(&h, &received[0].body)?;
    assert_eq!(waiting["trade_status"], "WAIT_BUYER_PAY");
    assert_eq!(waiting["total_amount"], "7.00");
    assert!(waiting.contains_key("gmt_create") && waiting.contains_key("trade_no"));
    for absent in [
        "gmt_payment",
        "receipt_amount",
        "buyer_pay_amount",
        "invoice_amount",
        "point_amount",
        "fund_bill_list",
    ] {
        assert!(!waiting.contains_key(absent), "{absent}: {waiting:?}");
    }
    h.control("/sandbox/trades/wbp/pay", json!({})).await?;
    let received = receiver.wait_for(2).await?;
    let paid = verify_notification(&h, &received[1].body)?;
    assert_eq!(paid["trade_status"], "TRADE_SUCCESS");
    for notification in [&waiting, &paid] {
        let id = &notification["notify_id"];
        assert_eq!(id.len(), 34, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id}");
        assert_eq!(&id[8..13], "00222", "{id}");
        let created = &notification["gmt_create"];
        let date: String = created.chars().filter(char::is_ascii_digit).collect();
        assert_eq!(&id[..8], &date[..8], "the Beijing date of {created}");
    }
    assert_ne!(waiting["notify_id"], paid["notify_id"]);

    // Off by switch; a barcode payment waiting for the buyer sends none either.
    let quiet = Receiver::failing_first(0).await?;
    h.control(
        "/sandbox/trades/wbp_off/notifications/switches",
        json!({"wait_buyer_pay": false}),
    )
    .await?;
    h.call_notify(PRECREATE, order("wbp_off", "1.00"), &quiet.url)
        .await?;
    h.control("/sandbox/trades/wbp_off/scan", json!({})).await?;
    h.call_notify(
        PAY,
        json!({"out_trade_no": "wbp_bar", "total_amount": "1.00", "subject": "s",
               "scene": "bar_code", "auth_code": auth_code("02", 0)}),
        &quiet.url,
    )
    .await?;
    quiet.assert_stays_at(0).await?;
    Ok(())
}

#[tokio::test]
async fn buyers_are_known_by_open_id_unless_the_app_uses_user_ids() -> TestResult {
    let h = Harness::start().await?;
    let receiver = Receiver::failing_first(0).await?;
    let node = h
        .call_notify(
            PAY,
            json!({"out_trade_no": "oid", "total_amount": "2.00", "subject": "s",
                   "scene": "bar_code", "auth_code": auth_code("00", 0)}),
            &receiver.url,
        )
        .await?;
    let expected = open_id(&h.app_id, BUYER);
    assert_eq!(node["buyer_open_id"], expected.as_str());
    assert!(node.get("buyer_user_id").is_none());
    assert_eq!(h.query("oid").await?["buyer_open_id"], expected.as_str());
    let refunded = h
        .call(
            REFUND,
            json!({"out_trade_no": "oid", "refund_amount": "2.00"}),
        )
        .await?;
    assert_eq!(refunded["buyer_open_id"], expected.as_str());
    let received = receiver.wait_for(1).await?;
    let fields = verify_notification(&h, &received[0].body)?;
    assert_eq!(fields["buyer_open_id"], expected);
    assert!(!fields.contains_key("buyer_id"), "{fields:?}");

    // Switched per app (control API) to user ids.
    let rules = h
        .control("/sandbox/rules", json!({"buyer_id": "user_id"}))
        .await?;
    assert_eq!(rules["buyer_id"], "user_id");
    assert_eq!(rules["product_code"], "FACE_TO_FACE_PAYMENT");
    let node = h
        .call_notify(
            PAY,
            json!({"out_trade_no": "uid", "total_amount": "2.00", "subject": "s",
                   "scene": "bar_code", "auth_code": auth_code("00", 0)}),
            &receiver.url,
        )
        .await?;
    assert_eq!(node["buyer_user_id"], BUYER);
    assert!(node.get("buyer_open_id").is_none());
    let received = receiver.wait_for(2).await?;
    let fields = verify_notification(&h, &received[1].body)?;
    assert_eq!(fields["buyer_id"], BUYER);
    assert!(!fields.contains_key("buyer_open_id"));
    let (status, body) = h
        .control_post("/sandbox/rules", json!({"buyer_id": "phone"}))
        .await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        h.control_get("/sandbox/rules").await?["buyer_id"],
        "user_id"
    );
    Ok(())
}
