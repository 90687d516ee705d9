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
    // The identical retry does not pay again and does not replay PENDING: it takes the order
    // over, finds the trade still waiting past its window, and cancels it.
    let (status, again, replayed) = pay.create(&env, &barcode_body(&no, &code)).await;
    assert_eq!((status, replayed), (201, None), "{again}");
    assert_eq!(again["status"], "CLOSED");
    assert_eq!(pay.alipay.count("pay"), 1);
    assert_eq!(pay.alipay.count("cancel"), 4);
    assert_eq!(trade(&env, &no).await?["trade_status"], "TRADE_CLOSED");
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

#[tokio::test]
async fn a_refusal_that_echoes_the_signed_request_never_logs_the_payment_code() -> TestResult {
    let mut env = Env::start().await?;
    // A valid key that is not the app's: Alipay answers isv.invalid-signature, and its
    // sub_msg quotes the string it verified, payment code included.
    let wrong_key = env.keys_dir.join("alipay_private_key.pem");
    env.set_var(
        "ALIPAY_APP_PRIVATE_KEY_FILE",
        &wrong_key.display().to_string(),
    );
    let pay = pay_api(&env).await?;
    let (no, code) = (out_trade_no(), auth_code("00", 0));
    let (status, error, _) = pay.create(&env, &barcode_body(&no, &code)).await;
    assert_eq!(status, 502, "{error}");
    assert_eq!(error["code"], "alipay_rejected");
    assert!(!error.to_string().contains(&code));
    assert_never_recorded(&env, &code).await
}

/// A payment whose creator died after Alipay's 10003: a GET sees the trade waiting and makes
/// the order PENDING; the cashier's identical retry then finishes it (the poll window is long
/// over, so it cancels) instead of replaying PENDING, and the expiry was scheduled for right
/// after the barcode flow's longest run, not for the order's own timeout.
#[tokio::test]
async fn a_waiting_trade_left_by_a_dead_request_is_cancelled_by_the_retry() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let (no, code) = (out_trade_no(), auth_code("02", 0));
    let body = barcode_body(&no, &code);
    let request = pay::validation::parse(body.as_bytes()).map_err(|e| err(e.message))?;
    let then =
        chrono::SubsecRound::trunc_subsecs(chrono::Utc::now() - chrono::Duration::seconds(60), 0);
    let (claim, event) = Order::claim(request.new_order(then), then, chrono::Duration::seconds(15));
    assert_eq!(pay.orders.claim(&claim, &event).await?, Claim::Claimed);
    let auth = request.auth_code.as_ref().ok_or_else(|| err("no code"))?;
    let waiting = pay
        .alipay
        .inner
        .pay(&pay::barcode::pay_request(&claim, auth))
        .await;
    assert!(matches!(
        waiting,
        alipay::outcome::Outcome::WaitingForBuyer(_)
    ));

    let orders = query::Orders {
        store: pay.orders.clone(),
        gateway: pay.alipay.inner.clone(),
        clock: f2f_runtime::SystemClock,
        sync_after: std::time::Duration::ZERO,
    };
    let looked = orders
        .lookup(&OutTradeNo::parse(&no)?)
        .await?
        .ok_or_else(|| err("gone"))?;
    assert_eq!(looked.order.status().as_str(), "PENDING");

    let (status, order, replayed) = pay.create(&env, &body).await;
    assert_eq!((status, replayed), (201, None), "{order}");
    assert_eq!(order["status"], "CLOSED");
    assert_eq!(pay.alipay.count("pay"), 0, "never paid again");
    assert_eq!(pay.alipay.count("cancel"), 1);
    assert_eq!(trade(&env, &no).await?["trade_status"], "TRADE_CLOSED");

    let messages = env
        .sqs
        .receive_message()
        .queue_url(&env.queue_url)
        .max_number_of_messages(10)
        .send()
        .await?;
    let due: Vec<chrono::DateTime<chrono::Utc>> = messages
        .messages()
        .iter()
        .filter_map(|m| m.body())
        .filter_map(|b| aws_adapters::ExpiryMessage::parse(b).ok())
        .map(|m| m.due_at)
        .collect();
    assert!(!due.is_empty(), "the retry scheduled the expiry again");
    for due_at in due {
        assert!(
            due_at <= then + chrono::Duration::seconds(120),
            "a barcode order is looked at soon after its flow, not at its timeout: {due_at}"
        );
    }
    Ok(())
}
