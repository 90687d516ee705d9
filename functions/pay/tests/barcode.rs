//! Barcode payments (`alipay.trade.pay`) against the sandbox's payment code conventions:
//! success, confirmation then success, never confirmed, definitive failures, unknown outcomes
//! that did or did not happen, and a cancel of unknown outcome. The payment code never
//! reaches the logs or the table.

mod common;

use common::*;
use domain::OutTradeNo;
use domain::order::Order;
use domain::ports::{Claim, OrderStore};
use serde_json::{Value, json};

async fn trade(env: &Env, no: &str) -> TestResult<Value> {
    env.sandbox_get(&format!("/sandbox/trades/{no}")).await
}

async fn assert_never_recorded(env: &Env, code: &str) -> TestResult {
    assert!(
        !captured_logs().contains(code),
        "the payment code was logged"
    );
    assert!(
        !env.table_dump().await?.contains(code),
        "the payment code was stored"
    );
    Ok(())
}

#[tokio::test]
async fn an_immediate_payment_is_paid() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let (no, code) = (out_trade_no(), auth_code("00", 0));
    let (status, order, _) = pay.create(&env, &barcode_body(&no, &code)).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "PAID");
    assert_eq!(order["scene"], "barcode");
    assert!(
        order["alipay_trade_no"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert!(order["paid_at"].is_string());
    assert_eq!(trade(&env, &no).await?["trade_status"], "TRADE_SUCCESS");
    assert_eq!(env.queued_expiries().await?, 1, "scheduled before the pay");
    assert_never_recorded(&env, &code).await
}

#[tokio::test]
async fn a_buyer_who_confirms_while_we_poll_is_paid() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let (no, code) = (out_trade_no(), auth_code("01", 1));
    let (status, order, _) = pay.create(&env, &barcode_body(&no, &code)).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "PAID");
    assert!(pay.alipay.count("query") >= 1);
    assert_eq!(pay.alipay.count("cancel"), 0);
    assert_never_recorded(&env, &code).await
}

#[tokio::test]
async fn a_buyer_who_never_confirms_is_cancelled_and_closed() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let (no, code) = (out_trade_no(), auth_code("02", 0));
    let (status, order, _) = pay.create(&env, &barcode_body(&no, &code)).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "CLOSED");
    assert!(order["closed_at"].is_string());
    let polls = pay.alipay.count("query");
    assert!((8..=10).contains(&polls), "every 200 ms for 2 s: {polls}");
    assert_eq!(pay.alipay.count("cancel"), 1);
    let trade = trade(&env, &no).await?;
    assert_eq!(trade["trade_status"], "TRADE_CLOSED", "{trade}");
    assert_eq!(trade["cancel_action"], "close", "{trade}");
    Ok(())
}

#[tokio::test]
async fn a_declined_payment_closes_while_we_poll() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let (status, order, _) = pay
        .create(&env, &barcode_body(&out_trade_no(), &auth_code("03", 1)))
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "CLOSED");
    assert_eq!(pay.alipay.count("cancel"), 0);
    Ok(())
}

#[tokio::test]
async fn definitive_refusals_fail_with_alipays_sub_code() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    for (behaviour, sub_code) in [
        ("10", "ACQ.PAYMENT_AUTH_CODE_INVALID"),
        ("11", "ACQ.BUYER_BALANCE_NOT_ENOUGH"),
        ("14", "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR"),
    ] {
        let code = auth_code(behaviour, 0);
        let (status, order, _) = pay
            .create(&env, &barcode_body(&out_trade_no(), &code))
            .await;
        assert_eq!(status, 201, "{order}");
        assert_eq!(order["status"], "FAILED", "{order}");
        assert_eq!(order["failure"]["code"], sub_code);
        assert!(
            order["failure"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert_never_recorded(&env, &code).await?;
    }
    assert_eq!(pay.alipay.count("query") + pay.alipay.count("cancel"), 0);
    Ok(())
}

#[tokio::test]
async fn an_unknown_outcome_that_paid_converges_to_paid() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let (no, code) = (out_trade_no(), auth_code("04", 0));
    let (status, order, _) = pay.create(&env, &barcode_body(&no, &code)).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "PAID");
    assert_eq!(pay.alipay.count("query"), 1);
    assert_eq!(pay.alipay.count("cancel"), 0);
    assert_eq!(trade(&env, &no).await?["trade_status"], "TRADE_SUCCESS");
    Ok(())
}

#[tokio::test]
async fn an_unknown_outcome_that_created_nothing_is_cancelled() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = out_trade_no();
    let (status, order, _) = pay
        .create(&env, &barcode_body(&no, &auth_code("05", 0)))
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "CLOSED");
    assert_eq!(pay.alipay.count("cancel"), 1);
    assert_eq!(pay.alipay.count("query"), 1, "asked before cancelling");
    Ok(())
}

#[tokio::test]
async fn an_unknown_outcome_still_waiting_is_polled_then_cancelled() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = out_trade_no();
    let (status, order, _) = pay
        .create(&env, &barcode_body(&no, &auth_code("06", 0)))
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "CLOSED");
    assert_eq!(trade(&env, &no).await?["trade_status"], "TRADE_CLOSED");
    Ok(())
}

#[tokio::test]
async fn a_timeout_whose_payment_applied_converges_to_paid() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    env.fault(json!({"method": "alipay.trade.pay", "drop_connection": true, "apply": true}))
        .await?;
    let (status, order, _) = pay
        .create(&env, &barcode_body(&out_trade_no(), &auth_code("00", 0)))
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "PAID");
    Ok(())
}

#[tokio::test]
async fn a_system_error_that_did_not_apply_is_cancelled() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = out_trade_no();
    env.fault(
        json!({"method": "alipay.trade.pay", "code": "40004", "sub_code": "ACQ.SYSTEM_ERROR"}),
    )
    .await?;
    let (status, order, _) = pay
        .create(&env, &barcode_body(&no, &auth_code("00", 0)))
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "CLOSED");
    assert_eq!(pay.alipay.count("cancel"), 1);
    Ok(())
}

#[tokio::test]
async fn a_cancel_of_unknown_outcome_leaves_the_order_pending_and_says_so() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let (no, code) = (out_trade_no(), auth_code("02", 0));
    env.fault(json!({"method": "alipay.trade.cancel", "code": "20000", "times": 3}))
        .await?;
    let (status, order, _) = pay.create(&env, &barcode_body(&no, &code)).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["pending_reason"], "cancel_outcome_unknown");
    assert_eq!(pay.alipay.count("cancel"), 3);
    // A retry does not pay again: it answers with the order as it is.
    let (status, again, replayed) = pay.create(&env, &barcode_body(&no, &code)).await;
    assert_eq!(
        (status, replayed.as_deref()),
        (200, Some("true")),
        "{again}"
    );
    assert_eq!(again["status"], "PENDING");
    assert_eq!(pay.alipay.count("pay"), 1);
    // Another payment code is another request.
    let (status, _, _) = pay
        .create(&env, &barcode_body(&no, &auth_code("00", 0)))
        .await;
    assert_eq!(status, 422);
    Ok(())
}

#[tokio::test]
async fn an_abandoned_barcode_claim_is_recovered_with_the_retrys_code() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let (no, code) = (out_trade_no(), auth_code("00", 0));
    let body = barcode_body(&no, &code);
    let request = pay::validation::parse(body.as_bytes()).map_err(|e| err(e.message))?;
    let then =
        chrono::SubsecRound::trunc_subsecs(chrono::Utc::now() - chrono::Duration::seconds(60), 0);
    let (claim, event) = Order::claim(request.new_order(then), then, chrono::Duration::seconds(15));
    assert_eq!(pay.orders.claim(&claim, &event).await?, Claim::Claimed);
    let (status, order, _) = pay.create(&env, &body).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "PAID");
    assert_eq!((pay.alipay.count("query"), pay.alipay.count("pay")), (1, 1));
    let stored = pay
        .orders
        .get(&OutTradeNo::parse(&no)?)
        .await?
        .ok_or_else(|| err("gone"))?;
    assert_eq!(stored.version(), 3);
    assert_never_recorded(&env, &code).await
}
