//! `GET /v1/payments/{out_trade_no}` against the AWS emulator and the Alipay sandbox: the
//! stored order, converged with Alipay when the buyer paid or the trade closed behind our
//! back, and a stale answer when Alipay cannot be reached.

use alipay::client::AlipayClient;
use aws_adapters::{DynamoNonceStore, DynamoOrderStore};
use f2f_runtime::{Function, SystemClock};
use harness::*;
use pay::WiredPayApi;
use query::{Orders, QueryApi};
use serde_json::{Value, json};
use std::time::Duration;

type Api = QueryApi<DynamoOrderStore, AlipayClient, SystemClock, DynamoNonceStore>;

async fn query_api(env: &Env) -> TestResult<Api> {
    let config = env.config(Function::Query)?;
    let adapters = env.adapters(Function::Query).await?;
    Ok(QueryApi {
        orders: Orders {
            store: adapters.orders,
            gateway: adapters.alipay,
            clock: SystemClock,
            sync_after: config.knobs.sync_after,
        },
        nonces: adapters.nonces,
        keys: adapters.merchant_keys,
    })
}

/// Creates a QR order through the pay function; returns its number.
async fn create_qr(env: &Env, timeout_seconds: u32) -> TestResult<String> {
    let config = env.config(Function::Pay)?;
    let adapters = env.adapters(Function::Pay).await?;
    let api = WiredPayApi::wired(&config, adapters)?;
    let no = out_trade_no();
    let body = json!({"out_trade_no": no, "amount_fen": 888, "subject": "book", "scene": "qr", "timeout_seconds": timeout_seconds}).to_string();
    let response = api.handle(env.signed("POST", "/v1/payments", &body)).await;
    if response.status().as_u16() != 201 {
        return Err(err(format!("create failed: {}", body_json(&response))));
    }
    Ok(no)
}

async fn get(api: &Api, env: &Env, no: &str) -> (u16, Value, Option<String>) {
    let response = api
        .handle(env.signed("GET", &format!("/v1/payments/{no}"), ""))
        .await;
    (
        response.status().as_u16(),
        body_json(&response),
        header(&response, "warning").map(str::to_owned),
    )
}

#[tokio::test]
async fn an_unscanned_qr_order_is_pending() -> TestResult {
    let env = Env::start().await?;
    let api = query_api(&env).await?;
    let no = create_qr(&env, 900).await?;
    let (status, order, warning) = get(&api, &env, &no).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["amount_fen"], 888);
    assert!(order["qr_code"].is_string());
    assert!(order.get("stale").is_none() && warning.is_none());
    Ok(())
}

#[tokio::test]
async fn a_buyer_who_paid_is_seen_as_paid() -> TestResult {
    let env = Env::start().await?;
    let api = query_api(&env).await?;
    let no = create_qr(&env, 900).await?;
    let (status, paid) = env
        .sandbox_post(&format!("/sandbox/trades/{no}/pay"), json!({}))
        .await?;
    assert_eq!(status, 200, "{paid}");
    let (status, order, _) = get(&api, &env, &no).await;
    assert_eq!(status, 200);
    assert_eq!(order["status"], "PAID", "{order}");
    assert!(order["alipay_trade_no"].is_string());
    assert!(order["paid_at"].is_string());
    // Stored: the next read answers PAID without asking Alipay again.
    let mut env = env;
    env.stop_sandbox().await;
    let (_, again, warning) = get(&api, &env, &no).await;
    assert_eq!(again["status"], "PAID");
    assert!(warning.is_none());
    Ok(())
}

#[tokio::test]
async fn a_trade_that_closed_at_alipay_is_seen_as_closed() -> TestResult {
    let env = Env::start().await?;
    let api = query_api(&env).await?;
    let no = create_qr(&env, 60).await?;
    let (status, _) = env
        .sandbox_post(&format!("/sandbox/trades/{no}/scan"), json!({}))
        .await?;
    assert_eq!(status, 200);
    let (status, _) = env
        .sandbox_post("/sandbox/clock/advance", json!({"seconds": 120}))
        .await?;
    assert_eq!(status, 200);
    let (status, order, _) = get(&api, &env, &no).await;
    assert_eq!(status, 200);
    assert_eq!(order["status"], "CLOSED", "{order}");
    assert!(order["closed_at"].is_string());
    Ok(())
}

#[tokio::test]
async fn alipay_unreachable_answers_from_the_store_marked_stale() -> TestResult {
    let mut env = Env::start().await?;
    let api = query_api(&env).await?;
    let no = create_qr(&env, 900).await?;
    env.stop_sandbox().await;
    let (status, order, warning) = get(&api, &env, &no).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["stale"], true);
    assert_eq!(order["sync_error"], "alipay_unavailable");
    assert!(warning.is_some_and(|w| w.starts_with("110")));
    Ok(())
}

#[tokio::test]
async fn unknown_and_malformed_numbers_are_refused() -> TestResult {
    let env = Env::start().await?;
    let api = query_api(&env).await?;
    let (status, error, _) = get(&api, &env, "T0NOSUCHORDER").await;
    assert_eq!(
        (status, error["code"].as_str()),
        (404, Some("order_not_found"))
    );
    for bad in ["a-b", "%E8%AE%A2%E5%8D%95", "x".repeat(65).as_str(), ""] {
        let (status, error, _) = get(&api, &env, bad).await;
        assert_eq!(status, 400, "{bad}: {error}");
        assert_eq!(error["code"], "invalid_field");
        assert_eq!(error["field"], "out_trade_no");
    }
    let response = api.handle(env.signed("POST", "/v1/payments/T1", "")).await;
    assert_eq!(response.status().as_u16(), 405);
    let response = api
        .handle(env.signed_with(KEY_ID, SECRET_2, "GET", "/v1/payments/T1", "", |_| {}))
        .await;
    assert_eq!(body_json(&response)["code"], "auth_bad_signature");
    Ok(())
}

#[tokio::test]
async fn a_recent_sync_is_not_repeated() -> TestResult {
    let mut env = Env::start().await?;
    env.set_var("SYNC_AFTER_SECONDS", "60");
    let api = query_api(&env).await?;
    let no = create_qr(&env, 900).await?;
    env.stop_sandbox().await;
    // Created (= synced) just now: no Alipay call is due, so no stale marker either.
    let (status, order, warning) = get(&api, &env, &no).await;
    assert_eq!(status, 200);
    assert!(order.get("stale").is_none(), "{order}");
    assert!(warning.is_none());
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(())
}

/// A claim whose creator died before Alipay ever saw it: a GET asks Alipay once, records
/// the answer ("no trade") as a sync, and the next GETs within `SYNC_AFTER_SECONDS` do not
/// ask again.
#[tokio::test]
async fn an_abandoned_claim_unknown_to_alipay_is_not_queried_on_every_get() -> TestResult {
    let mut env = Env::start().await?;
    env.set_var("SYNC_AFTER_SECONDS", "60");
    let api = query_api(&env).await?;
    let config = env.config(Function::Pay)?;
    let adapters = env.adapters(Function::Pay).await?;
    let no = out_trade_no();
    let body = json!({"out_trade_no": no, "amount_fen": 888, "subject": "book", "scene": "qr"})
        .to_string();
    let request = pay::validation::parse(body.as_bytes()).map_err(|e| err(e.message))?;
    let then =
        chrono::SubsecRound::trunc_subsecs(chrono::Utc::now() - chrono::Duration::seconds(60), 0);
    let lease = chrono::Duration::from_std(config.knobs.claim_lease)?;
    let (claim, event) = domain::order::Order::claim(request.new_order(then), then, lease);
    domain::ports::OrderStore::claim(&adapters.orders, &claim, &event).await?;
    // Counts the queries: the fault answers as Alipay would, and is used up once per call.
    env.fault(json!({"method": "alipay.trade.query", "code": "40004", "sub_code": "ACQ.TRADE_NOT_EXIST", "sub_msg": "交易不存在", "times": 5}))
        .await?;
    for _ in 0..3 {
        let (status, order, _) = get(&api, &env, &no).await;
        assert_eq!(status, 200, "{order}");
        assert_eq!(order["status"], "CREATING");
    }
    let faults = env.sandbox_get("/sandbox/faults").await?;
    assert_eq!(
        faults[0]["remaining"], 4,
        "one query for three GETs: {faults}"
    );
    Ok(())
}
