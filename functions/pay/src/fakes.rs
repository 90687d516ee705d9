//! In-memory ports for the unit tests of this crate's modules (integration tests use the AWS
//! emulator and the Alipay sandbox instead): the store and the expiry queue are
//! `domain::memory`'s; the gateway answers from per-method scripts.

use crate::validation::{PaymentRequest, parse};
use crate::{Payments, Settings};
use alipay::Fen;
use alipay::api::{
    CancelAction, CancelRequest, CancelResponse, CloseRequest, CloseResponse, PayRequest,
    PayResponse, PrecreateRequest, PrecreateResponse, QueryRequest, QueryResponse,
    RefundQueryRequest, RefundQueryResponse, RefundRequest, RefundResponse,
};
use alipay::notify::TradeStatus;
use alipay::outcome::{Failure, Outcome, UnknownCause};
use chrono::{DateTime, TimeZone, Utc};
pub use domain::memory::{MemoryScheduler, MemoryStore};
use domain::ports::{Clock, PaymentGateway};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Answers each method from its script; an exhausted script answers `Unknown(Timeout)`.
/// Each call takes `call_time` of the shared fake time (a slow Alipay).
#[derive(Default)]
pub struct ScriptedGateway {
    pub time: Arc<Mutex<DateTime<Utc>>>,
    pub call_time: Mutex<Duration>,
    pub precreates: Mutex<VecDeque<Outcome<PrecreateResponse>>>,
    pub pays: Mutex<VecDeque<Outcome<PayResponse>>>,
    pub queries: Mutex<VecDeque<Outcome<QueryResponse>>>,
    pub cancels: Mutex<VecDeque<Outcome<CancelResponse>>>,
    pub refunds: Mutex<VecDeque<Outcome<RefundResponse>>>,
    pub refund_queries: Mutex<VecDeque<Outcome<RefundQueryResponse>>>,
    pub calls: Mutex<Vec<&'static str>>,
    /// When each side-effecting call (precreate, pay, cancel, close) started.
    pub side_effects: Mutex<Vec<(&'static str, DateTime<Utc>)>>,
    pub sent_precreates: Mutex<Vec<PrecreateRequest>>,
}

fn next<T>(queue: &Mutex<VecDeque<Outcome<T>>>) -> Outcome<T> {
    queue
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Outcome::Unknown(UnknownCause::Timeout))
}

impl ScriptedGateway {
    fn called(&self, method: &'static str) {
        self.calls.lock().unwrap().push(method);
        if method != "query" && method != "refund_query" {
            let at = *self.time.lock().unwrap();
            self.side_effects.lock().unwrap().push((method, at));
        }
        let took = *self.call_time.lock().unwrap();
        *self.time.lock().unwrap() += chrono::Duration::from_std(took).unwrap();
    }

    pub fn calls(&self, method: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|m| **m == method)
            .count()
    }
}

impl PaymentGateway for ScriptedGateway {
    fn call_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }

    async fn precreate(&self, request: &PrecreateRequest) -> Outcome<PrecreateResponse> {
        self.called("precreate");
        self.sent_precreates.lock().unwrap().push(request.clone());
        next(&self.precreates)
    }
    async fn pay(&self, _request: &PayRequest) -> Outcome<PayResponse> {
        self.called("pay");
        next(&self.pays)
    }
    async fn query(&self, _request: &QueryRequest) -> Outcome<QueryResponse> {
        self.called("query");
        next(&self.queries)
    }
    async fn cancel(&self, _request: &CancelRequest) -> Outcome<CancelResponse> {
        self.called("cancel");
        next(&self.cancels)
    }
    async fn close(&self, _request: &CloseRequest) -> Outcome<CloseResponse> {
        self.called("close");
        Outcome::Unknown(UnknownCause::Timeout)
    }
    async fn refund(&self, _request: &RefundRequest) -> Outcome<RefundResponse> {
        self.called("refund");
        next(&self.refunds)
    }
    async fn refund_query(&self, _request: &RefundQueryRequest) -> Outcome<RefundQueryResponse> {
        self.called("refund_query");
        next(&self.refund_queries)
    }
}

/// Time that moves only when slept through (or taken by a slow gateway call).
pub struct FakeClock(pub Arc<Mutex<DateTime<Utc>>>);

impl Default for FakeClock {
    fn default() -> Self {
        FakeClock(Arc::new(Mutex::new(
            Utc.timestamp_opt(1_700_000_000, 0).single().unwrap(),
        )))
    }
}

impl FakeClock {
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap();
        *now += chrono::Duration::from_std(by).unwrap();
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
    async fn sleep(&self, duration: Duration) {
        self.advance(duration);
    }
}

pub type TestPayments = Payments<MemoryStore, MemoryScheduler, ScriptedGateway, FakeClock>;

pub fn payments() -> TestPayments {
    let clock = FakeClock::default();
    let gateway = ScriptedGateway {
        time: clock.0.clone(),
        ..ScriptedGateway::default()
    };
    Payments::new(
        MemoryStore::default(),
        MemoryScheduler::default(),
        gateway,
        clock,
        Settings::default(),
    )
}

pub fn qr_request(no: &str) -> PaymentRequest {
    parse(
        format!(r#"{{"out_trade_no":"{no}","amount_fen":100,"subject":"tea","scene":"qr"}}"#)
            .as_bytes(),
    )
    .unwrap()
}

pub fn barcode_request(no: &str) -> PaymentRequest {
    parse(
        format!(r#"{{"out_trade_no":"{no}","amount_fen":100,"subject":"tea","scene":"barcode","auth_code":"280000000000000001"}}"#)
            .as_bytes(),
    )
    .unwrap()
}

pub fn failure(sub_code: &str) -> Failure {
    Failure {
        code: "40004".into(),
        msg: "Business Failed".into(),
        sub_code: Some(sub_code.into()),
        sub_msg: Some("refused".into()),
    }
}

pub fn qr_ok(no: &str) -> Outcome<PrecreateResponse> {
    Outcome::Success(PrecreateResponse {
        out_trade_no: no.into(),
        qr_code: format!("https://qr.alipay.com/{no}"),
    })
}

pub fn pay_answer(no: &str) -> PayResponse {
    PayResponse {
        trade_no: format!("2024{no}"),
        out_trade_no: no.into(),
        buyer_logon_id: None,
        buyer_user_id: None,
        buyer_open_id: None,
        total_amount: Some(Fen::new(100)),
        receipt_amount: None,
        buyer_pay_amount: None,
        point_amount: None,
        invoice_amount: None,
        gmt_payment: Some("2023-11-15 06:13:20".into()),
        fund_bill_list: Vec::new(),
    }
}

pub fn trade(no: &str, status: TradeStatus) -> Outcome<QueryResponse> {
    Outcome::Success(QueryResponse {
        trade_no: format!("2024{no}"),
        out_trade_no: no.into(),
        trade_status: status,
        total_amount: Fen::new(100),
        receipt_amount: None,
        buyer_pay_amount: None,
        buyer_logon_id: None,
        buyer_user_id: None,
        buyer_open_id: None,
        send_pay_date: None,
        store_id: None,
        terminal_id: None,
    })
}

pub fn cancelled(action: CancelAction, retry: bool) -> Outcome<CancelResponse> {
    Outcome::Success(CancelResponse {
        trade_no: None,
        out_trade_no: None,
        retry_flag: retry,
        action,
        gmt_refund_pay: None,
    })
}
