//! What one gateway call achieved, decided only from verified text.
//!
//! The classification is the money-safety core: anything that might have changed state at
//! Alipay without us being able to prove what happened is [`Outcome::Unknown`], to be resolved
//! by querying; a definitive "no" needs a verified business failure.

use crate::response::{self, ResponseError, Status};
use crate::verifier::AlipayVerifier;
use serde::de::DeserializeOwned;
use std::fmt;

/// `code`/`msg`/`sub_code`/`sub_msg` of a refused call.
///
/// `sub_msg` can quote the request: for `isv.invalid-signature` Alipay echoes the whole
/// string it verified, the buyer's `auth_code` included. `Debug` therefore redacts it; read
/// the field itself where the text is needed, and log only `code` and `sub_code`.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    pub code: String,
    pub msg: String,
    pub sub_code: Option<String>,
    pub sub_msg: Option<String>,
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failure")
            .field("code", &self.code)
            .field("msg", &self.msg)
            .field("sub_code", &self.sub_code)
            .field("sub_msg", &self.sub_msg.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        Failure {
            code: status.code,
            msg: status.msg,
            sub_code: status.sub_code,
            sub_msg: status.sub_msg,
        }
    }
}

impl Failure {
    /// Sub-codes are matched leniently: Alipay's own tables contain typos such as
    /// `AQC.SYSTEM_ERROR` and `TRADE_NOT_EXIST` without the `ACQ.` prefix.
    pub fn sub_code_is(&self, name: &str) -> bool {
        let bare = name.rsplit('.').next().unwrap_or(name);
        self.sub_code
            .as_deref()
            .is_some_and(|sub| sub.rsplit('.').next().unwrap_or(sub) == bare)
    }
}

/// Why the effect of a call is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownCause {
    /// No answer within the client's timeout.
    Timeout,
    /// The connection failed or broke; the request may or may not have arrived.
    Connection(String),
    /// A non-200 HTTP status from the gateway.
    HttpStatus(u16),
    /// `20000` or `ACQ.SYSTEM_ERROR`: Alipay itself does not know yet.
    SystemError(Failure),
    /// The body could not be verified or read (bad or missing signature, unknown certificate,
    /// malformed JSON), so nothing in it can be believed.
    Unverifiable(String),
}

/// The gateway refused the request before acting on it, or it was never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// A gateway-level error such as `40002 isv.invalid-signature`. Alipay sends these
    /// unsigned, so `signed` tells whether the text was verified.
    Gateway { failure: Failure, signed: bool },
    /// Our side could not build or sign the request (configuration).
    Local(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// `10000`, verified. (For trades, still check `trade_status`: 10000 is not "paid".)
    Success(T),
    /// `10003` from `alipay.trade.pay`: the buyer has to confirm; poll with a query.
    WaitingForBuyer(T),
    /// Resolve by querying; never by guessing or sending a different request.
    Unknown(UnknownCause),
    /// `40004` with a `sub_code` in the method's own node, verified: a definitive business
    /// failure.
    Failed(Failure),
    Rejected(Rejection),
}

impl<T> Outcome<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Success(t) => Outcome::Success(f(t)),
            Outcome::WaitingForBuyer(t) => Outcome::WaitingForBuyer(f(t)),
            Outcome::Unknown(c) => Outcome::Unknown(c),
            Outcome::Failed(e) => Outcome::Failed(e),
            Outcome::Rejected(r) => Outcome::Rejected(r),
        }
    }
}

/// Whether `10003` is a legitimate answer for the method (only `alipay.trade.pay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    Allowed,
    NotExpected,
}

/// Classifies a gateway body for `method`. `T` is read from the verified node text only.
///
/// Only the method's own node, verified, can be a success or a definitive failure, and only
/// with the fields its response type needs (a success) or a `sub_code` (a failure); any other
/// shape claiming an effect is [`Outcome::Unknown`].
pub fn classify<T: DeserializeOwned>(
    body: &str,
    method: &str,
    verifier: &AlipayVerifier,
    waiting: Waiting,
) -> Outcome<T> {
    let verified = match response::verify(body, method, verifier) {
        Ok(verified) => verified,
        Err(ResponseError::Unsigned {
            status: Some(status),
        }) => return refusal(status, Node::Unsigned),
        Err(e) => return Outcome::Unknown(UnknownCause::Unverifiable(e.to_string())),
    };
    let status = match verified.status() {
        Ok(status) => status,
        Err(e) => return Outcome::Unknown(UnknownCause::Unverifiable(e.to_string())),
    };
    if verified.is_error_node {
        return refusal(status, Node::SignedError);
    }
    let fields = || match verified.fields::<T>() {
        Ok(t) => Ok(t),
        Err(e) => Err(Outcome::Unknown(UnknownCause::Unverifiable(e.to_string()))),
    };
    match (status.code.as_str(), waiting) {
        ("10000", _) => fields().map_or_else(|o| o, Outcome::Success),
        ("10003", Waiting::Allowed) => fields().map_or_else(|o| o, Outcome::WaitingForBuyer),
        ("10003", Waiting::NotExpected) => Outcome::Unknown(UnknownCause::Unverifiable(
            "10003 from a method that cannot be in progress".into(),
        )),
        ("20000", _) => Outcome::Unknown(UnknownCause::SystemError(status.into())),
        ("40004", _) => {
            let failure = Failure::from(status);
            if failure.sub_code_is("ACQ.SYSTEM_ERROR") {
                Outcome::Unknown(UnknownCause::SystemError(failure))
            } else if failure.sub_code.as_deref().is_none_or(str::is_empty) {
                Outcome::Unknown(UnknownCause::Unverifiable(
                    "40004 without a sub_code".into(),
                ))
            } else {
                Outcome::Failed(failure)
            }
        }
        _ => Outcome::Rejected(Rejection::Gateway {
            failure: status.into(),
            signed: true,
        }),
    }
}

/// A node that cannot carry the method's answer.
#[derive(Clone, Copy)]
enum Node {
    /// Any node without a signature (Alipay does not sign gateway-level refusals).
    Unsigned,
    /// `error_response`, signed: it carries gateway errors, never a method's result.
    SignedError,
}

/// Such a node is never a success nor a definitive failure. Gateway-level refusals are
/// reported as rejections; anything that claims an effect stays unknown.
fn refusal<T>(status: Status, node: Node) -> Outcome<T> {
    let (what, signed) = match node {
        Node::Unsigned => ("unsigned response", false),
        Node::SignedError => ("error_response", true),
    };
    match status.code.as_str() {
        "10000" | "10003" | "40004" => Outcome::Unknown(UnknownCause::Unverifiable(format!(
            "{what} with code {}",
            status.code
        ))),
        "20000" => Outcome::Unknown(UnknownCause::SystemError(status.into())),
        _ => Outcome::Rejected(Rejection::Gateway {
            failure: status.into(),
            signed,
        }),
    }
}
