//! Pieces shared by several methods: reading an order's terms, and the trade fields of an
//! answer.

use crate::answer::Answer;
use crate::biz::{Biz, Expiry, QueryOptions};
use crate::rules::{BuyerIdKind, Rules};
use crate::trade::{Terms, Trade};
use alipay::time::format_beijing;
use serde_json::json;

/// The order terms of a precreate or pay request (`product_kind` tells them apart), after
/// checking the product code against the app's contract.
pub fn read_terms(
    biz: &Biz,
    expiry: &Expiry,
    product_kind: &str,
    rules: &Rules,
) -> Result<Terms, Answer> {
    let total_amount = biz.total_amount()?;
    let terms = Terms {
        total_amount,
        subject: biz.subject(rules.subject_special_chars)?,
        body: biz.text("body", 128)?,
        store_id: biz.text("store_id", 32)?,
        operator_id: biz.text("operator_id", 28)?,
        terminal_id: biz.text("terminal_id", 32)?,
        timeout_express: expiry.timeout_express.clone(),
        time_expire: expiry.time_expire.clone(),
        qr_code_timeout_express: None,
        product_kind: product_kind.to_owned(),
    };
    biz.check_product_code(&rules.product_code)?;
    Ok(terms)
}

pub fn context_inconsistent() -> Answer {
    Answer::business(
        "ACQ.CONTEXT_INCONSISTENT",
        "交易信息被篡改: 同一笔交易的参数与之前的请求不一致",
    )
}

pub fn trade_has_success() -> Answer {
    Answer::business("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
}

pub fn trade_has_close() -> Answer {
    Answer::business("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
}

pub fn trade_has_finished() -> Answer {
    Answer::business("ACQ.TRADE_HAS_FINISHED", "交易已经完结")
}

pub fn trade_status_error() -> Answer {
    Answer::business("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
}

/// `trade_no`, `out_trade_no` and the buyer's masked logon.
pub fn with_trade_ids(answer: Answer, trade: &Trade) -> Answer {
    answer
        .optional_field("trade_no", trade.trade_no.clone())
        .field("out_trade_no", trade.out_trade_no.clone())
        .optional_field(
            "buyer_logon_id",
            trade.buyer.as_ref().map(|b| b.logon_id.clone()),
        )
}

/// The buyer's identifier: `buyer_open_id` in OpenID mode, `buyer_user_id` otherwise.
pub fn with_buyer_id(answer: Answer, trade: &Trade, kind: BuyerIdKind) -> Answer {
    let Some(buyer) = &trade.buyer else {
        return answer;
    };
    match kind {
        BuyerIdKind::OpenId => answer.field(
            "buyer_open_id",
            crate::ids::open_id(&trade.app_id, &buyer.user_id),
        ),
        BuyerIdKind::UserId => answer.field("buyer_user_id", buyer.user_id.clone()),
    }
}

/// The amounts a payment answer carries (zeros until paid).
pub fn with_amounts(answer: Answer, trade: &Trade) -> Answer {
    let paid = trade.paid_amount().to_yuan();
    answer
        .field("total_amount", trade.total_amount().to_yuan())
        .field("receipt_amount", paid.clone())
        .field("buyer_pay_amount", paid.clone())
        .field("point_amount", "0.00")
        .field("invoice_amount", paid)
}

/// Whether `fund_bill_list` is returned: only when `query_options` asks for it or the
/// contract says so.
pub fn wants_fund_bills(options: &QueryOptions, rules: &Rules) -> bool {
    rules.fund_bill_list_by_contract || options.asks_for("fund_bill_list")
}

/// `fund_bill_list` of a paid trade (snake_case keys, unlike notifications), if `wanted`.
pub fn with_fund_bills(answer: Answer, trade: &Trade, wanted: bool) -> Answer {
    if !wanted || trade.gmt_payment.is_none() {
        return answer;
    }
    answer.field(
        "fund_bill_list",
        json!([{"fund_channel": "ALIPAYACCOUNT", "amount": trade.paid_amount().to_yuan()}]),
    )
}

/// The answer of `alipay.trade.pay` for a trade in its current stage.
pub fn pay_answer(base: Answer, trade: &Trade, rules: &Rules, fund_bills: bool) -> Answer {
    let answer = with_amounts(with_trade_ids(base, trade), trade);
    let answer = answer.optional_field("gmt_payment", trade.gmt_payment.map(format_beijing));
    let answer = with_buyer_id(answer, trade, rules.buyer_id);
    with_fund_bills(answer, trade, fund_bills)
}
