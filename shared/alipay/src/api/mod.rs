//! Typed requests and responses of the gateway methods a face-to-face merchant uses.
//!
//! Every request type knows its method name and whether `10003` is a legitimate answer, so
//! that [`crate::client::AlipayClient::execute`] cannot pair a request with the wrong
//! response type or the wrong money-safety rule. Response types ignore unknown fields (Alipay
//! adds fields without notice) and read amounts as [`crate::Fen`].

pub mod bill;
pub mod refund;
pub mod trade;
pub mod wire;

pub use bill::{BillDownloadUrlRequest, BillDownloadUrlResponse, BillType};
pub use refund::{
    RefundQueryRequest, RefundQueryResponse, RefundRequest, RefundResponse, RefundStatus,
};
pub use trade::{
    CancelAction, CancelRequest, CancelResponse, CloseRequest, CloseResponse, FundBill, PayRequest,
    PayResponse, PrecreateRequest, PrecreateResponse, QueryRequest, QueryResponse, Scene,
};

use crate::outcome::Waiting;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One gateway method: its request is the `biz_content`, its response the verified node.
pub trait ApiRequest: Serialize {
    /// The `method` system parameter, e.g. `alipay.trade.pay`.
    const METHOD: &'static str;
    /// Only `alipay.trade.pay` may legitimately answer `10003`.
    const WAITING: Waiting = Waiting::NotExpected;
    /// Whether the configured `notify_url` is sent: only calls that create a trade get
    /// asynchronous notifications.
    const SENDS_NOTIFY_URL: bool = false;
    type Response: DeserializeOwned;

    /// The merchant's order number, for logs.
    fn out_trade_no(&self) -> Option<&str> {
        None
    }

    /// Alipay's trade number, for logs.
    fn trade_no(&self) -> Option<&str> {
        None
    }
}

/// Which trade a call is about. Alipay accepts either number (and prefers `trade_no` when
/// both are sent); an enum makes "neither" impossible to build.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum TradeRef {
    /// The merchant's own order number.
    #[serde(rename = "out_trade_no")]
    OutTradeNo(String),
    /// Alipay's trade number.
    #[serde(rename = "trade_no")]
    TradeNo(String),
}

impl TradeRef {
    pub fn out_trade_no(out_trade_no: impl Into<String>) -> Self {
        TradeRef::OutTradeNo(out_trade_no.into())
    }

    pub fn trade_no(trade_no: impl Into<String>) -> Self {
        TradeRef::TradeNo(trade_no.into())
    }

    pub fn as_out_trade_no(&self) -> Option<&str> {
        match self {
            TradeRef::OutTradeNo(no) => Some(no),
            TradeRef::TradeNo(_) => None,
        }
    }

    pub fn as_trade_no(&self) -> Option<&str> {
        match self {
            TradeRef::TradeNo(no) => Some(no),
            TradeRef::OutTradeNo(_) => None,
        }
    }
}
