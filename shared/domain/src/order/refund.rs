//! Refunds of a paid order. Each refund is a record inside its order, identified by the
//! merchant's `out_request_no`; every change to one is a transition of the order, so one
//! conditional write (status and version) both changes the refund and keeps the order's
//! arithmetic right:
//!
//! - claiming a refund reserves its amount: `refunded + reserved + amount <= paid` is checked
//!   against the order as stored, and two different refunds claimed at once conflict on the
//!   version, the loser planning again from the winner's order;
//! - a success moves the amount from reserved to refunded (PAID → PARTIALLY_REFUNDED →
//!   REFUNDED); a failure releases it.
//!
//! The claim takes the order's lease for the refund call (fencing, as for payments): one
//! refund is sent at a time per order. A refund left PENDING (Alipay's answer unknown) keeps
//! its reservation after the lease ends, until a query or a re-send settles it.

use super::{EventKind, IllegalTransition, Order, OrderFailure, OrderStatus, Transition};
use crate::out_request_no::OutRequestNo;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatus {
    /// Claimed; Alipay's answer is not known yet. Its amount is reserved.
    Pending,
    /// The money went back to the buyer.
    Succeeded,
    /// Alipay refused it for good (`failure` says why); nothing was refunded.
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "PENDING",
            RefundStatus::Succeeded => "SUCCEEDED",
            RefundStatus::Failed => "FAILED",
        }
    }
}

/// Who told us a refund succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundSource {
    /// `alipay.trade.refund` answered `fund_change=Y`.
    RefundResponse,
    /// `alipay.trade.fastpay.refund.query` answered `REFUND_SUCCESS`.
    RefundQuery,
    /// A verified refund notification named it.
    Notification,
    /// Alipay's daily bill showed it (the reconciliation settled it).
    Reconciliation,
}

/// A refund as the caller asked for it, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRefund {
    pub out_request_no: OutRequestNo,
    /// Positive; checked against the order's refundable remainder when claimed.
    pub amount_fen: i64,
    pub reason: Option<String>,
    pub store_id: Option<String>,
    pub operator_id: Option<String>,
    pub terminal_id: Option<String>,
    /// Hash of the normalised request, to tell a retry from a different request.
    pub request_hash: String,
}

/// One refund of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    out_request_no: OutRequestNo,
    amount_fen: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    store_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operator_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    terminal_id: Option<String>,
    request_hash: String,
    status: RefundStatus,
    requested_at: DateTime<Utc>,
    /// When Alipay refunded it (its `gmt_refund_pay`, or when we learned it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refunded_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<RefundSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure: Option<OrderFailure>,
    /// The lease holder working on this refund (the order's `lease_holder` while it does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    holder: Option<String>,
    /// When Alipay was last asked about it (a GET of a PENDING refund asks at most this often).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_checked_at: Option<DateTime<Utc>>,
}

impl Refund {
    pub fn out_request_no(&self) -> &OutRequestNo {
        &self.out_request_no
    }
    pub fn amount_fen(&self) -> i64 {
        self.amount_fen
    }
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
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
    pub fn status(&self) -> RefundStatus {
        self.status
    }
    pub fn requested_at(&self) -> DateTime<Utc> {
        self.requested_at
    }
    pub fn refunded_at(&self) -> Option<DateTime<Utc>> {
        self.refunded_at
    }
    pub fn source(&self) -> Option<RefundSource> {
        self.source
    }
    pub fn failure(&self) -> Option<&OrderFailure> {
        self.failure.as_ref()
    }
    pub fn last_checked_at(&self) -> Option<DateTime<Utc>> {
        self.last_checked_at
    }
    pub fn is_pending(&self) -> bool {
        self.status == RefundStatus::Pending
    }
}

/// Why a refund cannot be claimed now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundRefused {
    #[error("order {out_trade_no} is {} and cannot be refunded", status.as_str())]
    NotRefundable {
        out_trade_no: crate::OutTradeNo,
        status: OrderStatus,
    },
    #[error("the refund exceeds the refundable remainder of {refundable_fen} fen")]
    ExceedsPaid { refundable_fen: i64 },
    #[error("another refund of this order is being sent until {until}")]
    Busy { until: DateTime<Utc> },
    #[error("refund {0} exists")]
    Exists(OutRequestNo),
}

impl Order {
    pub fn refunds(&self) -> &[Refund] {
        &self.refunds
    }

    pub fn refund(&self, out_request_no: &OutRequestNo) -> Option<&Refund> {
        self.refunds
            .iter()
            .find(|r| &r.out_request_no == out_request_no)
    }

    /// The amount of the refunds whose outcome is not known yet.
    pub fn reserved_fen(&self) -> i64 {
        self.refunds
            .iter()
            .filter(|r| r.is_pending())
            .map(|r| r.amount_fen)
            .sum()
    }

    /// What can still be refunded: the paid amount less what was refunded and what is
    /// reserved by pending refunds (0 for an order that is not paid).
    pub fn refundable_fen(&self) -> i64 {
        if !self.status.is_refundable() {
            return 0;
        }
        (self.amount.fen().get() - self.refunded_fen - self.reserved_fen()).max(0)
    }

    /// The lease holder of the refund being sent now, if any.
    fn refund_holder(&self, out_request_no: &OutRequestNo) -> Option<&str> {
        self.refund(out_request_no)
            .and_then(|r| r.holder.as_deref())
    }

    /// Claims a refund: reserves its amount and takes the order's lease for the refund call.
    pub fn claim_refund(
        &self,
        new: NewRefund,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Transition, RefundRefused> {
        if self.refund(&new.out_request_no).is_some() {
            return Err(RefundRefused::Exists(new.out_request_no));
        }
        if !self.status.is_refundable() {
            return Err(RefundRefused::NotRefundable {
                out_trade_no: self.out_trade_no.clone(),
                status: self.status,
            });
        }
        if let Some(until) = self.lease_until.filter(|_| self.lease_live(now)) {
            return Err(RefundRefused::Busy { until });
        }
        let refundable_fen = self.refundable_fen();
        if new.amount_fen <= 0 || new.amount_fen > refundable_fen {
            return Err(RefundRefused::ExceedsPaid { refundable_fen });
        }
        let holder = ulid::Ulid::generate().to_string();
        let kind = EventKind::RefundRequested {
            out_request_no: new.out_request_no.to_string(),
            amount_fen: new.amount_fen,
        };
        let refund = Refund {
            out_request_no: new.out_request_no,
            amount_fen: new.amount_fen,
            reason: new.reason,
            store_id: new.store_id,
            operator_id: new.operator_id,
            terminal_id: new.terminal_id,
            request_hash: new.request_hash,
            status: RefundStatus::Pending,
            requested_at: now,
            refunded_at: None,
            source: None,
            failure: None,
            holder: Some(holder.clone()),
            last_checked_at: None,
        };
        self.transition(&[self.status], self.status, kind, now, |o| {
            o.lease_until = Some(now + lease);
            o.lease_holder = Some(holder);
            o.refunds.push(refund);
        })
        .map_err(|_| RefundRefused::NotRefundable {
            out_trade_no: self.out_trade_no.clone(),
            status: self.status,
        })
    }

    /// Takes the order's lease to finish a PENDING refund whose sender is gone (its lease ran
    /// out or was released): the new holder asks Alipay before sending anything again.
    pub fn take_over_refund(
        &self,
        out_request_no: &OutRequestNo,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Transition, RefundRefused> {
        if !self.refund(out_request_no).is_some_and(Refund::is_pending) {
            return Err(RefundRefused::Exists(out_request_no.clone()));
        }
        if let Some(until) = self.lease_until.filter(|_| self.lease_live(now)) {
            return Err(RefundRefused::Busy { until });
        }
        let holder = ulid::Ulid::generate().to_string();
        self.transition(
            &[OrderStatus::Paid, OrderStatus::PartiallyRefunded],
            self.status,
            EventKind::LeaseTakenOver,
            now,
            |o| {
                o.lease_until = Some(now + lease);
                o.lease_holder = Some(holder.clone());
                if let Some(refund) = o.refund_mut(out_request_no) {
                    refund.holder = Some(holder);
                }
            },
        )
        .map_err(|_| RefundRefused::NotRefundable {
            out_trade_no: self.out_trade_no.clone(),
            status: self.status,
        })
    }

    /// Alipay refunded the amount of a PENDING refund: it moves from reserved to refunded.
    /// A fact about money, written whoever holds the order; the lease ends only if it was this
    /// refund's.
    pub fn refund_succeeded(
        &self,
        out_request_no: &OutRequestNo,
        refunded_at: DateTime<Utc>,
        source: RefundSource,
        now: DateTime<Utc>,
    ) -> Result<Transition, IllegalTransition> {
        let amount_fen = self.pending_amount(out_request_no, OrderStatus::Refunded)?;
        let refunded_fen = self.refunded_fen + amount_fen;
        let to = if refunded_fen >= self.amount.fen().get() {
            OrderStatus::Refunded
        } else {
            OrderStatus::PartiallyRefunded
        };
        let kind = EventKind::RefundSucceeded {
            out_request_no: out_request_no.to_string(),
            amount_fen,
            source,
        };
        let ends_lease = self.lease_holder.is_some()
            && self.lease_holder.as_deref() == self.refund_holder(out_request_no);
        self.transition(
            &[OrderStatus::Paid, OrderStatus::PartiallyRefunded],
            to,
            kind,
            now,
            |o| {
                o.refunded_fen = refunded_fen;
                o.refunded_at = Some(refunded_at);
                if ends_lease {
                    o.lease_until = None;
                    o.lease_holder = None;
                }
                if let Some(refund) = o.refund_mut(out_request_no) {
                    refund.status = RefundStatus::Succeeded;
                    refund.refunded_at = Some(refunded_at);
                    refund.source = Some(source);
                    refund.holder = None;
                    refund.last_checked_at = Some(now);
                }
            },
        )
    }

    /// Alipay refused a PENDING refund for good: its reservation is released.
    pub fn refund_failed(
        &self,
        out_request_no: &OutRequestNo,
        failure: OrderFailure,
        now: DateTime<Utc>,
    ) -> Result<Transition, IllegalTransition> {
        let amount_fen = self.pending_amount(out_request_no, self.status)?;
        let kind = EventKind::RefundFailed {
            out_request_no: out_request_no.to_string(),
            amount_fen,
            failure: failure.clone(),
        };
        let ends_lease = self.lease_holder.is_some()
            && self.lease_holder.as_deref() == self.refund_holder(out_request_no);
        self.transition(
            &[OrderStatus::Paid, OrderStatus::PartiallyRefunded],
            self.status,
            kind,
            now,
            |o| {
                if ends_lease {
                    o.lease_until = None;
                    o.lease_holder = None;
                }
                if let Some(refund) = o.refund_mut(out_request_no) {
                    refund.status = RefundStatus::Failed;
                    refund.failure = Some(failure);
                    refund.holder = None;
                    refund.last_checked_at = Some(now);
                }
            },
        )
    }

    /// Alipay was asked about a PENDING refund and had nothing definite: remember when, so
    /// that the next look waits.
    pub fn refund_checked(
        &self,
        out_request_no: &OutRequestNo,
        now: DateTime<Utc>,
    ) -> Result<Transition, IllegalTransition> {
        self.pending_amount(out_request_no, self.status)?;
        self.transition(
            &[OrderStatus::Paid, OrderStatus::PartiallyRefunded],
            self.status,
            EventKind::Synced,
            now,
            |o| {
                if let Some(refund) = o.refund_mut(out_request_no) {
                    refund.last_checked_at = Some(now);
                }
            },
        )
    }

    /// The amount of a PENDING refund; illegal (towards `to`) if there is none.
    fn pending_amount(
        &self,
        out_request_no: &OutRequestNo,
        to: OrderStatus,
    ) -> Result<i64, IllegalTransition> {
        self.refund(out_request_no)
            .filter(|r| r.is_pending())
            .map(|r| r.amount_fen)
            .ok_or_else(|| IllegalTransition {
                out_trade_no: self.out_trade_no.clone(),
                from: self.status,
                to,
            })
    }

    fn refund_mut(&mut self, out_request_no: &OutRequestNo) -> Option<&mut Refund> {
        self.refunds
            .iter_mut()
            .find(|r| &r.out_request_no == out_request_no)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{Buyer, NewOrder, PaymentSource};
    use crate::{OrderAmount, OutTradeNo, Scene};
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0)
            .single()
            .unwrap_or_default()
    }

    fn paid(amount_fen: i64) -> Order {
        let no = OutTradeNo::generate();
        crate::test_orders::claimed(no.as_str(), amount_fen, Scene::Qr)
            .0
            .paid(
                "2024".into(),
                at(1),
                PaymentSource::Notification,
                Buyer::default(),
                at(1),
            )
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next
    }

    fn no(text: &str) -> OutRequestNo {
        OutRequestNo::parse(text).unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn ask(text: &str, amount_fen: i64) -> NewRefund {
        NewRefund {
            out_request_no: no(text),
            amount_fen,
            reason: None,
            store_id: None,
            operator_id: None,
            terminal_id: None,
            request_hash: format!("{text}/{amount_fen}"),
        }
    }

    fn lease() -> Duration {
        Duration::seconds(15)
    }

    #[test]
    fn a_claim_reserves_the_amount_and_takes_the_lease() {
        let order = paid(100);
        let claim = order
            .claim_refund(ask("r1", 30), at(10), lease())
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(claim.expected_version, order.version());
        assert_eq!(claim.next.status(), OrderStatus::Paid);
        assert_eq!(claim.next.reserved_fen(), 30);
        assert_eq!(claim.next.refundable_fen(), 70);
        assert!(claim.next.lease_live(at(20)));
        assert!(matches!(
            claim.event.kind,
            EventKind::RefundRequested { amount_fen: 30, .. }
        ));
        assert!(matches!(
            claim.next.claim_refund(ask("r2", 10), at(11), lease()),
            Err(RefundRefused::Busy { .. })
        ));
    }

    #[test]
    fn partial_then_full_ends_refunded_and_nothing_more_can_be_claimed() {
        let order = paid(100);
        let claimed = order
            .claim_refund(ask("r1", 30), at(10), lease())
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        let partial = claimed
            .refund_succeeded(&no("r1"), at(11), RefundSource::RefundResponse, at(11))
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        assert_eq!(partial.status(), OrderStatus::PartiallyRefunded);
        assert_eq!(partial.refunded_fen(), 30);
        assert_eq!(partial.lease_holder(), None, "the refund's lease ended");
        assert!(matches!(
            partial.claim_refund(ask("r2", 71), at(12), lease()),
            Err(RefundRefused::ExceedsPaid { refundable_fen: 70 })
        ));
        let full = partial
            .claim_refund(ask("r2", 70), at(12), lease())
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next
            .refund_succeeded(&no("r2"), at(13), RefundSource::RefundQuery, at(13))
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        assert_eq!(full.status(), OrderStatus::Refunded);
        assert_eq!(full.refunded_fen(), 100);
        assert_eq!(full.refundable_fen(), 0);
        assert!(matches!(
            full.claim_refund(ask("r3", 1), at(14), lease()),
            Err(RefundRefused::NotRefundable { .. })
        ));
        assert!(
            full.refund_succeeded(&no("r2"), at(15), RefundSource::Notification, at(15))
                .is_err(),
            "a settled refund is settled once"
        );
    }

    #[test]
    fn a_failure_releases_the_reservation() {
        let claimed = paid(100)
            .claim_refund(ask("r1", 100), at(10), lease())
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        assert_eq!(claimed.refundable_fen(), 0);
        let failure = OrderFailure {
            code: "ACQ.SELLER_BALANCE_NOT_ENOUGH".into(),
            message: "balance".into(),
        };
        let failed = claimed
            .refund_failed(&no("r1"), failure, at(11))
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        assert_eq!(failed.status(), OrderStatus::Paid);
        assert_eq!(failed.refundable_fen(), 100);
        assert_eq!(
            failed.refund(&no("r1")).map(Refund::status),
            Some(RefundStatus::Failed)
        );
    }

    #[test]
    fn a_pending_refund_keeps_its_reservation_after_its_lease_and_can_be_taken_over() {
        let claimed = paid(100)
            .claim_refund(ask("r1", 60), at(10), lease())
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        assert!(matches!(
            claimed.take_over_refund(&no("r1"), at(12), lease()),
            Err(RefundRefused::Busy { .. })
        ));
        let released = claimed
            .release_lease(at(13))
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        assert_eq!(released.refundable_fen(), 40);
        let other = released
            .claim_refund(ask("r2", 40), at(14), lease())
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        // The first refund settles (a notification) while the second one is being sent: the
        // second one's lease is left alone.
        let settled = other
            .refund_succeeded(&no("r1"), at(15), RefundSource::Notification, at(15))
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        assert!(settled.same_holder(&other));
        assert_eq!(settled.refunded_fen(), 60);
        assert_eq!(settled.status(), OrderStatus::PartiallyRefunded);
        let taken = settled
            .take_over_refund(&no("r2"), at(40), lease())
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        assert!(!taken.same_holder(&other));
        assert_eq!(
            taken.refund_holder(&no("r2")),
            taken.lease_holder(),
            "the new holder works on r2"
        );
    }

    #[test]
    fn only_paid_orders_take_refunds() {
        let new = NewOrder {
            out_trade_no: OutTradeNo::generate(),
            amount: OrderAmount::from_fen(100).unwrap_or_else(|_| unreachable!()),
            subject: "tea".into(),
            scene: Scene::Qr,
            store_id: None,
            operator_id: None,
            terminal_id: None,
            request_hash: "h".into(),
            expires_at: at(900),
        };
        let creating = Order::claim(new, at(0), lease()).0;
        assert!(matches!(
            creating.claim_refund(ask("r1", 1), at(1), lease()),
            Err(RefundRefused::NotRefundable {
                status: OrderStatus::Creating,
                ..
            })
        ));
        let refunded = paid(100)
            .refunded_by_cancel(None, at(3))
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next;
        assert!(matches!(
            refunded.claim_refund(ask("r1", 1), at(4), lease()),
            Err(RefundRefused::NotRefundable {
                status: OrderStatus::Refunded,
                ..
            })
        ));
    }
}
