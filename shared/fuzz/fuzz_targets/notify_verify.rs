//! A notification's raw form body, as the `notify` function receives it, verified against the
//! public key of Alipay's published test notification: the caps, the form decoding, repeated
//! parameters, `sign_type`, the charset and the signature check, and the trade fields of a
//! body that verifies (the seeds include the published one, so mutations keep reaching them).
//!
//! Property: the order of the pairs does not matter (Alipay's signature is over the sorted
//! parameters): the body with its pairs rotated verifies exactly when the body does, to the
//! same parameters.
#![no_main]

use alipay::notify;
use alipay_f2f_fuzz::NOTIFY_VERIFIER;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let verified = notify::verify(body, &NOTIFY_VERIFIER);
    if let Ok(notification) = &verified {
        let _ = notification.trade();
    }
    let mut pairs: Vec<&[u8]> = body.split(|&b| b == b'&').collect();
    pairs.rotate_left(1);
    let rotated = pairs.join(&b'&');
    let verified_rotated = notify::verify(&rotated, &NOTIFY_VERIFIER);
    assert_eq!(
        verified.as_ref().ok().map(|n| n.params()),
        verified_rotated.as_ref().ok().map(|n| n.params()),
        "the same pairs in another order verify differently: {verified:?} / {verified_rotated:?}"
    );
});
