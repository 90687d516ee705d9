//! What the fuzz targets (`fuzz_targets/`) and their seed generator (`src/bin/seeds.rs`)
//! share: the keys that verify, the gateway methods, and the layout of each target's input
//! where it is more than the raw bytes the product receives.

use alipay::api::{
    ApiRequest, BillDownloadUrlRequest, CancelRequest, CloseRequest, PayRequest, PrecreateRequest,
    QueryRequest, RefundQueryRequest, RefundRequest,
};
use alipay::outcome::{self, Outcome};
use alipay::{AlipayVerifier, PrivateKey, PublicKey};
use std::future::Future;
use std::pin::pin;
use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};

/// Alipay's published test vectors, the ones `shared/alipay/tests/vectors.rs` checks.
pub mod fixtures {
    /// The `alipay_trade_pay_response` node of a signed `alipay.trade.pay` answer.
    pub const PAY_NODE: &str =
        include_str!("../../alipay/tests/fixtures/trade_pay_response_node.json");
    /// Its `sign`.
    pub const PAY_SIGN: &str =
        include_str!("../../alipay/tests/fixtures/trade_pay_response_sign.txt");
    /// The public key that verifies it.
    pub const PAY_KEY: &str =
        include_str!("../../alipay/tests/fixtures/alipay_public_key_10_1.txt");
    /// A signed trade notification's decoded parameters, `[[name, value], ...]`.
    pub const NOTIFY_PARAMS: &str =
        include_str!("../../alipay/tests/fixtures/trade_notification_params.json");
    /// The public key that verifies it.
    pub const NOTIFY_KEY: &str =
        include_str!("../../alipay/tests/fixtures/alipay_public_key_10_2.txt");
}

fn fixture_verifier(key: &str) -> AlipayVerifier {
    match PublicKey::parse(key) {
        Ok(key) => AlipayVerifier::PublicKey(key),
        Err(e) => unreachable!("a fixture public key does not parse: {e}"),
    }
}

/// Verifies [`fixtures::PAY_NODE`]: Alipay's key for responses in the vectors.
pub static PAY_VERIFIER: LazyLock<AlipayVerifier> =
    LazyLock::new(|| fixture_verifier(fixtures::PAY_KEY));

/// Verifies the notification of [`fixtures::NOTIFY_PARAMS`].
pub static NOTIFY_VERIFIER: LazyLock<AlipayVerifier> =
    LazyLock::new(|| fixture_verifier(fixtures::NOTIFY_KEY));

/// A key pair made once per process, for the targets that sign what they then verify, so that
/// the code after the signature check is reached on every input. The outcome of verifying does
/// not depend on which key it is, so crashes reproduce with another one.
pub struct Signer {
    pub key: PrivateKey,
    pub verifier: AlipayVerifier,
}

pub static SIGNER: LazyLock<Signer> = LazyLock::new(|| {
    let made = PrivateKey::generate().and_then(|(key, _pem)| {
        let public = key.public_key()?;
        Ok(Signer {
            key,
            verifier: AlipayVerifier::PublicKey(public),
        })
    });
    made.unwrap_or_else(|e| unreachable!("no RSA key pair could be made: {e}"))
});

/// The gateway methods the client calls; a response target's first input byte picks one
/// (modulo their number).
pub const METHODS: [&str; 8] = [
    PrecreateRequest::METHOD,
    PayRequest::METHOD,
    QueryRequest::METHOD,
    CloseRequest::METHOD,
    CancelRequest::METHOD,
    RefundRequest::METHOD,
    RefundQueryRequest::METHOD,
    BillDownloadUrlRequest::METHOD,
];

/// The method a selector byte picks.
pub fn method(selector: u8) -> &'static str {
    METHODS[usize::from(selector) % METHODS.len()]
}

fn classify_as<R: ApiRequest>(body: &str, verifier: &AlipayVerifier) -> Outcome<()> {
    outcome::classify::<R::Response>(body, R::METHOD, verifier, R::WAITING).map(|_| ())
}

/// A gateway body classified as the client does for the method `selector` picks, with that
/// method's response type and `10003` rule.
pub fn classify(selector: u8, body: &str, verifier: &AlipayVerifier) -> Outcome<()> {
    match usize::from(selector) % METHODS.len() {
        0 => classify_as::<PrecreateRequest>(body, verifier),
        1 => classify_as::<PayRequest>(body, verifier),
        2 => classify_as::<QueryRequest>(body, verifier),
        3 => classify_as::<CloseRequest>(body, verifier),
        4 => classify_as::<CancelRequest>(body, verifier),
        5 => classify_as::<RefundRequest>(body, verifier),
        6 => classify_as::<RefundQueryRequest>(body, verifier),
        _ => classify_as::<BillDownloadUrlRequest>(body, verifier),
    }
}

/// `response_signed`: `[method selector, flags, node...]`.
pub mod signed_response {
    /// Sign the node with `\/` unescaped, as some gateways do (the verifier's retry).
    pub const SIGN_UNESCAPED: u8 = 1;
    /// Send the node as `error_response` rather than the method's own node.
    pub const ERROR_NODE: u8 = 2;
}

/// `merchant_auth`: a flags byte, then `\n`-separated method, path, raw query, `X-Key-Id`,
/// `X-Timestamp`, `X-Nonce`, `X-Signature` and the body (the rest, newlines included). A
/// header whose line is missing is not sent.
pub mod auth_input {
    /// Replace `X-Signature` by the right one for the request, with the named key's secret (or
    /// the first key's if it names none).
    pub const SIGN: u8 = 1;
    /// Replace `X-Timestamp` by the server clock's.
    pub const NOW: u8 = 2;

    /// The merchant keys the target's server knows.
    pub const KEYS: [(&str, &str); 2] = [
        ("pos-1", "a-secret-of-at-least-32-characters-0001"),
        ("pos-2", "a-secret-of-at-least-32-characters-0002"),
    ];

    /// The server clock of the target, Unix seconds.
    pub const NOW_SECONDS: i64 = 1_700_000_000;

    /// Lays out an input (the inverse of the target's parsing).
    pub fn encode(flags: u8, fields: [&str; 7], body: &[u8]) -> Vec<u8> {
        let mut input = vec![flags];
        for field in fields {
            input.extend_from_slice(field.as_bytes());
            input.push(b'\n');
        }
        input.extend_from_slice(body);
        input
    }
}

/// Runs a future that never waits (the fuzz targets' stores answer at once) to completion.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}
