//! `alipay.trade.precreate`: a QR code for the buyer to scan. No trade exists at Alipay until
//! someone scans it; repeating the identical request returns the same QR code.
//! `qr_code_timeout_express` bounds both the QR code and the order, counted from the
//! precreate; the QR code is never scannable for more than 2 h.

use super::Call;
use super::views::{context_inconsistent, read_terms, trade_has_close, trade_has_success};
use crate::answer::Answer;
use crate::biz::QR_LIFETIME;
use crate::ids;
use crate::state::{Ctx, State};
use crate::trade::{Product, Stage, Trade};

pub fn run(state: &mut State, ctx: &Ctx<'_>, call: &Call) -> Result<Answer, Answer> {
    let biz = &call.biz;
    let out_trade_no = biz.required_out_trade_no()?;
    let expiry = biz.expiry(ctx.now)?;
    let qr_deadline = biz.qr_code_deadline(ctx.now)?;
    let mut terms = read_terms(biz, &expiry, "precreate", &state.rules)?;
    terms.qr_code_timeout_express = qr_deadline.as_ref().map(|(text, _)| text.clone());
    if state.voided_out_trade_nos.contains(&out_trade_no) {
        return Err(trade_has_close());
    }
    if let Some(existing) = state.trades.get(&out_trade_no) {
        if existing.terms != terms {
            return Err(context_inconsistent());
        }
        return match (&existing.stage, &existing.product) {
            (Stage::AwaitingScan | Stage::WaitBuyerPay, Product::Precreate { qr_code }) => {
                Ok(success(&out_trade_no, qr_code))
            }
            (Stage::TradeSuccess | Stage::TradeFinished, _) => Err(trade_has_success()),
            _ => Err(trade_has_close()),
        };
    }
    let expires_at = match &qr_deadline {
        Some((_, deadline)) => expiry.expires_at.min(*deadline),
        None => expiry.expires_at,
    };
    let qr_code = ids::qr_code();
    let trade = Trade {
        qr_expires_at: Some(expires_at.min(ctx.now + QR_LIFETIME)),
        ..Trade::ordered(
            call.app_id.clone(),
            out_trade_no.clone(),
            Product::Precreate {
                qr_code: qr_code.clone(),
            },
            terms,
            call.notify_url.clone(),
            ctx.now,
            expires_at,
        )
    };
    state.trades.insert(out_trade_no.clone(), trade);
    Ok(success(&out_trade_no, &qr_code))
}

fn success(out_trade_no: &str, qr_code: &str) -> Answer {
    Answer::success()
        .field("out_trade_no", out_trade_no)
        .field("qr_code", qr_code)
}
