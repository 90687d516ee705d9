//! The body of `POST /v1/payments` and of `POST /v1/payments/{out_trade_no}/refunds`, through
//! the `pay` function's validation: strict JSON objects (duplicate and unknown keys), exact
//! JSON types, Alipay's bounds, the request hash.
//!
//! Property: validation is idempotent: a valid request, written back as JSON from its
//! normalised fields, is valid again and is the same request (the same hash, which is what
//! tells a retry from a different request).
#![no_main]

use domain::{OutTradeNo, Scene};
use libfuzzer_sys::fuzz_target;
use pay::{refunds, validation};
use serde_json::json;
use std::sync::LazyLock;

static ORDER: LazyLock<OutTradeNo> =
    LazyLock::new(|| OutTradeNo::parse("T20240101_0001").unwrap_or_else(|e| unreachable!("{e}")));

fuzz_target!(|body: &[u8]| {
    if let Ok(request) = validation::parse(body) {
        let again = json!({
            "out_trade_no": request.out_trade_no.as_str(),
            "amount_fen": request.amount.fen().get(),
            "subject": request.subject,
            "scene": match request.scene {
                Scene::Qr => "qr",
                Scene::Barcode => "barcode",
            },
            "auth_code": request.auth_code.as_ref().map(|code| code.expose()),
            "store_id": request.store_id,
            "operator_id": request.operator_id,
            "terminal_id": request.terminal_id,
            "timeout_seconds": request.timeout_seconds,
        });
        match validation::parse(again.to_string().as_bytes()) {
            Ok(reparsed) => assert_eq!(reparsed.hash, request.hash, "{again}"),
            Err(e) => panic!("a valid request written back is refused ({e:?}): {again}"),
        }
    }
    if let Ok(refund) = refunds::parse(&ORDER, body) {
        let again = json!({
            "out_request_no": refund.out_request_no.as_str(),
            "amount_fen": refund.amount_fen,
            "reason": refund.reason,
            "store_id": refund.store_id,
            "operator_id": refund.operator_id,
            "terminal_id": refund.terminal_id,
        });
        match refunds::parse(&ORDER, again.to_string().as_bytes()) {
            Ok(reparsed) => assert_eq!(reparsed.request_hash, refund.request_hash, "{again}"),
            Err(e) => panic!("a valid refund written back is refused ({e:?}): {again}"),
        }
    }
});
