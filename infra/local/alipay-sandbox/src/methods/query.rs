//! `alipay.trade.query`: the trade as Alipay knows it. An unscanned QR order is not a trade;
//! Alipay's "no such trade" answer still echoes `out_trade_no` with zero amounts.

use super::Call;
use super::views::{wants_fund_bills, with_amounts, with_buyer_id, with_fund_bills};
use crate::answer::Answer;
use crate::state::State;
use alipay::time::format_beijing;

pub fn run(state: &mut State, call: &Call) -> Result<Answer, Answer> {
    let reference = call.biz.trade_reference()?;
    let fund_bills = wants_fund_bills(&call.biz.query_options()?, &state.rules);
    let not_exist = || trade_not_exist(reference.out_trade_no.as_deref());
    let key = state.find_existing(&reference).ok_or_else(not_exist)?;
    let trade = state.trades.get(&key).ok_or_else(not_exist)?;
    let status = trade.stage.trade_status().ok_or_else(not_exist)?;
    let answer = Answer::success()
        .optional_field("trade_no", trade.trade_no.clone())
        .field("out_trade_no", trade.out_trade_no.clone())
        .optional_field(
            "buyer_logon_id",
            trade.buyer.as_ref().map(|b| b.logon_id.clone()),
        )
        .field("trade_status", status.as_str());
    let answer = with_amounts(answer, trade)
        .optional_field("send_pay_date", trade.gmt_payment.map(format_beijing))
        .optional_field("store_id", trade.terms.store_id.clone())
        .optional_field("terminal_id", trade.terms.terminal_id.clone());
    let answer = with_buyer_id(answer, trade, state.rules.buyer_id);
    Ok(with_fund_bills(answer, trade, fund_bills))
}

/// `ACQ.TRADE_NOT_EXIST` as Alipay sends it for a query: with the zero amounts and the
/// `out_trade_no` asked about, in this order.
fn trade_not_exist(out_trade_no: Option<&str>) -> Answer {
    Answer::trade_not_exist()
        .field("buyer_pay_amount", "0.00")
        .field("invoice_amount", "0.00")
        .optional_field("out_trade_no", out_trade_no.map(str::to_owned))
        .field("point_amount", "0.00")
        .field("receipt_amount", "0.00")
}
