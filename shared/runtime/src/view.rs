//! The order as the merchant API shows it (`POST` and `GET /v1/payments`). Every field is
//! always present (`null` when unknown), so clients can rely on the shape; the three
//! explanatory fields at the end appear only when they say something.

use chrono::{DateTime, SecondsFormat, Utc};
use domain::Scene;
use domain::order::{Order, OrderStatus};
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
            failure: order.failure().map(|f| FailureView {
                code: f.code.clone(),
                message: f.message.clone(),
            }),
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
