//! `alipay.trade.refund`: refunds of a paid trade, idempotent per `out_request_no`.

use super::Call;
use super::views::trade_status_error;
use crate::answer::Answer;
use crate::state::{Ctx, State};
use crate::trade::{Refund, Stage, Trade};
use alipay::Fen;
use alipay::time::format_beijing;

pub fn run(state: &mut State, ctx: &Ctx<'_>, call: &Call) -> Result<Answer, Answer> {
    let biz = &call.biz;
    let reference = biz.trade_reference()?;
    let amount = biz
        .amount("refund_amount")?
        .ok_or_else(|| Answer::invalid_parameter("缺少必选参数 refund_amount"))?;
    let out_request_no = biz.text("out_request_no", 64)?;
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
        let at = previous.at;
        return Ok(answer(trade, false, None, at));
    }
    if trade.stage != Stage::TradeSuccess {
        return Err(trade_status_error());
    }
    if out_request_no.is_none() && amount != trade.total_amount() {
        return Err(Answer::business(
            "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
            "退款金额与交易金额不一致（部分退款须传 out_request_no）",
        ));
    }
    let after = trade.refunded_amount().checked_add(amount);
    if after.is_none_or(|after| after > trade.total_amount()) {
        return Err(Answer::business(
            "ACQ.REASON_TRADE_REFUND_FEE_ERR",
            "退款金额超限: 累计退款金额不能大于订单金额",
        ));
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
    Ok(answer(trade, true, Some(amount), ctx.now))
}

fn answer(
    trade: &Trade,
    fund_change: bool,
    send_back: Option<Fen>,
    at: chrono::DateTime<chrono::Utc>,
) -> Answer {
    Answer::success()
        .optional_field("trade_no", trade.trade_no.clone())
        .field("out_trade_no", trade.out_trade_no.clone())
        .optional_field(
            "buyer_logon_id",
            trade.buyer.as_ref().map(|b| b.logon_id.clone()),
        )
        .optional_field(
            "buyer_user_id",
            trade.buyer.as_ref().map(|b| b.user_id.clone()),
        )
        .field("fund_change", if fund_change { "Y" } else { "N" })
        .field("refund_fee", trade.refunded_amount().to_yuan())
        .field("gmt_refund_pay", format_beijing(at))
        .optional_field("send_back_fee", send_back.map(Fen::to_yuan))
}
