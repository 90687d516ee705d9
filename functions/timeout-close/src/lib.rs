//! The `timeout-close` function: the expiry queue (SQS, with per-message delays) delivers
//! each order when it is due, and this function settles it with Alipay. The same queue brings
//! back a paid order whose refund may be unsettled: its PENDING refunds are finished here.
//!
//! - [`expire`]: one message: re-enqueue if not due, else take the order over and settle it
//!   (query; close, cancel, or converge).
//! - [`batch`]: an SQS batch, answered with partial batch failures, so that SQS delivers again
//!   only the messages that failed (after `maxReceiveCount` deliveries they go to the DLQ,
//!   which is alarmed).
//!
//! The logic is generic over the ports; `main.rs` only wires the real adapters.

pub mod batch;
pub mod expire;

use domain::fence::LeasePolicy;
use domain::order::OrderStatus;
use domain::ports::{ScheduleError, StoreError};
use domain::refunding::RefundPolicy;

/// The expiry logic over its ports.
pub struct Expiries<S, Q, G, C> {
    pub store: S,
    pub scheduler: Q,
    pub gateway: G,
    pub clock: C,
    pub policy: LeasePolicy,
    /// For the re-check of refunds left PENDING (`domain::refunding`).
    pub refunds: RefundPolicy,
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Not due yet: enqueued again with the remaining delay.
    NotDue,
    /// Already PAID, CLOSED, FAILED or REFUNDED: nothing to do, Alipay not called.
    AlreadySettled(OrderStatus),
    /// Someone holds the order: enqueued again for when their lease ends.
    Busy,
    /// Settled now, in this status.
    Settled(OrderStatus),
    /// Alipay's trade contradicts the order: an anomaly record, for an operator.
    Anomaly,
    /// No such order (logged): nothing to close.
    NoSuchOrder,
    /// Scheduled before a claim that is not the stored order (a retry's claim, which failed
    /// because the number was taken, or a claim never written): dropped.
    NotThisClaim,
    /// A paid order's PENDING refunds: all settled now.
    RefundsSettled,
    /// A paid order's PENDING refunds: some still unknown; checked again later.
    RefundsPending,
}

impl Handled {
    /// A short, stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Handled::NotDue => "not_due",
            Handled::AlreadySettled(_) => "already_settled",
            Handled::Busy => "busy",
            Handled::Settled(_) => "settled",
            Handled::Anomaly => "anomaly",
            Handled::NoSuchOrder => "no_such_order",
            Handled::NotThisClaim => "not_this_claim",
            Handled::RefundsSettled => "refunds_settled",
            Handled::RefundsPending => "refunds_pending",
        }
    }
}

/// Why a message must be delivered again.
#[derive(Debug, thiserror::Error)]
pub enum ExpiryError {
    #[error("the message is not an expiry message: {0}")]
    Malformed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Scheduler(#[from] ScheduleError),
    #[error("Alipay's answer is unknown ({0})")]
    AlipayUnknown(String),
    #[error("the order kept changing while it was taken over")]
    Contended,
    #[error("the claim the message was scheduled for may still be being written")]
    ClaimNotStoredYet,
}
