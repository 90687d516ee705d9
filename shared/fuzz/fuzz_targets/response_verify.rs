//! A gateway response body, as the client receives it, classified for a gateway method (the
//! input's first byte picks it) against the public key of Alipay's published `alipay.trade.pay`
//! answer: `*_response` node extraction, repeated root nodes and keys, `error_response`, the
//! `\/` retry, unsigned bodies, then the outcome rules. The seeds include the published signed
//! body, so mutations of what surrounds its node keep reaching the code past the signature.
//!
//! Properties: only a verified node of the method itself can be a success, a wait for the
//! buyer or a definitive failure; a node verified as received is a part of the body.
#![no_main]

use alipay::outcome::Outcome;
use alipay::response;
use alipay_f2f_fuzz::{PAY_VERIFIER, classify, method};
use libfuzzer_sys::fuzz_target;
use std::borrow::Cow;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, body)) = input.split_first() else {
        return;
    };
    // The client refuses a body that is not UTF-8 before verifying.
    let Ok(body) = std::str::from_utf8(body) else {
        return;
    };
    let outcome = classify(selector, body, &PAY_VERIFIER);
    let verified = response::verify(body, method(selector), &PAY_VERIFIER);
    if matches!(
        outcome,
        Outcome::Success(()) | Outcome::WaitingForBuyer(()) | Outcome::Failed(_)
    ) {
        assert!(
            verified.as_ref().is_ok_and(|v| !v.is_error_node),
            "{outcome:?} from a body whose method node does not verify: {verified:?}"
        );
    }
    if let Ok(verified) = &verified
        && let Cow::Borrowed(node) = &verified.node
    {
        assert!(body.contains(node));
    }
});
