//! The order and its refunds as the merchant API shows them (`POST` and `GET /v1/payments`,
//! the refunds routes, the business events). Every field is always present (`null` when
//! unknown), so clients can rely on the shape; the explanatory fields at the end appear only
//! when they say something.

use chrono::{DateTime, SecondsFormat, Utc};
use domain::Scene;
use domain::order::{Order, OrderFailure, OrderStatus, Refund, RefundStatus};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureView {
    /// Alipay's `sub_code` (e.g. `ACQ.PAYMENT_AUTH_CODE_INVALID`), or its `code`.
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderView {
    pub out_trade_no: String,
    pub status: OrderStatus,
    pub amount_fen: i64,
    pub subject: String,
    pub scene: Scene,
    pub qr_code: Option<String>,
    pub alipay_trade_no: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    /// When the buyer scanned the QR code (Alipay's WAIT_BUYER_PAY notification).
    pub scanned_at: Option<String>,
    pub paid_at: Option<String>,
    /// Who paid: Alipay's user id (`2088…`) for apps on user ids, the OpenID for apps on OpenID.
    pub buyer_user_id: Option<String>,
    pub buyer_open_id: Option<String>,
    pub closed_at: Option<String>,
    /// The total refunded so far (0 when nothing was refunded).
    pub refunded_fen: i64,
    pub refunded_at: Option<String>,
    /// What can still be refunded: the paid amount less what was refunded and what pending
    /// refunds reserve (0 unless the order is PAID or PARTIALLY_REFUNDED).
    pub refundable_fen: i64,
    /// The refunds asked for through the API, oldest first.
    pub refunds: Vec<RefundEntry>,
    pub failure: Option<FailureView>,
    /// Why a finished request left the order PENDING (e.g. `cancel_outcome_unknown`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<String>,
    /// `true` when Alipay could not be asked and this is the stored state.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
    /// Why Alipay could not be asked (`alipay_unavailable`, `alipay_mismatch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_error: Option<String>,
}

impl FailureView {
    fn of(failure: &OrderFailure) -> FailureView {
        FailureView {
            code: failure.code.clone(),
            message: failure.message.clone(),
        }
    }
}

/// One refund, as listed with its order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefundEntry {
    pub out_request_no: String,
    pub amount_fen: i64,
    pub status: RefundStatus,
    pub reason: Option<String>,
    pub store_id: Option<String>,
    pub operator_id: Option<String>,
    pub terminal_id: Option<String>,
    pub requested_at: String,
    pub refunded_at: Option<String>,
    /// FAILED: Alipay's `sub_code` (e.g. `ACQ.SELLER_BALANCE_NOT_ENOUGH`) and message.
    pub failure: Option<FailureView>,
}

impl RefundEntry {
    pub fn of(refund: &Refund) -> RefundEntry {
        RefundEntry {
            out_request_no: refund.out_request_no().to_string(),
            amount_fen: refund.amount_fen(),
            status: refund.status(),
            reason: refund.reason().map(str::to_owned),
            store_id: refund.store_id().map(str::to_owned),
            operator_id: refund.operator_id().map(str::to_owned),
            terminal_id: refund.terminal_id().map(str::to_owned),
            requested_at: timestamp(refund.requested_at()),
            refunded_at: refund.refunded_at().map(timestamp),
            failure: refund.failure().map(FailureView::of),
        }
    }
}

/// One refund with its order's totals (`POST` and `GET` of a refund).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefundView {
    pub out_trade_no: String,
    #[serde(flatten)]
    pub refund: RefundEntry,
    /// The order's status after this refund's latest change.
    pub order_status: OrderStatus,
    pub order_refunded_fen: i64,
    pub refundable_fen: i64,
    /// Why a finished request left the refund PENDING (e.g. `refund_outcome_unknown`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<String>,
    /// `true` when Alipay could not be asked and this is the stored state.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_error: Option<String>,
}

impl RefundView {
    pub fn of(order: &Order, refund: &Refund) -> RefundView {
        RefundView {
            out_trade_no: order.out_trade_no().to_string(),
            refund: RefundEntry::of(refund),
            order_status: order.status(),
            order_refunded_fen: order.refunded_fen(),
            refundable_fen: order.refundable_fen(),
            pending_reason: None,
            stale: false,
            sync_error: None,
        }
    }

    pub fn with_pending_reason(mut self, reason: impl Into<String>) -> Self {
        self.pending_reason = Some(reason.into());
        self
    }

    pub fn stale(mut self, sync_error: impl Into<String>) -> Self {
        self.stale = true;
        self.sync_error = Some(sync_error.into());
        self
    }
}

/// RFC 3339 in UTC with seconds, e.g. `2024-01-01T04:00:00Z`.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl OrderView {
    pub fn of(order: &Order) -> OrderView {
        OrderView {
            out_trade_no: order.out_trade_no().as_str().to_owned(),
            status: order.status(),
            amount_fen: order.amount().fen().get(),
            subject: order.subject().to_owned(),
            scene: order.scene(),
            qr_code: order.qr_code().map(str::to_owned),
            alipay_trade_no: order.alipay_trade_no().map(str::to_owned),
            created_at: timestamp(order.created_at()),
            expires_at: timestamp(order.expires_at()),
            scanned_at: order.scanned_at().map(timestamp),
            paid_at: order.paid_at().map(timestamp),
            buyer_user_id: order.buyer().user_id.clone(),
            buyer_open_id: order.buyer().open_id.clone(),
            closed_at: order.closed_at().map(timestamp),
            refunded_fen: order.refunded_fen(),
            refunded_at: order.refunded_at().map(timestamp),
            refundable_fen: order.refundable_fen(),
            refunds: order.refunds().iter().map(RefundEntry::of).collect(),
            failure: order.failure().map(FailureView::of),
            pending_reason: None,
            stale: false,
            sync_error: None,
        }
    }

    pub fn with_pending_reason(mut self, reason: impl Into<String>) -> Self {
        self.pending_reason = Some(reason.into());
        self
    }

    pub fn stale(mut self, sync_error: impl Into<String>) -> Self {
        self.stale = true;
        self.sync_error = Some(sync_error.into());
        self
    }
}
