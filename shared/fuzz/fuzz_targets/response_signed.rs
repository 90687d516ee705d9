//! Gateway responses signed here, so that every input gets past the signature check: the
//! input is `[method selector, flags, node text]`; the node is put in a body under the method's
//! `*_response` name (or `error_response`), signed as received or with `\/` unescaped (what
//! some gateways sign, and the verifier retries), then verified and classified as the client
//! does (status, outcome rules and the method's response fields).
//!
//! Property: a body made of one JSON object node and the signature of its text (or of its
//! unescaped text) verifies, and the text read afterwards is exactly the text signed.
#![no_main]

use alipay::response::{self, ERROR_NODE};
use alipay_f2f_fuzz::signed_response::{ERROR_NODE as SEND_AS_ERROR, SIGN_UNESCAPED};
use alipay_f2f_fuzz::{SIGNER, classify, method};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

fuzz_target!(|input: &[u8]| {
    let [selector, flags, node @ ..] = input else {
        return;
    };
    let Ok(node) = std::str::from_utf8(node) else {
        return;
    };
    let name = if flags & SEND_AS_ERROR != 0 {
        ERROR_NODE.to_owned()
    } else {
        response::node_name(method(*selector))
    };
    let signed = if flags & SIGN_UNESCAPED != 0 {
        node.replace("\\/", "/")
    } else {
        node.to_owned()
    };
    let sign = SIGNER
        .key
        .sign_base64(signed.as_bytes())
        .unwrap_or_else(|e| unreachable!("signing failed: {e}"));
    let body = format!(r#"{{"{name}":{node},"sign":"{sign}"}}"#);
    let _ = classify(*selector, &body, &SIGNER.verifier);

    let one_object = node.starts_with('{')
        && serde_json::from_str::<&RawValue>(node).is_ok_and(|raw| raw.get() == node);
    if one_object {
        match response::verify(&body, method(*selector), &SIGNER.verifier) {
            Ok(verified) => {
                assert_eq!(verified.node, signed.as_str());
                assert_eq!(verified.is_error_node, flags & SEND_AS_ERROR != 0);
            }
            Err(e) => panic!("a signed node was refused ({e}): {body}"),
        }
    }
});
