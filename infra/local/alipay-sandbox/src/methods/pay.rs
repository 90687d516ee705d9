//! `alipay.trade.pay`: the merchant scanned the buyer's payment code. The trade is created at
//! once (WAIT_BUYER_PAY); what happens next is chosen by the sandbox's payment code
//! conventions (see `auth_code.rs`).

use super::Call;
use super::views::{
    context_inconsistent, pay_answer, read_terms, trade_has_close, trade_has_success,
    wants_fund_bills,
};
use crate::answer::Answer;
use crate::auth_code::{AuthCode, PayBehaviour};
use crate::state::{Ctx, State};
use crate::trade::{BuyerAction, CloseReason, PendingBuyerAction, Product, Stage, Trade};
use chrono::TimeDelta;

const SCENES: [&str; 2] = ["bar_code", "security_code"];

pub fn run(state: &mut State, ctx: &Ctx<'_>, call: &Call) -> Result<Answer, Answer> {
    let biz = &call.biz;
    let out_trade_no = biz.required_out_trade_no()?;
    let scene = biz.required_text("scene", 32)?;
    if !SCENES.contains(&scene.as_str()) {
        return Err(Answer::invalid_parameter(
            "scene 只能是 bar_code 或 security_code",
        ));
    }
    let auth_code = biz.required_text("auth_code", 64)?;
    let expiry = biz.expiry(ctx.now)?;
    let terms = read_terms(biz, &expiry, "barcode", &state.rules)?;
    let fund_bills = wants_fund_bills(&biz.query_options()?, &state.rules);
    if state.voided_out_trade_nos.contains(&out_trade_no) {
        return Err(trade_has_close());
    }
    if let Some(existing) = state.trades.get(&out_trade_no) {
        if existing.terms != terms {
            return Err(context_inconsistent());
        }
        return match existing.stage {
            Stage::TradeSuccess | Stage::TradeFinished => Err(trade_has_success()),
            // The buyer is still confirming the first request: same answer again.
            Stage::WaitBuyerPay => Ok(pay_answer(
                Answer::waiting(),
                existing,
                &state.rules,
                fund_bills,
            )),
            _ => Err(trade_has_close()),
        };
    }

    let code = AuthCode::parse(&auth_code);
    if let PayBehaviour::Fail(failure) = code.behaviour
        && !failure.creates_trade()
    {
        return Err(Answer::business(failure.sub_code(), failure.sub_msg()));
    }
    if code.behaviour == PayBehaviour::UnknownNotCreated {
        return Err(Answer::unknown());
    }

    state.trades.insert(
        out_trade_no.clone(),
        Trade::ordered(
            call.app_id.clone(),
            out_trade_no.clone(),
            Product::Barcode {
                scene,
                auth_code: auth_code.clone(),
            },
            terms,
            call.notify_url.clone(),
            ctx.now,
            expiry.expires_at,
        ),
    );
    state.open_trade(&out_trade_no, ctx, code.buyer());

    let later = |seconds: u32, action: BuyerAction| PendingBuyerAction {
        due_at: ctx.now + TimeDelta::seconds(i64::from(seconds)),
        action,
    };
    let (pending, base) = match code.behaviour {
        PayBehaviour::Success => {
            state.complete_payment(&out_trade_no, ctx);
            (None, Answer::success())
        }
        PayBehaviour::WaitThenPay { seconds } => {
            (Some(later(seconds, BuyerAction::Pay)), Answer::waiting())
        }
        PayBehaviour::WaitThenDecline { seconds } => (
            Some(later(seconds, BuyerAction::Decline)),
            Answer::waiting(),
        ),
        PayBehaviour::WaitForever => (None, Answer::waiting()),
        PayBehaviour::UnknownButPaid => {
            state.complete_payment(&out_trade_no, ctx);
            return Err(Answer::unknown());
        }
        PayBehaviour::UnknownStillWaiting | PayBehaviour::UnknownNotCreated => {
            return Err(Answer::unknown());
        }
        PayBehaviour::Fail(failure) => {
            state.close_trade(&out_trade_no, ctx, CloseReason::PaymentFailed);
            return Err(Answer::business(failure.sub_code(), failure.sub_msg()));
        }
    };
    let State { trades, rules, .. } = state;
    let trade = trades.get_mut(&out_trade_no).ok_or_else(Answer::unknown)?;
    trade.pending = pending;
    Ok(pay_answer(base, trade, rules, fund_bills))
}
