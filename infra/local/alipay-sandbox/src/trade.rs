//! The trade record: one merchant order (`out_trade_no`) from the moment the merchant asks for
//! it, through the buyer's scan and payment, to refunds and closing. Every field a bill, a page
//! or a test might need is public; amounts are [`Fen`], times are UTC instants (Beijing time
//! only on the wire).

use alipay::Fen;
use alipay::notify::TradeStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where an order stands. The first three mean "no trade exists at Alipay".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Stage {
    /// A precreated QR order nobody has scanned yet.
    AwaitingScan,
    /// A precreated QR order whose QR code expired unscanned.
    Lapsed,
    /// A precreated QR order cancelled before any scan; it can never be paid.
    Voided,
    WaitBuyerPay,
    TradeSuccess,
    TradeClosed,
    /// Paid, and the refund window is over: nothing can be refunded any more.
    TradeFinished,
}

impl Stage {
    /// The Alipay `trade_status`, once a trade exists.
    pub fn trade_status(self) -> Option<TradeStatus> {
        match self {
            Stage::AwaitingScan | Stage::Lapsed | Stage::Voided => None,
            Stage::WaitBuyerPay => Some(TradeStatus::WaitBuyerPay),
            Stage::TradeSuccess => Some(TradeStatus::TradeSuccess),
            Stage::TradeClosed => Some(TradeStatus::TradeClosed),
            Stage::TradeFinished => Some(TradeStatus::TradeFinished),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::AwaitingScan => "AWAITING_SCAN",
            Stage::Lapsed => "LAPSED",
            Stage::Voided => "VOIDED",
            Stage::WaitBuyerPay => "WAIT_BUYER_PAY",
            Stage::TradeSuccess => "TRADE_SUCCESS",
            Stage::TradeClosed => "TRADE_CLOSED",
            Stage::TradeFinished => "TRADE_FINISHED",
        }
    }
}

/// How the order was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Product {
    /// `alipay.trade.precreate`: the buyer scans the merchant's QR code.
    Precreate { qr_code: String },
    /// `alipay.trade.pay`: the merchant scans the buyer's payment code.
    Barcode { scene: String, auth_code: String },
}

/// What the merchant asked for; a repeated request must match it exactly, or Alipay answers
/// `ACQ.CONTEXT_INCONSISTENT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    pub total_amount: Fen,
    pub subject: String,
    pub body: Option<String>,
    pub store_id: Option<String>,
    pub operator_id: Option<String>,
    pub terminal_id: Option<String>,
    pub timeout_express: Option<String>,
    pub time_expire: Option<String>,
    /// QR orders only: how long the order may be paid, counted from the precreate.
    #[serde(default)]
    pub qr_code_timeout_express: Option<String>,
    /// `precreate` or `barcode`: a QR order cannot be continued as a barcode payment.
    pub product_kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buyer {
    /// `2088…`
    pub user_id: String,
    /// Masked, as Alipay shows it to merchants.
    pub logon_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub out_request_no: String,
    pub amount: Fen,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
    /// Made by `alipay.trade.cancel` on a paid trade rather than by `alipay.trade.refund`.
    pub by_cancel: bool,
    pub store_id: Option<String>,
    pub operator_id: Option<String>,
    pub terminal_id: Option<String>,
}

/// Something the buyer will do later on their own (a `10003` payment being confirmed or
/// declined on the phone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingBuyerAction {
    pub due_at: DateTime<Utc>,
    pub action: BuyerAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuyerAction {
    Pay,
    Decline,
}

/// Why a trade (or an order) ended up closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    Expired,
    ClosedByMerchant,
    CancelledByMerchant,
    FullyRefunded,
    PaymentFailed,
    BuyerDeclined,
}

/// `action` of a successful `alipay.trade.cancel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelAction {
    Close,
    Refund,
}

impl CancelAction {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelAction::Close => "close",
            CancelAction::Refund => "refund",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    pub app_id: String,
    pub out_trade_no: String,
    /// Assigned when the trade comes to exist at Alipay (scan, or barcode payment).
    pub trade_no: Option<String>,
    pub product: Product,
    pub terms: Terms,
    pub stage: Stage,
    /// The system parameter `notify_url` of the request that placed the order.
    pub notify_url: Option<String>,
    /// When the merchant's request placed the order (precreate or pay).
    pub ordered_at: DateTime<Utc>,
    /// When an unpaid trade closes (time_expire, timeout_express, or the 3 h default).
    pub expires_at: DateTime<Utc>,
    /// When a precreated QR code stops being scannable (at most 2 h).
    pub qr_expires_at: Option<DateTime<Utc>>,
    pub gmt_create: Option<DateTime<Utc>>,
    pub gmt_payment: Option<DateTime<Utc>>,
    pub gmt_close: Option<DateTime<Utc>>,
    pub buyer: Option<Buyer>,
    pub refunds: Vec<Refund>,
    pub pending: Option<PendingBuyerAction>,
    pub close_reason: Option<CloseReason>,
    pub cancel_action: Option<CancelAction>,
    /// The buyer walked away (control API `abandon`); the trade waits for expiry or a close.
    pub abandoned: bool,
}

impl Trade {
    /// A trade just ordered by a merchant's `precreate` or `pay`: nothing has happened yet.
    pub fn ordered(
        app_id: String,
        out_trade_no: String,
        product: Product,
        terms: Terms,
        notify_url: Option<String>,
        ordered_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Trade {
        Trade {
            app_id,
            out_trade_no,
            trade_no: None,
            product,
            terms,
            stage: Stage::AwaitingScan,
            notify_url,
            ordered_at,
            expires_at,
            qr_expires_at: None,
            gmt_create: None,
            gmt_payment: None,
            gmt_close: None,
            buyer: None,
            refunds: Vec::new(),
            pending: None,
            close_reason: None,
            cancel_action: None,
            abandoned: false,
        }
    }

    pub fn total_amount(&self) -> Fen {
        self.terms.total_amount
    }

    /// What the buyer paid: the total once paid, else zero (no discounts in the sandbox).
    pub fn paid_amount(&self) -> Fen {
        if self.gmt_payment.is_some() {
            self.terms.total_amount
        } else {
            Fen::ZERO
        }
    }

    pub fn refunded_amount(&self) -> Fen {
        self.refunds
            .iter()
            .fold(Fen::ZERO, |sum, r| sum.checked_add(r.amount).unwrap_or(sum))
    }

    /// Whether a trade exists at Alipay (query, close and refund can find it).
    pub fn exists(&self) -> bool {
        self.stage.trade_status().is_some()
    }

    /// Whether the buyer paid (refunds may have followed).
    pub fn is_paid(&self) -> bool {
        matches!(self.stage, Stage::TradeSuccess | Stage::TradeFinished)
    }

    /// Refunds made with `alipay.trade.refund` (not by a cancel).
    pub fn has_merchant_refunds(&self) -> bool {
        self.refunds.iter().any(|r| !r.by_cancel)
    }

    pub fn refund(&self, out_request_no: &str) -> Option<&Refund> {
        self.refunds
            .iter()
            .find(|r| r.out_request_no == out_request_no)
    }
}
