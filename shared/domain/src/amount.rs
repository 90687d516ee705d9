//! An order's amount: 0.01 to 100,000,000.00 yuan, as Alipay allows for `total_amount`.

use crate::Fen;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct OrderAmount(Fen);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("amount_fen must be between {min} and {max} (0.01 to 100,000,000.00 yuan), got {got}", min = OrderAmount::MIN_FEN, max = OrderAmount::MAX_FEN)]
pub struct AmountOutOfRange {
    pub got: i64,
}

impl OrderAmount {
    pub const MIN_FEN: i64 = 1;
    pub const MAX_FEN: i64 = 10_000_000_000;

    pub fn from_fen(fen: i64) -> Result<Self, AmountOutOfRange> {
        if (Self::MIN_FEN..=Self::MAX_FEN).contains(&fen) {
            Ok(OrderAmount(Fen::new(fen)))
        } else {
            Err(AmountOutOfRange { got: fen })
        }
    }

    pub fn fen(self) -> Fen {
        self.0
    }
}

impl TryFrom<i64> for OrderAmount {
    type Error = AmountOutOfRange;
    fn try_from(fen: i64) -> Result<Self, Self::Error> {
        OrderAmount::from_fen(fen)
    }
}

impl From<OrderAmount> for i64 {
    fn from(amount: OrderAmount) -> i64 {
        amount.0.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exactly_alipays_range() {
        assert!(OrderAmount::from_fen(0).is_err());
        assert!(OrderAmount::from_fen(-1).is_err());
        assert_eq!(
            OrderAmount::from_fen(1).map(|a| a.fen().to_yuan()),
            Ok("0.01".into())
        );
        assert_eq!(
            OrderAmount::from_fen(10_000_000_000).map(|a| a.fen().to_yuan()),
            Ok("100000000.00".into())
        );
        assert!(OrderAmount::from_fen(10_000_000_001).is_err());
    }
}
