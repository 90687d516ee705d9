//! `alipay.trade.query`: the trade as Alipay knows it. An unscanned QR order is not a trade.

use super::Call;
use super::views::{with_amounts, with_fund_bills};
use crate::answer::Answer;
use crate::state::State;
use alipay::time::format_beijing;

pub fn run(state: &mut State, call: &Call) -> Result<Answer, Answer> {
    let reference = call.biz.trade_reference()?;
    let key = state
        .find_existing(&reference)
        .ok_or_else(Answer::trade_not_exist)?;
    let trade = state.trades.get(&key).ok_or_else(Answer::trade_not_exist)?;
    let status = trade
        .stage
        .trade_status()
        .ok_or_else(Answer::trade_not_exist)?;
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
        .optional_field("terminal_id", trade.terms.terminal_id.clone())
        .optional_field(
            "buyer_user_id",
            trade.buyer.as_ref().map(|b| b.user_id.clone()),
        );
    Ok(with_fund_bills(answer, trade))
}
