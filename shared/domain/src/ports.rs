//! The small traits handlers are generic over, so they run against DynamoDB and SQS in
//! Lambda, against the AWS emulator in integration tests, and against fakes in unit tests.

use crate::OutTradeNo;
use crate::anomaly::Anomaly;
use crate::notification::ReceivedNotification;
use crate::order::{Order, OrderEvent, Transition};
use alipay::api::{
    CancelRequest, CancelResponse, CloseRequest, CloseResponse, PayRequest, PayResponse,
    PrecreateRequest, PrecreateResponse, QueryRequest, QueryResponse, RefundQueryRequest,
    RefundQueryResponse, RefundRequest, RefundResponse,
};
use alipay::client::AlipayClient;
use alipay::outcome::Outcome;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::time::Duration;

/// The store could not answer (throttling, network, a malformed item). Conditional-check
/// failures are not errors: they are [`Claim::Exists`] and [`Applied::Conflict`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the order store is unavailable: {0}")]
    Unavailable(String),
    #[error("a stored item is malformed: {0}")]
    Corrupt(String),
}

/// The result of claiming an order number.
// One value per request, moved once: boxing the order would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The number was free; the order is now stored in its first state.
    Claimed,
    /// The number is taken; this is the stored order (returned by the failed condition).
    Exists(Order),
}

/// The result of a conditional transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Written; the order as stored now.
    Applied(Order),
    /// Someone else changed the order first; the order as stored now, if it still exists.
    Conflict(Option<Order>),
}

pub trait OrderStore: Send + Sync {
    /// Stores a new order if its number is free, with its first audit event, atomically.
    fn claim(
        &self,
        order: &Order,
        event: &OrderEvent,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    fn get(
        &self,
        out_trade_no: &OutTradeNo,
    ) -> impl Future<Output = Result<Option<Order>, StoreError>> + Send;

    /// Applies a transition, its audit event and its anomaly (if any) in one conditional
    /// write.
    fn apply(
        &self,
        transition: &Transition,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send;

    /// Records an anomaly seen without a transition (one record per order and kind: a
    /// repeat updates the last sighting and the count, and reopens a resolved record).
    fn record_anomaly(
        &self,
        anomaly: &Anomaly,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Keeps received notifications that cause no transition (a transition keeps its own, in
/// the same write: [`Transition::notification`]).
pub trait NotificationLog: Send + Sync {
    fn keep(
        &self,
        notification: &ReceivedNotification,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[derive(Debug, thiserror::Error)]
#[error("the expiry could not be scheduled: {0}")]
pub struct ScheduleError(pub String);

/// The claim an expiry was scheduled for, before that claim was written: the new order's
/// creation time and the hash of the request that made it. Two claims with the same
/// reference are the same request in the same second, so they have the same due time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClaimRef {
    pub claimed_at: DateTime<Utc>,
    pub request_hash: String,
}

impl ClaimRef {
    /// The reference of the claim `order` was (or is about to be) stored with.
    pub fn of(order: &Order) -> ClaimRef {
        ClaimRef {
            claimed_at: order.created_at(),
            request_hash: order.request_hash().to_owned(),
        }
    }

    /// Whether `order` is the claim this reference names (not another request's).
    pub fn names(&self, order: &Order) -> bool {
        self.claimed_at == order.created_at() && self.request_hash == order.request_hash()
    }
}

/// Makes sure the timeout-close function sees an order when it is due.
pub trait ExpiryScheduler: Send + Sync {
    /// Sends the expiry message: the order, when it is due, and the claim it is for if it is
    /// sent before that claim is written.
    fn enqueue(
        &self,
        out_trade_no: &OutTradeNo,
        due_at: DateTime<Utc>,
        claim: Option<&ClaimRef>,
    ) -> impl Future<Output = Result<(), ScheduleError>> + Send;

    /// The order is stored: it is due at `due_at`.
    fn schedule(
        &self,
        out_trade_no: &OutTradeNo,
        due_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), ScheduleError>> + Send {
        self.enqueue(out_trade_no, due_at, None)
    }

    /// The order is about to be claimed as `claim` says: scheduled before the claim is
    /// written, so that no stored claim is ever without its expiry. The timeout-close
    /// function drops the message if the order it finds is not that claim (the claim failed
    /// because the number was taken, or was never written).
    fn schedule_claim(
        &self,
        out_trade_no: &OutTradeNo,
        due_at: DateTime<Utc>,
        claim: &ClaimRef,
    ) -> impl Future<Output = Result<(), ScheduleError>> + Send {
        self.enqueue(out_trade_no, due_at, Some(claim))
    }
}

/// Whether a merchant-API nonce was seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Fresh,
    Replayed,
}

/// Remembers request nonces for the replay window (a conditional put with a TTL). A nonce is
/// remembered alone, whatever key signed it, so it can be used only once across all keys.
pub trait NonceStore: Send + Sync {
    fn remember(
        &self,
        nonce: &str,
        forget_after: DateTime<Utc>,
    ) -> impl Future<Output = Result<NonceCheck, StoreError>> + Send;
}

#[derive(Debug, thiserror::Error)]
#[error("the object store failed: {0}")]
pub struct ObjectError(pub String);

/// An object copied to a local file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
}

/// The bill bucket: bills and reconciliation reports (S3 in Lambda).
pub trait ObjectStore: Send + Sync {
    fn exists(&self, key: &str) -> impl Future<Output = Result<bool, ObjectError>> + Send;

    fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        metadata: &[(&str, String)],
    ) -> impl Future<Output = Result<(), ObjectError>> + Send;

    /// A small object's content (`None` if there is none).
    fn read(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, ObjectError>> + Send;

    /// Copies an object to a local file in bounded memory.
    fn download(
        &self,
        key: &str,
        into: &std::path::Path,
    ) -> impl Future<Output = Result<StoredObject, ObjectError>> + Send;
}

/// Time, injectable so tests can move it.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// Alipay, as the handlers use it: the trade calls of a face-to-face merchant. Every
/// answer is an [`Outcome`]; an unknown effect is never turned into a failure here.
pub trait PaymentGateway: Send + Sync {
    /// The longest a call may take before the client gives up on it: a lease that fences a
    /// side-effecting call must cover at least this (see [`crate::fence`]).
    fn call_timeout(&self) -> Duration;

    /// `alipay.trade.precreate`: a QR code (re-sending the identical request is safe).
    fn precreate(
        &self,
        request: &PrecreateRequest,
    ) -> impl Future<Output = Outcome<PrecreateResponse>> + Send;

    /// `alipay.trade.pay`: charge a scanned payment code; may be `WaitingForBuyer`.
    fn pay(&self, request: &PayRequest) -> impl Future<Output = Outcome<PayResponse>> + Send;

    /// `alipay.trade.query`: the trade as Alipay sees it.
    fn query(&self, request: &QueryRequest) -> impl Future<Output = Outcome<QueryResponse>> + Send;

    /// `alipay.trade.cancel`: close an unpaid trade or refund a paid one.
    fn cancel(
        &self,
        request: &CancelRequest,
    ) -> impl Future<Output = Outcome<CancelResponse>> + Send;

    /// `alipay.trade.close`: close an unpaid trade.
    fn close(&self, request: &CloseRequest) -> impl Future<Output = Outcome<CloseResponse>> + Send;

    /// `alipay.trade.refund`: give (part of) a paid trade back; idempotent per
    /// `out_request_no`.
    fn refund(
        &self,
        request: &RefundRequest,
    ) -> impl Future<Output = Outcome<RefundResponse>> + Send;

    /// `alipay.trade.fastpay.refund.query`: whether a refund happened.
    fn refund_query(
        &self,
        request: &RefundQueryRequest,
    ) -> impl Future<Output = Outcome<RefundQueryResponse>> + Send;
}

/// The real gateway: a thin delegation to the client. Each call's future is boxed: the HTTP
/// client's futures are large, and the payment flows nest several levels around them.
impl PaymentGateway for AlipayClient {
    fn call_timeout(&self) -> Duration {
        self.config().request_timeout
    }

    async fn precreate(&self, request: &PrecreateRequest) -> Outcome<PrecreateResponse> {
        Box::pin(AlipayClient::precreate(self, request)).await
    }

    async fn pay(&self, request: &PayRequest) -> Outcome<PayResponse> {
        Box::pin(AlipayClient::pay(self, request)).await
    }

    async fn query(&self, request: &QueryRequest) -> Outcome<QueryResponse> {
        Box::pin(AlipayClient::query(self, request)).await
    }

    async fn cancel(&self, request: &CancelRequest) -> Outcome<CancelResponse> {
        Box::pin(AlipayClient::cancel(self, request)).await
    }

    async fn close(&self, request: &CloseRequest) -> Outcome<CloseResponse> {
        Box::pin(AlipayClient::close(self, request)).await
    }

    async fn refund(&self, request: &RefundRequest) -> Outcome<RefundResponse> {
        Box::pin(AlipayClient::refund(self, request)).await
    }

    async fn refund_query(&self, request: &RefundQueryRequest) -> Outcome<RefundQueryResponse> {
        Box::pin(AlipayClient::refund_query(self, request)).await
    }
}
