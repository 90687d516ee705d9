//! Refunds through the merchant API, against the AWS emulator and the Alipay sandbox: partial
//! and full, idempotent replays, concurrency, every fault at the refund call, refusals, and
//! orders that cannot be refunded.

mod common;

use alipay::api::{CancelAction, CancelRequest, TradeRef};
use alipay::outcome::Outcome;
use common::*;
use domain::OutTradeNo;
use domain::anomaly::AnomalyKind;
use domain::order::OrderStatus;
use domain::order::{Buyer, NewOrder, Order, PaymentSource};
use domain::ports::PaymentGateway;
use domain::ports::{Applied, Claim, OrderStore};
use domain::{OrderAmount, Scene};
use serde_json::{Value, json};

/// Every barcode order of these tests is for 12.34 yuan.
const PAID_FEN: i64 = 1234;

/// A barcode payment the sandbox's buyer pays at once: PAID.
async fn paid_order(pay: &Pay, env: &Env) -> TestResult<String> {
    let no = out_trade_no();
    let (status, order, _) = pay
        .create(env, &barcode_body(&no, &auth_code("00", 0)))
        .await;
    assert_eq!(
        (status, order["status"].as_str()),
        (201, Some("PAID")),
        "{order}"
    );
    Ok(no)
}

fn refund_body(out_request_no: &str, amount_fen: i64) -> String {
    json!({"out_request_no": out_request_no, "amount_fen": amount_fen, "reason": "退货 returned", "operator_id": "op_7"}).to_string()
}

fn path(no: &str) -> String {
    format!("/v1/payments/{no}/refunds")
}

/// POSTs a signed refund; (status, body, replayed header, Retry-After).
async fn refund(pay: &Pay, env: &Env, no: &str, body: &str) -> (u16, Value, Option<String>) {
    let response = pay.api.handle(env.signed("POST", &path(no), body)).await;
    (
        response.status().as_u16(),
        body_json(&response),
        header(&response, "idempotent-replayed").map(str::to_owned),
    )
}

/// The sandbox's refunds of the trade (its truth).
async fn alipay_refunds(env: &Env, no: &str) -> TestResult<Vec<Value>> {
    let trade = env.sandbox_get(&format!("/sandbox/trades/{no}")).await?;
    Ok(trade["refunds"].as_array().cloned().unwrap_or_default())
}

async fn stored(pay: &Pay, no: &str) -> TestResult<Order> {
    pay.orders
        .get(&OutTradeNo::parse(no)?)
        .await?
        .ok_or_else(|| err("no order"))
}

#[tokio::test]
async fn partial_then_full_refunds_end_refunded_and_each_is_replayed() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = paid_order(&pay, &env).await?;

    let (status, first, replayed) = refund(&pay, &env, &no, &refund_body("R1", 234)).await;
    assert_eq!((status, replayed), (201, None), "{first}");
    assert_eq!(first["status"], "SUCCEEDED");
    assert_eq!(first["out_trade_no"], no.as_str());
    assert_eq!(first["out_request_no"], "R1");
    assert_eq!(first["amount_fen"], 234);
    assert_eq!(first["reason"], "退货 returned");
    assert_eq!(first["order_status"], "PARTIALLY_REFUNDED");
    assert_eq!(first["order_refunded_fen"], 234);
    assert_eq!(first["refundable_fen"], 1000);
    assert!(first["refunded_at"].is_string(), "{first}");
    assert_eq!(pay.alipay.count("refund"), 1);
    assert_eq!(pay.alipay.count("refund_query"), 0, "fund_change=Y decides");

    // More than the remainder is refused before Alipay is asked.
    let (status, error, _) = refund(&pay, &env, &no, &refund_body("R2", 1001)).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["code"], "refund_exceeds_paid");
    assert_eq!(error["field"], "amount_fen");
    assert_eq!(error["refundable_fen"], 1000);
    assert_eq!(pay.alipay.count("refund"), 1);

    let (status, full, _) = refund(&pay, &env, &no, &refund_body("R2", 1000)).await;
    assert_eq!(status, 201, "{full}");
    assert_eq!(full["order_status"], "REFUNDED");
    assert_eq!(full["order_refunded_fen"], PAID_FEN);
    assert_eq!(full["refundable_fen"], 0);

    // Replays: the same answer, nothing sent.
    let (status, again, replayed) = refund(&pay, &env, &no, &refund_body("R1", 234)).await;
    assert_eq!(
        (status, replayed.as_deref()),
        (200, Some("true")),
        "{again}"
    );
    assert_eq!(again["status"], "SUCCEEDED");
    assert_eq!(again["order_status"], "REFUNDED", "the order as it is now");
    let (status, error, _) = refund(&pay, &env, &no, &refund_body("R1", 233)).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (422, Some("idempotency_mismatch"))
    );
    assert_eq!(error["field"], "out_request_no");
    let (status, error, _) = refund(&pay, &env, &no, &refund_body("R3", 1)).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (409, Some("order_refunded"))
    );
    assert_eq!(pay.alipay.count("refund"), 2);

    // Alipay's truth agrees, and so does the order.
    let refunds = alipay_refunds(&env, &no).await?;
    assert_eq!(refunds.len(), 2);
    assert_eq!(refunds[0]["out_request_no"], "R1");
    assert_eq!(refunds[0]["refund_amount"], "2.34");
    assert_eq!(refunds[0]["operator_id"], "op_7");
    let order = stored(&pay, &no).await?;
    assert_eq!(order.status().as_str(), "REFUNDED");
    assert_eq!(order.refunded_fen(), PAID_FEN);
    assert_eq!(order.lease_holder(), None);
    Ok(())
}

#[tokio::test]
async fn twenty_concurrent_identical_refunds_send_one_refund() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = paid_order(&pay, &env).await?;
    let body = refund_body("R1", 500);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let api = pay.api.clone();
        let request = env.signed("POST", &path(&no), &body);
        tasks.spawn(async move { api.handle(request).await });
    }
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    while let Some(response) = tasks.join_next().await {
        let response = response?;
        let status = response.status().as_u16();
        *statuses.entry(status).or_default() += 1;
        let body = body_json(&response);
        match status {
            201 | 200 => assert_eq!(body["status"], "SUCCEEDED", "{body}"),
            409 => {
                assert_eq!(body["code"], "refund_in_flight", "{body}");
                assert!(header(&response, "retry-after").is_some());
            }
            other => return Err(err(format!("unexpected {other}: {body}"))),
        }
    }
    assert_eq!(statuses.get(&201), Some(&1), "{statuses:?}");
    assert_eq!(pay.alipay.count("refund"), 1, "one Alipay refund");
    assert_eq!(alipay_refunds(&env, &no).await?.len(), 1);
    assert_eq!(stored(&pay, &no).await?.refunded_fen(), 500);
    Ok(())
}

#[tokio::test]
async fn two_concurrent_refunds_above_the_paid_amount_cannot_both_succeed() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = paid_order(&pay, &env).await?;
    let (a, b) = (refund_body("RA", 1000), refund_body("RB", 1000));
    let (first, second) = tokio::join!(
        pay.api.handle(env.signed("POST", &path(&no), &a)),
        pay.api.handle(env.signed("POST", &path(&no), &b)),
    );
    let mut succeeded = 0;
    for response in [first, second] {
        let status = response.status().as_u16();
        let body = body_json(&response);
        match status {
            201 => succeeded += 1,
            409 => assert_eq!(body["code"], "order_refund_in_flight", "{body}"),
            422 => assert_eq!(body["code"], "refund_exceeds_paid", "{body}"),
            other => return Err(err(format!("unexpected {other}: {body}"))),
        }
    }
    assert_eq!(succeeded, 1);
    // Retrying both until they answer definitively changes nothing.
    for body in [&a, &b] {
        let (status, answer, _) = refund(&pay, &env, &no, body).await;
        assert!(
            (status == 200 && answer["status"] == "SUCCEEDED")
                || (status == 422 && answer["refundable_fen"] == 234),
            "{status} {answer}"
        );
    }
    assert_eq!(pay.alipay.count("refund"), 1);
    assert_eq!(alipay_refunds(&env, &no).await?.len(), 1);
    assert_eq!(stored(&pay, &no).await?.refunded_fen(), 1000);
    Ok(())
}

/// Every fault at the refund call ends with the order agreeing with the sandbox: exactly one
/// refund at Alipay, SUCCEEDED here, answered by this very request (a refund query and, when
/// nothing arrived, the identical refund again).
#[tokio::test]
async fn every_fault_at_the_refund_call_converges_to_alipay_s_truth() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let faults = [
        json!({"method": "alipay.trade.refund", "drop_connection": true, "apply": true}),
        json!({"method": "alipay.trade.refund", "drop_connection": true}),
        json!({"method": "alipay.trade.refund", "code": "20000", "sub_code": "isp.unknow-error", "apply": true}),
        json!({"method": "alipay.trade.refund", "code": "20000", "sub_code": "isp.unknow-error"}),
        json!({"method": "alipay.trade.refund", "code": "40004", "sub_code": "ACQ.SYSTEM_ERROR", "apply": true}),
        json!({"method": "alipay.trade.refund", "unsigned": true}),
        json!({"method": "alipay.trade.refund", "bad_signature": true}),
        json!({"method": "alipay.trade.refund", "delay_ms": 7000}),
    ];
    for fault in faults {
        let no = paid_order(&pay, &env).await?;
        env.fault(fault.clone()).await?;
        let (status, answer, _) = refund(&pay, &env, &no, &refund_body("R1", 1234)).await;
        assert_eq!(status, 201, "{fault}: {answer}");
        assert_eq!(answer["status"], "SUCCEEDED", "{fault}: {answer}");
        assert_eq!(answer["order_status"], "REFUNDED", "{fault}");
        let refunds = alipay_refunds(&env, &no).await?;
        assert_eq!(refunds.len(), 1, "{fault}: one refund at Alipay");
        assert_eq!(refunds[0]["refund_amount"], "12.34");
    }
    Ok(())
}

/// When Alipay stays unknown for every attempt the refund is PENDING (202) with its amount
/// reserved, and an identical retry finishes it.
#[tokio::test]
async fn an_unresolved_refund_stays_reserved_and_a_retry_finishes_it() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = paid_order(&pay, &env).await?;
    let expiries_before = env.queued_expiries().await?;
    env.fault(json!({"method": "alipay.trade.refund", "drop_connection": true, "times": 2}))
        .await?;
    let response = pay
        .api
        .handle(env.signed("POST", &path(&no), &refund_body("R1", 1000)))
        .await;
    let answer = body_json(&response);
    assert_eq!(response.status().as_u16(), 202, "{answer}");
    assert!(header(&response, "retry-after").is_some());
    assert_eq!(answer["status"], "PENDING");
    assert_eq!(answer["pending_reason"], "refund_outcome_unknown");
    assert_eq!(answer["refundable_fen"], 234, "the amount stays reserved");
    assert_eq!(alipay_refunds(&env, &no).await?.len(), 0);
    assert_eq!(
        env.queued_expiries().await?,
        expiries_before + 1,
        "the re-check is scheduled"
    );
    // Nothing can be refunded beyond the reservation meanwhile.
    let (status, error, _) = refund(&pay, &env, &no, &refund_body("R2", 235)).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (422, Some("refund_exceeds_paid"))
    );

    // A GET asks, but never sends a refund.
    let orders = query::Orders {
        store: pay.orders.clone(),
        gateway: pay.alipay.clone(),
        clock: f2f_runtime::SystemClock,
        sync_after: std::time::Duration::ZERO,
    };
    let sent = pay.alipay.count("refund");
    match orders
        .lookup_refund(
            &OutTradeNo::parse(&no)?,
            &domain::OutRequestNo::parse("R1")?,
        )
        .await?
    {
        query::sync::RefundLookup::Found(looked) => {
            assert_eq!(looked.order.reserved_fen(), 1000);
        }
        other => return Err(err(format!("{other:?}"))),
    }
    assert_eq!(pay.alipay.count("refund"), sent);

    let (status, done, replayed) = refund(&pay, &env, &no, &refund_body("R1", 1000)).await;
    assert_eq!((status, replayed.as_deref()), (200, Some("true")), "{done}");
    assert_eq!(done["status"], "SUCCEEDED");
    assert_eq!(done["refundable_fen"], 234);
    assert_eq!(alipay_refunds(&env, &no).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_definitive_refusal_fails_the_refund_and_releases_its_amount() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = paid_order(&pay, &env).await?;
    env.fault(json!({"method": "alipay.trade.refund", "code": "40004", "sub_code": "ACQ.SELLER_BALANCE_NOT_ENOUGH", "sub_msg": "卖家余额不足"}))
        .await?;
    let (status, failed, _) = refund(&pay, &env, &no, &refund_body("R1", 1234)).await;
    assert_eq!(status, 201, "{failed}");
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(failed["failure"]["code"], "ACQ.SELLER_BALANCE_NOT_ENOUGH");
    assert_eq!(failed["order_status"], "PAID");
    assert_eq!(failed["refundable_fen"], PAID_FEN);
    let (status, again, replayed) = refund(&pay, &env, &no, &refund_body("R1", 1234)).await;
    assert_eq!((status, replayed.as_deref()), (200, Some("true")));
    assert_eq!(again["status"], "FAILED", "a failed number stays failed");
    let (status, ok, _) = refund(&pay, &env, &no, &refund_body("R2", 1234)).await;
    assert_eq!(
        (status, ok["status"].as_str()),
        (201, Some("SUCCEEDED")),
        "{ok}"
    );
    assert_eq!(pay.alipay.count("refund"), 2);
    Ok(())
}

/// A cancel refunded the buyer but its answer never came back (the order stayed PAID here):
/// Alipay refuses the refund because the trade is closed, and the order is brought in line
/// with Alipay by asking for the trade: REFUNDED, with the anomaly that explains it.
#[tokio::test]
async fn a_refund_refused_because_a_lost_cancel_closed_the_trade_learns_the_trade_s_state()
-> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = paid_order(&pay, &env).await?;
    let cancelled = pay
        .alipay
        .cancel(&CancelRequest::new(TradeRef::out_trade_no(&no)))
        .await;
    assert!(
        matches!(&cancelled, Outcome::Success(c) if c.action == CancelAction::Refund),
        "{cancelled:?}"
    );
    assert_eq!(stored(&pay, &no).await?.status(), OrderStatus::Paid);

    let (status, failed, _) = refund(&pay, &env, &no, &refund_body("R1", 100)).await;
    assert_eq!(status, 201, "{failed}");
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(failed["failure"]["code"], "ACQ.TRADE_STATUS_ERROR");
    assert_eq!(failed["order_status"], "REFUNDED", "{failed}");
    let order = stored(&pay, &no).await?;
    assert_eq!(
        (order.status(), order.refunded_fen(), order.refundable_fen()),
        (OrderStatus::Refunded, PAID_FEN, 0)
    );
    let kinds: Vec<AnomalyKind> = pay
        .orders
        .anomalies_of_order(&OutTradeNo::parse(&no)?)
        .await?
        .iter()
        .map(|a| a.latest.kind)
        .collect();
    assert_eq!(kinds, vec![AnomalyKind::RefundedByCancel]);
    // Nothing is left to refund: refused here, nothing sent.
    let (status, error, _) = refund(&pay, &env, &no, &refund_body("R2", 1)).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (409, Some("order_refunded"))
    );
    assert_eq!(pay.alipay.count("refund"), 1);
    Ok(())
}

#[tokio::test]
async fn orders_that_are_not_paid_are_refused_with_nothing_sent() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    // PENDING: a QR code nobody paid.
    let pending = out_trade_no();
    let (status, _, _) = pay.create(&env, &qr_body(&pending, 100)).await;
    assert_eq!(status, 201);
    let (status, error, _) = refund(&pay, &env, &pending, &refund_body("R1", 1)).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (409, Some("order_not_paid"))
    );
    // CLOSED: a barcode payment the buyer declined.
    let closed = out_trade_no();
    let (_, order, _) = pay
        .create(&env, &barcode_body(&closed, &auth_code("02", 0)))
        .await;
    let code = match order["status"].as_str() {
        Some("CLOSED") => "order_closed",
        Some("FAILED") => "order_failed",
        other => return Err(err(format!("unexpected {other:?}: {order}"))),
    };
    let (status, error, _) = refund(&pay, &env, &closed, &refund_body("R1", 1)).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (409, Some(code)),
        "{error}"
    );
    // REFUNDED by a cancel: nothing left to refund.
    let cancelled = refunded_by_cancel(&pay).await?;
    let (status, error, _) = refund(&pay, &env, &cancelled, &refund_body("R1", 1)).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (409, Some("order_refunded"))
    );
    // No such order.
    let (status, error, _) = refund(&pay, &env, "NO_SUCH_ORDER", &refund_body("R1", 1)).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (404, Some("order_not_found"))
    );
    assert_eq!(pay.alipay.count("refund"), 0, "nothing was sent");
    Ok(())
}

/// An order a cancel refunded in full, as the barcode flow leaves it.
async fn refunded_by_cancel(pay: &Pay) -> TestResult<String> {
    let no = out_trade_no();
    let now = chrono::Utc::now();
    let new = NewOrder {
        out_trade_no: OutTradeNo::parse(&no)?,
        amount: OrderAmount::from_fen(PAID_FEN)?,
        subject: "tea".into(),
        scene: Scene::Barcode,
        store_id: None,
        operator_id: None,
        terminal_id: None,
        request_hash: "h".into(),
        expires_at: now + chrono::Duration::minutes(15),
    };
    let (order, event) = Order::claim(new, now, chrono::Duration::seconds(15));
    assert_eq!(pay.orders.claim(&order, &event).await?, Claim::Claimed);
    let paid = order.paid(
        "2024TRADE".into(),
        now,
        PaymentSource::PayResponse,
        Buyer::default(),
        now,
    )?;
    let Applied::Applied(paid) = pay.orders.apply(&paid).await? else {
        return Err(err("not applied"));
    };
    let refunded = paid.refunded_by_cancel(None, now)?;
    let Applied::Applied(_) = pay.orders.apply(&refunded).await? else {
        return Err(err("not applied"));
    };
    Ok(no)
}

/// The happy path's cost, measured by the SDK interceptor and the counting gateway.
#[tokio::test]
async fn a_refund_costs_two_transactions_and_one_alipay_call() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = paid_order(&pay, &env).await?;
    let before = pay
        .alipay
        .calls
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default();
    env.aws_calls.reset();
    let (status, _, _) = refund(&pay, &env, &no, &refund_body("R1", 100)).await;
    assert_eq!(status, 201);
    let aws = env.aws_calls.snapshot();
    let after = pay
        .alipay
        .calls
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default();
    let alipay: u32 = after.values().sum::<u32>() - before.values().sum::<u32>();
    println!("refund happy path: AWS {aws:?}; Alipay calls {alipay}");
    assert_eq!(alipay, 1, "exactly one refund call");
    assert_eq!(aws.get("DynamoDB.TransactWriteItems"), Some(&2), "{aws:?}");
    assert_eq!(aws.get("DynamoDB.GetItem"), Some(&1), "{aws:?}");
    assert_eq!(
        aws.get("SQS.SendMessage"),
        Some(&1),
        "the re-check: {aws:?}"
    );
    Ok(())
}
