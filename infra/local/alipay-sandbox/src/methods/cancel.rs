//! `alipay.trade.cancel`: the merchant's "undo" after an unclear payment. An unpaid trade is
//! closed (`action=close`), a paid one fully refunded and closed (`action=refund`), within
//! 24 h of its creation. An order Alipay has no trade for (an unscanned QR order, or an
//! `out_trade_no` it never saw) is cancelled too, `action=close`, and can never be paid
//! afterwards: this is what makes cancel safe after a lost `alipay.trade.pay` request.

use super::Call;
use crate::answer::Answer;
use crate::state::{Ctx, State};
use crate::trade::{CancelAction, CloseReason, Refund, Stage};
use alipay::Fen;
use alipay::time::format_beijing;
use chrono::TimeDelta;

/// Alipay refuses to cancel a trade created longer ago than this.
const CANCEL_WINDOW: TimeDelta = TimeDelta::hours(24);

pub fn run(state: &mut State, ctx: &Ctx<'_>, call: &Call) -> Result<Answer, Answer> {
    let reference = call.biz.trade_reference()?;
    let Some(key) = state.find(&reference) else {
        let Some(out_trade_no) = reference
            .out_trade_no
            .filter(|_| reference.trade_no.is_none())
        else {
            return Err(Answer::trade_not_exist());
        };
        state.voided_out_trade_nos.insert(out_trade_no.clone());
        return Ok(answer(None, &out_trade_no, CancelAction::Close));
    };
    let trade = state
        .trades
        .get_mut(&key)
        .ok_or_else(Answer::trade_not_exist)?;
    if !trade.exists() {
        trade.stage = Stage::Voided;
        trade.pending = None;
        trade.cancel_action = Some(CancelAction::Close);
        return Ok(answer(None, &key, CancelAction::Close));
    }
    let created = trade.gmt_create.unwrap_or(trade.ordered_at);
    if ctx.now - created > CANCEL_WINDOW {
        return Err(Answer::business(
            "ACQ.TRADE_CANCEL_TIME_OUT",
            "超过撤销时间范围，请使用退款接口",
        ));
    }
    let action = match trade.stage {
        Stage::WaitBuyerPay => {
            trade.cancel_action = Some(CancelAction::Close);
            state.close_trade(&key, ctx, CloseReason::CancelledByMerchant);
            CancelAction::Close
        }
        Stage::TradeSuccess => {
            let remaining = trade
                .total_amount()
                .checked_sub(trade.refunded_amount())
                .unwrap_or(Fen::ZERO);
            trade.cancel_action = Some(CancelAction::Refund);
            let refund = Refund {
                out_request_no: key.clone(),
                amount: remaining,
                reason: Some("撤销".to_owned()),
                at: ctx.now,
                by_cancel: true,
                store_id: None,
                operator_id: None,
                terminal_id: None,
            };
            state.add_refund(&key, ctx, refund);
            CancelAction::Refund
        }
        // Already closed: cancelling again reports what the first cancel did.
        _ => trade.cancel_action.unwrap_or(CancelAction::Close),
    };
    let trade = state.trades.get(&key).ok_or_else(Answer::trade_not_exist)?;
    let refund_time = trade
        .refunds
        .iter()
        .rev()
        .find(|r| r.by_cancel)
        .map(|r| format_beijing(r.at));
    let answer = answer(trade.trade_no.clone(), &key, action);
    Ok(match action {
        CancelAction::Refund => answer.optional_field("gmt_refund_pay", refund_time),
        CancelAction::Close => answer,
    })
}

fn answer(trade_no: Option<String>, out_trade_no: &str, action: CancelAction) -> Answer {
    Answer::success()
        .optional_field("trade_no", trade_no)
        .field("out_trade_no", out_trade_no)
        .field("retry_flag", "N")
        .field("action", action.as_str())
}
