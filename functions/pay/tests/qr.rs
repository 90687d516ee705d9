//! QR payments: creation, idempotent replays, concurrency, mismatches, crash recovery and
//! failures, against the AWS emulator and the Alipay sandbox.

mod common;

use common::*;
use domain::OutTradeNo;
use domain::order::Order;
use domain::ports::{Claim, OrderStore};
use serde_json::json;
use std::sync::atomic::Ordering;

#[tokio::test]
async fn a_qr_payment_is_created_once_and_replayed_after() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = out_trade_no();
    let (status, order, replayed) = pay.create(&env, &qr_body(&no, 1)).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(replayed, None);
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["out_trade_no"], no.as_str());
    assert_eq!(order["amount_fen"], 1);
    assert_eq!(order["scene"], "qr");
    let qr = order["qr_code"].as_str().unwrap_or_default().to_owned();
    assert!(qr.starts_with("https://qr.alipay.com/"), "{order}");
    for field in ["alipay_trade_no", "paid_at", "closed_at", "failure"] {
        assert!(order[field].is_null(), "{field}: {order}");
    }
    // The sandbox issued exactly this code, with the order's expiry as time_expire.
    let trades = env.trades().await?;
    assert_eq!(trades.len(), 1);
    assert_eq!(
        trades[0]["product"]["qr_code"],
        qr.as_str(),
        "{}",
        trades[0]
    );
    assert_eq!(trades[0]["total_amount"], "0.01");
    // The expiry was scheduled.
    assert_eq!(env.queued_expiries().await?, 1);

    let (status, again, replayed) = pay.create(&env, &qr_body(&no, 1)).await;
    assert_eq!(status, 200);
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(again, order);
    assert_eq!(pay.alipay.count("precreate"), 1);
    assert_eq!(env.items("ORDER").await?, 1);
    Ok(())
}

#[tokio::test]
async fn twenty_concurrent_identical_creates_make_one_order_and_one_precreate() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = out_trade_no();
    let body = qr_body(&no, 2500);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let api = pay.api.clone();
        let request = env.signed("POST", "/v1/payments", &body);
        tasks.spawn(async move { api.handle(request).await });
    }
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    let mut qr_codes = std::collections::BTreeSet::new();
    while let Some(response) = tasks.join_next().await {
        let response = response?;
        let status = response.status().as_u16();
        *statuses.entry(status).or_default() += 1;
        let body = body_json(&response);
        match status {
            201 => {
                qr_codes.insert(body["qr_code"].to_string());
            }
            200 => {
                assert_eq!(header(&response, "idempotent-replayed"), Some("true"));
                assert_eq!(body["out_trade_no"], no.as_str());
            }
            409 => {
                assert_eq!(body["code"], "request_in_flight");
                let retry: u64 = header(&response, "retry-after").unwrap_or("0").parse()?;
                assert!(retry >= 1);
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(statuses.get(&201), Some(&1), "{statuses:?}");
    assert_eq!(statuses.values().sum::<u32>(), 20);
    assert_eq!(pay.alipay.count("precreate"), 1, "exactly one precreate");
    assert_eq!(
        env.trades().await?.len(),
        1,
        "exactly one order at the sandbox"
    );
    assert_eq!(
        env.items("ORDER").await?,
        1,
        "exactly one order in the table"
    );
    // One per request, each for its own claim before claiming; the 19 whose claim failed name
    // claims never stored, and the expiry job drops them.
    assert_eq!(env.queued_expiries().await?, 20);
    Ok(())
}

#[tokio::test]
async fn another_request_with_the_same_number_is_refused_and_changes_nothing() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = out_trade_no();
    let (status, _, _) = pay.create(&env, &qr_body(&no, 100)).await;
    assert_eq!(status, 201);
    let before = pay.orders.get(&OutTradeNo::parse(&no)?).await?;
    let events_before = env.items("EVENT#").await?;
    let (status, error, _) = pay.create(&env, &qr_body(&no, 101)).await;
    assert_eq!(status, 422);
    assert_eq!(error["code"], "idempotency_mismatch");
    assert_eq!(error["field"], "out_trade_no");
    assert_eq!(pay.orders.get(&OutTradeNo::parse(&no)?).await?, before);
    assert_eq!(env.items("EVENT#").await?, events_before);
    assert_eq!(pay.alipay.count("precreate"), 1);
    Ok(())
}

/// Stores the claim a first attempt would have made, `age` seconds ago, as if it died then.
async fn abandoned_claim(pay: &Pay, body: &str, age: i64, lease: i64) -> TestResult<Order> {
    let request = pay::validation::parse(body.as_bytes()).map_err(|e| err(e.message))?;
    let then = chrono::Utc::now() - chrono::Duration::seconds(age);
    let then = chrono::SubsecRound::trunc_subsecs(then, 0);
    let (order, event) = Order::claim(
        request.new_order(then),
        then,
        chrono::Duration::seconds(lease),
    );
    assert_eq!(pay.orders.claim(&order, &event).await?, Claim::Claimed);
    Ok(order)
}

#[tokio::test]
async fn a_crash_between_claim_and_precreate_is_recovered_by_the_retry() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = out_trade_no();
    let body = qr_body(&no, 300);
    // The first attempt is still within its lease: the retry is told to wait.
    abandoned_claim(&pay, &body, 2, 15).await?;
    let response = pay
        .api
        .handle(env.signed("POST", "/v1/payments", &body))
        .await;
    assert_eq!(response.status().as_u16(), 409);
    let retry: u64 = header(&response, "retry-after").unwrap_or("0").parse()?;
    assert!((12..=14).contains(&retry), "{retry}");
    assert_eq!(pay.alipay.count("query") + pay.alipay.count("precreate"), 0);

    // Another order whose first attempt died long ago: the retry takes over and recovers.
    let no = out_trade_no();
    let body = qr_body(&no, 300);
    abandoned_claim(&pay, &body, 60, 15).await?;
    let (status, order, _) = pay.create(&env, &body).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "PENDING");
    assert!(order["qr_code"].as_str().is_some());
    assert_eq!(pay.alipay.count("query"), 1, "asked Alipay first");
    assert_eq!(pay.alipay.count("precreate"), 1);
    let stored = pay
        .orders
        .get(&OutTradeNo::parse(&no)?)
        .await?
        .ok_or_else(|| err("gone"))?;
    assert_eq!(stored.version(), 3, "claim, take-over, created at Alipay");
    Ok(())
}

#[tokio::test]
async fn a_precreate_that_dies_answers_503_and_the_retry_gets_the_same_code() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = out_trade_no();
    let body = qr_body(&no, 500);
    // The precreate reaches the sandbox, but its answer is lost, twice (both attempts).
    env.fault(json!({"method": "alipay.trade.precreate", "drop_connection": true, "apply": true, "times": 2})).await?;
    let response = pay
        .api
        .handle(env.signed("POST", "/v1/payments", &body))
        .await;
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(body_json(&response)["code"], "alipay_unavailable");
    assert!(header(&response, "retry-after").is_some());
    let lost_code = env.trades().await?[0]["product"]["qr_code"].clone();

    let (status, order, _) = pay.create(&env, &body).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(
        order["qr_code"], lost_code,
        "an identical precreate returns the same code"
    );
    assert_eq!(env.trades().await?.len(), 1);

    // A gateway that dies before sending (simulated crash after the claim) recovers the same way.
    let no = out_trade_no();
    let body = qr_body(&no, 501);
    pay.alipay.die.store(2, Ordering::SeqCst);
    let (status, error, _) = pay.create(&env, &body).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (503, Some("alipay_unavailable"))
    );
    let (status, order, _) = pay.create(&env, &body).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "PENDING");
    Ok(())
}

#[tokio::test]
async fn a_definitive_refusal_is_a_failed_order_with_alipays_sub_code() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    env.fault(json!({"method": "alipay.trade.precreate", "code": "40004", "sub_code": "ACQ.ACCESS_FORBIDDEN", "sub_msg": "无权限使用接口"})).await?;
    let (status, order, _) = pay.create(&env, &qr_body(&out_trade_no(), 100)).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "FAILED");
    assert_eq!(order["failure"]["code"], "ACQ.ACCESS_FORBIDDEN");
    assert!(order["closed_at"].is_string());
    Ok(())
}

#[tokio::test]
async fn a_gateway_refusal_is_a_502_and_the_retry_succeeds() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = out_trade_no();
    env.fault(json!({"method": "alipay.trade.precreate", "code": "40002", "sub_code": "isv.invalid-signature"})).await?;
    let (status, error, _) = pay.create(&env, &qr_body(&no, 100)).await;
    assert_eq!(status, 502, "{error}");
    assert_eq!(error["code"], "alipay_rejected");
    let (status, order, _) = pay.create(&env, &qr_body(&no, 100)).await;
    assert_eq!(status, 201, "{order}");
    Ok(())
}

#[tokio::test]
async fn a_generated_number_is_a_ulid() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let (status, order, _) = pay
        .create(
            &env,
            &json!({"amount_fen": 1, "subject": "s", "scene": "qr"}).to_string(),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(order["out_trade_no"].as_str().map(str::len), Some(26));
    Ok(())
}

#[tokio::test]
async fn a_refusal_of_the_requests_content_is_a_422_and_a_failed_order() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = out_trade_no();
    env.fault(json!({"method": "alipay.trade.precreate", "code": "40004", "sub_code": "ACQ.EXIST_FORBIDDEN_WORD", "sub_msg": "订单信息中包含违禁词"})).await?;
    let (status, error, _) = pay.create(&env, &qr_body(&no, 100)).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["code"], "alipay_refused_request");
    assert_eq!(error["alipay_sub_code"], "ACQ.EXIST_FORBIDDEN_WORD");
    let (status, order, replayed) = pay.create(&env, &qr_body(&no, 100)).await;
    assert_eq!(
        (status, replayed.as_deref()),
        (200, Some("true")),
        "{order}"
    );
    assert_eq!(order["status"], "FAILED");
    assert_eq!(order["failure"]["code"], "ACQ.EXIST_FORBIDDEN_WORD");
    assert_eq!(pay.alipay.count("precreate"), 1, "never resent");
    Ok(())
}

#[tokio::test]
async fn an_unsigned_refusal_of_the_content_is_a_422_without_recording_it() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = out_trade_no();
    // The sandbox, like Alipay's gateway, sends 40002 refusals unsigned.
    env.fault(json!({"method": "alipay.trade.precreate", "code": "40002", "sub_code": "isv.suspected-attack"})).await?;
    let (status, error, _) = pay.create(&env, &qr_body(&no, 100)).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["alipay_sub_code"], "isv.suspected-attack");
    let stored = pay
        .orders
        .get(&domain::OutTradeNo::parse(&no)?)
        .await?
        .ok_or_else(|| err("gone"))?;
    assert_eq!(
        stored.status().as_str(),
        "CREATING",
        "an unverified refusal is no fact"
    );
    Ok(())
}

#[tokio::test]
async fn alipays_rate_limit_is_a_503_with_retry_after_and_the_retry_succeeds() -> TestResult {
    let env = Env::start().await?;
    let pay = pay_api(&env).await?;
    let no = out_trade_no();
    env.fault(json!({"method": "alipay.trade.precreate", "code": "40005", "sub_code": "isv.app-call-limited"})).await?;
    let response = pay
        .api
        .handle(env.signed("POST", "/v1/payments", &qr_body(&no, 100)))
        .await;
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(header(&response, "retry-after"), Some("2"));
    let error = body_json(&response);
    assert_eq!(error["code"], "alipay_rate_limited");
    assert_eq!(error["alipay_sub_code"], "isv.app-call-limited");
    let (status, order, _) = pay.create(&env, &qr_body(&no, 100)).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "PENDING");
    Ok(())
}
