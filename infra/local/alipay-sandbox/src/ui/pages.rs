//! The two pages: the list of trades and one trade (details, QR code, buyer buttons, refunds,
//! notification deliveries). Pure functions from sandbox data to HTML; every value is escaped
//! with [`esc`].

use super::html::{Header, esc, page, seg, trade_href};
use crate::notify::Notification;
use crate::trade::{BuyerAction, Product, Stage, Trade};
use alipay::time::format_beijing;
use chrono::{DateTime, Utc};
use qrcode::QrCode;
use qrcode::render::svg;

fn time(at: DateTime<Utc>) -> String {
    format_beijing(at)
}

fn optional_time(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "—".to_owned(), time)
}

fn optional(text: Option<&str>) -> String {
    match text {
        Some(text) => format!("{}", esc(text)),
        None => "<span class=\"muted\">—</span>".to_owned(),
    }
}

/// What a person reads for a stage.
fn stage_label(stage: Stage) -> &'static str {
    match stage {
        Stage::AwaitingScan => "waiting for a scan",
        Stage::Lapsed => "QR code expired unscanned",
        Stage::Voided => "cancelled before any scan",
        Stage::WaitBuyerPay => "waiting for the buyer to pay",
        Stage::TradeSuccess => "paid",
        Stage::TradeClosed => "closed",
        Stage::TradeFinished => "paid, refund window over",
    }
}

/// The status badge: `data-stage` carries the machine-readable stage.
fn badge(stage: Stage) -> String {
    let code = stage.as_str();
    format!(
        "<span class=\"badge s-{code}\" data-stage=\"{code}\" title=\"{label}\">{code}</span> <span class=\"muted\">{label}</span>",
        label = stage_label(stage),
    )
}

/// How the order was placed, for the list's "scene" column.
fn scene(trade: &Trade) -> String {
    match &trade.product {
        Product::Precreate { .. } => "QR code (precreate)".to_owned(),
        Product::Barcode { scene, .. } => format!("{} (pay)", esc(scene)),
    }
}

fn yuan(trade_amount: alipay::Fen) -> String {
    format!("¥{}", trade_amount.to_yuan())
}

/// `GET /`: every order, newest first.
pub fn index(header: &Header<'_>, mut trades: Vec<Trade>) -> String {
    trades.sort_by(|a, b| {
        b.ordered_at
            .cmp(&a.ordered_at)
            .then_with(|| b.out_trade_no.cmp(&a.out_trade_no))
    });
    let mut body = format!(
        "<h1>Trades <small class=\"muted\">({})</small></h1>",
        trades.len()
    );
    if trades.is_empty() {
        body.push_str(
            "<p id=\"no-trades\" class=\"muted\">No orders yet. Send <code>alipay.trade.precreate</code> or \
             <code>alipay.trade.pay</code> to the gateway, then reload this page.</p>",
        );
        return page("Trades", header, &body);
    }
    body.push_str(
        "<table id=\"trades\"><thead><tr><th>out_trade_no</th><th class=\"amount\">Amount</th>\
         <th>Subject</th><th>Status</th><th>Created</th><th>Paid</th><th>Scene</th></tr></thead><tbody>",
    );
    for trade in &trades {
        body.push_str(&format!(
            "<tr data-out-trade-no=\"{no}\"><td><a href=\"{href}\"><code>{no}</code></a></td>\
             <td class=\"amount\">{amount}</td><td>{subject}</td><td>{status}</td>\
             <td class=\"t\">{created}</td><td class=\"t\">{paid}</td><td>{scene}</td></tr>",
            no = esc(&trade.out_trade_no),
            href = esc(&trade_href(&trade.out_trade_no)),
            amount = yuan(trade.total_amount()),
            subject = esc(&trade.terms.subject),
            status = badge(trade.stage),
            created = time(trade.ordered_at),
            paid = optional_time(trade.gmt_payment),
            scene = scene(trade),
        ));
    }
    body.push_str("</tbody></table><p class=\"muted\">Times are Beijing time on the sandbox clock. <a href=\"/\">Reload</a></p>");
    page("Trades", header, &body)
}

/// A flash message after a button (from the query string of the redirect).
pub enum Flash {
    Done(&'static str),
    Error(String),
}

/// `GET /trades/{out_trade_no}`.
pub fn trade(
    header: &Header<'_>,
    trade: &Trade,
    notifications: &[Notification],
    flash: Option<&Flash>,
) -> String {
    let no = &trade.out_trade_no;
    let mut body = format!(
        "<p><a href=\"/\">← All trades</a></p><h1>Trade <code id=\"out-trade-no\">{}</code> {}</h1>",
        esc(no),
        badge(trade.stage)
    );
    match flash {
        Some(Flash::Done(what)) => body.push_str(&format!(
            "<p id=\"flash\" class=\"flash ok\">{}</p>",
            esc(what)
        )),
        Some(Flash::Error(message)) => body.push_str(&format!(
            "<p id=\"flash\" class=\"flash bad\">Not done: {}</p>",
            esc(message)
        )),
        None => {}
    }
    body.push_str("<div class=\"trade\"><div>");
    body.push_str(&details(trade));
    body.push_str(&refunds(trade));
    body.push_str(&deliveries(trade, notifications));
    body.push_str("</div><aside class=\"side\">");
    body.push_str(&qr_block(trade));
    body.push_str(&buttons(trade));
    body.push_str("</aside></div>");
    page(&format!("Trade {no}"), header, &body)
}

fn details(trade: &Trade) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        (
            "out_trade_no",
            format!("<code>{}</code>", esc(&trade.out_trade_no)),
        ),
        ("trade_no", optional(trade.trade_no.as_deref())),
        (
            "trade_status",
            optional(trade.stage.trade_status().map(|s| s.as_str())),
        ),
        ("Scene", scene(trade)),
    ];
    if let Product::Barcode { auth_code, .. } = &trade.product {
        rows.push(("auth_code", format!("<code>{}</code>", esc(auth_code))));
    }
    rows.extend([
        ("total_amount", yuan(trade.total_amount())),
        ("Paid", yuan(trade.paid_amount())),
        ("Refunded", yuan(trade.refunded_amount())),
        (
            "subject",
            format!("<span id=\"subject\">{}</span>", esc(&trade.terms.subject)),
        ),
        ("body", optional(trade.terms.body.as_deref())),
        ("store_id", optional(trade.terms.store_id.as_deref())),
        ("operator_id", optional(trade.terms.operator_id.as_deref())),
        ("terminal_id", optional(trade.terms.terminal_id.as_deref())),
        (
            "timeout_express",
            optional(trade.terms.timeout_express.as_deref()),
        ),
        ("time_expire", optional(trade.terms.time_expire.as_deref())),
        ("notify_url", optional(trade.notify_url.as_deref())),
        ("Ordered at", time(trade.ordered_at)),
        ("Expires at", time(trade.expires_at)),
        ("QR code expires at", optional_time(trade.qr_expires_at)),
        ("gmt_create", optional_time(trade.gmt_create)),
        ("gmt_payment", optional_time(trade.gmt_payment)),
        ("gmt_close", optional_time(trade.gmt_close)),
        (
            "Buyer",
            match &trade.buyer {
                Some(buyer) => format!(
                    "<code>{}</code> ({})",
                    esc(&buyer.user_id),
                    esc(&buyer.logon_id)
                ),
                None => optional(None),
            },
        ),
        (
            "Pending buyer action",
            match &trade.pending {
                Some(pending) => format!(
                    "{} at {}",
                    match pending.action {
                        BuyerAction::Pay => "confirms payment",
                        BuyerAction::Decline => "declines",
                    },
                    time(pending.due_at)
                ),
                None => optional(None),
            },
        ),
        (
            "Close reason",
            optional(trade.close_reason.as_ref().and_then(enum_name).as_deref()),
        ),
        (
            "Cancel action",
            optional(trade.cancel_action.map(|a| a.as_str())),
        ),
        (
            "Buyer walked away",
            if trade.abandoned { "yes" } else { "no" }.to_owned(),
        ),
    ]);
    let mut html = String::from("<h2>Details</h2><table class=\"details\" id=\"details\"><tbody>");
    for (name, value) in rows {
        html.push_str(&format!("<tr><th>{}</th><td>{value}</td></tr>", esc(name)));
    }
    html.push_str("</tbody></table>");
    html
}

/// The serde name of a unit enum variant (`closed_by_merchant`).
fn enum_name(value: &impl serde::Serialize) -> Option<String> {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
}

fn refunds(trade: &Trade) -> String {
    let mut html = String::from("<h2>Refunds</h2>");
    if trade.refunds.is_empty() {
        html.push_str("<p class=\"muted\" id=\"no-refunds\">None.</p>");
        return html;
    }
    html.push_str(
        "<table id=\"refunds\"><thead><tr><th>out_request_no</th><th class=\"amount\">Amount</th>\
         <th>Reason</th><th>When</th><th>By</th><th>store / operator / terminal</th></tr></thead><tbody>",
    );
    for refund in &trade.refunds {
        html.push_str(&format!(
            "<tr><td><code>{}</code></td><td class=\"amount\">{}</td><td>{}</td><td class=\"t\">{}</td><td>{}</td><td>{} / {} / {}</td></tr>",
            esc(&refund.out_request_no),
            yuan(refund.amount),
            optional(refund.reason.as_deref()),
            time(refund.at),
            if refund.by_cancel { "alipay.trade.cancel" } else { "alipay.trade.refund" },
            optional(refund.store_id.as_deref()),
            optional(refund.operator_id.as_deref()),
            optional(refund.terminal_id.as_deref()),
        ));
    }
    html.push_str("</tbody></table>");
    html
}

fn deliveries(trade: &Trade, notifications: &[Notification]) -> String {
    let mut html = String::from("<h2>Notifications</h2>");
    if notifications.is_empty() {
        let why = if trade.notify_url.is_some() {
            "None yet (WAIT_BUYER_PAY is notified when the QR code is scanned, TRADE_SUCCESS when the trade is paid)."
        } else {
            "None: the order has no notify_url."
        };
        html.push_str(&format!(
            "<p class=\"muted\" id=\"no-notifications\">{why}</p>"
        ));
        return html;
    }
    for n in notifications {
        let state = if n.delivered {
            "<span class=\"ok\">delivered</span>".to_owned()
        } else if n.gave_up {
            "<span class=\"bad\">gave up</span>".to_owned()
        } else if n.in_flight {
            "sending…".to_owned()
        } else {
            match n.next_attempt_at {
                Some(at) => format!("next attempt at {}", time(at)),
                None => "no attempt planned".to_owned(),
            }
        };
        let flags: Vec<&str> = [
            (n.stale, "stale (out of order)"),
            (n.gbk, "GBK"),
            (n.bad_signature, "bad signature"),
            (n.duplicates, "duplicates"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        html.push_str(&format!(
            "<div class=\"notification\" data-notify-id=\"{id}\" data-delivered=\"{delivered}\">\
             <h3><span class=\"badge\">{status}</span> <code>{id}</code> — {state}</h3>\
             <p class=\"muted\">to <code>{url}</code> · created {created} · {rounds} round(s){flags}</p>",
            id = esc(&n.notify_id),
            delivered = n.delivered,
            status = esc(&n.trade_status),
            url = esc(&n.url),
            created = time(n.created_at),
            rounds = n.rounds,
            flags = if flags.is_empty() {
                String::new()
            } else {
                format!(" · {}", esc(&flags.join(", ")))
            },
        ));
        if n.attempts.is_empty() {
            html.push_str("<p class=\"muted\">No attempt yet.</p>");
        } else {
            html.push_str(
                "<table class=\"attempts\"><thead><tr><th>Round</th><th>Copy</th><th>At</th><th>notify_time</th>\
                 <th>HTTP</th><th>Response</th><th>Error</th><th>Result</th></tr></thead><tbody>",
            );
            for a in &n.attempts {
                html.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    a.round,
                    a.copy,
                    time(a.at),
                    esc(&a.notify_time),
                    a.http_status.map_or_else(|| "—".to_owned(), |s| s.to_string()),
                    if a.response_body.is_empty() {
                        optional(None)
                    } else {
                        format!("<code>{}</code>", esc(&a.response_body))
                    },
                    optional(a.error.as_deref()),
                    if a.success {
                        "<span class=\"ok\">success</span>"
                    } else {
                        "<span class=\"bad\">failed</span>"
                    },
                ));
            }
            html.push_str("</tbody></table>");
        }
        html.push_str("<details><summary>Fields sent</summary><table class=\"details\"><tbody>");
        for (key, value) in &n.fields {
            html.push_str(&format!(
                "<tr><th>{}</th><td><code>{}</code></td></tr>",
                esc(key),
                esc(value)
            ));
        }
        html.push_str("</tbody></table></details></div>");
    }
    html
}

/// The QR code as an SVG document (the `qrcode` crate draws only rectangles in fixed colours,
/// so it is safe to inline).
pub fn qr_svg(content: &str) -> Option<String> {
    let code = QrCode::new(content.as_bytes()).ok()?;
    Some(
        code.render::<svg::Color<'_>>()
            .min_dimensions(240, 240)
            .quiet_zone(true)
            .build(),
    )
}

fn qr_block(trade: &Trade) -> String {
    let Product::Precreate { qr_code } = &trade.product else {
        return "<p class=\"muted\">A barcode payment (<code>alipay.trade.pay</code>): \
                the merchant scanned the buyer's code, there is no QR code to show.</p>"
            .to_owned();
    };
    let note = match trade.stage {
        Stage::AwaitingScan => format!(
            "Scan with the buyer's phone — or press <b>Scan</b>. Valid until {}.",
            optional_time(trade.qr_expires_at)
        ),
        Stage::Lapsed => "This QR code expired unscanned.".to_owned(),
        Stage::Voided => "The order was cancelled; this QR code is dead.".to_owned(),
        _ => "Scanned.".to_owned(),
    };
    let svg = qr_svg(qr_code).unwrap_or_default();
    // Drop the XML declaration: inside HTML only the <svg> element is wanted.
    let svg = svg.find("<svg").map_or("", |at| &svg[at..]);
    let class = if trade.stage == Stage::AwaitingScan {
        "qr"
    } else {
        "qr used"
    };
    format!(
        "<div class=\"{class}\" id=\"qr\" role=\"img\" aria-label=\"QR code {alt}\">{svg}\
         <p class=\"note\">{note}</p><p class=\"note\"><code id=\"qr-code\">{text}</code></p>\
         <p class=\"note\"><a href=\"/trades/{href_no}/qr.svg\">qr.svg</a></p></div>",
        alt = esc(qr_code),
        text = esc(qr_code),
        href_no = esc(&seg(&trade.out_trade_no)),
    )
}

fn buttons(trade: &Trade) -> String {
    let waiting = matches!(trade.stage, Stage::AwaitingScan | Stage::WaitBuyerPay);
    let precreate = matches!(trade.product, Product::Precreate { .. });
    let href = esc(&trade_href(&trade.out_trade_no)).to_string();
    let button = |action: &str, label: &str, enabled: bool, class: &str, hint: &str| {
        format!(
            "<form method=\"post\" action=\"{href}/{action}\" id=\"{action}-form\">\
             <button type=\"submit\" id=\"{action}-button\" class=\"{class}\"{disabled}>{label}</button>\
             <p class=\"hint\">{hint}</p></form>",
            disabled = if enabled { "" } else { " disabled" },
        )
    };
    let mut html = String::from("<div class=\"buttons\"><h2>Buyer</h2>");
    html.push_str(&button(
        "scan",
        "Scan",
        precreate && trade.stage == Stage::AwaitingScan,
        "",
        "The buyer scans the QR code: the trade is created (WAIT_BUYER_PAY) and notified.",
    ));
    html.push_str(&button(
        "pay",
        "Pay",
        waiting,
        "",
        "The buyer pays: TRADE_SUCCESS and its notification.",
    ));
    html.push_str(&button(
        "abandon",
        "Abandon",
        waiting,
        "secondary",
        "The buyer walks away: nothing more happens until close or expiry.",
    ));
    html.push_str("</div>");
    html
}

/// A page for an unknown `out_trade_no`.
pub fn not_found(header: &Header<'_>, out_trade_no: &str) -> String {
    page(
        "Not found",
        header,
        &format!(
            "<p><a href=\"/\">← All trades</a></p><h1>No order <code>{}</code></h1>\
             <p class=\"muted\">The sandbox has no order with this out_trade_no (a reset forgets every order).</p>",
            esc(out_trade_no)
        ),
    )
}
