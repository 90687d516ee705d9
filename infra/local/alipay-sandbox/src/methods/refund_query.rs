//! `alipay.trade.fastpay.refund.query`: one refund by `out_request_no`. An unknown request
//! number is not an error: the answer is `10000` without refund fields, which is how Alipay
//! says "no such refund (yet)".

use super::Call;
use crate::answer::Answer;
use crate::state::State;
use alipay::time::format_beijing;

pub fn run(state: &mut State, call: &Call) -> Result<Answer, Answer> {
    let reference = call.biz.trade_reference()?;
    let out_request_no = call.biz.required_text("out_request_no", 64)?;
    let key = state
        .find_existing(&reference)
        .ok_or_else(Answer::trade_not_exist)?;
    let trade = state.trades.get(&key).ok_or_else(Answer::trade_not_exist)?;
    let answer = Answer::success()
        .optional_field("trade_no", trade.trade_no.clone())
        .field("out_trade_no", trade.out_trade_no.clone());
    let Some(refund) = trade.refund(&out_request_no) else {
        return Ok(answer);
    };
    Ok(answer
        .field("out_request_no", refund.out_request_no.clone())
        .field("total_amount", trade.total_amount().to_yuan())
        .field("refund_amount", refund.amount.to_yuan())
        .field("refund_status", "REFUND_SUCCESS")
        .field("gmt_refund_pay", format_beijing(refund.at)))
}
