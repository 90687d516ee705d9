//! What a buyer does with their phone, driven through the control API: scan a precreated QR
//! code (the trade comes to exist), pay, or walk away.

use crate::ids;
use crate::state::{Ctx, State};
use crate::trade::{Buyer, Product, Stage};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuyerError {
    #[error("no order with out_trade_no {0:?}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
}

/// A buyer with a fresh random id, unless one is given.
pub fn buyer_or_random(user_id: Option<String>, logon_id: Option<String>) -> Buyer {
    let user_id = user_id.unwrap_or_else(ids::user_id);
    let logon_id =
        logon_id.unwrap_or_else(|| ids::masked_logon_id(user_id.get(4..).unwrap_or(&user_id)));
    Buyer { user_id, logon_id }
}

/// The buyer scans a precreated QR code: the trade is created, WAIT_BUYER_PAY. Scanning an
/// already scanned, still unpaid code again is harmless.
pub fn scan(
    state: &mut State,
    ctx: &Ctx<'_>,
    out_trade_no: &str,
    buyer: Buyer,
) -> Result<(), BuyerError> {
    let trade = state
        .trades
        .get(out_trade_no)
        .ok_or_else(|| BuyerError::NotFound(out_trade_no.to_owned()))?;
    if !matches!(trade.product, Product::Precreate { .. }) {
        return Err(BuyerError::Conflict(
            "a barcode payment has no QR code to scan".into(),
        ));
    }
    match trade.stage {
        Stage::AwaitingScan => {
            state.scan_trade(out_trade_no, ctx, buyer);
            Ok(())
        }
        Stage::WaitBuyerPay => Ok(()),
        Stage::Lapsed => Err(BuyerError::Conflict("the QR code has expired".into())),
        Stage::Voided => Err(BuyerError::Conflict(
            "the order was cancelled before anyone scanned it".into(),
        )),
        Stage::TradeSuccess | Stage::TradeFinished => {
            Err(BuyerError::Conflict("the trade is already paid".into()))
        }
        Stage::TradeClosed => Err(BuyerError::Conflict("the trade is closed".into())),
    }
}

/// The buyer pays (scanning first if needed): TRADE_SUCCESS and its notification. Works for
/// barcode trades waiting for confirmation too.
pub fn pay(
    state: &mut State,
    ctx: &Ctx<'_>,
    out_trade_no: &str,
    buyer: Buyer,
) -> Result<(), BuyerError> {
    let stage = state
        .trades
        .get(out_trade_no)
        .map(|t| t.stage)
        .ok_or_else(|| BuyerError::NotFound(out_trade_no.to_owned()))?;
    if stage == Stage::AwaitingScan {
        scan(state, ctx, out_trade_no, buyer)?;
    }
    match state.trades.get(out_trade_no).map(|t| t.stage) {
        Some(Stage::WaitBuyerPay) => {
            state.complete_payment(out_trade_no, ctx);
            Ok(())
        }
        Some(Stage::TradeSuccess | Stage::TradeFinished) => {
            Err(BuyerError::Conflict("the trade is already paid".into()))
        }
        Some(Stage::Lapsed) => Err(BuyerError::Conflict("the QR code has expired".into())),
        Some(Stage::Voided) => Err(BuyerError::Conflict(
            "the order was cancelled before anyone scanned it".into(),
        )),
        Some(_) => Err(BuyerError::Conflict("the trade is closed".into())),
        None => Err(BuyerError::NotFound(out_trade_no.to_owned())),
    }
}

/// The buyer walks away: nothing more happens on their side (a planned confirmation is
/// dropped); the order stays as it is until the merchant closes it or it expires.
pub fn abandon(state: &mut State, out_trade_no: &str) -> Result<(), BuyerError> {
    let trade = state
        .trades
        .get_mut(out_trade_no)
        .ok_or_else(|| BuyerError::NotFound(out_trade_no.to_owned()))?;
    match trade.stage {
        Stage::AwaitingScan | Stage::WaitBuyerPay => {
            trade.pending = None;
            trade.abandoned = true;
            Ok(())
        }
        _ => Err(BuyerError::Conflict(format!(
            "nothing to abandon: the order is {}",
            trade.stage.as_str()
        ))),
    }
}
