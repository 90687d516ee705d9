//! `out_request_no`: the merchant's number for one refund of an order, unique within the
//! order. It is the refund's idempotency key here and is sent to Alipay unchanged, so a
//! retry of the same refund can never become a second one. Same rules as `out_trade_no`
//! (1–64 characters of `[A-Za-z0-9_]`).

use crate::OutTradeNo;
use crate::out_trade_no::OutTradeNoError;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OutRequestNo(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutRequestNoError {
    #[error("out_request_no must not be empty")]
    Empty,
    #[error("out_request_no must be at most 64 characters, got {0}")]
    TooLong(usize),
    #[error("out_request_no may only contain A-Z, a-z, 0-9 and _")]
    BadCharacter,
}

impl OutRequestNo {
    pub fn parse(text: &str) -> Result<Self, OutRequestNoError> {
        // The rules are out_trade_no's: one check, two names.
        OutTradeNo::parse(text)
            .map(|no| OutRequestNo(no.into()))
            .map_err(|e| match e {
                OutTradeNoError::Empty => OutRequestNoError::Empty,
                OutTradeNoError::TooLong(n) => OutRequestNoError::TooLong(n),
                OutTradeNoError::BadCharacter => OutRequestNoError::BadCharacter,
            })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OutRequestNo {
    type Error = OutRequestNoError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        OutRequestNo::parse(&text)
    }
}

impl From<OutRequestNo> for String {
    fn from(no: OutRequestNo) -> String {
        no.0
    }
}

impl fmt::Display for OutRequestNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_order_number_rules_under_its_own_name() {
        assert!(OutRequestNo::parse("R20240101_01").is_ok());
        assert_eq!(OutRequestNo::parse(""), Err(OutRequestNoError::Empty));
        assert_eq!(
            OutRequestNo::parse(&"r".repeat(65)),
            Err(OutRequestNoError::TooLong(65))
        );
        assert_eq!(
            OutRequestNo::parse("r-1"),
            Err(OutRequestNoError::BadCharacter)
        );
        assert!(
            OutRequestNo::parse("r 1")
                .err()
                .is_some_and(|e| e.to_string().starts_with("out_request_no"))
        );
    }
}
