//! A web page a person can click: `GET /` lists the orders, `GET /trades/{out_trade_no}`
//! shows one (details, refunds, notification deliveries, the QR code of a precreated order)
//! with the buyer's buttons **Scan**, **Pay** and **Abandon**. The buttons are plain HTML
//! forms POSTing to `/trades/{out_trade_no}/{scan,pay,abandon}`, which run the same buyer
//! logic as the control API and redirect back (303), so the page needs no JavaScript.
//!
//! Like the control API, these routes have no authentication: the sandbox only listens on
//! loopback unless told otherwise.

mod html;
mod pages;

use crate::buyer::{self, BuyerError};
use crate::sandbox::Sandbox;
use crate::trade::Product;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use html::{Header, trade_href};
use pages::Flash;

pub fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/", get(index))
        .route("/trades/{out_trade_no}", get(trade))
        .route("/trades/{out_trade_no}/qr.svg", get(qr_svg))
        .route("/trades/{out_trade_no}/scan", post(scan))
        .route("/trades/{out_trade_no}/pay", post(pay))
        .route("/trades/{out_trade_no}/abandon", post(abandon))
}

/// Identity and clock for the page header.
struct HeaderData {
    app_id: String,
    seller_id: String,
    gateway_url: String,
    now: String,
    time_scale: f64,
}

impl HeaderData {
    fn of(sandbox: &Sandbox, now: chrono::DateTime<chrono::Utc>) -> HeaderData {
        HeaderData {
            app_id: sandbox.identity().app_id.clone(),
            seller_id: sandbox.identity().seller_id.clone(),
            gateway_url: sandbox.gateway_url(),
            now: alipay::time::format_beijing(now),
            time_scale: sandbox.clock().scale(),
        }
    }

    fn header(&self) -> Header<'_> {
        Header {
            app_id: &self.app_id,
            seller_id: &self.seller_id,
            gateway_url: &self.gateway_url,
            now: &self.now,
            time_scale: self.time_scale,
        }
    }
}

/// No caching: the page shows live state, and the back button must not show a stale trade.
fn html_page(status: StatusCode, body: String) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

async fn index(State(sandbox): State<Sandbox>) -> Response {
    let (trades, now) = sandbox
        .mutate(|state, ctx| (state.trades.values().cloned().collect(), ctx.now))
        .await;
    let data = HeaderData::of(&sandbox, now);
    html_page(StatusCode::OK, pages::index(&data.header(), trades))
}

async fn trade(
    State(sandbox): State<Sandbox>,
    Path(out_trade_no): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (found, now) = sandbox
        .mutate(|state, ctx| {
            let found = state.trades.get(&out_trade_no).cloned().map(|trade| {
                let notifications: Vec<_> = state
                    .notifications
                    .iter()
                    .filter(|n| n.out_trade_no == out_trade_no)
                    .cloned()
                    .collect();
                (trade, notifications)
            });
            (found, ctx.now)
        })
        .await;
    let data = HeaderData::of(&sandbox, now);
    match found {
        Some((trade, notifications)) => {
            let flash = flash(query.as_deref());
            html_page(
                StatusCode::OK,
                pages::trade(&data.header(), &trade, &notifications, flash.as_ref()),
            )
        }
        None => html_page(
            StatusCode::NOT_FOUND,
            pages::not_found(&data.header(), &out_trade_no),
        ),
    }
}

/// `?done=scan|pay|abandon` or `?error=…` from the redirect after a button.
fn flash(query: Option<&str>) -> Option<Flash> {
    let query = query?;
    let mut flash = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match (&*key, &*value) {
            ("done", "scan") => flash = Some(Flash::Done("Scanned: the trade exists now.")),
            ("done", "pay") => flash = Some(Flash::Done("Paid.")),
            ("done", "abandon") => flash = Some(Flash::Done("The buyer walked away.")),
            // Shown escaped and capped: it is the sandbox's own message, but the query string
            // is anyone's to write.
            ("error", message) => {
                flash = Some(Flash::Error(message.chars().take(200).collect()));
            }
            _ => {}
        }
    }
    flash
}

async fn qr_svg(State(sandbox): State<Sandbox>, Path(out_trade_no): Path<String>) -> Response {
    let qr_code = sandbox
        .mutate(|state, _| {
            state
                .trades
                .get(&out_trade_no)
                .and_then(|trade| match &trade.product {
                    Product::Precreate { qr_code } => Some(qr_code.clone()),
                    Product::Barcode { .. } => None,
                })
        })
        .await;
    match qr_code.as_deref().and_then(pages::qr_svg) {
        Some(svg) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            svg,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no QR code for this out_trade_no").into_response(),
    }
}

/// Runs a buyer step and redirects back to the trade page with its outcome.
async fn buyer_step(
    sandbox: Sandbox,
    out_trade_no: String,
    action: &'static str,
    step: impl FnOnce(&mut crate::state::State, &crate::state::Ctx<'_>, &str) -> Result<(), BuyerError>,
) -> Response {
    let done = sandbox
        .mutate(|state, ctx| step(state, ctx, &out_trade_no))
        .await;
    let back = trade_href(&out_trade_no);
    match done {
        Ok(()) => Redirect::to(&format!("{back}?done={action}")).into_response(),
        Err(BuyerError::NotFound(_)) => Redirect::to(&back).into_response(),
        Err(BuyerError::Conflict(message)) => {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("error", &message)
                .finish();
            Redirect::to(&format!("{back}?{query}")).into_response()
        }
    }
}

async fn scan(State(sandbox): State<Sandbox>, Path(out_trade_no): Path<String>) -> Response {
    buyer_step(sandbox, out_trade_no, "scan", |state, ctx, no| {
        buyer::scan(state, ctx, no, buyer::buyer_or_random(None, None))
    })
    .await
}

async fn pay(State(sandbox): State<Sandbox>, Path(out_trade_no): Path<String>) -> Response {
    buyer_step(sandbox, out_trade_no, "pay", |state, ctx, no| {
        buyer::pay(state, ctx, no, buyer::buyer_or_random(None, None))
    })
    .await
}

async fn abandon(State(sandbox): State<Sandbox>, Path(out_trade_no): Path<String>) -> Response {
    buyer_step(sandbox, out_trade_no, "abandon", |state, _, no| {
        buyer::abandon(state, no)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_reads_known_outcomes_and_caps_errors() {
        assert!(matches!(
            flash(Some("done=pay")),
            Some(Flash::Done("Paid."))
        ));
        assert!(flash(Some("done=other")).is_none());
        assert!(flash(None).is_none());
        match flash(Some(&format!("error={}", "x".repeat(500)))) {
            Some(Flash::Error(message)) => assert_eq!(message.len(), 200),
            _ => unreachable!("an error flash"),
        }
    }
}
