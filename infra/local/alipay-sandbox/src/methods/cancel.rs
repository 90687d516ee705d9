//! `alipay.trade.cancel`: the merchant's "undo" after an unclear payment. Within 24 h of its
//! creation, an unpaid trade is closed (`action=close`) and a paid one fully refunded and
//! closed (`action=refund`); a trade that was refunded already cannot be cancelled
//! (`ACQ.REASON_TRADE_REFUND_FEE_ERR`). When Alipay has no trade (an unscanned QR order, or a
//! number it never saw) the answer is `10000` without `action`, and nothing changes; the rule
//! `cancel_voids_unknown` instead voids the number for good (a local choice). Every answer,
//! refusals included, carries `out_trade_no` and `retry_flag`.

use super::Call;
use super::refund::refund_fee_error;
use super::views::trade_has_finished;
use crate::answer::Answer;
use crate::biz::TradeReference;
use crate::state::{Ctx, State};
use crate::trade::{CancelAction, CloseReason, Refund, Stage};
use alipay::Fen;
use chrono::TimeDelta;

/// Alipay refuses to cancel a trade created longer ago than this.
const CANCEL_WINDOW: TimeDelta = TimeDelta::hours(24);

pub fn run(state: &mut State, ctx: &Ctx<'_>, call: &Call) -> Result<Answer, Answer> {
    let out_trade_no = call.biz.out_trade_no().ok().flatten();
    cancel(state, ctx, call).map_err(|refusal| {
        if !refusal.is_business_failure() {
            return refusal;
        }
        let retry_flag = refusal.fields.iter().any(|(key, _)| key == "retry_flag");
        let refusal = refusal.optional_field("out_trade_no", out_trade_no);
        if retry_flag {
            refusal
        } else {
            refusal.field("retry_flag", "N")
        }
    })
}

fn cancel(state: &mut State, ctx: &Ctx<'_>, call: &Call) -> Result<Answer, Answer> {
    let reference = call.biz.trade_reference()?;
    let voids = state.rules.cancel_voids_unknown;
    let Some(key) = state.find(&reference) else {
        return if voids {
            void_unknown(state, &reference)
        } else {
            Ok(no_trade(&reference))
        };
    };
    let trade = state
        .trades
        .get_mut(&key)
        .ok_or_else(Answer::trade_not_exist)?;
    if !trade.exists() {
        if !voids {
            return Ok(no_trade(&reference));
        }
        trade.stage = Stage::Voided;
        trade.pending = None;
        trade.cancel_action = Some(CancelAction::Close);
        return Ok(answer(None, Some(&key), CancelAction::Close));
    }
    let created = trade.gmt_create.unwrap_or(trade.ordered_at);
    if ctx.now - created > CANCEL_WINDOW {
        return Err(Answer::business(
            "ACQ.TRADE_CANCEL_TIME_OUT",
            "超过撤销时间范围，请使用退款接口",
        ));
    }
    if trade.has_merchant_refunds() {
        return Err(refund_fee_error());
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
        Stage::TradeFinished => return Err(trade_has_finished()),
        // Already closed: cancelling again reports what the first cancel did.
        _ => trade.cancel_action.unwrap_or(CancelAction::Close),
    };
    let trade = state.trades.get(&key).ok_or_else(Answer::trade_not_exist)?;
    Ok(answer(trade.trade_no.clone(), Some(&key), action))
}

/// Alipay found no trade: success, no `action`, nothing done.
fn no_trade(reference: &TradeReference) -> Answer {
    Answer::success()
        .optional_field("out_trade_no", reference.out_trade_no.clone())
        .field("retry_flag", "N")
}

/// The local choice `cancel_voids_unknown`: the number can never be paid afterwards.
fn void_unknown(state: &mut State, reference: &TradeReference) -> Result<Answer, Answer> {
    let Some(out_trade_no) = reference
        .out_trade_no
        .clone()
        .filter(|_| reference.trade_no.is_none())
    else {
        return Err(Answer::trade_not_exist());
    };
    state.voided_out_trade_nos.insert(out_trade_no.clone());
    Ok(answer(None, Some(&out_trade_no), CancelAction::Close))
}

fn answer(trade_no: Option<String>, out_trade_no: Option<&str>, action: CancelAction) -> Answer {
    Answer::success()
        .optional_field("trade_no", trade_no)
        .optional_field("out_trade_no", out_trade_no.map(str::to_owned))
        .field("retry_flag", "N")
        .field("action", action.as_str())
}
