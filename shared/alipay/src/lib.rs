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
//! - [`bill`]: a streaming reader of the downloaded trade bill (ZIP of GBK CSV files).
//!
//! Amounts are [`Fen`] everywhere; yuan strings exist only on the wire.
//!
//! # Verifying a notification
//!
//! The handler passes the raw body, exactly as received; the crate decodes it once and
//! verifies it in its own charset before anything is read from it:
//!
//! ```
//! use alipay::{AlipayVerifier, Fen, PrivateKey, notify};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (alipay_key, _pem) = PrivateKey::generate()?;
//! # let raw_body = notify::sign_form(
//! #     &[("app_id", "2021000000000001"), ("notify_id", "n1"), ("out_trade_no", "T1"),
//! #       ("trade_no", "2024010122001"), ("trade_status", "TRADE_SUCCESS"),
//! #       ("total_amount", "0.10"), ("charset", "utf-8")],
//! #     encoding_rs::UTF_8, &alipay_key)?;
//! let verifier = AlipayVerifier::PublicKey(alipay_key.public_key()?);
//! let trade = notify::verify(raw_body.as_bytes(), &verifier)?.trade()?;
//! assert!(trade.trade_status.is_paid());
//! assert_eq!(trade.total_amount, Fen::new(10));
//!
//! // A single changed byte and it is refused.
//! let forged = raw_body.replace("total_amount=0.10", "total_amount=0.01");
//! assert!(notify::verify(forged.as_bytes(), &verifier).is_err());
//! # Ok(())
//! # }
//! ```

pub mod api;
pub mod backend;
pub mod bill;
pub mod canonical;
pub mod cert;
pub mod client;
pub mod form;
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
