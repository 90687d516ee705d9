//! Trade methods: create (QR `precreate`, barcode `pay`), look up (`query`) and end
//! (`close`, `cancel`) a face-to-face trade.

use super::{ApiRequest, TradeRef, wire};
use crate::money::Fen;
use crate::notify::TradeStatus;
use crate::outcome::Waiting;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// The product code of face-to-face payments.
pub const FACE_TO_FACE_PAYMENT: &str = "FACE_TO_FACE_PAYMENT";

/// `alipay.trade.precreate`: a QR code the buyer scans. `notify_url` comes from the client
/// configuration (it is a system parameter, not part of `biz_content`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrecreateRequest {
    pub out_trade_no: String,
    #[serde(with = "wire::yuan")]
    pub total_amount: Fen,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal_id: Option<String>,
    /// Relative expiry such as `"5m"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_express: Option<String>,
    /// Absolute expiry, sent as Beijing time.
    #[serde(with = "wire::beijing_opt", skip_serializing_if = "Option::is_none")]
    pub time_expire: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seller_id: Option<String>,
}

impl PrecreateRequest {
    /// The required fields, with `product_code = FACE_TO_FACE_PAYMENT`.
    pub fn new(
        out_trade_no: impl Into<String>,
        total_amount: Fen,
        subject: impl Into<String>,
    ) -> Self {
        PrecreateRequest {
            out_trade_no: out_trade_no.into(),
            total_amount,
            subject: subject.into(),
            product_code: Some(FACE_TO_FACE_PAYMENT.to_owned()),
            body: None,
            store_id: None,
            operator_id: None,
            terminal_id: None,
            timeout_express: None,
            time_expire: None,
            seller_id: None,
        }
    }
}

impl ApiRequest for PrecreateRequest {
    const METHOD: &'static str = "alipay.trade.precreate";
    const SENDS_NOTIFY_URL: bool = true;
    type Response = PrecreateResponse;

    fn out_trade_no(&self) -> Option<&str> {
        Some(&self.out_trade_no)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PrecreateResponse {
    pub out_trade_no: String,
    /// The URL to render as a QR code (`https://qr.alipay.com/...`).
    pub qr_code: String,
}

/// How the buyer presented the payment code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scene {
    /// A barcode or QR code shown in the buyer's Alipay app.
    #[default]
    BarCode,
    /// A sound-wave or other security code.
    SecurityCode,
}

/// `alipay.trade.pay`: charge the payment code the cashier scanned from the buyer's phone.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct PayRequest {
    pub out_trade_no: String,
    #[serde(with = "wire::yuan")]
    pub total_amount: Fen,
    pub subject: String,
    /// The buyer's payment code: a short-lived bearer credential, kept out of `Debug`.
    pub auth_code: String,
    pub scene: Scene,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_express: Option<String>,
    #[serde(with = "wire::beijing_opt", skip_serializing_if = "Option::is_none")]
    pub time_expire: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl PayRequest {
    /// The required fields, with `scene = bar_code` and
    /// `product_code = FACE_TO_FACE_PAYMENT`.
    pub fn new(
        out_trade_no: impl Into<String>,
        total_amount: Fen,
        subject: impl Into<String>,
        auth_code: impl Into<String>,
    ) -> Self {
        PayRequest {
            out_trade_no: out_trade_no.into(),
            total_amount,
            subject: subject.into(),
            auth_code: auth_code.into(),
            scene: Scene::BarCode,
            product_code: Some(FACE_TO_FACE_PAYMENT.to_owned()),
            store_id: None,
            operator_id: None,
            terminal_id: None,
            timeout_express: None,
            time_expire: None,
            body: None,
        }
    }
}

impl fmt::Debug for PayRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayRequest")
            .field("out_trade_no", &self.out_trade_no)
            .field("total_amount", &self.total_amount)
            .field("subject", &self.subject)
            .field("auth_code", &"<redacted>")
            .field("scene", &self.scene)
            .field("product_code", &self.product_code)
            .field("store_id", &self.store_id)
            .field("operator_id", &self.operator_id)
            .field("terminal_id", &self.terminal_id)
            .field("timeout_express", &self.timeout_express)
            .field("time_expire", &self.time_expire)
            .field("body", &self.body)
            .finish()
    }
}

impl ApiRequest for PayRequest {
    const METHOD: &'static str = "alipay.trade.pay";
    const WAITING: Waiting = Waiting::Allowed;
    const SENDS_NOTIFY_URL: bool = true;
    type Response = PayResponse;

    fn out_trade_no(&self) -> Option<&str> {
        Some(&self.out_trade_no)
    }
}

/// One funding source of a payment (balance, bank card, coupon, ...).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FundBill {
    pub fund_channel: String,
    #[serde(with = "wire::yuan")]
    pub amount: Fen,
}

/// The answer to `alipay.trade.pay`, for `10000` (paid) and `10003` (waiting for the buyer).
/// Only the two trade numbers are required: the rest is not always present in a `10003`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PayResponse {
    pub trade_no: String,
    pub out_trade_no: String,
    pub buyer_logon_id: Option<String>,
    pub buyer_user_id: Option<String>,
    /// The buyer's OpenID, for apps on OpenID (instead of `buyer_user_id`).
    pub buyer_open_id: Option<String>,
    #[serde(default, with = "wire::yuan_opt")]
    pub total_amount: Option<Fen>,
    #[serde(default, with = "wire::yuan_opt")]
    pub receipt_amount: Option<Fen>,
    #[serde(default, with = "wire::yuan_opt")]
    pub buyer_pay_amount: Option<Fen>,
    #[serde(default, with = "wire::yuan_opt")]
    pub point_amount: Option<Fen>,
    #[serde(default, with = "wire::yuan_opt")]
    pub invoice_amount: Option<Fen>,
    /// Beijing time, as sent.
    pub gmt_payment: Option<String>,
    #[serde(default)]
    pub fund_bill_list: Vec<FundBill>,
}

/// `alipay.trade.query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueryRequest {
    #[serde(flatten)]
    pub trade: TradeRef,
}

impl QueryRequest {
    pub fn new(trade: TradeRef) -> Self {
        QueryRequest { trade }
    }
}

impl ApiRequest for QueryRequest {
    const METHOD: &'static str = "alipay.trade.query";
    type Response = QueryResponse;

    fn out_trade_no(&self) -> Option<&str> {
        self.trade.as_out_trade_no()
    }

    fn trade_no(&self) -> Option<&str> {
        self.trade.as_trade_no()
    }
}

/// A trade as Alipay sees it. `trade_status` (not the `10000` code) says whether it is paid.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QueryResponse {
    pub trade_no: String,
    pub out_trade_no: String,
    pub trade_status: TradeStatus,
    #[serde(with = "wire::yuan")]
    pub total_amount: Fen,
    #[serde(default, with = "wire::yuan_opt")]
    pub receipt_amount: Option<Fen>,
    #[serde(default, with = "wire::yuan_opt")]
    pub buyer_pay_amount: Option<Fen>,
    pub buyer_logon_id: Option<String>,
    pub buyer_user_id: Option<String>,
    /// The buyer's OpenID, for apps on OpenID (instead of `buyer_user_id`).
    pub buyer_open_id: Option<String>,
    /// Beijing time, as sent.
    pub send_pay_date: Option<String>,
    pub store_id: Option<String>,
    pub terminal_id: Option<String>,
}

/// `alipay.trade.close`: closes an unpaid trade (only `WAIT_BUYER_PAY` can be closed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloseRequest {
    #[serde(flatten)]
    pub trade: TradeRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_id: Option<String>,
}

impl CloseRequest {
    pub fn new(trade: TradeRef) -> Self {
        CloseRequest {
            trade,
            operator_id: None,
        }
    }
}

impl ApiRequest for CloseRequest {
    const METHOD: &'static str = "alipay.trade.close";
    type Response = CloseResponse;

    fn out_trade_no(&self) -> Option<&str> {
        self.trade.as_out_trade_no()
    }

    fn trade_no(&self) -> Option<&str> {
        self.trade.as_trade_no()
    }
}

/// Both numbers are optional: a verified `10000` means closed, whichever number Alipay echoes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CloseResponse {
    pub trade_no: Option<String>,
    pub out_trade_no: Option<String>,
}

/// `alipay.trade.cancel`: closes an unpaid trade or refunds a paid one (the cashier's
/// "undo" after a pay of unknown outcome).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CancelRequest {
    #[serde(flatten)]
    pub trade: TradeRef,
}

impl CancelRequest {
    pub fn new(trade: TradeRef) -> Self {
        CancelRequest { trade }
    }
}

impl ApiRequest for CancelRequest {
    const METHOD: &'static str = "alipay.trade.cancel";
    type Response = CancelResponse;

    fn out_trade_no(&self) -> Option<&str> {
        self.trade.as_out_trade_no()
    }

    fn trade_no(&self) -> Option<&str> {
        self.trade.as_trade_no()
    }
}

/// What a cancel did.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CancelAction {
    /// The trade was unpaid and is now closed.
    Close,
    /// The trade was paid and has been refunded.
    Refund,
    /// Alipay did not say (e.g. the trade was already closed).
    NotReported,
    /// A value this code does not know, kept verbatim.
    Other(String),
}

impl<'de> Deserialize<'de> for CancelAction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(
            match Option::<String>::deserialize(deserializer)?.as_deref() {
                None | Some("") => CancelAction::NotReported,
                Some("close") => CancelAction::Close,
                Some("refund") => CancelAction::Refund,
                Some(other) => CancelAction::Other(other.to_owned()),
            },
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CancelResponse {
    pub trade_no: Option<String>,
    pub out_trade_no: Option<String>,
    /// `true`: the cancel did not complete and the same request must be sent again.
    #[serde(with = "wire::yes_no")]
    pub retry_flag: bool,
    #[serde(default = "not_reported")]
    pub action: CancelAction,
    /// Beijing time of the refund, when the cancel refunded.
    pub gmt_refund_pay: Option<String>,
}

fn not_reported() -> CancelAction {
    CancelAction::NotReported
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precreate_biz_content_has_yuan_and_skips_absent_fields() -> Result<(), serde_json::Error> {
        let request = PrecreateRequest::new("o1", Fen::new(10), "tea");
        assert_eq!(
            serde_json::to_string(&request)?,
            r#"{"out_trade_no":"o1","total_amount":"0.10","subject":"tea","product_code":"FACE_TO_FACE_PAYMENT"}"#
        );
        Ok(())
    }

    #[test]
    fn trade_ref_becomes_the_right_key() -> Result<(), serde_json::Error> {
        let by_ours = CloseRequest::new(TradeRef::out_trade_no("o1"));
        assert_eq!(serde_json::to_string(&by_ours)?, r#"{"out_trade_no":"o1"}"#);
        let by_theirs = QueryRequest::new(TradeRef::trade_no("2024"));
        assert_eq!(serde_json::to_string(&by_theirs)?, r#"{"trade_no":"2024"}"#);
        Ok(())
    }

    #[test]
    fn pay_debug_hides_the_auth_code() {
        let request = PayRequest::new("o1", Fen::new(1), "tea", "287654321098765432");
        assert!(!format!("{request:?}").contains("287654321098765432"));
    }

    #[test]
    fn cancel_action_absent_or_unknown_is_not_an_error() -> Result<(), serde_json::Error> {
        let absent: CancelResponse = serde_json::from_str(r#"{"retry_flag":"N"}"#)?;
        assert_eq!(absent.action, CancelAction::NotReported);
        let other: CancelResponse = serde_json::from_str(r#"{"retry_flag":"N","action":"noop"}"#)?;
        assert_eq!(other.action, CancelAction::Other("noop".into()));
        Ok(())
    }
}
