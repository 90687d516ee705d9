//! The world the handlers run in: the in-memory store (`domain::memory`), the expiry queue,
//! the model of Alipay and a clock, all behind [`Port`], which implements every port the
//! handlers are generic over.
//!
//! Every store call, Alipay call and sleep of a handler is a suspension point ([`Gate`]): the
//! handler's future stops there until the driver resumes it with a [`Fate`] (what the store or
//! Alipay does with the request), so the script decides how concurrent requests interleave.
//! A suspension has a deadline: a store call answers before time moves on, an Alipay call
//! before the client's timeout, a sleep when it ends.

use crate::alipay::Alipay;
use alipay::api::{
    CancelRequest, CancelResponse, CloseRequest, CloseResponse, PayRequest, PayResponse,
    PrecreateRequest, PrecreateResponse, QueryRequest, QueryResponse, RefundQueryRequest,
    RefundQueryResponse, RefundRequest, RefundResponse,
};
use alipay::outcome::{Failure, Outcome, UnknownCause};
use chrono::{DateTime, Utc};
use domain::OutTradeNo;
use domain::anomaly::Anomaly;
use domain::fence::LeasePolicy;
use domain::memory::{MemoryScheduler, MemoryStore};
use domain::notification::ReceivedNotification;
use domain::order::{Order, OrderEvent, Transition};
use domain::ports::{
    Applied, Claim, Clock, NotificationLog, OrderStore, PaymentGateway, StoreError,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

/// The Alipay client's timeout: a call is answered (or given up) within it.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a handler is suspended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Store,
    Call(&'static str),
    Sleep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    pub point: Point,
    /// When it must be resumed at the latest.
    pub deadline: DateTime<Utc>,
}

/// What happens to a suspended request, chosen by the script (one byte, read per kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fate(pub u8);

/// What an Alipay call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFate {
    /// It arrives and is answered.
    Answered,
    /// It arrives (its effect happens) but the answer is lost.
    AnswerLost,
    /// It never arrives, or Alipay fails before doing anything: the answer is unknown.
    NotArrived(bool),
    /// Alipay asks for the call to be sent again (`retry_flag`), doing nothing.
    Busy,
}

/// What a store call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFate {
    Done,
    /// DynamoDB is unavailable: nothing is written.
    Unavailable,
    /// Written, but the answer is lost (the SDK's retries ran out).
    AnswerLost,
}

impl Fate {
    /// Everything works: the settle phase's fate.
    pub const NORMAL: Fate = Fate(0);

    pub fn call(self) -> CallFate {
        match self.0 % 16 {
            11 | 12 => CallFate::AnswerLost,
            13 => CallFate::NotArrived(false),
            14 => CallFate::NotArrived(true),
            15 => CallFate::Busy,
            _ => CallFate::Answered,
        }
    }

    pub fn store(self) -> StoreFate {
        match self.0 % 32 {
            30 => StoreFate::Unavailable,
            31 => StoreFate::AnswerLost,
            _ => StoreFate::Done,
        }
    }
}

#[derive(Default)]
struct Gates {
    /// The handler being polled.
    current: Option<usize>,
    waiting: BTreeMap<usize, Wait>,
    granted: BTreeMap<usize, Fate>,
}

pub struct World {
    pub store: MemoryStore,
    pub queue: MemoryScheduler,
    alipay: Mutex<Alipay>,
    now: Mutex<DateTime<Utc>>,
    gates: Mutex<Gates>,
    /// Broken rules seen inside a port (checked with the invariants).
    violations: Mutex<Vec<String>>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl World {
    pub fn new(start: DateTime<Utc>) -> World {
        World {
            store: MemoryStore::default(),
            queue: MemoryScheduler::default(),
            alipay: Mutex::new(Alipay::default()),
            now: Mutex::new(start),
            gates: Mutex::new(Gates::default()),
            violations: Mutex::new(Vec::new()),
        }
    }

    pub fn alipay(&self) -> MutexGuard<'_, Alipay> {
        locked(&self.alipay)
    }

    pub fn now(&self) -> DateTime<Utc> {
        *locked(&self.now)
    }

    /// Moves the clock forward (never back); Alipay closes what expired.
    pub fn set_now(&self, at: DateTime<Utc>) {
        let now = {
            let mut now = locked(&self.now);
            *now = (*now).max(at);
            *now
        };
        self.alipay().tick(now);
    }

    /// The broken rules seen so far.
    pub fn violations(&self) -> Vec<String> {
        locked(&self.violations).clone()
    }

    /// A side-effecting call about to be sent: the order's stored lease must cover the call's
    /// whole timeout plus the margin (`domain::fence`), or a take-over could act while the
    /// call may still land.
    fn check_fenced(&self, method: &str, out_trade_no: &str) {
        let Some(order) = self.store.order(out_trade_no) else {
            return;
        };
        let needed = self.now()
            + chrono::Duration::from_std(CALL_TIMEOUT + LeasePolicy::DEFAULT_MARGIN)
                .unwrap_or_default();
        let covered = order.lease_holder().is_some()
            && order.lease_until().is_some_and(|until| until >= needed);
        if !covered {
            locked(&self.violations).push(format!(
                "{method} of {out_trade_no} sent under a lease until {:?}, needed until {needed}",
                order.lease_until()
            ));
        }
    }

    /// Marks `op` as the handler being polled (`None` once the poll is over).
    pub fn polling(&self, op: Option<usize>) {
        locked(&self.gates).current = op;
    }

    /// Where `op` is suspended.
    pub fn waiting(&self, op: usize) -> Option<Wait> {
        locked(&self.gates).waiting.get(&op).copied()
    }

    /// Every suspended handler.
    pub fn suspended(&self) -> Vec<(usize, Wait)> {
        locked(&self.gates)
            .waiting
            .iter()
            .map(|(op, wait)| (*op, *wait))
            .collect()
    }

    /// Lets `op` go on from its suspension with `fate`.
    pub fn grant(&self, op: usize, fate: Fate) {
        let mut gates = locked(&self.gates);
        gates.waiting.remove(&op);
        gates.granted.insert(op, fate);
    }

    /// Forgets a handler that is gone.
    pub fn forget(&self, op: usize) {
        let mut gates = locked(&self.gates);
        gates.waiting.remove(&op);
        gates.granted.remove(&op);
    }

    fn gate(&self, point: Point, lasts: Duration) -> Gate<'_> {
        let deadline = self.now() + chrono::Duration::from_std(lasts).unwrap_or_default();
        Gate {
            world: self,
            wait: Wait { point, deadline },
            op: None,
        }
    }
}

/// A suspension point: pending until the driver grants the handler its fate.
pub struct Gate<'w> {
    world: &'w World,
    wait: Wait,
    op: Option<usize>,
}

impl Future for Gate<'_> {
    type Output = Fate;

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Fate> {
        let mut gates = locked(&self.world.gates);
        match self.op {
            None => {
                // Outside the driver (no handler being polled) nothing is suspended.
                let Some(op) = gates.current else {
                    return Poll::Ready(Fate::NORMAL);
                };
                gates.waiting.insert(op, self.wait);
                drop(gates);
                self.op = Some(op);
                Poll::Pending
            }
            Some(op) => match gates.granted.remove(&op) {
                Some(fate) => Poll::Ready(fate),
                None => Poll::Pending,
            },
        }
    }
}

/// Every port of every handler, over one world.
#[derive(Clone)]
pub struct Port {
    pub world: Arc<World>,
}

fn unavailable(operation: &str) -> StoreError {
    StoreError::Unavailable(format!("{operation}: the table is unavailable"))
}

impl Port {
    /// A store write under the script's fate.
    async fn write<T>(
        &self,
        operation: &str,
        write: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match self.world.gate(Point::Store, Duration::ZERO).await.store() {
            StoreFate::Done => write.await,
            StoreFate::Unavailable => Err(unavailable(operation)),
            StoreFate::AnswerLost => {
                write.await?;
                Err(unavailable(operation))
            }
        }
    }

    /// An Alipay call under the script's fate: `effect` is Alipay handling the request.
    async fn call<T>(
        &self,
        method: &'static str,
        fenced: Option<&str>,
        effect: impl FnOnce(&mut Alipay, DateTime<Utc>, bool) -> Outcome<T>,
    ) -> Outcome<T> {
        if let Some(out_trade_no) = fenced {
            self.world.check_fenced(method, out_trade_no);
        }
        let fate = self.world.gate(Point::Call(method), CALL_TIMEOUT).await;
        let mut alipay = self.world.alipay();
        let now = self.world.now();
        match fate.call() {
            CallFate::Answered => effect(&mut alipay, now, false),
            CallFate::Busy => effect(&mut alipay, now, true),
            CallFate::AnswerLost => {
                effect(&mut alipay, now, false);
                Outcome::Unknown(UnknownCause::Timeout)
            }
            CallFate::NotArrived(false) => Outcome::Unknown(UnknownCause::Timeout),
            CallFate::NotArrived(true) => Outcome::Unknown(UnknownCause::SystemError(Failure {
                code: "20000".into(),
                msg: "Service Currently Unavailable".into(),
                sub_code: Some("ACQ.SYSTEM_ERROR".into()),
                sub_msg: None,
            })),
        }
    }
}

impl OrderStore for Port {
    async fn claim(&self, order: &Order, event: &OrderEvent) -> Result<Claim, StoreError> {
        self.write("claim", self.world.store.claim(order, event))
            .await
    }

    async fn get(&self, out_trade_no: &OutTradeNo) -> Result<Option<Order>, StoreError> {
        match self.world.gate(Point::Store, Duration::ZERO).await.store() {
            StoreFate::Done => self.world.store.get(out_trade_no).await,
            StoreFate::Unavailable | StoreFate::AnswerLost => Err(unavailable("get")),
        }
    }

    async fn apply(&self, transition: &Transition) -> Result<Applied, StoreError> {
        self.write("apply", self.world.store.apply(transition))
            .await
    }

    async fn record_anomaly(&self, anomaly: &Anomaly) -> Result<(), StoreError> {
        self.write("record_anomaly", self.world.store.record_anomaly(anomaly))
            .await
    }
}

impl NotificationLog for Port {
    async fn keep(&self, notification: &ReceivedNotification) -> Result<(), StoreError> {
        self.write("keep", self.world.store.keep(notification))
            .await
    }
}

impl Clock for Port {
    fn now(&self) -> DateTime<Utc> {
        self.world.now()
    }

    async fn sleep(&self, duration: Duration) {
        self.world.gate(Point::Sleep, duration).await;
    }
}

impl PaymentGateway for Port {
    fn call_timeout(&self) -> Duration {
        CALL_TIMEOUT
    }

    async fn precreate(&self, request: &PrecreateRequest) -> Outcome<PrecreateResponse> {
        self.call(
            "precreate",
            Some(&request.out_trade_no),
            |alipay, now, _| alipay.precreate(request, now),
        )
        .await
    }

    async fn pay(&self, request: &PayRequest) -> Outcome<PayResponse> {
        self.call("pay", Some(&request.out_trade_no), |alipay, now, _| {
            alipay.pay(request, now)
        })
        .await
    }

    async fn query(&self, request: &QueryRequest) -> Outcome<QueryResponse> {
        self.call("query", None, |alipay, _, _| alipay.query(request))
            .await
    }

    async fn cancel(&self, request: &CancelRequest) -> Outcome<CancelResponse> {
        self.call(
            "cancel",
            request.trade.as_out_trade_no(),
            |alipay, now, busy| alipay.cancel(request, now, busy),
        )
        .await
    }

    async fn close(&self, request: &CloseRequest) -> Outcome<CloseResponse> {
        self.call(
            "close",
            request.trade.as_out_trade_no(),
            |alipay, now, _| alipay.close(request, now),
        )
        .await
    }

    async fn refund(&self, request: &RefundRequest) -> Outcome<RefundResponse> {
        self.call(
            "refund",
            request.trade.as_out_trade_no(),
            |alipay, now, _| alipay.refund(request, now),
        )
        .await
    }

    async fn refund_query(&self, request: &RefundQueryRequest) -> Outcome<RefundQueryResponse> {
        self.call("refund_query", None, |alipay, _, _| {
            alipay.refund_query(request)
        })
        .await
    }
}
