//! Where daily bills are stored, the contract between `bill-fetch` (which writes them) and
//! `reconcile` (which an object created under [`BILLS_PREFIX`] starts):
//!
//! - `bills/<yyyy-MM-dd>/trade.zip`: Alipay's trade bill of that Beijing day, unchanged;
//! - `bills/<yyyy-MM-dd>/empty.json`: Alipay has no bill for the day (no trades), past the
//!   deadline for one.
//!
//! Reports are written elsewhere (`reports/<yyyy-MM-dd>/`: `summary.json`,
//! `discrepancies.csv`, or `rejected.json` for a bill refused whole), so reconciling never
//! triggers itself; the admin function reads them for the console.

use chrono::NaiveDate;

pub const BILLS_PREFIX: &str = "bills/";
/// Where each day's reconciliation report goes.
pub const REPORTS_PREFIX: &str = "reports/";

pub fn summary_key(day: NaiveDate) -> String {
    format!("{REPORTS_PREFIX}{}/summary.json", day.format("%Y-%m-%d"))
}

pub fn discrepancies_key(day: NaiveDate) -> String {
    format!(
        "{REPORTS_PREFIX}{}/discrepancies.csv",
        day.format("%Y-%m-%d")
    )
}

/// Where the reason a bill was refused goes.
pub fn rejected_key(day: NaiveDate) -> String {
    format!("{REPORTS_PREFIX}{}/rejected.json", day.format("%Y-%m-%d"))
}
const TRADE_ZIP: &str = "trade.zip";
const EMPTY_DAY: &str = "empty.json";

/// A parsed bill key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillKey {
    pub day: NaiveDate,
    /// `false` for an empty day's marker.
    pub has_file: bool,
}

impl BillKey {
    pub fn parse(key: &str) -> Option<BillKey> {
        let rest = key.strip_prefix(BILLS_PREFIX)?;
        let (day, name) = rest.split_once('/')?;
        let day = NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
        let has_file = match name {
            TRADE_ZIP => true,
            EMPTY_DAY => false,
            _ => return None,
        };
        Some(BillKey { day, has_file })
    }

    pub fn trade(day: NaiveDate) -> String {
        format!("{BILLS_PREFIX}{}/{TRADE_ZIP}", day.format("%Y-%m-%d"))
    }

    pub fn empty(day: NaiveDate) -> String {
        format!("{BILLS_PREFIX}{}/{EMPTY_DAY}", day.format("%Y-%m-%d"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_nothing_else_is_a_bill() {
        let day = NaiveDate::from_ymd_opt(2024, 3, 5).unwrap_or_default();
        assert_eq!(BillKey::trade(day), "bills/2024-03-05/trade.zip");
        assert_eq!(
            BillKey::parse(&BillKey::trade(day)),
            Some(BillKey {
                day,
                has_file: true
            })
        );
        assert_eq!(
            BillKey::parse(&BillKey::empty(day)),
            Some(BillKey {
                day,
                has_file: false
            })
        );
        for other in [
            "reports/2024-03-05/summary.json",
            "bills/2024-03-05/other.zip",
            "bills/2024-13-05/trade.zip",
            "bills/trade.zip",
        ] {
            assert_eq!(BillKey::parse(other), None, "{other}");
        }
    }
}
