//! Telling a retry from a different request, and a live first attempt from a dead one.
//!
//! The request hash is the SHA-256 of a canonical JSON of the normalised request: every field
//! that changes the payment (the generated `out_trade_no`, the amount, the subject, the scene,
//! the payment code, the store, operator and terminal, and the timeout), in a fixed order,
//! absent fields as `null`. The payment code enters only through this hash.

use crate::validation::PaymentRequest;
use chrono::{DateTime, Utc};
use domain::Scene;
use domain::order::{Order, OrderStatus};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Bumped if the canonical form ever changes, so old hashes can never match new ones.
const CANONICAL_VERSION: u32 = 1;

#[derive(Serialize)]
struct Canonical<'a> {
    v: u32,
    out_trade_no: &'a str,
    amount_fen: i64,
    subject: &'a str,
    scene: &'a str,
    auth_code: Option<&'a str>,
    store_id: Option<&'a str>,
    operator_id: Option<&'a str>,
    terminal_id: Option<&'a str>,
    timeout_seconds: i64,
}

/// Lowercase hex SHA-256 of the canonical JSON of `request`.
pub fn request_hash(request: &PaymentRequest) -> String {
    let canonical = Canonical {
        v: CANONICAL_VERSION,
        out_trade_no: request.out_trade_no.as_str(),
        amount_fen: request.amount.fen().get(),
        subject: &request.subject,
        scene: match request.scene {
            Scene::Qr => "qr",
            Scene::Barcode => "barcode",
        },
        auth_code: request.auth_code.as_ref().map(|c| c.expose()),
        store_id: request.store_id.as_deref(),
        operator_id: request.operator_id.as_deref(),
        terminal_id: request.terminal_id.as_deref(),
        timeout_seconds: request.timeout_seconds,
    };
    // Serialising plain strings and integers cannot fail; an empty text would still hash.
    let text = serde_json::to_vec(&canonical).unwrap_or_default();
    Sha256::digest(&text)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What to do about an order that already holds the requested number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    /// Another request used this number: `422 idempotency_mismatch`.
    Mismatch,
    /// Another attempt holds the order's lease and is working: `409 request_in_flight`,
    /// retry after this many seconds (at least 1).
    InFlight { retry_after: u64 },
    /// Nobody is working on an unfinished order: take it over and finish it (a claim whose
    /// holder died, or a barcode payment left unresolved: a retry must settle it, never
    /// replay PENDING to a cashier who would then charge again).
    Abandoned,
    /// The same request was answered before: `200` with the order as it is now.
    Replay,
}

pub fn classify(existing: &Order, hash: &str, now: DateTime<Utc>) -> Existing {
    if existing.request_hash() != hash {
        return Existing::Mismatch;
    }
    if existing.status().is_final() {
        return Existing::Replay;
    }
    if existing.lease_live(now) {
        return Existing::InFlight {
            retry_after: existing.lease_seconds_left(now),
        };
    }
    match (existing.status(), existing.scene()) {
        (OrderStatus::Pending, Scene::Qr) => Existing::Replay,
        _ => Existing::Abandoned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::parse;
    use chrono::Duration;
    use domain::order::Order;

    fn request(body: &str) -> PaymentRequest {
        parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn the_hash_covers_every_payment_field_and_nothing_else() {
        let base = r#"{"out_trade_no":"T1","amount_fen":100,"subject":"tea","scene":"qr"}"#;
        let same = r#"{ "scene":"qr", "subject":"tea", "amount_fen":100, "out_trade_no":"T1", "timeout_seconds":900 }"#;
        assert_eq!(
            request(base).hash,
            request(same).hash,
            "order and defaults do not matter"
        );
        for other in [
            r#"{"out_trade_no":"T1","amount_fen":101,"subject":"tea","scene":"qr"}"#,
            r#"{"out_trade_no":"T1","amount_fen":100,"subject":"tea!","scene":"qr"}"#,
            r#"{"out_trade_no":"T1","amount_fen":100,"subject":"tea","scene":"qr","store_id":"s1"}"#,
            r#"{"out_trade_no":"T1","amount_fen":100,"subject":"tea","scene":"qr","timeout_seconds":901}"#,
            r#"{"out_trade_no":"T2","amount_fen":100,"subject":"tea","scene":"qr"}"#,
        ] {
            assert_ne!(request(base).hash, request(other).hash, "{other}");
        }
        let code_a = r#"{"out_trade_no":"T1","amount_fen":100,"subject":"tea","scene":"barcode","auth_code":"280000000000000001"}"#;
        let code_b = r#"{"out_trade_no":"T1","amount_fen":100,"subject":"tea","scene":"barcode","auth_code":"280000000000000002"}"#;
        assert_ne!(request(code_a).hash, request(code_b).hash);
        assert!(!request(code_a).hash.contains("2800000"));
    }

    #[test]
    fn classifies_existing_orders() {
        let r = request(r#"{"out_trade_no":"T1","amount_fen":100,"subject":"tea","scene":"qr"}"#);
        let now = Utc::now();
        let (claim, _) = Order::claim(r.new_order(now), now, Duration::seconds(15));
        assert_eq!(classify(&claim, "other", now), Existing::Mismatch);
        assert_eq!(
            classify(&claim, &r.hash, now + Duration::milliseconds(100)),
            Existing::InFlight { retry_after: 15 }
        );
        assert_eq!(
            classify(&claim, &r.hash, now + Duration::milliseconds(14_900)),
            Existing::InFlight { retry_after: 1 }
        );
        assert_eq!(
            classify(&claim, &r.hash, now + Duration::seconds(15)),
            Existing::Abandoned
        );
        let pending = claim.created_at_alipay(None, None, now).unwrap().next;
        assert_eq!(classify(&pending, &r.hash, now), Existing::Replay);
    }

    #[test]
    fn a_barcode_payment_nobody_works_on_is_finished_by_the_retry() {
        let r = request(
            r#"{"out_trade_no":"T1","amount_fen":100,"subject":"tea","scene":"barcode","auth_code":"280000000000000001"}"#,
        );
        let now = Utc::now();
        let (claim, _) = Order::claim(r.new_order(now), now, Duration::seconds(15));
        let polling = claim
            .waiting_for_buyer(None, now, Duration::seconds(15))
            .unwrap()
            .next;
        assert_eq!(
            classify(&polling, &r.hash, now + Duration::seconds(3)),
            Existing::InFlight { retry_after: 12 },
            "the first request is still polling"
        );
        assert_eq!(
            classify(&polling, &r.hash, now + Duration::seconds(15)),
            Existing::Abandoned
        );
        let paid = polling
            .paid(
                "t".into(),
                now,
                domain::order::PaymentSource::Query,
                domain::order::Buyer::default(),
                now,
            )
            .unwrap()
            .next;
        assert_eq!(classify(&paid, &r.hash, now), Existing::Replay);
    }
}
