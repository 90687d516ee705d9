//! `alipay.trade.fastpay.refund.query`: one refund by `out_request_no`. An unknown request
//! number is not an error: the answer is `10000` without refund fields, which is how Alipay
//! says "no such refund (yet)". `refund_reason` is always returned when the refund had one;
//! `gmt_refund_pay` and `send_back_fee`/`refund_detail_item_list` only when `query_options`
//! asks for them.

use super::Call;
use crate::answer::Answer;
use crate::state::State;
use alipay::time::format_beijing;
use serde_json::json;

pub fn run(state: &mut State, call: &Call) -> Result<Answer, Answer> {
    let reference = call.biz.trade_reference()?;
    let out_request_no = call.biz.required_text("out_request_no", 64)?;
    let options = call.biz.query_options()?;
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
    let mut answer = answer
        .field("out_request_no", refund.out_request_no.clone())
        .field("total_amount", trade.total_amount().to_yuan())
        .field("refund_amount", refund.amount.to_yuan())
        .field("refund_status", "REFUND_SUCCESS")
        .optional_field("refund_reason", refund.reason.clone());
    if options.asks_for("gmt_refund_pay") {
        answer = answer.field("gmt_refund_pay", format_beijing(refund.at));
    }
    if options.asks_for("refund_detail_item_list") {
        let amount = refund.amount.to_yuan();
        answer = answer
            .field(
                "refund_detail_item_list",
                json!([{"amount": amount, "fund_channel": "ALIPAYACCOUNT"}]),
            )
            .field("send_back_fee", amount);
    }
    Ok(answer)
}
