//! Refunds: `alipay.trade.refund` and its status lookup `alipay.trade.fastpay.refund.query`.
//! A refund is identified by `out_request_no`; resending the same one is idempotent, which is
//! how an unknown refund outcome is resolved.

use super::{ApiRequest, TradeRef, wire};
use crate::money::Fen;
use serde::{Deserialize, Deserializer, Serialize};

/// `alipay.trade.refund`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefundRequest {
    #[serde(flatten)]
    pub trade: TradeRef,
    #[serde(with = "wire::yuan")]
    pub refund_amount: Fen,
    /// Identifies this refund within the trade. Required for partial refunds; always set it,
    /// or a retry of one partial refund could be read as a second one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_request_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal_id: Option<String>,
}

impl RefundRequest {
    pub fn new(trade: TradeRef, refund_amount: Fen, out_request_no: impl Into<String>) -> Self {
        RefundRequest {
            trade,
            refund_amount,
            out_request_no: Some(out_request_no.into()),
            refund_reason: None,
            operator_id: None,
            store_id: None,
            terminal_id: None,
        }
    }
}

impl ApiRequest for RefundRequest {
    const METHOD: &'static str = "alipay.trade.refund";
    type Response = RefundResponse;

    fn out_trade_no(&self) -> Option<&str> {
        self.trade.as_out_trade_no()
    }

    fn trade_no(&self) -> Option<&str> {
        self.trade.as_trade_no()
    }
}

/// The answer to a refund. `10000` alone does not mean this refund moved money: only
/// `fund_change` does (`false` on a repeated request for a refund already made).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RefundResponse {
    pub trade_no: String,
    pub out_trade_no: String,
    pub buyer_logon_id: Option<String>,
    #[serde(with = "wire::yes_no")]
    pub fund_change: bool,
    /// The trade's cumulative refunded amount, not this refund's.
    #[serde(with = "wire::yuan")]
    pub refund_fee: Fen,
    /// Beijing time, as sent.
    pub gmt_refund_pay: Option<String>,
}

/// `alipay.trade.fastpay.refund.query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefundQueryRequest {
    #[serde(flatten)]
    pub trade: TradeRef,
    /// For a full refund sent without one, Alipay uses the `out_trade_no`.
    pub out_request_no: String,
}

impl RefundQueryRequest {
    pub fn new(trade: TradeRef, out_request_no: impl Into<String>) -> Self {
        RefundQueryRequest {
            trade,
            out_request_no: out_request_no.into(),
        }
    }
}

impl ApiRequest for RefundQueryRequest {
    const METHOD: &'static str = "alipay.trade.fastpay.refund.query";
    type Response = RefundQueryResponse;

    fn out_trade_no(&self) -> Option<&str> {
        self.trade.as_out_trade_no()
    }

    fn trade_no(&self) -> Option<&str> {
        self.trade.as_trade_no()
    }
}

/// Whether a refund happened.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RefundStatus {
    /// `REFUND_SUCCESS`: the money went back.
    Success,
    /// Absent: Alipay did not receive the refund, or it failed; resend it with the same
    /// `out_request_no`.
    NotSucceeded,
    /// A value this code does not know, kept verbatim; treat as not (yet) succeeded.
    Other(String),
}

impl<'de> Deserialize<'de> for RefundStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(
            match Option::<String>::deserialize(deserializer)?.as_deref() {
                None | Some("") => RefundStatus::NotSucceeded,
                Some("REFUND_SUCCESS") => RefundStatus::Success,
                Some(other) => RefundStatus::Other(other.to_owned()),
            },
        )
    }
}

/// Every field is optional: for a refund Alipay never received, the answer is a bare
/// `10000` with no fields at all.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RefundQueryResponse {
    pub trade_no: Option<String>,
    pub out_trade_no: Option<String>,
    pub out_request_no: Option<String>,
    #[serde(default, with = "wire::yuan_opt")]
    pub total_amount: Option<Fen>,
    /// This refund's amount.
    #[serde(default, with = "wire::yuan_opt")]
    pub refund_amount: Option<Fen>,
    #[serde(default = "not_succeeded")]
    pub refund_status: RefundStatus,
    /// Beijing time, as sent.
    pub gmt_refund_pay: Option<String>,
}

fn not_succeeded() -> RefundStatus {
    RefundStatus::NotSucceeded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refund_biz_content() -> Result<(), serde_json::Error> {
        let request = RefundRequest::new(TradeRef::out_trade_no("o1"), Fen::new(5), "r1");
        assert_eq!(
            serde_json::to_string(&request)?,
            r#"{"out_trade_no":"o1","refund_amount":"0.05","out_request_no":"r1"}"#
        );
        Ok(())
    }

    #[test]
    fn a_bare_refund_query_answer_means_not_succeeded() -> Result<(), serde_json::Error> {
        let bare: RefundQueryResponse =
            serde_json::from_str(r#"{"code":"10000","msg":"Success"}"#)?;
        assert_eq!(bare.refund_status, RefundStatus::NotSucceeded);
        assert_eq!(bare.refund_amount, None);
        Ok(())
    }
}
