//! Notifications: content and signature, Alipay's retry schedule, and every switch.

use crate::common::*;
use serde_json::{Value, json};
use std::sync::Arc;

async fn paid_with_notify(
    h: &Harness,
    out_trade_no: &str,
    receiver: &Receiver,
) -> TestResult<Value> {
    h.call_notify(
        PAY,
        json!({
            "out_trade_no": out_trade_no, "total_amount": "0.10", "subject": "通知测试",
            "body": "详情", "scene": "bar_code", "auth_code": auth_code("00", 0),
        }),
        &receiver.url,
    )
    .await
}

async fn log(h: &Harness, out_trade_no: &str) -> TestResult<Vec<Value>> {
    let value = h
        .control_get(&format!(
            "/sandbox/notifications?out_trade_no={out_trade_no}"
        ))
        .await?;
    Ok(value.as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn notification_is_signed_complete_and_retried_until_success() -> TestResult {
    let h = Harness::start().await?;
    let receiver = Receiver::failing_first(3).await?;
    // notify_url is a system parameter, stored with the order.
    let node = h
        .call_notify(
            PRECREATE,
            json!({"out_trade_no": "n1", "total_amount": "0.10", "subject": "通知测试"}),
            &receiver.url,
        )
        .await?;
    assert_success(&node);
    // Only the payment's notification here (the scan's is tested in fidelity.rs).
    h.control(
        "/sandbox/trades/n1/notifications/switches",
        json!({"wait_buyer_pay": false}),
    )
    .await?;
    h.control("/sandbox/trades/n1/pay", json!({})).await?;

    let first = receiver.wait_for(1).await?;
    let fields = verify_notification(&h, &first[0].body)?;
    assert!(
        first[0].content_type.contains("charset=utf-8"),
        "{}",
        first[0].content_type
    );
    for key in [
        "notify_time",
        "notify_type",
        "notify_id",
        "app_id",
        "auth_app_id",
        "charset",
        "version",
        "trade_no",
        "out_trade_no",
        "buyer_open_id",
        "buyer_logon_id",
        "seller_id",
        "seller_email",
        "trade_status",
        "total_amount",
        "receipt_amount",
        "invoice_amount",
        "buyer_pay_amount",
        "point_amount",
        "subject",
        "gmt_create",
        "gmt_payment",
        "fund_bill_list",
        "sign_type",
    ] {
        assert!(fields.contains_key(key), "missing {key}: {fields:?}");
    }
    assert_eq!(fields["notify_type"], "trade_status_sync");
    assert_eq!(fields["trade_status"], "TRADE_SUCCESS");
    assert_eq!(fields["app_id"], h.app_id);
    assert_eq!(fields["total_amount"], "0.10");
    assert_eq!(fields["subject"], "通知测试");
    assert_eq!(fields["version"], "1.0");
    assert_eq!(
        fields["fund_bill_list"],
        r#"[{"amount":"0.10","fundChannel":"ALIPAYACCOUNT"}]"#
    );
    let notify_id = fields["notify_id"].clone();

    // Retries at 4m, then 10m, then 10m after the previous attempt; the fourth succeeds.
    h.advance(235.0).await?;
    receiver.assert_stays_at(1).await?;
    h.advance(5.0).await?;
    receiver.wait_for(2).await?;
    h.advance(595.0).await?;
    receiver.assert_stays_at(2).await?;
    h.advance(5.0).await?;
    receiver.wait_for(3).await?;
    h.advance(600.0).await?;
    let all = receiver.wait_for(4).await?;
    h.advance(86_400.0).await?;
    receiver.assert_stays_at(4).await?;
    for request in &all {
        let fields = verify_notification(&h, &request.body)?;
        assert_eq!(
            fields["notify_id"], notify_id,
            "notify_id must be stable across retries"
        );
    }

    let log = log(&h, "n1").await?;
    assert_eq!(log.len(), 1);
    let attempts = log[0]["attempts"].as_array().cloned().unwrap_or_default();
    let outcomes: Vec<(Value, Value)> = attempts
        .iter()
        .map(|a| (a["http_status"].clone(), a["success"].clone()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (json!(500), json!(false)),
            (json!(500), json!(false)),
            (json!(500), json!(false)),
            (json!(200), json!(true))
        ]
    );
    assert_eq!(attempts[0]["response_body"], "fail");
    assert_eq!(attempts[0]["url"], receiver.url.as_str());
    assert_eq!(log[0]["delivered"], true);
    Ok(())
}

#[tokio::test]
async fn retries_follow_alipays_full_schedule_and_then_stop() -> TestResult {
    let h = Harness::start().await?;
    let receiver = Receiver::failing_first(usize::MAX).await?;
    paid_with_notify(&h, "sched", &receiver).await?;
    receiver.wait_for(1).await?;
    // Each gap counts from the previous attempt: 4m, 10m, 10m, 1h, 2h, 6h, 15h.
    for (i, minutes) in [4.0, 10.0, 10.0, 60.0, 120.0, 360.0, 900.0]
        .iter()
        .enumerate()
    {
        h.advance(minutes * 60.0 - 5.0).await?;
        receiver.assert_stays_at(i + 1).await?;
        h.advance(5.0).await?;
        receiver.wait_for(i + 2).await?;
    }
    h.advance(7.0 * 86_400.0).await?;
    receiver.assert_stays_at(8).await?;
    let log = log(&h, "sched").await?;
    assert_eq!(log[0]["gave_up"], true, "{}", log[0]);
    assert_eq!(log[0]["delivered"], false);
    assert_eq!(log[0]["attempts"].as_array().map(Vec::len), Some(8));
    Ok(())
}

#[tokio::test]
async fn retries_run_by_themselves_under_time_scale_never_early() -> TestResult {
    let h = Harness::start_with(|c| c.time_scale = 36_000.0).await?;
    let receiver = Receiver::failing_first(usize::MAX).await?;
    paid_with_notify(&h, "scaled", &receiver).await?;
    // 24h22m of sandbox time: about 2.4 s of real time, with nobody advancing the clock.
    receiver.wait_for(8).await?;
    let mut log = Vec::new();
    for _ in 0..100 {
        log = self::log(&h, "scaled").await?;
        if log.first().is_some_and(|n| n["gave_up"] == true) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let notification = log.first().ok_or_else(|| err("no notification"))?;
    assert_eq!(notification["gave_up"], true, "{notification}");
    let times: Vec<i64> = notification["attempts"]
        .as_array()
        .map(|a| a.iter().filter_map(|a| a["at_ms"].as_i64()).collect())
        .unwrap_or_default();
    assert_eq!(times.len(), 8);
    for (i, minutes) in [4, 10, 10, 60, 120, 360, 900].iter().enumerate() {
        let gap = (times[i + 1] - times[i]) / 1000;
        let expected = minutes * 60;
        assert!(
            gap >= expected,
            "retry {} came early: {gap}s < {expected}s",
            i + 1
        );
        // At 36000x, 0.5 s of real scheduling latency is 5 h of sandbox time.
        assert!(
            gap <= expected + 18_000,
            "retry {} came late: {gap}s vs {expected}s",
            i + 1
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        receiver.received().len(),
        8,
        "no attempt after the schedule ends"
    );
    Ok(())
}

#[tokio::test]
async fn duplicates_switch_sends_each_attempt_twice() -> TestResult {
    let h = Harness::start().await?;
    let receiver = Receiver::failing_first(0).await?;
    h.control(
        "/sandbox/trades/dup/notifications/switches",
        json!({"duplicates": true}),
    )
    .await?;
    paid_with_notify(&h, "dup", &receiver).await?;
    let received = receiver.wait_for(2).await?;
    assert_eq!(received[0].body, received[1].body);
    receiver.assert_stays_at(2).await?;
    // The switch was only for that trade.
    paid_with_notify(&h, "dup_not", &receiver).await?;
    receiver.wait_for(3).await?;
    receiver.assert_stays_at(3).await?;
    Ok(())
}

#[tokio::test]
async fn out_of_order_switch_delivers_a_stale_notification_after_the_new_one() -> TestResult {
    let h = Harness::start().await?;
    let receiver = Receiver::failing_first(0).await?;
    h.control(
        "/sandbox/notifications/switches",
        json!({"out_of_order": true, "refunds": true}),
    )
    .await?;
    paid_with_notify(&h, "ooo", &receiver).await?;
    let received = receiver.wait_for(2).await?;
    let newer = verify_notification(&h, &received[0].body)?;
    let older = verify_notification(&h, &received[1].body)?;
    assert_eq!(newer["trade_status"], "TRADE_SUCCESS");
    assert_eq!(older["trade_status"], "WAIT_BUYER_PAY");
    assert!(!older.contains_key("gmt_payment"));
    // A full refund (TRADE_CLOSED) is followed by the previous TRADE_SUCCESS notification again.
    h.call(
        REFUND,
        json!({"out_trade_no": "ooo", "refund_amount": "0.10"}),
    )
    .await?;
    let received = receiver.wait_for(4).await?;
    let closed = verify_notification(&h, &received[2].body)?;
    let stale = verify_notification(&h, &received[3].body)?;
    assert_eq!(closed["trade_status"], "TRADE_CLOSED");
    assert_eq!(closed["refund_fee"], "0.10");
    assert_eq!(closed["out_biz_no"], "ooo");
    assert_eq!(stale["trade_status"], "TRADE_SUCCESS");
    assert_eq!(stale["notify_id"], newer["notify_id"]);
    Ok(())
}

#[tokio::test]
async fn gbk_switch_encodes_and_signs_in_gbk() -> TestResult {
    let h = Harness::start().await?;
    let receiver = Receiver::failing_first(0).await?;
    h.control("/sandbox/notifications/switches", json!({"gbk": true}))
        .await?;
    paid_with_notify(&h, "gbk", &receiver).await?;
    let received = receiver.wait_for(1).await?;
    assert!(
        received[0].content_type.contains("charset=GBK"),
        "{}",
        received[0].content_type
    );
    let raw = String::from_utf8_lossy(&received[0].body).into_owned();
    // "通知" in GBK is CD A8 D6 AA.
    assert!(raw.contains("subject=%CD%A8%D6%AA"), "{raw}");
    let fields = verify_notification(&h, &received[0].body)?;
    assert_eq!(fields["charset"], "GBK");
    assert_eq!(fields["subject"], "通知测试");
    assert_eq!(fields["body"], "详情");
    Ok(())
}

#[tokio::test]
async fn bad_signature_switch_fails_verification() -> TestResult {
    let h = Harness::start().await?;
    let receiver = Receiver::failing_first(0).await?;
    h.control(
        "/sandbox/trades/badsig/notifications/switches",
        json!({"bad_signature": true}),
    )
    .await?;
    paid_with_notify(&h, "badsig", &receiver).await?;
    let received = receiver.wait_for(1).await?;
    let verdict = alipay::notify::verify(&received[0].body, &h.verifier);
    assert!(
        matches!(verdict, Err(alipay::notify::NotifyError::BadSignature(_))),
        "{verdict:?}"
    );
    Ok(())
}

#[tokio::test]
async fn late_switch_delays_the_first_attempt() -> TestResult {
    let h = Harness::start().await?;
    let receiver = Receiver::failing_first(0).await?;
    h.control(
        "/sandbox/notifications/switches",
        json!({"late_seconds": 600}),
    )
    .await?;
    paid_with_notify(&h, "late", &receiver).await?;
    receiver.assert_stays_at(0).await?;
    h.advance(595.0).await?;
    receiver.assert_stays_at(0).await?;
    h.advance(6.0).await?;
    receiver.wait_for(1).await?;
    Ok(())
}

#[tokio::test]
async fn closed_notifications_are_opt_in() -> TestResult {
    let h = Harness::start().await?;
    let receiver = Receiver::failing_first(0).await?;
    let waiting = |out: &str| json!({"out_trade_no": out, "total_amount": "1.00", "subject": "s", "scene": "bar_code", "auth_code": auth_code("02", 0)});
    h.call_notify(PAY, waiting("closed_off"), &receiver.url)
        .await?;
    h.call(CLOSE, json!({"out_trade_no": "closed_off"})).await?;
    receiver.assert_stays_at(0).await?;
    h.control(
        "/sandbox/notifications/switches",
        json!({"trade_closed": true}),
    )
    .await?;
    h.call_notify(PAY, waiting("closed_on"), &receiver.url)
        .await?;
    h.call(CLOSE, json!({"out_trade_no": "closed_on"})).await?;
    let received = receiver.wait_for(1).await?;
    let fields = verify_notification(&h, &received[0].body)?;
    assert_eq!(fields["trade_status"], "TRADE_CLOSED");
    assert!(fields.contains_key("gmt_close"));
    assert!(!fields.contains_key("gmt_payment"));
    let switches = h.control_get("/sandbox/notifications/switches").await?;
    assert_eq!(switches["trade_closed"], true);
    Ok(())
}

#[tokio::test]
async fn receiver_answers_other_than_exactly_success_are_failures() -> TestResult {
    let h = Harness::start().await?;
    let receiver = Receiver::start(Arc::new(|n| match n {
        0 => (200, "success\n"),
        1 => (200, "SUCCESS"),
        2 => (404, "success"),
        _ => (200, "success"),
    }))
    .await?;
    paid_with_notify(&h, "strict", &receiver).await?;
    receiver.wait_for(1).await?;
    h.advance(240.0).await?;
    receiver.wait_for(2).await?;
    h.advance(600.0).await?;
    receiver.wait_for(3).await?;
    h.advance(600.0).await?;
    receiver.wait_for(4).await?;
    h.advance(3600.0).await?;
    receiver.assert_stays_at(4).await?;
    let log = log(&h, "strict").await?;
    assert_eq!(log[0]["delivered"], true);
    Ok(())
}
