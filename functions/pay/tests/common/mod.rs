//! The pay function as Lambda runs it (real adapters, real Alipay client), against the AWS
//! emulator and the Alipay sandbox, with a gateway wrapper that counts Alipay calls.
#![allow(dead_code)]

use alipay::api::{
    CancelRequest, CancelResponse, CloseRequest, CloseResponse, PayRequest, PayResponse,
    PrecreateRequest, PrecreateResponse, QueryRequest, QueryResponse, RefundQueryRequest,
    RefundQueryResponse, RefundRequest, RefundResponse,
};
use alipay::client::AlipayClient;
use alipay::outcome::{Outcome, UnknownCause};
use aws_adapters::{DynamoNonceStore, DynamoOrderStore, SqsExpiryScheduler};
use domain::ports::PaymentGateway;
use f2f_runtime::{Function, SystemClock};
pub use harness::*;
use pay::{PayApi, Payments, Settings};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// Counts calls per method; can make the first `die` precreates "die" (unknown outcome,
/// nothing sent) to simulate a crash between the claim and the precreate.
#[derive(Clone)]
pub struct Counting<G> {
    pub inner: G,
    pub calls: Arc<Mutex<BTreeMap<&'static str, u32>>>,
    pub die: Arc<AtomicU32>,
}

impl<G> Counting<G> {
    pub fn count(&self, method: &str) -> u32 {
        self.calls
            .lock()
            .ok()
            .and_then(|calls| calls.get(method).copied())
            .unwrap_or(0)
    }
    fn add(&self, method: &'static str) {
        if let Ok(mut calls) = self.calls.lock() {
            *calls.entry(method).or_default() += 1;
        }
    }
}

impl<G: PaymentGateway> PaymentGateway for Counting<G> {
    fn call_timeout(&self) -> std::time::Duration {
        self.inner.call_timeout()
    }
    async fn precreate(&self, request: &PrecreateRequest) -> Outcome<PrecreateResponse> {
        if self.die.load(Ordering::SeqCst) > 0 {
            self.die.fetch_sub(1, Ordering::SeqCst);
            return Outcome::Unknown(UnknownCause::Connection("died".into()));
        }
        self.add("precreate");
        self.inner.precreate(request).await
    }
    async fn pay(&self, request: &PayRequest) -> Outcome<PayResponse> {
        self.add("pay");
        self.inner.pay(request).await
    }
    async fn query(&self, request: &QueryRequest) -> Outcome<QueryResponse> {
        self.add("query");
        self.inner.query(request).await
    }
    async fn cancel(&self, request: &CancelRequest) -> Outcome<CancelResponse> {
        self.add("cancel");
        self.inner.cancel(request).await
    }
    async fn close(&self, request: &CloseRequest) -> Outcome<CloseResponse> {
        self.add("close");
        self.inner.close(request).await
    }
    async fn refund(&self, request: &RefundRequest) -> Outcome<RefundResponse> {
        self.add("refund");
        self.inner.refund(request).await
    }
    async fn refund_query(&self, request: &RefundQueryRequest) -> Outcome<RefundQueryResponse> {
        self.add("refund_query");
        self.inner.refund_query(request).await
    }
}

pub type Api = PayApi<
    DynamoOrderStore,
    SqsExpiryScheduler,
    Counting<AlipayClient>,
    SystemClock,
    DynamoNonceStore,
>;

pub struct Pay {
    pub api: Arc<Api>,
    pub alipay: Counting<AlipayClient>,
    pub orders: DynamoOrderStore,
}

pub async fn pay_api(env: &Env) -> TestResult<Pay> {
    let config = env.config(Function::Pay)?;
    let adapters = env.adapters(Function::Pay).await?;
    let alipay = Counting {
        inner: adapters.alipay,
        calls: Arc::default(),
        die: Arc::default(),
    };
    let orders = adapters.orders.clone();
    let api = PayApi {
        payments: Payments::new(
            adapters.orders,
            adapters.expiry.ok_or_else(|| err("no expiry scheduler"))?,
            alipay.clone(),
            SystemClock,
            Settings::from_config(&config),
        ),
        nonces: adapters.nonces,
        keys: adapters.merchant_keys,
        max_body_bytes: config.knobs.max_body_bytes,
    };
    Ok(Pay {
        api: Arc::new(api),
        alipay,
        orders,
    })
}

pub fn qr_body(out_trade_no: &str, amount_fen: i64) -> String {
    json!({"out_trade_no": out_trade_no, "amount_fen": amount_fen, "subject": "咖啡 coffee", "scene": "qr"}).to_string()
}

pub fn barcode_body(out_trade_no: &str, auth_code: &str) -> String {
    json!({"out_trade_no": out_trade_no, "amount_fen": 1234, "subject": "tea", "scene": "barcode", "auth_code": auth_code, "store_id": "S01", "terminal_id": "T9"}).to_string()
}

impl Pay {
    /// POSTs a signed create request; returns (status, body, replayed header).
    pub async fn create(&self, env: &Env, body: &str) -> (u16, Value, Option<String>) {
        let response = self
            .api
            .handle(env.signed("POST", "/v1/payments", body))
            .await;
        (
            response.status().as_u16(),
            body_json(&response),
            header(&response, "idempotent-replayed").map(str::to_owned),
        )
    }
}
