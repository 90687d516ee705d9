//! `alipay.trade.close`: closes an unpaid trade. Only WAIT_BUYER_PAY can be closed.

use super::Call;
use super::views::trade_status_error;
use crate::answer::Answer;
use crate::state::{Ctx, State};
use crate::trade::{CloseReason, Stage};

pub fn run(state: &mut State, ctx: &Ctx<'_>, call: &Call) -> Result<Answer, Answer> {
    let reference = call.biz.trade_reference()?;
    let key = state
        .find_existing(&reference)
        .ok_or_else(Answer::trade_not_exist)?;
    let stage = state.trades.get(&key).map(|t| t.stage);
    if stage != Some(Stage::WaitBuyerPay) {
        return Err(trade_status_error());
    }
    state.close_trade(&key, ctx, CloseReason::ClosedByMerchant);
    let trade = state.trades.get(&key).ok_or_else(Answer::trade_not_exist)?;
    Ok(Answer::success()
        .optional_field("trade_no", trade.trade_no.clone())
        .field("out_trade_no", trade.out_trade_no.clone()))
}
