//! `POST /v1/payments/{out_trade_no}/refunds`: the request body, its hash, and the answers.
//! The flow itself (claim with reservation, fenced `alipay.trade.refund`, resolution of an
//! unknown outcome) is `domain::refunding`, shared with the expiry job's re-check.
//!
//! | answer | when |
//! | --- | --- |
//! | `201` + refund | this request made the refund; `status` SUCCEEDED, or FAILED with `failure.code` = Alipay's `sub_code` |
//! | `200` + refund + `Idempotent-Replayed: true` | the identical request was made before: the refund as it is now |
//! | `202` + refund + `Retry-After` | the refund is PENDING (`pending_reason`): Alipay's answer is unknown; an identical retry, the scheduled re-check, a GET or a notification settles it |
//! | `400` | `invalid_json`, `unknown_field`, `missing_field`, `invalid_field` (with `field`) |
//! | `404` | `order_not_found` |
//! | `409` | `order_not_paid`, `order_closed`, `order_failed`, `order_refunded`: the order's state allows no refund (nothing is sent) |
//! | `409` + `Retry-After` | `refund_in_flight` (this refund is being sent), `order_refund_in_flight` (another refund of the order is) |
//! | `422` | `idempotency_mismatch` (`out_request_no` used by another refund), `refund_exceeds_paid` (with `refundable_fen`) |
//! | `503` + `Retry-After` | `store_unavailable`, `scheduler_unavailable` (nothing was sent) |

use crate::Payments;
use crate::validation::{amount, identifier, invalid, members, missing};
use domain::order::{NewRefund, OrderStatus};
use domain::ports::{Clock, ExpiryScheduler, OrderStore, PaymentGateway};
use domain::refunding::{RefundAnswer, RefundError, Refunder};
use domain::{OutRequestNo, OutTradeNo};
use f2f_runtime::telemetry::count;
use f2f_runtime::{ApiError, RefundView, codes};
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

const FIELDS: [&str; 6] = [
    "out_request_no",
    "amount_fen",
    "reason",
    "store_id",
    "operator_id",
    "terminal_id",
];
/// Alipay's limit for `refund_reason`.
pub const MAX_REASON_CHARS: usize = 256;
/// When to retry a request whose refund is still PENDING.
const PENDING_RETRY_AFTER_SECONDS: u64 = 2;

/// The order number of a refunds path, `/v1/payments/{out_trade_no}/refunds`.
pub fn route(path: &str) -> Option<&str> {
    path.strip_prefix(crate::http::PATH)?
        .strip_prefix('/')?
        .strip_suffix("/refunds")
        .filter(|no| !no.is_empty() && !no.contains('/'))
}

/// Validates a refund body; nothing about the order is known yet.
pub fn parse(out_trade_no: &OutTradeNo, body: &[u8]) -> Result<NewRefund, ApiError> {
    let members = members(body, &FIELDS)?;
    let out_request_no = match members.get("out_request_no") {
        None => return Err(missing("out_request_no")),
        Some(Value::String(text)) => {
            OutRequestNo::parse(text).map_err(|e| invalid("out_request_no", e.to_string()))?
        }
        Some(_) => return Err(invalid("out_request_no", "out_request_no must be a string")),
    };
    let amount_fen = match members.get("amount_fen") {
        None => return Err(missing("amount_fen")),
        Some(value) => amount(value)?.fen().get(),
    };
    let reason = match members.get("reason") {
        None => None,
        Some(Value::String(text)) => Some(reason(text)?),
        Some(_) => return Err(invalid("reason", "reason must be a string")),
    };
    let mut refund = NewRefund {
        out_request_no,
        amount_fen,
        reason,
        store_id: identifier(members.get("store_id"), "store_id", 32)?,
        operator_id: identifier(members.get("operator_id"), "operator_id", 28)?,
        terminal_id: identifier(members.get("terminal_id"), "terminal_id", 32)?,
        request_hash: String::new(),
    };
    refund.request_hash = request_hash(out_trade_no, &refund);
    Ok(refund)
}

fn reason(text: &str) -> Result<String, ApiError> {
    let chars = text.chars().count();
    if chars == 0 || text.trim().is_empty() {
        return Err(invalid("reason", "reason must not be empty when given"));
    }
    if chars > MAX_REASON_CHARS {
        return Err(invalid(
            "reason",
            format!("reason must be at most {MAX_REASON_CHARS} characters, got {chars}"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(
            "reason",
            "reason must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

/// Bumped if the canonical form ever changes, so old hashes can never match new ones.
const CANONICAL_VERSION: u32 = 1;

#[derive(Serialize)]
struct Canonical<'a> {
    v: u32,
    out_trade_no: &'a str,
    out_request_no: &'a str,
    amount_fen: i64,
    reason: Option<&'a str>,
    store_id: Option<&'a str>,
    operator_id: Option<&'a str>,
    terminal_id: Option<&'a str>,
}

/// Lowercase hex SHA-256 of the canonical JSON of the refund: every field that changes it, in
/// a fixed order, absent fields as `null`.
fn request_hash(out_trade_no: &OutTradeNo, refund: &NewRefund) -> String {
    let canonical = Canonical {
        v: CANONICAL_VERSION,
        out_trade_no: out_trade_no.as_str(),
        out_request_no: refund.out_request_no.as_str(),
        amount_fen: refund.amount_fen,
        reason: refund.reason.as_deref(),
        store_id: refund.store_id.as_deref(),
        operator_id: refund.operator_id.as_deref(),
        terminal_id: refund.terminal_id.as_deref(),
    };
    // Serialising plain strings and integers cannot fail; an empty text would still hash.
    let text = serde_json::to_vec(&canonical).unwrap_or_default();
    Sha256::digest(&text)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl<S, Q, G, C> Payments<S, Q, G, C>
where
    S: OrderStore,
    Q: ExpiryScheduler,
    G: PaymentGateway,
    C: Clock,
{
    /// Refunds (part of) a paid order exactly once per `out_request_no`.
    pub async fn refund(
        &self,
        out_trade_no: &OutTradeNo,
        refund: &NewRefund,
    ) -> Result<RefundAnswer, RefundError> {
        let refunder = Refunder {
            store: &self.store,
            scheduler: &self.scheduler,
            gateway: &self.gateway,
            clock: &self.clock,
            policy: &self.settings.refunds,
        };
        let answer = refunder.request(out_trade_no, refund).await?;
        if let Some(refund) = answer.refund() {
            count(match (answer.pending_reason, refund.is_pending()) {
                (_, false) if answer.replayed => "refund_replayed",
                (_, false) => match refund.status() {
                    domain::order::RefundStatus::Failed => "refund_failed",
                    _ => "refund_succeeded",
                },
                _ => "refund_unresolved",
            });
        }
        Ok(answer)
    }
}

/// `201`, `200` + `Idempotent-Replayed: true`, or `202` + `Retry-After` for a refund left
/// PENDING.
pub fn refund_response(answer: &RefundAnswer) -> Result<Response<Body>, ApiError> {
    let Some(refund) = answer.refund() else {
        tracing::error!(out_request_no = %answer.out_request_no, "the refund vanished from its order");
        return Err(ApiError::internal());
    };
    let mut view = RefundView::of(&answer.order, refund);
    let pending = refund.is_pending();
    if let Some(reason) = answer.pending_reason.filter(|_| pending) {
        view = view.with_pending_reason(reason);
    }
    let status = if pending {
        StatusCode::ACCEPTED
    } else if answer.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = f2f_runtime::http::json_response(status, &view);
    let headers = response.headers_mut();
    if answer.replayed {
        headers.insert(
            crate::http::REPLAYED_HEADER,
            HeaderValue::from_static("true"),
        );
    }
    if pending {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(PENDING_RETRY_AFTER_SECONDS),
        );
    }
    let location = format!(
        "{}/{}/refunds/{}",
        crate::http::PATH,
        answer.order.out_trade_no(),
        answer.out_request_no
    );
    if let Ok(location) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, location);
    }
    Ok(response)
}

pub fn refund_error(error: RefundError, out_trade_no: &OutTradeNo) -> ApiError {
    match error {
        RefundError::NoSuchOrder => ApiError::new(
            StatusCode::NOT_FOUND,
            codes::ORDER_NOT_FOUND,
            format!("no order {out_trade_no}"),
        )
        .with_field("out_trade_no"),
        RefundError::Mismatch => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::IDEMPOTENCY_MISMATCH,
            "out_request_no was already used for a different refund of this order; use a new out_request_no",
        )
        .with_field("out_request_no"),
        RefundError::InFlight { retry_after } => ApiError::new(
            StatusCode::CONFLICT,
            codes::REFUND_IN_FLIGHT,
            "another request is sending this refund to Alipay; retry the same request",
        )
        .with_retry_after(retry_after),
        RefundError::OrderBusy { retry_after } => ApiError::new(
            StatusCode::CONFLICT,
            codes::ORDER_REFUND_IN_FLIGHT,
            "another refund of this order is being sent to Alipay (one at a time per order); retry",
        )
        .with_retry_after(retry_after),
        RefundError::NotRefundable(status) => {
            let (code, why) = match status {
                OrderStatus::Creating | OrderStatus::Pending => {
                    (codes::ORDER_NOT_PAID, "the order is not paid")
                }
                OrderStatus::Closed => (codes::ORDER_CLOSED, "the order is closed"),
                OrderStatus::Failed => (codes::ORDER_FAILED, "the order failed"),
                OrderStatus::Paid | OrderStatus::PartiallyRefunded | OrderStatus::Refunded => {
                    (codes::ORDER_REFUNDED, "the order is refunded in full")
                }
            };
            ApiError::new(
                StatusCode::CONFLICT,
                code,
                format!("{why} ({}); nothing was sent to Alipay", status.as_str()),
            )
        }
        RefundError::ExceedsPaid { refundable_fen } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::REFUND_EXCEEDS_PAID,
            format!(
                "the refunds would exceed the paid amount: {refundable_fen} fen can still be refunded; nothing was sent to Alipay"
            ),
        )
        .with_field("amount_fen")
        .with_refundable_fen(refundable_fen),
        RefundError::Store(error) => {
            tracing::error!(%error, "order store failed");
            ApiError::store_unavailable()
        }
        RefundError::Scheduler(error) => {
            tracing::error!(%error, "refund re-check could not be scheduled");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::SCHEDULER_UNAVAILABLE,
                "the refund could not be prepared (nothing was sent to Alipay); retry the same request",
            )
            .with_retry_after(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no() -> OutTradeNo {
        OutTradeNo::parse("T1").unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn code_and_field(body: &str) -> (String, Option<String>) {
        match parse(&no(), body.as_bytes()) {
            Ok(_) => ("ok".into(), None),
            Err(e) => (e.code.to_owned(), e.field),
        }
    }

    #[test]
    fn the_refunds_route_names_one_order() {
        assert_eq!(route("/v1/payments/T1/refunds"), Some("T1"));
        assert_eq!(route("/v1/payments//refunds"), None);
        assert_eq!(route("/v1/payments/a/b/refunds"), None);
        assert_eq!(route("/v1/payments/T1/refunds/R1"), None);
        assert_eq!(route("/v1/payments"), None);
    }

    #[test]
    fn a_refund_body_is_strict() {
        assert_eq!(
            code_and_field(r#"{"out_request_no":"R1","amount_fen":30}"#).0,
            "ok"
        );
        for (body, code, field) in [
            (
                r#"{"amount_fen":30}"#,
                "missing_field",
                Some("out_request_no"),
            ),
            (
                r#"{"out_request_no":"R1"}"#,
                "missing_field",
                Some("amount_fen"),
            ),
            (
                r#"{"out_request_no":"R-1","amount_fen":30}"#,
                "invalid_field",
                Some("out_request_no"),
            ),
            (
                r#"{"out_request_no":"R1","amount_fen":0}"#,
                "invalid_field",
                Some("amount_fen"),
            ),
            (
                r#"{"out_request_no":"R1","amount_fen":0.3}"#,
                "invalid_field",
                Some("amount_fen"),
            ),
            (
                r#"{"out_request_no":"R1","amount_fen":"30"}"#,
                "invalid_field",
                Some("amount_fen"),
            ),
            (
                r#"{"out_request_no":"R1","amount_fen":30,"reason":""}"#,
                "invalid_field",
                Some("reason"),
            ),
            (
                r#"{"out_request_no":"R1","amount_fen":30,"store_id":"a b"}"#,
                "invalid_field",
                Some("store_id"),
            ),
            (
                r#"{"out_request_no":"R1","amount_fen":30,"refund_fee":1}"#,
                "unknown_field",
                Some("refund_fee"),
            ),
            (r#"[1]"#, "invalid_json", None),
        ] {
            assert_eq!(
                code_and_field(body),
                (code.to_owned(), field.map(str::to_owned)),
                "{body}"
            );
        }
        let long = format!(
            r#"{{"out_request_no":"R1","amount_fen":30,"reason":"{}"}}"#,
            "退".repeat(MAX_REASON_CHARS + 1)
        );
        assert_eq!(code_and_field(&long).1.as_deref(), Some("reason"));
    }

    #[test]
    fn the_hash_tells_a_retry_from_another_refund() -> Result<(), ApiError> {
        let a = parse(&no(), br#"{"out_request_no":"R1","amount_fen":30}"#)?;
        let same = parse(&no(), br#"{ "amount_fen": 30, "out_request_no": "R1" }"#)?;
        let other = parse(&no(), br#"{"out_request_no":"R1","amount_fen":31}"#)?;
        let reason = parse(
            &no(),
            br#"{"out_request_no":"R1","amount_fen":30,"reason":"x"}"#,
        )?;
        let elsewhere = parse(
            &OutTradeNo::parse("T2").unwrap_or_else(|e| unreachable!("{e}")),
            br#"{"out_request_no":"R1","amount_fen":30}"#,
        )?;
        assert_eq!(a.request_hash, same.request_hash);
        for different in [other, reason, elsewhere] {
            assert_ne!(a.request_hash, different.request_hash);
        }
        Ok(())
    }
}
