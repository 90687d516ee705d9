//! An order and its state machine. Fields are private: an order is created by
//! [`Order::claim`] and changed only through the transition methods, each of which yields a
//! [`Transition`] (the expected current state, the next state and its audit event) that a
//! store applies as one conditional write.
//!
//! ```text
//! CREATING ──▶ PENDING ──▶ PAID ──▶ PARTIALLY_REFUNDED ──▶ REFUNDED
//!    │            ├──────▶ CLOSED └──────────────────────────▲
//!    ├──▶ PAID    ├──────▶ FAILED
//!    ├──▶ CLOSED  └──────▶ REFUNDED (a cancel found the trade paid and refunded it)
//!    ├──▶ FAILED
//!    └──▶ REFUNDED
//! ```
//! CREATING is the claim: the order number is ours and Alipay is being called. Refunds of a
//! paid order are records inside the order ([`refund`]): each one is claimed, reserving its
//! amount, and settled by a transition of the order, so the order's version orders them and
//! the refunded total can never exceed the paid amount.
//!
//! A lease (a holder id and an end) fences the side-effecting Alipay calls of an order: of an
//! open order (CREATING or PENDING), and of a refund of a paid one: only the holder sends them, and only while the lease covers the
//! call's whole timeout (see [`crate::fence`]). Any change of the lease bumps the version, so
//! the holder's next conditional write fails once someone else has taken the order over. A
//! retry that finds a lease run out takes it over and asks Alipay what happened instead of
//! guessing; nobody acts on an order under someone else's live lease.

mod refund;

pub use refund::{NewRefund, Refund, RefundRefused, RefundSource, RefundStatus};

use crate::anomaly::Anomaly;
use crate::notification::ReceivedNotification;
use crate::{OrderAmount, OutTradeNo};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Creating,
    Pending,
    Paid,
    Closed,
    Failed,
    /// Paid, then part of the amount refunded (more may be).
    PartiallyRefunded,
    /// Paid, then refunded in full.
    Refunded,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::Creating,
        OrderStatus::Pending,
        OrderStatus::Paid,
        OrderStatus::Closed,
        OrderStatus::Failed,
        OrderStatus::PartiallyRefunded,
        OrderStatus::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Creating => "CREATING",
            OrderStatus::Pending => "PENDING",
            OrderStatus::Paid => "PAID",
            OrderStatus::Closed => "CLOSED",
            OrderStatus::Failed => "FAILED",
            OrderStatus::PartiallyRefunded => "PARTIALLY_REFUNDED",
            OrderStatus::Refunded => "REFUNDED",
        }
    }

    /// The buyer's money is with the merchant and some of it can still be refunded.
    pub fn is_refundable(self) -> bool {
        matches!(self, OrderStatus::Paid | OrderStatus::PartiallyRefunded)
    }

    /// The payment is settled one way or the other: no payment transition leaves these (a
    /// PAID order can still be refunded, under a lease of its own while Alipay is asked).
    pub fn is_final(self) -> bool {
        !self.is_open()
    }

    /// Alipay is being asked to create the trade, or the buyer has not paid yet.
    pub fn is_open(self) -> bool {
        matches!(self, OrderStatus::Creating | OrderStatus::Pending)
    }
}

/// How the buyer pays: scanning our QR code, or our cashier scanning the buyer's barcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scene {
    Qr,
    Barcode,
}

/// Why an order failed, as the cashier needs it (Alipay's `sub_code` when Alipay refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderFailure {
    pub code: String,
    pub message: String,
}

/// What the caller asked for, validated; becomes an order when claimed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrder {
    pub out_trade_no: OutTradeNo,
    pub amount: OrderAmount,
    pub subject: String,
    pub scene: Scene,
    pub store_id: Option<String>,
    pub operator_id: Option<String>,
    pub terminal_id: Option<String>,
    /// Hash of the normalised request, to tell a retry from a different request.
    pub request_hash: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    out_trade_no: OutTradeNo,
    amount: OrderAmount,
    subject: String,
    scene: Scene,
    store_id: Option<String>,
    operator_id: Option<String>,
    terminal_id: Option<String>,
    request_hash: String,
    status: OrderStatus,
    version: u64,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    lease_until: Option<DateTime<Utc>>,
    /// A unique id of the attempt holding the claim (a new one on each take-over). Two
    /// concurrent identical requests thus never produce the same stored value, so a store
    /// may treat "the stored order equals mine" as "my own earlier, retried write".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_holder: Option<String>,
    qr_code: Option<String>,
    alipay_trade_no: Option<String>,
    /// When a buyer scanned the QR code (Alipay's WAIT_BUYER_PAY notification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scanned_at: Option<DateTime<Utc>>,
    paid_at: Option<DateTime<Utc>>,
    /// Who told us the order was paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payment_source: Option<PaymentSource>,
    /// Who paid, as Alipay names the buyer to this app.
    #[serde(default, skip_serializing_if = "Buyer::is_unknown")]
    buyer: Buyer,
    closed_at: Option<DateTime<Utc>>,
    /// The total refunded so far, in fen (0 when nothing was refunded).
    #[serde(default)]
    refunded_fen: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refunded_at: Option<DateTime<Utc>>,
    /// The refunds asked for through the API, in the order they were asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    refunds: Vec<Refund>,
    last_synced_at: Option<DateTime<Utc>>,
    failure: Option<OrderFailure>,
}

/// The buyer as Alipay identifies them to this app: `buyer_id`/`buyer_user_id` (a `2088…`
/// user id) for apps on user ids, `buyer_open_id` for apps on OpenID (the default for apps
/// created since 2023). Either may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buyer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_id: Option<String>,
}

impl Buyer {
    pub fn new(user_id: Option<String>, open_id: Option<String>) -> Buyer {
        let non_empty = |id: Option<String>| id.filter(|id| !id.is_empty());
        Buyer {
            user_id: non_empty(user_id),
            open_id: non_empty(open_id),
        }
    }

    pub fn is_unknown(&self) -> bool {
        self.user_id.is_none() && self.open_id.is_none()
    }
}

/// Who told us a payment happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentSource {
    PayResponse,
    Query,
    Notification,
    /// Alipay's daily bill showed the payment (the reconciliation healed the order).
    Reconciliation,
}

/// The audit record of one transition, committed together with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    pub out_trade_no: OutTradeNo,
    /// The order's version after the transition (events of one order are numbered by it).
    pub version: u64,
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    /// Who wrote it: the function (`pay`, `query`, `notify`, `timeout-close`, `reconcile`),
    /// stamped by the store it wrote through, or `operator:<username>` for a console action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Claimed,
    LeaseTakenOver,
    /// The holder extended its lease before an Alipay call (fencing).
    LeaseExtended,
    /// The holder gave up without an answer from Alipay (unknown outcome, or the expiry
    /// could not be scheduled): a retry may take the order over at once.
    LeaseReleased,
    CreatedAtAlipay,
    Synced,
    /// A buyer scanned the QR code (Alipay notified WAIT_BUYER_PAY).
    Scanned {
        alipay_trade_no: Option<String>,
    },
    Paid {
        alipay_trade_no: String,
        source: PaymentSource,
    },
    Closed {
        reason: String,
    },
    Failed {
        failure: OrderFailure,
    },
    /// An operator kept a payment Alipay reported for an order given up here (CLOSED or
    /// FAILED): resolving its `paid_after_close` anomaly.
    AcceptedAsPaid {
        alipay_trade_no: String,
    },
    /// A cancel found the trade paid and refunded it in full.
    RefundedByCancel {
        alipay_trade_no: Option<String>,
        refund_fen: i64,
    },
    /// A refund was claimed: its amount is reserved and Alipay is being asked.
    RefundRequested {
        out_request_no: String,
        amount_fen: i64,
    },
    /// Alipay gave the refund's amount back to the buyer.
    RefundSucceeded {
        out_request_no: String,
        amount_fen: i64,
        source: RefundSource,
    },
    /// Alipay refused the refund for good; its reserved amount is released.
    RefundFailed {
        out_request_no: String,
        amount_fen: i64,
        failure: OrderFailure,
    },
}

/// The states in which an order can be leased: open (its payment is being created or
/// settled), or paid (one of its refunds is being sent).
const LEASABLE: [OrderStatus; 4] = [
    OrderStatus::Creating,
    OrderStatus::Pending,
    OrderStatus::Paid,
    OrderStatus::PartiallyRefunded,
];

/// One conditional write: apply `next` only if the stored order still has
/// `expected_status` and `expected_version`; the event, and the anomaly if any, commit with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub expected_status: OrderStatus,
    pub expected_version: u64,
    pub next: Order,
    pub event: OrderEvent,
    pub anomaly: Option<Anomaly>,
    /// The notification that caused it, kept in the same write.
    pub notification: Option<ReceivedNotification>,
}

impl Transition {
    /// Records `anomaly` in the same write.
    /// Names who caused the transition in its audit event (an operator's console action),
    /// instead of the function whose store writes it.
    pub fn by(mut self, actor: impl Into<String>) -> Transition {
        self.event.actor = Some(actor.into());
        self
    }

    pub fn with_anomaly(mut self, anomaly: Option<Anomaly>) -> Transition {
        self.anomaly = anomaly;
        self
    }

    /// Keeps `notification` in the same write.
    pub fn with_notification(mut self, notification: ReceivedNotification) -> Transition {
        self.notification = Some(notification);
        self
    }
}

/// The requested change does not apply to the order's current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("order {out_trade_no} cannot go from {from:?} to {to:?}")]
pub struct IllegalTransition {
    pub out_trade_no: OutTradeNo,
    pub from: OrderStatus,
    pub to: OrderStatus,
}

/// Why a lease cannot be taken over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TakeOverRefused {
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error("order {out_trade_no} is leased until {until}")]
    Live {
        out_trade_no: OutTradeNo,
        until: DateTime<Utc>,
    },
}

impl Order {
    /// The first state of an order: claimed, Alipay not yet called.
    pub fn claim(new: NewOrder, now: DateTime<Utc>, lease: Duration) -> (Order, OrderEvent) {
        let order = Order {
            out_trade_no: new.out_trade_no,
            amount: new.amount,
            subject: new.subject,
            scene: new.scene,
            store_id: new.store_id,
            operator_id: new.operator_id,
            terminal_id: new.terminal_id,
            request_hash: new.request_hash,
            status: OrderStatus::Creating,
            version: 1,
            created_at: now,
            expires_at: new.expires_at,
            lease_until: Some(now + lease),
            lease_holder: Some(ulid::Ulid::generate().to_string()),
            qr_code: None,
            alipay_trade_no: None,
            scanned_at: None,
            paid_at: None,
            payment_source: None,
            buyer: Buyer::default(),
            closed_at: None,
            refunded_fen: 0,
            refunded_at: None,
            refunds: Vec::new(),
            last_synced_at: None,
            failure: None,
        };
        let event = OrderEvent {
            out_trade_no: order.out_trade_no.clone(),
            version: 1,
            from: None,
            to: OrderStatus::Creating,
            kind: EventKind::Claimed,
            at: now,
            actor: None,
        };
        (order, event)
    }

    fn transition(
        &self,
        allowed_from: &[OrderStatus],
        to: OrderStatus,
        kind: EventKind,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut Order),
    ) -> Result<Transition, IllegalTransition> {
        if !allowed_from.contains(&self.status) {
            return Err(IllegalTransition {
                out_trade_no: self.out_trade_no.clone(),
                from: self.status,
                to,
            });
        }
        let mut next = self.clone();
        next.status = to;
        next.version = self.version + 1;
        // Settling the payment ends the payment's lease; among the paid states a lease
        // belongs to a refund and is ended by that refund's own transitions.
        if to.is_final() && (self.status.is_open() || to == OrderStatus::Refunded) {
            next.lease_until = None;
            next.lease_holder = None;
        }
        change(&mut next);
        let event = OrderEvent {
            out_trade_no: self.out_trade_no.clone(),
            version: next.version,
            from: Some(self.status),
            to,
            kind,
            at: now,
            actor: None,
        };
        Ok(Transition {
            expected_status: self.status,
            expected_version: self.version,
            next,
            event,
            anomaly: None,
            notification: None,
        })
    }

    /// A paid order is leased only while one of its refunds is sent: it has a holder then.
    fn check_leased(&self) -> Result<(), IllegalTransition> {
        if self.status.is_refundable() && self.lease_holder.is_none() {
            return Err(IllegalTransition {
                out_trade_no: self.out_trade_no.clone(),
                from: self.status,
                to: self.status,
            });
        }
        Ok(())
    }

    /// Takes over an open order whose lease has run out (or was released): its holder is
    /// presumed dead, and the new holder asks Alipay what happened before doing anything.
    pub fn take_over_lease(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Transition, TakeOverRefused> {
        if let Some(until) = self.lease_until.filter(|_| self.lease_live(now)) {
            return Err(TakeOverRefused::Live {
                out_trade_no: self.out_trade_no.clone(),
                until,
            });
        }
        Ok(self.transition(
            &[OrderStatus::Creating, OrderStatus::Pending],
            self.status,
            EventKind::LeaseTakenOver,
            now,
            |o| {
                o.lease_until = Some(now + lease);
                o.lease_holder = Some(ulid::Ulid::generate().to_string());
            },
        )?)
    }

    /// The holder makes its lease run until `now + lease` (fencing: see [`crate::fence`]).
    /// The version condition of the write proves the holder still has the order.
    pub fn extend_lease(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Transition, IllegalTransition> {
        self.check_leased()?;
        self.transition(&LEASABLE, self.status, EventKind::LeaseExtended, now, |o| {
            o.lease_until = Some(now + lease)
        })
    }

    /// The holder stops working on the order without knowing (or without having asked) what
    /// Alipay did: the lease ends now, so the caller's retry (or the expiry job) can take the
    /// order over at once instead of waiting for the lease to run out.
    pub fn release_lease(&self, now: DateTime<Utc>) -> Result<Transition, IllegalTransition> {
        self.check_leased()?;
        self.transition(&LEASABLE, self.status, EventKind::LeaseReleased, now, |o| {
            o.lease_until = Some(now)
        })
    }

    /// Alipay accepted the order and the buyer has not paid yet (QR code issued, or a trade
    /// found waiting); whoever held the lease is done with it.
    pub fn created_at_alipay(
        &self,
        qr_code: Option<String>,
        alipay_trade_no: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Transition, IllegalTransition> {
        self.transition(
            &[OrderStatus::Creating],
            OrderStatus::Pending,
            EventKind::CreatedAtAlipay,
            now,
            |o| {
                o.qr_code = qr_code.or(o.qr_code.take());
                o.alipay_trade_no = alipay_trade_no.or(o.alipay_trade_no.take());
                o.last_synced_at = Some(now);
                o.lease_until = None;
                o.lease_holder = None;
            },
        )
    }

    /// A barcode payment waits for the buyer's confirmation: PENDING, and the holder keeps
    /// the lease (renewed to `now + lease`) while it polls and, if need be, cancels.
    pub fn waiting_for_buyer(
        &self,
        alipay_trade_no: Option<String>,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Transition, IllegalTransition> {
        self.transition(
            &[OrderStatus::Creating],
            OrderStatus::Pending,
            EventKind::CreatedAtAlipay,
            now,
            |o| {
                o.alipay_trade_no = alipay_trade_no.or(o.alipay_trade_no.take());
                o.last_synced_at = Some(now);
                o.lease_until = Some(now + lease);
            },
        )
    }

    /// Alipay has been asked and has nothing new (the trade is waiting, or there is none):
    /// remember when, so that the next look waits. The lease is left as it is.
    pub fn synced(&self, now: DateTime<Utc>) -> Result<Transition, IllegalTransition> {
        self.transition(
            &[OrderStatus::Creating, OrderStatus::Pending],
            self.status,
            EventKind::Synced,
            now,
            |o| o.last_synced_at = Some(now),
        )
    }

    pub fn paid(
        &self,
        alipay_trade_no: String,
        paid_at: DateTime<Utc>,
        source: PaymentSource,
        buyer: Buyer,
        now: DateTime<Utc>,
    ) -> Result<Transition, IllegalTransition> {
        let kind = EventKind::Paid {
            alipay_trade_no: alipay_trade_no.clone(),
            source,
        };
        self.transition(
            &[OrderStatus::Creating, OrderStatus::Pending],
            OrderStatus::Paid,
            kind,
            now,
            |o| {
                o.alipay_trade_no = Some(alipay_trade_no);
                o.paid_at = Some(paid_at);
                o.payment_source = Some(source);
                o.buyer = buyer;
                o.last_synced_at = Some(now);
            },
        )
    }

    /// A buyer scanned the QR code: remembered once (the first scan), leaving the status and
    /// the lease as they are, so whoever holds the order keeps it.
    pub fn scanned(
        &self,
        alipay_trade_no: Option<String>,
        scanned_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Transition, IllegalTransition> {
        self.transition(
            &[OrderStatus::Creating, OrderStatus::Pending],
            self.status,
            EventKind::Scanned {
                alipay_trade_no: alipay_trade_no.clone(),
            },
            now,
            |o| {
                o.alipay_trade_no = o.alipay_trade_no.take().or(alipay_trade_no);
                o.scanned_at = Some(scanned_at);
            },
        )
    }

    pub fn closed(
        &self,
        reason: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Result<Transition, IllegalTransition> {
        let reason = reason.into();
        self.transition(
            &[OrderStatus::Creating, OrderStatus::Pending],
            OrderStatus::Closed,
            EventKind::Closed { reason },
            now,
            |o| {
                o.closed_at = Some(now);
                o.last_synced_at = Some(now);
            },
        )
    }

    pub fn failed(
        &self,
        failure: OrderFailure,
        now: DateTime<Utc>,
    ) -> Result<Transition, IllegalTransition> {
        self.transition(
            &[OrderStatus::Creating, OrderStatus::Pending],
            OrderStatus::Failed,
            EventKind::Failed {
                failure: failure.clone(),
            },
            now,
            |o| {
                o.failure = Some(failure);
                o.closed_at = Some(now);
            },
        )
    }

    /// A cancel found the trade paid and gave the whole amount back. Not while a refund of
    /// the order is PENDING: whether Alipay made it before the cancel is not known yet, so the
    /// order is left to that refund's flow and the cancel is only an anomaly.
    pub fn refunded_by_cancel(
        &self,
        alipay_trade_no: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Transition, IllegalTransition> {
        let refund_fen = self.amount.fen().get();
        if self.reserved_fen() > 0 {
            return Err(IllegalTransition {
                out_trade_no: self.out_trade_no.clone(),
                from: self.status,
                to: OrderStatus::Refunded,
            });
        }
        self.transition(
            &[
                OrderStatus::Creating,
                OrderStatus::Pending,
                OrderStatus::Paid,
            ],
            OrderStatus::Refunded,
            EventKind::RefundedByCancel {
                alipay_trade_no: alipay_trade_no.clone(),
                refund_fen,
            },
            now,
            |o| {
                o.alipay_trade_no = alipay_trade_no.or(o.alipay_trade_no.take());
                o.refunded_fen = refund_fen;
                o.refunded_at = Some(now);
                o.last_synced_at = Some(now);
            },
        )
    }

    /// An operator keeps the payment Alipay holds under `alipay_trade_no` for this order,
    /// given up here (CLOSED or FAILED) before Alipay's payment was known: PAID. Nothing is
    /// refunded or reserved, so the whole amount is refundable from here on.
    pub fn accepted_as_paid(
        &self,
        alipay_trade_no: String,
        now: DateTime<Utc>,
    ) -> Result<Transition, IllegalTransition> {
        self.transition(
            &[OrderStatus::Closed, OrderStatus::Failed],
            OrderStatus::Paid,
            EventKind::AcceptedAsPaid {
                alipay_trade_no: alipay_trade_no.clone(),
            },
            now,
            |o| {
                o.alipay_trade_no = Some(alipay_trade_no);
                o.paid_at = o.paid_at.or(Some(now));
            },
        )
    }

    pub fn out_trade_no(&self) -> &OutTradeNo {
        &self.out_trade_no
    }
    pub fn amount(&self) -> OrderAmount {
        self.amount
    }
    pub fn subject(&self) -> &str {
        &self.subject
    }
    pub fn scene(&self) -> Scene {
        self.scene
    }
    pub fn store_id(&self) -> Option<&str> {
        self.store_id.as_deref()
    }
    pub fn operator_id(&self) -> Option<&str> {
        self.operator_id.as_deref()
    }
    pub fn terminal_id(&self) -> Option<&str> {
        self.terminal_id.as_deref()
    }
    pub fn request_hash(&self) -> &str {
        &self.request_hash
    }
    pub fn status(&self) -> OrderStatus {
        self.status
    }
    pub fn version(&self) -> u64 {
        self.version
    }
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }
    pub fn lease_until(&self) -> Option<DateTime<Utc>> {
        self.lease_until
    }
    pub fn lease_holder(&self) -> Option<&str> {
        self.lease_holder.as_deref()
    }
    pub fn qr_code(&self) -> Option<&str> {
        self.qr_code.as_deref()
    }
    pub fn alipay_trade_no(&self) -> Option<&str> {
        self.alipay_trade_no.as_deref()
    }
    pub fn scanned_at(&self) -> Option<DateTime<Utc>> {
        self.scanned_at
    }
    pub fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.paid_at
    }
    pub fn payment_source(&self) -> Option<PaymentSource> {
        self.payment_source
    }
    pub fn buyer(&self) -> &Buyer {
        &self.buyer
    }
    pub fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.closed_at
    }
    pub fn refunded_fen(&self) -> i64 {
        self.refunded_fen
    }
    pub fn refunded_at(&self) -> Option<DateTime<Utc>> {
        self.refunded_at
    }
    pub fn last_synced_at(&self) -> Option<DateTime<Utc>> {
        self.last_synced_at
    }
    pub fn failure(&self) -> Option<&OrderFailure> {
        self.failure.as_ref()
    }

    /// Someone holds the order: nobody else acts on it.
    pub fn lease_live(&self, now: DateTime<Utc>) -> bool {
        LEASABLE.contains(&self.status) && self.lease_until.is_some_and(|until| until > now)
    }

    /// Whole seconds (at least 1) until a live lease ends: when to come back.
    pub fn lease_seconds_left(&self, now: DateTime<Utc>) -> u64 {
        self.lease_until
            .filter(|_| self.lease_live(now))
            .map(|until| (until - now).num_milliseconds())
            .and_then(|ms| u64::try_from((ms + 999) / 1000).ok())
            .unwrap_or(1)
            .max(1)
    }

    /// Whether `other` is this order under the same lease holder (possibly at another
    /// version): the holder of `self` still holds `other`.
    pub fn same_holder(&self, other: &Order) -> bool {
        self.lease_holder.is_some() && self.lease_holder == other.lease_holder
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0)
            .single()
            .unwrap_or_default()
    }

    fn claimed() -> Order {
        let new = NewOrder {
            out_trade_no: OutTradeNo::generate(),
            amount: OrderAmount::from_fen(100).unwrap_or_else(|_| unreachable!()),
            subject: "coffee".into(),
            scene: Scene::Qr,
            store_id: None,
            operator_id: None,
            terminal_id: None,
            request_hash: "h".into(),
            expires_at: at(900),
        };
        Order::claim(new, at(0), Duration::seconds(30)).0
    }

    #[test]
    fn a_claim_starts_creating_at_version_one_with_a_lease() {
        let order = claimed();
        assert_eq!(order.status(), OrderStatus::Creating);
        assert_eq!(order.version(), 1);
        assert!(order.lease_live(at(29)));
        assert!(!order.lease_live(at(30)));
    }

    #[test]
    fn transitions_expect_the_current_state_and_bump_the_version() {
        let order = claimed();
        let pending = order
            .created_at_alipay(Some("https://qr.alipay.com/x".into()), None, at(1))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(pending.expected_status, OrderStatus::Creating);
        assert_eq!(pending.expected_version, 1);
        assert_eq!(pending.next.status(), OrderStatus::Pending);
        assert_eq!(pending.next.version(), 2);
        assert_eq!(pending.next.lease_until(), None);
        assert_eq!(pending.event.version, 2);
        assert_eq!(pending.event.from, Some(OrderStatus::Creating));

        let paid = pending
            .next
            .paid(
                "2024".into(),
                at(5),
                PaymentSource::Notification,
                Buyer::default(),
                at(6),
            )
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(paid.next.status(), OrderStatus::Paid);
        assert_eq!(paid.next.alipay_trade_no(), Some("2024"));
        assert_eq!(paid.next.qr_code(), Some("https://qr.alipay.com/x"));
    }

    #[test]
    fn final_states_refuse_every_transition() {
        let closed = claimed()
            .closed("expired", at(1))
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        assert!(
            closed
                .paid(
                    "t".into(),
                    at(2),
                    PaymentSource::Query,
                    Buyer::default(),
                    at(2)
                )
                .is_err()
        );
        assert!(closed.closed("again", at(2)).is_err());
        assert!(closed.synced(at(2)).is_err());
        assert!(closed.created_at_alipay(None, None, at(2)).is_err());
        assert!(closed.take_over_lease(at(2), Duration::seconds(1)).is_err());
    }

    #[test]
    fn only_open_orders_can_have_their_lease_taken_over() {
        let order = claimed();
        let taken = order
            .take_over_lease(at(31), Duration::seconds(30))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(taken.next.status(), OrderStatus::Creating);
        assert_eq!(taken.next.lease_until(), Some(at(61)));
        let pending = taken
            .next
            .created_at_alipay(None, None, at(32))
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        let retaken = pending
            .take_over_lease(at(33), Duration::seconds(30))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(retaken.next.status(), OrderStatus::Pending);
        let paid = pending
            .paid(
                "t".into(),
                at(34),
                PaymentSource::Query,
                Buyer::default(),
                at(34),
            )
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        assert!(paid.take_over_lease(at(35), Duration::seconds(30)).is_err());
    }

    #[test]
    fn identical_claims_made_at_the_same_instant_differ() {
        let (a, b) = (claimed(), claimed());
        assert_ne!(a.lease_holder(), b.lease_holder());
        let taken = a
            .take_over_lease(at(31), Duration::seconds(30))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_ne!(taken.next.lease_holder(), a.lease_holder());
    }

    #[test]
    fn a_released_lease_can_be_taken_over_at_once() {
        let order = claimed();
        let released = order
            .release_lease(at(3))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(released.next.status(), OrderStatus::Creating);
        assert_eq!(released.event.kind, EventKind::LeaseReleased);
        assert!(!released.next.lease_live(at(3)));
        assert!(
            released
                .next
                .take_over_lease(at(3), Duration::seconds(30))
                .is_ok()
        );
        let pending = released
            .next
            .created_at_alipay(None, None, at(4))
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        assert_eq!(
            pending.lease_holder(),
            None,
            "created at Alipay: the holder is done"
        );
        let paid = pending
            .paid(
                "t".into(),
                at(5),
                PaymentSource::Query,
                Buyer::default(),
                at(5),
            )
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        assert!(
            paid.release_lease(at(6)).is_err(),
            "final orders carry no lease"
        );
    }

    #[test]
    fn a_live_lease_cannot_be_taken_over_but_its_holder_can_extend_it() {
        let order = claimed();
        assert!(matches!(
            order.take_over_lease(at(10), Duration::seconds(30)),
            Err(TakeOverRefused::Live { .. })
        ));
        let extended = order
            .extend_lease(at(10), Duration::seconds(30))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(extended.next.lease_until(), Some(at(40)));
        assert!(extended.next.same_holder(&order));
        assert_eq!(extended.expected_version, 1, "fenced by the version");
        let taken = extended
            .next
            .take_over_lease(at(40), Duration::seconds(30))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(!taken.next.same_holder(&order), "a new holder");
    }

    #[test]
    fn a_barcode_holder_keeps_its_lease_while_the_buyer_confirms() {
        let order = claimed();
        let pending = order
            .waiting_for_buyer(Some("2024".into()), at(2), Duration::seconds(30))
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        assert_eq!(pending.status(), OrderStatus::Pending);
        assert!(pending.lease_live(at(31)));
        assert!(pending.same_holder(&order));
        let synced = pending
            .synced(at(5))
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        assert!(
            synced.same_holder(&pending),
            "a sync leaves the lease alone"
        );
    }

    #[test]
    fn a_cancel_refund_ends_in_refunded_with_the_whole_amount() {
        let paid = claimed()
            .paid(
                "2024".into(),
                at(2),
                PaymentSource::PayResponse,
                Buyer::default(),
                at(2),
            )
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        let refunded = paid
            .refunded_by_cancel(None, at(3))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(refunded.next.status(), OrderStatus::Refunded);
        assert_eq!(refunded.next.refunded_fen(), 100);
        assert_eq!(refunded.next.refunded_at(), Some(at(3)));
        assert_eq!(refunded.next.alipay_trade_no(), Some("2024"));
        assert!(refunded.next.status().is_final());
        assert!(
            refunded
                .next
                .paid(
                    "2024".into(),
                    at(4),
                    PaymentSource::Query,
                    Buyer::default(),
                    at(4)
                )
                .is_err()
        );
        let from_pending = claimed()
            .refunded_by_cancel(Some("2025".into()), at(3))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(from_pending.next.alipay_trade_no(), Some("2025"));
        assert_eq!(from_pending.next.lease_holder(), None);
    }

    #[test]
    fn a_cancel_refund_does_not_settle_an_order_with_a_refund_in_flight() {
        // The barcode flow's cancel was in flight when a notification marked the order paid
        // and a partial refund was claimed.
        let paid = claimed()
            .paid(
                "2024".into(),
                at(2),
                PaymentSource::Notification,
                Buyer::default(),
                at(2),
            )
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        let refund = NewRefund {
            out_request_no: crate::OutRequestNo::parse("R1")
                .unwrap_or_else(|e| unreachable!("{e}")),
            amount_fen: 40,
            reason: None,
            store_id: None,
            operator_id: None,
            terminal_id: None,
            request_hash: "r".into(),
        };
        let refunding = paid
            .claim_refund(refund, at(3), Duration::seconds(15))
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        assert!(
            refunding.refunded_by_cancel(None, at(4)).is_err(),
            "REFUNDED with 40 still reserved would count 140 of 100"
        );
    }
}
