//! Money as integer fen (分). Alipay's wire format is a yuan string with at most two decimals
//! ("0.10"); the conversion happens here and nowhere else, and never through a float.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount in fen. Signed, because bills carry refunds as negative amounts.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Fen(i64);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount {0:?} is not a yuan amount with at most two decimals")]
    Malformed(String),
    #[error("amount {0:?} is out of range")]
    OutOfRange(String),
}

impl Fen {
    pub const ZERO: Fen = Fen(0);

    pub const fn new(fen: i64) -> Self {
        Fen(fen)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Fen) -> Option<Fen> {
        self.0.checked_add(other.0).map(Fen)
    }

    pub fn checked_sub(self, other: Fen) -> Option<Fen> {
        self.0.checked_sub(other.0).map(Fen)
    }

    /// Parses Alipay's yuan notation: an optional `-`, digits, and an optional `.` followed by
    /// one or two digits ("12", "0.1", "-0.01"). Anything else is refused, including a third
    /// decimal, exponents, `+`, spaces and empty parts.
    pub fn from_yuan(text: &str) -> Result<Fen, AmountError> {
        let malformed = || AmountError::Malformed(text.to_owned());
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (unsigned, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) {
            return Err(malformed());
        }
        let fraction_fen = match fraction {
            None => 0,
            Some(f) if all_digits(f) && f.len() == 1 => i64::from(f.as_bytes()[0] - b'0') * 10,
            Some(f) if all_digits(f) && f.len() == 2 => {
                i64::from(f.as_bytes()[0] - b'0') * 10 + i64::from(f.as_bytes()[1] - b'0')
            }
            Some(_) => return Err(malformed()),
        };
        let out_of_range = || AmountError::OutOfRange(text.to_owned());
        let whole_yuan: i64 = whole.parse().map_err(|_| out_of_range())?;
        let fen = whole_yuan
            .checked_mul(100)
            .and_then(|f| f.checked_add(fraction_fen))
            .ok_or_else(out_of_range)?;
        Ok(Fen(if negative { -fen } else { fen }))
    }

    /// Formats as Alipay expects: yuan with exactly two decimals ("0.10", "-12.00").
    pub fn to_yuan(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} fen", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_alipay_amounts_exactly() {
        for (text, fen) in [
            ("0.01", 1),
            ("0.10", 10),
            ("0.1", 10),
            ("1", 100),
            ("88.88", 8888),
            ("100000000.00", 10_000_000_000),
            ("-0.01", -1),
            ("0.00", 0),
        ] {
            assert_eq!(Fen::from_yuan(text), Ok(Fen::new(fen)), "{text}");
        }
    }

    #[test]
    fn refuses_anything_but_plain_decimal_yuan() {
        for text in [
            "", "-", ".5", "1.", "1.234", "1e2", "+1", " 1", "1 ", "1,00", "0x10", "1.-1", "--1",
            "１",
        ] {
            assert!(Fen::from_yuan(text).is_err(), "{text:?} should be refused");
        }
        assert!(matches!(
            Fen::from_yuan("99999999999999999999"),
            Err(AmountError::OutOfRange(_))
        ));
    }

    #[test]
    fn formats_with_exactly_two_decimals() {
        assert_eq!(Fen::new(1).to_yuan(), "0.01");
        assert_eq!(Fen::new(10).to_yuan(), "0.10");
        assert_eq!(Fen::new(123456).to_yuan(), "1234.56");
        assert_eq!(Fen::new(-1).to_yuan(), "-0.01");
        assert_eq!(Fen::new(i64::MIN).to_yuan(), "-92233720368547758.08");
    }

    #[test]
    fn round_trips_every_small_amount() {
        for fen in -1_000..=100_000 {
            assert_eq!(Fen::from_yuan(&Fen::new(fen).to_yuan()), Ok(Fen::new(fen)));
        }
    }
}
