//! `alipay.trade.refund`: refunds of a paid trade, idempotent per `out_request_no`, within the
//! refund window. `send_back_fee` and `refund_detail_item_list` come only with
//! `query_options=["refund_detail_item_list"]`. Refusals echo `out_trade_no` with zero
//! `refund_fee`/`send_back_fee`, as Alipay's do.

use super::Call;
use super::views::{trade_has_finished, trade_status_error, with_buyer_id};
use crate::answer::Answer;
use crate::biz::QueryOptions;
use crate::rules::BuyerIdKind;
use crate::state::{Ctx, State};
use crate::trade::{Refund, Stage, Trade};
use alipay::Fen;
use alipay::time::format_beijing;
use serde_json::json;

pub fn run(state: &mut State, ctx: &Ctx<'_>, call: &Call) -> Result<Answer, Answer> {
    let out_trade_no = call.biz.out_trade_no().ok().flatten();
    refund(state, ctx, call).map_err(|refusal| with_refusal_fields(refusal, out_trade_no))
}

fn refund(state: &mut State, ctx: &Ctx<'_>, call: &Call) -> Result<Answer, Answer> {
    let biz = &call.biz;
    let reference = biz.trade_reference()?;
    let amount = biz
        .amount("refund_amount")?
        .ok_or_else(|| Answer::invalid_parameter("缺少必选参数 refund_amount"))?;
    let out_request_no = biz.text("out_request_no", 64)?;
    let options = biz.query_options()?;
    let buyer_id = state.rules.buyer_id;
    let key = state
        .find_existing(&reference)
        .ok_or_else(Answer::trade_not_exist)?;
    let trade = state.trades.get(&key).ok_or_else(Answer::trade_not_exist)?;
    // Without out_request_no the refund is identified by the trade itself.
    let request_no = out_request_no.clone().unwrap_or_else(|| key.clone());

    if let Some(previous) = trade.refund(&request_no) {
        if previous.amount != amount {
            return Err(Answer::business(
                "ACQ.DISCORDANT_REPEAT_REQUEST",
                "退款请求号对应的退款金额与之前不一致",
            ));
        }
        let moved = Moved {
            amount: None,
            at: previous.at,
        };
        return Ok(answer(trade, moved, &options, buyer_id));
    }
    match trade.stage {
        Stage::TradeSuccess => {}
        Stage::TradeFinished => return Err(trade_has_finished()),
        _ => return Err(trade_status_error()),
    }
    if out_request_no.is_none() && amount != trade.total_amount() {
        return Err(Answer::business(
            "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
            "撤销或退款金额与订单金额不一致",
        ));
    }
    let after = trade.refunded_amount().checked_add(amount);
    if after.is_none_or(|after| after > trade.total_amount()) {
        return Err(refund_fee_error());
    }
    let refund = Refund {
        out_request_no: request_no,
        amount,
        reason: biz.text("refund_reason", 256)?,
        at: ctx.now,
        by_cancel: false,
        store_id: biz.text("store_id", 32)?,
        operator_id: biz.text("operator_id", 28)?,
        terminal_id: biz.text("terminal_id", 32)?,
    };
    state.add_refund(&key, ctx, refund);
    let trade = state.trades.get(&key).ok_or_else(Answer::trade_not_exist)?;
    let moved = Moved {
        amount: Some(amount),
        at: ctx.now,
    };
    Ok(answer(trade, moved, &options, buyer_id))
}

/// `ACQ.REASON_TRADE_REFUND_FEE_ERR` with the bare code as `sub_msg`, as Alipay sends it (also
/// for a cancel after a refund).
pub fn refund_fee_error() -> Answer {
    Answer::business(
        "ACQ.REASON_TRADE_REFUND_FEE_ERR",
        "REASON_TRADE_REFUND_FEE_ERR",
    )
}

/// What this request moved: the amount (none for a repeat) and when the refund was made.
struct Moved {
    amount: Option<Fen>,
    at: chrono::DateTime<chrono::Utc>,
}

fn answer(trade: &Trade, moved: Moved, options: &QueryOptions, buyer_id: BuyerIdKind) -> Answer {
    let answer = Answer::success()
        .optional_field("trade_no", trade.trade_no.clone())
        .field("out_trade_no", trade.out_trade_no.clone())
        .optional_field(
            "buyer_logon_id",
            trade.buyer.as_ref().map(|b| b.logon_id.clone()),
        );
    let answer = with_buyer_id(answer, trade, buyer_id)
        .field(
            "fund_change",
            if moved.amount.is_some() { "Y" } else { "N" },
        )
        .field("refund_fee", trade.refunded_amount().to_yuan())
        .field("gmt_refund_pay", format_beijing(moved.at));
    if !options.asks_for("refund_detail_item_list") {
        return answer;
    }
    let sent_back = moved.amount.unwrap_or(Fen::ZERO).to_yuan();
    let items = match moved.amount {
        Some(_) => json!([{"amount": sent_back, "fund_channel": "ALIPAYACCOUNT"}]),
        None => json!([]),
    };
    answer
        .field("refund_detail_item_list", items)
        .field("send_back_fee", sent_back)
}

/// The fields a refund refusal carries besides the codes.
fn with_refusal_fields(refusal: Answer, out_trade_no: Option<String>) -> Answer {
    if !refusal.is_business_failure() {
        return refusal;
    }
    refusal
        .optional_field("out_trade_no", out_trade_no)
        .field("refund_fee", "0.00")
        .field("send_back_fee", "0.00")
}
