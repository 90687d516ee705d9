//! Alipay OpenAPI 2.0 (`gateway.do`) for face-to-face payments (当面付).
//!
//! - [`keys`]: app private keys (PKCS#8 / PKCS#1, PEM or bare Base64) and Alipay public keys.
//! - [`canonical`]: the strings to sign for requests and for notifications.
//! - [`request`]: signing a gateway request (system parameters in the query string).
//! - [`response`]: verifying a response over the raw text of its `*_response` node.
//! - [`notify`]: verifying an asynchronous notification over its raw form body.
//! - [`cert`]: public-key-certificate mode (`app_cert_sn`, `alipay_root_cert_sn`).
//! - [`outcome`]: what a call achieved: success, waiting, unknown, failure, rejection.
//! - [`client`]: an async gateway client for the trade, refund and bill APIs.
//!
//! Amounts are [`Fen`] everywhere; yuan strings exist only on the wire.

pub mod api;
pub mod backend;
pub mod canonical;
pub mod cert;
pub mod client;
pub mod keys;
pub mod money;
pub mod notify;
pub mod outcome;
pub mod request;
pub mod response;
pub mod time;
pub mod verifier;

pub use backend::Backend;
pub use keys::{KeyError, PrivateKey, PublicKey, VerifyError};
pub use money::{AmountError, Fen};
pub use verifier::AlipayVerifier;
