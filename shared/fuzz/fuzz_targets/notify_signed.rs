//! Notifications signed here, so that every input gets past the signature check: the input's
//! lines are `name=value` parameters (`charset=gbk` among them makes it a GBK notification),
//! made into a signed form body the way Alipay sends one (`alipay::notify::sign_form`), then
//! verified and read as the `notify` function does.
//!
//! Properties: a body signed over its own parameters is never refused for its signature; what
//! verifies carries each parameter with the value its sent bytes mean (when the charset can
//! encode it); the amounts of a trade read back from their yuan text.
#![no_main]

use alipay::Fen;
use alipay::notify::{self, NotifyError};
use alipay_f2f_fuzz::SIGNER;
use encoding_rs::Encoding;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let params: Vec<(&str, &str)> = text
        .lines()
        .map(|line| line.split_once('=').unwrap_or((line, "")))
        .collect();
    // The charset the notification names, when it is one of the two Alipay uses; any other
    // label is refused by the verifier before the signature matters.
    let encoding = params
        .iter()
        .find(|(name, _)| *name == "charset")
        .and_then(|(_, label)| Encoding::for_label(label.as_bytes()))
        .filter(|&e| e == encoding_rs::GBK)
        .unwrap_or(encoding_rs::UTF_8);
    let body = notify::sign_form(&params, encoding, &SIGNER.key)
        .unwrap_or_else(|e| unreachable!("signing failed: {e}"));
    let verified = match notify::verify(body.as_bytes(), &SIGNER.verifier) {
        Ok(verified) => verified,
        Err(NotifyError::BadSignature(e)) => {
            panic!("a notification signed over its own parameters was refused ({e}): {body}")
        }
        Err(_) => return,
    };
    for (name, value) in &params {
        let (bytes, _, unmappable) = encoding.encode(value);
        if !unmappable {
            // What the sent bytes mean: GBK is not a round trip for a few private-use
            // characters (U+E78F is sent as A6DB, which reads as U+FE11).
            let (sent, _) = encoding.decode_without_bom_handling(&bytes);
            assert_eq!(
                verified.get(name),
                Some(sent.as_ref()),
                "parameter {name:?} changed between signing and verifying: {body}"
            );
        }
    }
    if let Ok(trade) = verified.trade() {
        for amount in [
            Some(trade.total_amount),
            trade.receipt_amount,
            trade.refund_fee,
        ]
        .into_iter()
        .flatten()
        {
            assert_eq!(Fen::from_yuan(&amount.to_yuan()), Ok(amount));
        }
    }
});
