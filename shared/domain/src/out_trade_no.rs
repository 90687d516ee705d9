//! `out_trade_no`: the merchant's order number, 1–64 characters of `[A-Za-z0-9_]` (the set
//! Alipay documents; it tolerates `-` in practice, but we stay inside the documented set).

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OutTradeNo(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutTradeNoError {
    #[error("out_trade_no must not be empty")]
    Empty,
    #[error("out_trade_no must be at most 64 characters, got {0}")]
    TooLong(usize),
    #[error("out_trade_no may only contain A-Z, a-z, 0-9 and _")]
    BadCharacter,
}

impl OutTradeNo {
    pub const MAX_LEN: usize = 64;

    pub fn parse(text: &str) -> Result<Self, OutTradeNoError> {
        if text.is_empty() {
            return Err(OutTradeNoError::Empty);
        }
        if text.len() > Self::MAX_LEN {
            return Err(OutTradeNoError::TooLong(text.chars().count()));
        }
        if !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(OutTradeNoError::BadCharacter);
        }
        Ok(OutTradeNo(text.to_owned()))
    }

    /// A fresh, time-ordered, unique number for callers that send none: a ULID (48-bit
    /// millisecond time + 80 random bits), which needs no machine number — Lambda has none.
    pub fn generate() -> Self {
        OutTradeNo(ulid::Ulid::generate().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OutTradeNo {
    type Error = OutTradeNoError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        OutTradeNo::parse(&text)
    }
}

impl From<OutTradeNo> for String {
    fn from(no: OutTradeNo) -> String {
        no.0
    }
}

impl fmt::Display for OutTradeNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_length_and_characters() {
        assert!(OutTradeNo::parse("T20240101_0001").is_ok());
        assert!(OutTradeNo::parse(&"a".repeat(64)).is_ok());
        assert_eq!(OutTradeNo::parse(""), Err(OutTradeNoError::Empty));
        assert_eq!(
            OutTradeNo::parse(&"a".repeat(65)),
            Err(OutTradeNoError::TooLong(65))
        );
        for bad in ["a-b", "a b", "订单1", "a/b", "a&b=c", "a\u{0}"] {
            assert_eq!(
                OutTradeNo::parse(bad),
                Err(OutTradeNoError::BadCharacter),
                "{bad}"
            );
        }
    }

    #[test]
    fn generated_numbers_are_valid_unique_and_time_ordered() {
        let first = OutTradeNo::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = OutTradeNo::generate();
        assert!(OutTradeNo::parse(first.as_str()).is_ok());
        assert_ne!(first, second);
        assert!(first < second, "later numbers sort later");
    }
}
