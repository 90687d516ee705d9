//! The fields of a trade notification, as Alipay sends them for face-to-face payments.

use crate::identity::Identity;
use crate::rules::BuyerIdKind;
use crate::trade::{Buyer, Refund, Trade};
use alipay::Fen;
use alipay::notify::TradeStatus;
use alipay::time::format_beijing;
use chrono::{DateTime, Utc};

/// What a notification reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// TRADE_SUCCESS after payment.
    Paid,
    /// WAIT_BUYER_PAY when a buyer scanned a QR code (the trade came to exist).
    Scanned,
    /// TRADE_CLOSED without a refund (close, cancel of an unpaid trade, expiry, failure).
    Closed,
    /// A refund (also a cancel of a paid trade): TRADE_SUCCESS while partly refunded,
    /// TRADE_CLOSED once fully refunded.
    Refunded(Refund),
    /// A stale WAIT_BUYER_PAY view of the trade (out-of-order switch).
    StaleWaiting,
}

/// `fund_bill_list` of a notification: a JSON string with camelCase keys.
pub fn fund_bill_list_json(amount: Fen) -> String {
    serde_json::json!([{"amount": amount.to_yuan(), "fundChannel": "ALIPAYACCOUNT"}]).to_string()
}

/// `gmt_refund` carries milliseconds (`2015-04-28 15:45:57.320`).
pub fn format_with_millis(at: DateTime<Utc>) -> String {
    format!("{}.{:03}", format_beijing(at), at.timestamp_subsec_millis())
}

/// The buyer's identifier field of a notification: `buyer_open_id` in OpenID mode,
/// `buyer_id` (`2088…`) otherwise.
pub fn buyer_id_field(buyer: &Buyer, app_id: &str, kind: BuyerIdKind) -> (&'static str, String) {
    match kind {
        BuyerIdKind::OpenId => ("buyer_open_id", crate::ids::open_id(app_id, &buyer.user_id)),
        BuyerIdKind::UserId => ("buyer_id", buyer.user_id.clone()),
    }
}

/// The fields (without `notify_time`, `sign`, `sign_type`) for `event` on `trade`. A
/// WAIT_BUYER_PAY notification carries no paid amounts, as in Alipay's.
pub fn fields(
    trade: &Trade,
    identity: &Identity,
    notify_id: &str,
    event: &Event,
    buyer_id: BuyerIdKind,
) -> (TradeStatus, Vec<(String, String)>) {
    let status = match event {
        Event::Paid => TradeStatus::TradeSuccess,
        Event::Closed => TradeStatus::TradeClosed,
        Event::Scanned | Event::StaleWaiting => TradeStatus::WaitBuyerPay,
        Event::Refunded(_) if trade.refunded_amount() >= trade.total_amount() => {
            TradeStatus::TradeClosed
        }
        Event::Refunded(_) => TradeStatus::TradeSuccess,
    };
    let waiting = status == TradeStatus::WaitBuyerPay;
    let paid = trade.gmt_payment.filter(|_| !waiting);
    let paid_amount = if paid.is_some() {
        trade.total_amount()
    } else {
        Fen::ZERO
    };
    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, v: String| out.push((k.to_owned(), v));
    push("notify_type", "trade_status_sync".into());
    push("notify_id", notify_id.into());
    push("app_id", trade.app_id.clone());
    push("auth_app_id", trade.app_id.clone());
    push("charset", "utf-8".into());
    push("version", "1.0".into());
    push("trade_no", trade.trade_no.clone().unwrap_or_default());
    push("out_trade_no", trade.out_trade_no.clone());
    if let Some(buyer) = &trade.buyer {
        let (key, value) = buyer_id_field(buyer, &trade.app_id, buyer_id);
        push(key, value);
        push("buyer_logon_id", buyer.logon_id.clone());
    }
    push("seller_id", identity.seller_id.clone());
    push("seller_email", identity.seller_email.clone());
    push("trade_status", status.as_str().into());
    push("total_amount", trade.total_amount().to_yuan());
    if !waiting {
        push("receipt_amount", paid_amount.to_yuan());
        push("invoice_amount", paid_amount.to_yuan());
        push("buyer_pay_amount", paid_amount.to_yuan());
        push("point_amount", Fen::ZERO.to_yuan());
    }
    push("subject", trade.terms.subject.clone());
    if let Some(body) = &trade.terms.body {
        push("body", body.clone());
    }
    if let Some(created) = trade.gmt_create {
        push("gmt_create", format_beijing(created));
    }
    if let Some(paid) = paid {
        push("gmt_payment", format_beijing(paid));
    }
    if status == TradeStatus::TradeClosed
        && let Some(closed) = trade.gmt_close
    {
        push("gmt_close", format_beijing(closed));
    }
    if paid.is_some() {
        push("fund_bill_list", fund_bill_list_json(paid_amount));
    }
    if let Event::Refunded(refund) = event {
        push("out_biz_no", refund.out_request_no.clone());
        push("refund_fee", trade.refunded_amount().to_yuan());
        push("gmt_refund", format_with_millis(refund.at));
    }
    (status, out)
}
