//! Fencing of the Alipay calls that move money, against the AWS emulator and the sandbox.
//!
//! Alipay is made slow: every gateway call takes the client's whole timeout on a shared test
//! clock. A `GET` and an identical `POST` arrive in the middle of the barcode flow (during
//! each of its calls in turn, including after the lease the claim started with has run out).
//! Whatever the interleaving, the final order must say what Alipay did: the payment that a
//! cancel refunded is REFUNDED (with an anomaly), never PAID; an unpaid trade that was
//! cancelled is CLOSED. Nobody but the lease holder acts while its lease is live.

mod common;

use alipay::api::{
    CancelRequest, CancelResponse, CloseRequest, CloseResponse, PayRequest, PayResponse,
    PrecreateRequest, PrecreateResponse, QueryRequest, QueryResponse, RefundQueryRequest,
    RefundQueryResponse, RefundRequest, RefundResponse,
};
use alipay::client::AlipayClient;
use alipay::outcome::Outcome;
use aws_adapters::{DynamoNonceStore, DynamoOrderStore, SqsExpiryScheduler};
use chrono::{DateTime, Utc};
use common::*;
use domain::OutTradeNo;
use domain::anomaly::AnomalyKind;
use domain::ports::{Clock, PaymentGateway};
use f2f_runtime::Function;
use pay::{PayApi, Payments, Settings};
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Time shared by every request of a scenario; moves when slept through or when Alipay
/// takes a call.
#[derive(Clone)]
struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    fn advance(&self, by: Duration) {
        if let (Ok(mut now), Ok(by)) = (self.0.lock(), chrono::Duration::from_std(by)) {
            *now += by;
        }
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map(|now| *now).unwrap_or_else(|_| Utc::now())
    }
    async fn sleep(&self, duration: Duration) {
        self.advance(duration);
    }
}

type Hook = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The real client, slowed: each call first takes `step` of test time, and the call numbered
/// `hook_at` (1-based) runs the hook (the concurrent GET and POST) before reaching Alipay.
#[derive(Clone)]
struct SlowAlipay(Arc<Slow>);

struct Slow {
    inner: AlipayClient,
    clock: TestClock,
    step: Duration,
    calls: AtomicUsize,
    hook_at: usize,
    hook: OnceLock<Hook>,
}

impl SlowAlipay {
    async fn take_time(&self) {
        let n = self.0.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.clock.advance(self.0.step);
        if n == self.0.hook_at
            && let Some(hook) = self.0.hook.get()
        {
            hook().await;
        }
    }
}

impl PaymentGateway for SlowAlipay {
    fn call_timeout(&self) -> Duration {
        self.0.inner.call_timeout()
    }
    async fn precreate(&self, request: &PrecreateRequest) -> Outcome<PrecreateResponse> {
        self.take_time().await;
        self.0.inner.precreate(request).await
    }
    async fn pay(&self, request: &PayRequest) -> Outcome<PayResponse> {
        self.take_time().await;
        self.0.inner.pay(request).await
    }
    async fn query(&self, request: &QueryRequest) -> Outcome<QueryResponse> {
        self.take_time().await;
        self.0.inner.query(request).await
    }
    async fn cancel(&self, request: &CancelRequest) -> Outcome<CancelResponse> {
        self.take_time().await;
        self.0.inner.cancel(request).await
    }
    async fn close(&self, request: &CloseRequest) -> Outcome<CloseResponse> {
        self.take_time().await;
        self.0.inner.close(request).await
    }
    async fn refund(&self, request: &RefundRequest) -> Outcome<RefundResponse> {
        self.take_time().await;
        self.0.inner.refund(request).await
    }
    async fn refund_query(&self, request: &RefundQueryRequest) -> Outcome<RefundQueryResponse> {
        self.take_time().await;
        self.0.inner.refund_query(request).await
    }
}

type SlowApi =
    PayApi<DynamoOrderStore, SqsExpiryScheduler, SlowAlipay, TestClock, DynamoNonceStore>;

/// What the mid-flight requests saw.
#[derive(Debug, Default, Clone)]
struct MidFlight {
    get_status: Option<String>,
    post_status: Option<u16>,
}

/// How one scenario ended.
#[derive(Debug)]
struct Ended {
    no: String,
    /// The first POST's answer: HTTP status and the order's status.
    answer: (u16, Value),
    /// The order as a GET after everything sees it.
    order: domain::order::Order,
    mid_flight: MidFlight,
    /// The sandbox's record of the trade.
    trade: Value,
}

/// Runs one barcode payment with `faults` set at the sandbox, the GET and the identical POST
/// arriving during Alipay call number `hook_at`.
async fn scenario(env: &Env, code: &str, faults: &[Value], hook_at: usize) -> TestResult<Ended> {
    for fault in faults {
        env.fault(fault.clone()).await?;
    }
    let config = env.config(Function::Pay)?;
    let adapters = env.adapters(Function::Pay).await?;
    let clock = TestClock(Arc::new(Mutex::new(Utc::now())));
    let alipay = SlowAlipay(Arc::new(Slow {
        inner: adapters.alipay.clone(),
        clock: clock.clone(),
        step: config.alipay.request_timeout,
        calls: AtomicUsize::new(0),
        hook_at,
        hook: OnceLock::new(),
    }));
    let api: Arc<SlowApi> = Arc::new(PayApi {
        payments: Payments::new(
            adapters.orders.clone(),
            adapters.expiry.clone().ok_or_else(|| err("no scheduler"))?,
            alipay.clone(),
            clock.clone(),
            Settings::from_config(&config),
        ),
        nonces: adapters.nonces.clone(),
        keys: adapters.merchant_keys.clone(),
        max_body_bytes: config.knobs.max_body_bytes,
    });
    let orders = Arc::new(query::Orders {
        store: adapters.orders.clone(),
        gateway: adapters.alipay.clone(),
        clock: clock.clone(),
        sync_after: Duration::ZERO,
    });
    let no = out_trade_no();
    let number = OutTradeNo::parse(&no)?;
    let body = barcode_body(&no, code);
    let seen = Arc::new(Mutex::new(MidFlight::default()));
    let identical = Arc::new(Mutex::new(Some(env.signed("POST", "/v1/payments", &body))));
    let hook: Hook = {
        let (api, orders, seen, number) =
            (api.clone(), orders.clone(), seen.clone(), number.clone());
        Box::new(move || {
            let (api, orders, seen, number) =
                (api.clone(), orders.clone(), seen.clone(), number.clone());
            let request = identical.lock().ok().and_then(|mut r| r.take());
            Box::pin(async move {
                let looked = orders.lookup(&number).await;
                let post_status = match request {
                    Some(request) => Some(api.handle(request).await.status().as_u16()),
                    None => None,
                };
                if let Ok(mut seen) = seen.lock() {
                    seen.get_status = looked
                        .ok()
                        .flatten()
                        .map(|l| l.order.status().as_str().to_owned());
                    seen.post_status = post_status;
                }
            })
        })
    };
    let _ = alipay.0.hook.set(hook);
    let response = api.handle(env.signed("POST", "/v1/payments", &body)).await;
    let answer = (response.status().as_u16(), body_json(&response));
    let order = orders
        .lookup(&number)
        .await?
        .ok_or_else(|| err("the order vanished"))?
        .order;
    let trade = env.sandbox_get(&format!("/sandbox/trades/{no}")).await?;
    let mid_flight = seen.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(Ended {
        no,
        answer,
        order,
        mid_flight,
        trade,
    })
}

/// What the order must say, given what Alipay did.
fn expected_status(trade: &Value) -> &'static str {
    match (
        trade["trade_status"].as_str(),
        trade["cancel_action"].as_str(),
    ) {
        (Some("TRADE_SUCCESS" | "TRADE_FINISHED"), _) => "PAID",
        (Some("TRADE_CLOSED"), Some("refund")) => "REFUNDED",
        _ => "CLOSED",
    }
}

async fn check(env: &Env, ended: &Ended, hook_at: usize) -> TestResult {
    let expected = expected_status(&ended.trade);
    assert_eq!(
        ended.order.status().as_str(),
        expected,
        "hook at call {hook_at}: the order must say what Alipay did; trade {} / answer {:?} / mid-flight {:?}",
        ended.trade,
        ended.answer,
        ended.mid_flight
    );
    assert_eq!(
        ended.answer.1["status"].as_str(),
        Some(expected),
        "hook at call {hook_at}: the first POST answers the final state"
    );
    // The identical POST never ran a second flow: it waited.
    assert_eq!(
        ended.mid_flight.post_status,
        Some(409),
        "hook at call {hook_at}: {:?}",
        ended.mid_flight
    );
    let anomalies = env
        .adapters(Function::Pay)
        .await?
        .orders
        .anomalies_of_order(&OutTradeNo::parse(&ended.no)?)
        .await?;
    let refunded_by_cancel = anomalies
        .iter()
        .any(|a| a.latest.kind == AnomalyKind::RefundedByCancel);
    assert_eq!(
        refunded_by_cancel,
        expected == "REFUNDED",
        "hook at call {hook_at}: a refund by cancel is an anomaly: {anomalies:?}"
    );
    Ok(())
}

/// The review's scenario: the pay lands but answers 20000, the query's connection drops, the
/// first cancel's connection drops without effect; meanwhile a GET would see TRADE_SUCCESS and
/// an identical POST would take over. The second cancel refunds the payment.
#[tokio::test]
async fn a_paid_trade_refunded_by_a_late_cancel_is_never_shown_as_paid() -> TestResult {
    let env = Env::start().await?;
    // Four calls: pay, query, cancel, cancel.
    for hook_at in 1..=4 {
        let faults = [
            json!({"method": "alipay.trade.pay", "code": "20000", "apply": true}),
            json!({"method": "alipay.trade.query", "drop_connection": true}),
            json!({"method": "alipay.trade.cancel", "drop_connection": true, "apply": false}),
        ];
        let ended = scenario(&env, &auth_code("00", 0), &faults, hook_at).await?;
        check(&env, &ended, hook_at).await?;
        assert_eq!(ended.order.status().as_str(), "REFUNDED");
        assert_eq!(ended.order.refunded_fen(), ended.order.amount().fen().get());
        assert_eq!(
            ended.mid_flight.post_status,
            Some(409),
            "hook at call {hook_at}: the holder's lease is live"
        );
        assert_eq!(
            ended.mid_flight.get_status.as_deref(),
            Some("CREATING"),
            "hook at call {hook_at}: a GET never acts on a live lease"
        );
    }
    Ok(())
}

/// The same slow Alipay for a trade the buyer never pays: the cancel closes it.
#[tokio::test]
async fn an_unpaid_trade_cancelled_late_is_closed() -> TestResult {
    let env = Env::start().await?;
    // Four calls: pay, query, cancel, cancel.
    for hook_at in 1..=4 {
        let faults = [
            json!({"method": "alipay.trade.query", "drop_connection": true}),
            json!({"method": "alipay.trade.cancel", "drop_connection": true, "apply": false}),
        ];
        let ended = scenario(&env, &auth_code("06", 0), &faults, hook_at).await?;
        check(&env, &ended, hook_at).await?;
        assert_eq!(ended.order.status().as_str(), "CLOSED");
        assert_eq!(
            ended.mid_flight.post_status,
            Some(409),
            "hook at call {hook_at}"
        );
    }
    Ok(())
}
