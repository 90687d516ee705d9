//! Anomalies: money at Alipay that contradicts an order here. Each one is a durable record
//! (one per order and kind: a repeat updates `last_seen` and the count), written in the same
//! transaction as the transition it accompanies, listable by day and by open status, logged
//! at error level and counted as a metric of its kind. An operator resolves it; nothing
//! resolves it automatically.
//!
//! The operator's action for each kind is documented in the API reference
//! (`infra/api/README.md`, "Anomalies") and returned by [`AnomalyKind::operator_action`].

use crate::OutTradeNo;
use crate::order::OrderStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// `alipay.trade.cancel` answered `action=refund`: the buyer had paid and the cancel gave
    /// the money back. The order is REFUNDED.
    RefundedByCancel,
    /// Alipay reports a payment for an order that is CLOSED or FAILED here.
    PaidAfterClose,
    /// A verified Alipay answer names another amount than the order's.
    AmountMismatch,
    /// A verified Alipay answer is about another `out_trade_no`.
    OutTradeNoMismatch,
    /// Alipay names another `trade_no` than the one recorded for the order.
    TradeNoMismatch,
    /// A verified notification of this app names an order that does not exist here.
    UnknownOrder,
    /// A notification that cannot be trusted: its signature does not verify, or it cannot be
    /// read as a notification at all.
    UntrustedNotification,
    /// A correctly signed notification for another app or another seller.
    ForeignNotification,
    /// Alipay reports a refund nobody here asked for, or more refunded than recorded here, or
    /// a refund of an order that is not paid here.
    UnrequestedRefund,
    /// Paid or refunded here on a day, but Alipay's bill of that day does not show it.
    MissingFromBill,
    /// Alipay's bill shows a refund of another amount than the one recorded here.
    RefundMismatch,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 11] = [
        AnomalyKind::RefundedByCancel,
        AnomalyKind::PaidAfterClose,
        AnomalyKind::AmountMismatch,
        AnomalyKind::OutTradeNoMismatch,
        AnomalyKind::TradeNoMismatch,
        AnomalyKind::UnknownOrder,
        AnomalyKind::UntrustedNotification,
        AnomalyKind::ForeignNotification,
        AnomalyKind::UnrequestedRefund,
        AnomalyKind::MissingFromBill,
        AnomalyKind::RefundMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::RefundedByCancel => "refunded_by_cancel",
            AnomalyKind::PaidAfterClose => "paid_after_close",
            AnomalyKind::AmountMismatch => "amount_mismatch",
            AnomalyKind::OutTradeNoMismatch => "out_trade_no_mismatch",
            AnomalyKind::TradeNoMismatch => "trade_no_mismatch",
            AnomalyKind::UnknownOrder => "unknown_order",
            AnomalyKind::UntrustedNotification => "untrusted_notification",
            AnomalyKind::ForeignNotification => "foreign_notification",
            AnomalyKind::UnrequestedRefund => "unrequested_refund",
            AnomalyKind::MissingFromBill => "missing_from_bill",
            AnomalyKind::RefundMismatch => "refund_mismatch",
        }
    }

    /// The EMF metric counting this kind.
    pub fn metric(self) -> &'static str {
        match self {
            AnomalyKind::RefundedByCancel => "anomaly_refunded_by_cancel",
            AnomalyKind::PaidAfterClose => "anomaly_paid_after_close",
            AnomalyKind::AmountMismatch => "anomaly_amount_mismatch",
            AnomalyKind::OutTradeNoMismatch => "anomaly_out_trade_no_mismatch",
            AnomalyKind::TradeNoMismatch => "anomaly_trade_no_mismatch",
            AnomalyKind::UnknownOrder => "anomaly_unknown_order",
            AnomalyKind::UntrustedNotification => "anomaly_untrusted_notification",
            AnomalyKind::ForeignNotification => "anomaly_foreign_notification",
            AnomalyKind::UnrequestedRefund => "anomaly_unrequested_refund",
            AnomalyKind::MissingFromBill => "anomaly_missing_from_bill",
            AnomalyKind::RefundMismatch => "anomaly_refund_mismatch",
        }
    }

    /// What an operator should do, in one sentence.
    pub fn operator_action(self) -> &'static str {
        match self {
            AnomalyKind::RefundedByCancel => {
                "The buyer paid and was refunded in full by the cancel: make sure no goods were handed over for this order, then resolve."
            }
            AnomalyKind::PaidAfterClose => {
                "The buyer paid for an order given up here: hand over the goods and accept the payment, or refund the buyer, then resolve."
            }
            AnomalyKind::AmountMismatch => {
                "Alipay holds a trade of another amount under this order number: compare with Alipay's merchant portal and refund or accept the difference, then resolve."
            }
            AnomalyKind::OutTradeNoMismatch => {
                "Alipay answered about another order number: check the gateway and app configuration (a proxy or a shared app id), then resolve."
            }
            AnomalyKind::TradeNoMismatch => {
                "Alipay reports two trades for one order number: check both in Alipay's merchant portal and refund the duplicate, then resolve."
            }
            AnomalyKind::UnknownOrder => {
                "Alipay notified a trade for an order number this system never created: look the trade up in Alipay's merchant portal (another system sharing the app id, or lost data), refund or record it, then resolve."
            }
            AnomalyKind::UntrustedNotification => {
                "A notification failed verification and was ignored: if notifications keep failing, check the Alipay public key (a rotated key?); otherwise it is a forgery. Orders still converge by querying Alipay. Resolve once explained."
            }
            AnomalyKind::ForeignNotification => {
                "A correctly signed notification for another app or seller reached this endpoint: check the notify_url configured in the other app, then resolve."
            }
            AnomalyKind::UnrequestedRefund => {
                "Alipay reports money refunded that no refund here accounts for (a refund made in Alipay's merchant portal, or by another system): check the trade's refunds in the portal, record the return of goods, then resolve."
            }
            AnomalyKind::MissingFromBill => {
                "Recorded here as paid (or refunded) on a day whose Alipay bill does not show it: look the trade up in Alipay's merchant portal; if Alipay has no such payment, the goods were handed over unpaid. Resolve once explained."
            }
            AnomalyKind::RefundMismatch => {
                "Alipay's bill shows a refund of another amount than recorded here: compare with the trade's refunds in Alipay's merchant portal and correct the books, then resolve."
            }
        }
    }
}

/// Which Alipay answer showed the contradiction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactSource {
    PayResponse,
    PrecreateResponse,
    Query,
    Cancel,
    Notification,
    RefundResponse,
    RefundQuery,
    /// Alipay's daily bill.
    Bill,
}

/// A reason for an anomaly to have no order: the notification named no valid order number.
pub const UNATTRIBUTED: &str = "unattributed";

/// What Alipay said, as far as it bears on the contradiction (verified text only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlipayFacts {
    pub source: Option<FactSource>,
    /// The `out_trade_no` Alipay's answer carried.
    pub out_trade_no: Option<String>,
    pub trade_no: Option<String>,
    pub trade_status: Option<String>,
    pub total_amount_fen: Option<i64>,
    pub refund_fen: Option<i64>,
}

impl AlipayFacts {
    pub fn from(source: FactSource) -> AlipayFacts {
        AlipayFacts {
            source: Some(source),
            ..AlipayFacts::default()
        }
    }
}

/// One sighting of an anomaly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    /// The order it is about; none when a notification named no valid order number.
    pub out_trade_no: Option<OutTradeNo>,
    /// The order's status when it was seen (after the transition it accompanies, if any);
    /// none when there is no such order.
    pub order_status: Option<OrderStatus>,
    pub order_amount_fen: Option<i64>,
    pub facts: AlipayFacts,
    pub detail: String,
    pub seen_at: DateTime<Utc>,
}

impl Anomaly {
    /// `<out_trade_no>/<kind>`: one record per order and kind; `unattributed/<day>/<kind>`
    /// (Beijing day) for sightings without an order number: one record per day and kind.
    pub fn id(&self) -> String {
        match &self.out_trade_no {
            Some(no) => anomaly_id(no, self.kind),
            None => format!(
                "{UNATTRIBUTED}/{}/{}",
                crate::beijing_day(self.seen_at).format("%Y-%m-%d"),
                self.kind.as_str()
            ),
        }
    }

    /// The error-level log line and the metric of a recorded anomaly. Called once the
    /// record is durable.
    pub fn report(&self) {
        tracing::error!(
            out_trade_no = self.out_trade_no.as_ref().map(OutTradeNo::as_str),
            anomaly = self.kind.as_str(),
            order_status = self.order_status.map(OrderStatus::as_str),
            alipay_trade_no = self.facts.trade_no.as_deref(),
            alipay_amount_fen = self.facts.total_amount_fen,
            detail = %self.detail,
            "anomaly recorded: {}",
            self.kind.operator_action()
        );
        metrics::counter!(self.kind.metric()).increment(1);
    }
}

pub fn anomaly_id(out_trade_no: &OutTradeNo, kind: AnomalyKind) -> String {
    format!("{out_trade_no}/{}", kind.as_str())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AnomalyStatus {
    Open,
    Resolved,
}

/// What an operator did about an anomaly when resolving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolutionAction {
    /// Explained; nothing to change here.
    Dismiss,
    /// The buyer's payment is kept: the order becomes PAID.
    AcceptAsPaid,
    /// The buyer's payment goes back: the order becomes PAID and is refunded in full through
    /// the refund flow.
    Refund,
}

impl ResolutionAction {
    pub const ALL: [ResolutionAction; 3] = [
        ResolutionAction::Dismiss,
        ResolutionAction::AcceptAsPaid,
        ResolutionAction::Refund,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResolutionAction::Dismiss => "dismiss",
            ResolutionAction::AcceptAsPaid => "accept_as_paid",
            ResolutionAction::Refund => "refund",
        }
    }
}

impl AnomalyKind {
    /// The actions an operator may take on resolving an anomaly of this kind: a payment
    /// Alipay holds for an order given up here is kept or returned; anything else is
    /// explained and dismissed (the money already agrees with Alipay, or needs Alipay's portal).
    pub fn resolution_actions(self) -> &'static [ResolutionAction] {
        match self {
            AnomalyKind::PaidAfterClose => &ResolutionAction::ALL,
            _ => &[ResolutionAction::Dismiss],
        }
    }
}

/// How an anomaly was resolved: by whom, when, why, and what was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// The operator's user name.
    pub by: String,
    pub at: DateTime<Utc>,
    pub note: String,
    pub action: ResolutionAction,
}

/// An anomaly as stored: its latest sighting plus when it was first seen and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalyRecord {
    pub id: String,
    /// The latest sighting.
    pub latest: Anomaly,
    pub status: AnomalyStatus,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub occurrences: u64,
    /// The last resolution (kept when a new sighting reopens the record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_distinct_names_and_an_action() {
        let names: std::collections::BTreeSet<_> =
            AnomalyKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), AnomalyKind::ALL.len());
        for kind in AnomalyKind::ALL {
            assert_eq!(kind.metric(), format!("anomaly_{}", kind.as_str()));
            assert!(!kind.operator_action().is_empty());
            let json = serde_json::to_string(&kind).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }
}
