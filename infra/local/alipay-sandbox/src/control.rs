//! The control API under `/sandbox` (JSON): play the buyer, inspect trades and notification
//! deliveries, set notification switches, inject faults, move the clock, reset. Errors are
//! `{"error": "..."}` with a 4xx status; this API is for tests and tools, not merchants.

use crate::buyer::{self, BuyerError};
use crate::faults::{Fault, FaultSpec};
use crate::notify::{Notification, SwitchesPatch};
use crate::sandbox::Sandbox;
use crate::trade::{Refund, Trade};
use alipay::time::format_beijing;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/sandbox", get(info))
        .route("/sandbox/trades", get(list_trades))
        .route("/sandbox/trades/{out_trade_no}", get(show_trade))
        .route("/sandbox/trades/{out_trade_no}/scan", post(scan))
        .route("/sandbox/trades/{out_trade_no}/pay", post(pay))
        .route("/sandbox/trades/{out_trade_no}/abandon", post(abandon))
        .route(
            "/sandbox/trades/{out_trade_no}/notifications/switches",
            get(trade_switches).post(set_trade_switches),
        )
        .route("/sandbox/notifications", get(list_notifications))
        .route(
            "/sandbox/notifications/switches",
            get(global_switches).post(set_global_switches),
        )
        .route(
            "/sandbox/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/sandbox/rules", get(rules).post(set_rules))
        .route("/sandbox/clock", get(clock))
        .route("/sandbox/clock/advance", post(advance_clock))
        .route("/sandbox/reset", post(reset))
}

/// A control API error.
struct ControlError(StatusCode, String);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"error": self.1}))).into_response()
    }
}

impl From<BuyerError> for ControlError {
    fn from(e: BuyerError) -> Self {
        let status = match e {
            BuyerError::NotFound(_) => StatusCode::NOT_FOUND,
            BuyerError::Conflict(_) => StatusCode::CONFLICT,
        };
        ControlError(status, e.to_string())
    }
}

type Reply = Result<axum::Json<Value>, ControlError>;

/// Parses a JSON body; an empty body means all defaults.
fn parse_body<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ControlError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ControlError(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

fn time(at: DateTime<Utc>) -> Value {
    Value::String(format_beijing(at))
}

fn optional_time(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, time)
}

fn refund_json(refund: &Refund) -> Value {
    json!({
        "out_request_no": refund.out_request_no,
        "refund_amount": refund.amount.to_yuan(),
        "refund_reason": refund.reason,
        "gmt_refund": time(refund.at),
        "by_cancel": refund.by_cancel,
        "store_id": refund.store_id,
        "operator_id": refund.operator_id,
        "terminal_id": refund.terminal_id,
    })
}

/// A trade as the control API shows it: wire-style amounts and Beijing times.
pub fn trade_json(trade: &Trade, notifications: &[Notification]) -> Value {
    json!({
        "app_id": trade.app_id,
        "out_trade_no": trade.out_trade_no,
        "trade_no": trade.trade_no,
        "stage": trade.stage.as_str(),
        "trade_status": trade.stage.trade_status().map(|s| s.as_str()),
        "product": trade.product,
        "total_amount": trade.total_amount().to_yuan(),
        "paid_amount": trade.paid_amount().to_yuan(),
        "refunded_amount": trade.refunded_amount().to_yuan(),
        "subject": trade.terms.subject,
        "body": trade.terms.body,
        "store_id": trade.terms.store_id,
        "operator_id": trade.terms.operator_id,
        "terminal_id": trade.terms.terminal_id,
        "timeout_express": trade.terms.timeout_express,
        "time_expire": trade.terms.time_expire,
        "notify_url": trade.notify_url,
        "ordered_at": time(trade.ordered_at),
        "expires_at": time(trade.expires_at),
        "qr_expires_at": optional_time(trade.qr_expires_at),
        "gmt_create": optional_time(trade.gmt_create),
        "gmt_payment": optional_time(trade.gmt_payment),
        "gmt_close": optional_time(trade.gmt_close),
        "buyer_user_id": trade.buyer.as_ref().map(|b| &b.user_id),
        "buyer_open_id": trade.buyer.as_ref().map(|b| crate::ids::open_id(&trade.app_id, &b.user_id)),
        "buyer_logon_id": trade.buyer.as_ref().map(|b| &b.logon_id),
        "pending": trade.pending.map(|p| json!({"action": p.action, "due_at": time(p.due_at)})),
        "close_reason": trade.close_reason,
        "cancel_action": trade.cancel_action,
        "abandoned": trade.abandoned,
        "refunds": trade.refunds.iter().map(refund_json).collect::<Vec<_>>(),
        "notifications": notifications.iter().map(notification_json).collect::<Vec<_>>(),
    })
}

pub fn notification_json(n: &Notification) -> Value {
    let attempts: Vec<Value> = n
        .attempts
        .iter()
        .map(|a| {
            json!({
                "round": a.round,
                "copy": a.copy,
                "at": time(a.at),
                "at_ms": a.at.timestamp_millis(),
                "notify_time": a.notify_time,
                "url": a.url,
                "http_status": a.http_status,
                "response_body": a.response_body,
                "error": a.error,
                "success": a.success,
            })
        })
        .collect();
    let fields: serde_json::Map<String, Value> = n
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "id": n.id,
        "notify_id": n.notify_id,
        "out_trade_no": n.out_trade_no,
        "trade_status": n.trade_status,
        "url": n.url,
        "stale": n.stale,
        "gbk": n.gbk,
        "bad_signature": n.bad_signature,
        "duplicates": n.duplicates,
        "created_at": time(n.created_at),
        "next_attempt_at": optional_time(n.next_attempt_at),
        "in_flight": n.in_flight,
        "delivered": n.delivered,
        "gave_up": n.gave_up,
        "rounds": n.rounds,
        "fields": fields,
        "attempts": attempts,
    })
}

async fn info(State(sandbox): State<Sandbox>) -> Reply {
    let identity = sandbox.identity();
    Ok(axum::Json(json!({
        "app_id": identity.app_id,
        "seller_id": identity.seller_id,
        "seller_email": identity.seller_email,
        "gateway_url": sandbox.gateway_url(),
        "keys_dir": identity.keys_dir.display().to_string(),
        "alipay_public_key": identity.alipay_public_key.to_base64(),
        "time_scale": sandbox.clock().scale(),
        "now": time(sandbox.now()),
    })))
}

async fn list_trades(State(sandbox): State<Sandbox>) -> Reply {
    let trades = sandbox
        .mutate(|state, _| {
            state
                .trades
                .values()
                .map(|t| {
                    let notifications: Vec<Notification> = state
                        .notifications
                        .iter()
                        .filter(|n| n.out_trade_no == t.out_trade_no)
                        .cloned()
                        .collect();
                    trade_json(t, &notifications)
                })
                .collect::<Vec<_>>()
        })
        .await;
    Ok(axum::Json(Value::Array(trades)))
}

async fn show_trade(State(sandbox): State<Sandbox>, Path(out_trade_no): Path<String>) -> Reply {
    let found = sandbox
        .mutate(|state, _| {
            let trade = state.trades.get(&out_trade_no)?;
            let notifications: Vec<Notification> = state
                .notifications
                .iter()
                .filter(|n| n.out_trade_no == out_trade_no)
                .cloned()
                .collect();
            Some(trade_json(trade, &notifications))
        })
        .await;
    found.map(axum::Json).ok_or_else(|| {
        ControlError(
            StatusCode::NOT_FOUND,
            format!("no order with out_trade_no {out_trade_no:?}"),
        )
    })
}

/// Optional buyer identity for scan and pay.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct BuyerBody {
    buyer_id: Option<String>,
    buyer_logon_id: Option<String>,
}

impl BuyerBody {
    fn buyer(self) -> Result<crate::trade::Buyer, ControlError> {
        if let Some(id) = &self.buyer_id
            && !(id.len() == 16 && id.starts_with("2088") && id.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(ControlError(
                StatusCode::BAD_REQUEST,
                "buyer_id must be 2088 followed by 12 digits".into(),
            ));
        }
        Ok(buyer::buyer_or_random(self.buyer_id, self.buyer_logon_id))
    }
}

async fn buyer_step(
    sandbox: Sandbox,
    out_trade_no: String,
    body: Bytes,
    step: fn(
        &mut crate::state::State,
        &crate::state::Ctx<'_>,
        &str,
        crate::trade::Buyer,
    ) -> Result<(), BuyerError>,
) -> Reply {
    let buyer = parse_body::<BuyerBody>(&body)?.buyer()?;
    let trade = sandbox
        .mutate(|state, ctx| {
            step(state, ctx, &out_trade_no, buyer)?;
            Ok::<_, BuyerError>(state.trades.get(&out_trade_no).map(|t| trade_json(t, &[])))
        })
        .await?;
    Ok(axum::Json(trade.unwrap_or(Value::Null)))
}

async fn scan(
    State(sandbox): State<Sandbox>,
    Path(out_trade_no): Path<String>,
    body: Bytes,
) -> Reply {
    buyer_step(sandbox, out_trade_no, body, buyer::scan).await
}

async fn pay(
    State(sandbox): State<Sandbox>,
    Path(out_trade_no): Path<String>,
    body: Bytes,
) -> Reply {
    buyer_step(sandbox, out_trade_no, body, buyer::pay).await
}

async fn abandon(State(sandbox): State<Sandbox>, Path(out_trade_no): Path<String>) -> Reply {
    let trade = sandbox
        .mutate(|state, _| {
            buyer::abandon(state, &out_trade_no)?;
            Ok::<_, BuyerError>(state.trades.get(&out_trade_no).map(|t| trade_json(t, &[])))
        })
        .await?;
    Ok(axum::Json(trade.unwrap_or(Value::Null)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NotificationFilter {
    out_trade_no: Option<String>,
}

async fn list_notifications(
    State(sandbox): State<Sandbox>,
    Query(filter): Query<NotificationFilter>,
) -> Reply {
    let notifications = sandbox.notifications(filter.out_trade_no.as_deref()).await;
    Ok(axum::Json(Value::Array(
        notifications.iter().map(notification_json).collect(),
    )))
}

async fn global_switches(State(sandbox): State<Sandbox>) -> Reply {
    let switches = sandbox.mutate(|state, _| state.switches.clone()).await;
    Ok(axum::Json(json!(switches)))
}

async fn set_global_switches(State(sandbox): State<Sandbox>, body: Bytes) -> Reply {
    let patch: SwitchesPatch = parse_body(&body)?;
    let switches = sandbox
        .mutate(|state, _| {
            state.switches.apply(&patch);
            state.switches.clone()
        })
        .await;
    Ok(axum::Json(json!(switches)))
}

async fn trade_switches(State(sandbox): State<Sandbox>, Path(out_trade_no): Path<String>) -> Reply {
    let switches = sandbox
        .mutate(|state, _| state.switches_for(&out_trade_no))
        .await;
    Ok(axum::Json(json!(switches)))
}

async fn set_trade_switches(
    State(sandbox): State<Sandbox>,
    Path(out_trade_no): Path<String>,
    body: Bytes,
) -> Reply {
    let patch: SwitchesPatch = parse_body(&body)?;
    let switches = sandbox
        .mutate(|state, _| {
            state
                .trade_switches
                .entry(out_trade_no.clone())
                .or_default()
                .merge(&patch);
            state.switches_for(&out_trade_no)
        })
        .await;
    Ok(axum::Json(json!(switches)))
}

async fn list_faults(State(sandbox): State<Sandbox>) -> Reply {
    let faults = sandbox.mutate(|state, _| state.faults.clone()).await;
    Ok(axum::Json(json!(faults)))
}

async fn add_fault(State(sandbox): State<Sandbox>, body: Bytes) -> Reply {
    let spec: FaultSpec = parse_body(&body)?;
    spec.validate()
        .map_err(|e| ControlError(StatusCode::BAD_REQUEST, e))?;
    let fault = sandbox
        .mutate(|state, _| {
            let fault = Fault {
                id: state.next_id(),
                remaining: spec.times.unwrap_or(1),
                spec,
            };
            state.faults.push(fault.clone());
            fault
        })
        .await;
    Ok(axum::Json(json!(fault)))
}

async fn clear_faults(State(sandbox): State<Sandbox>) -> Reply {
    let cleared = sandbox
        .mutate(|state, _| std::mem::take(&mut state.faults).len())
        .await;
    Ok(axum::Json(json!({"cleared": cleared})))
}

async fn rules(State(sandbox): State<Sandbox>) -> Reply {
    let rules = sandbox.mutate(|state, _| state.rules.clone()).await;
    Ok(axum::Json(json!(rules)))
}

/// Changes the fields given (a JSON object); answers the rules now in force.
async fn set_rules(State(sandbox): State<Sandbox>, body: Bytes) -> Reply {
    let patch: Value = parse_body(&body)?;
    let patch = if patch.is_null() { json!({}) } else { patch };
    let rules = sandbox
        .mutate(|state, _| {
            let rules = state.rules.patched(&patch)?;
            state.rules = rules.clone();
            Ok::<_, String>(rules)
        })
        .await
        .map_err(|e| ControlError(StatusCode::BAD_REQUEST, format!("invalid rules: {e}")))?;
    Ok(axum::Json(json!(rules)))
}

fn clock_json(sandbox: &Sandbox, now: DateTime<Utc>) -> Value {
    json!({
        "now": time(now),
        "now_ms": now.timestamp_millis(),
        "time_scale": sandbox.clock().scale(),
    })
}

async fn clock(State(sandbox): State<Sandbox>) -> Reply {
    let now = sandbox.now();
    Ok(axum::Json(clock_json(&sandbox, now)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Advance {
    seconds: f64,
}

async fn advance_clock(State(sandbox): State<Sandbox>, body: Bytes) -> Reply {
    let Advance { seconds } = parse_body(&body)?;
    if !(0.0..=366.0 * 86_400.0).contains(&seconds) {
        return Err(ControlError(
            StatusCode::BAD_REQUEST,
            "seconds must be between 0 and one year".into(),
        ));
    }
    let by = TimeDelta::milliseconds((seconds * 1000.0) as i64);
    let now = sandbox.advance_clock(by).await;
    Ok(axum::Json(clock_json(&sandbox, now)))
}

async fn reset(State(sandbox): State<Sandbox>) -> Reply {
    sandbox.mutate(|state, _| state.reset()).await;
    Ok(axum::Json(json!({"reset": true})))
}
