//! A notification as received from the network, kept durably for audit before it is
//! answered: the raw body and headers, when it arrived, and what was made of it.

use crate::OutTradeNo;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What was made of a notification (stable names, shown to operators).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Verified, and its transition committed with this record.
    Applied,
    /// Verified, and the order already says it (a repeat, or a late notification).
    AlreadyKnown,
    /// Verified; it contradicts the order: an anomaly was recorded.
    Contradicts,
    /// Verified; it names an order that does not exist here.
    UnknownOrder,
    /// Its signature does not verify, or it is not a notification at all.
    Untrusted,
    /// Correctly signed, for another app or seller.
    Foreign,
    /// Verified; it changes nothing now (e.g. a refund, applied by the refunds flow).
    Recorded,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Applied => "applied",
            Verdict::AlreadyKnown => "already_known",
            Verdict::Contradicts => "contradicts",
            Verdict::UnknownOrder => "unknown_order",
            Verdict::Untrusted => "untrusted",
            Verdict::Foreign => "foreign",
            Verdict::Recorded => "recorded",
        }
    }
}

/// A refund reported by a notification (`refund_fee` is the total refunded so far).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundNotice {
    pub refund_fee_fen: i64,
    pub gmt_refund: Option<String>,
    pub out_biz_no: Option<String>,
    pub trade_status: String,
}

/// One received notification, as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedNotification {
    /// The order it names, when it names a valid order number (trusted or not).
    pub out_trade_no: Option<OutTradeNo>,
    pub received_at: DateTime<Utc>,
    /// The API Gateway request id (unique per delivery).
    pub request_id: String,
    /// The body exactly as received when it is UTF-8 (Alipay's bodies are percent-encoded
    /// ASCII); otherwise `None` and the bytes are in `body_base64`.
    pub body: Option<String>,
    pub body_base64: Option<String>,
    /// The body's size in bytes, and whether only its first part was kept (a body over the
    /// notification size cap is kept up to that cap).
    pub body_bytes: usize,
    pub truncated: bool,
    pub headers: BTreeMap<String, String>,
    pub notify_id: Option<String>,
    pub trade_status: Option<String>,
    pub verdict: Verdict,
    /// Why it was not trusted, or what it contradicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<RefundNotice>,
}

impl ReceivedNotification {
    /// With the verdict (and detail) it ended with.
    pub fn judged(mut self, verdict: Verdict, detail: Option<String>) -> ReceivedNotification {
        self.verdict = verdict;
        self.detail = detail;
        self
    }
}
