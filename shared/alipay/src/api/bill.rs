//! `alipay.data.dataservice.bill.downloadurl.query`: a short-lived (about 30 s) URL of the
//! day's or month's bill ZIP, fetched with [`crate::client::AlipayClient::download_bill`].

use super::ApiRequest;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Which bill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BillType {
    /// Trades made through the merchant's apps (the one reconciliation needs).
    Trade,
    /// Everything on the Alipay account, fees included.
    Signcustomer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillDownloadUrlRequest {
    pub bill_type: BillType,
    /// `yyyy-MM-dd` for a daily bill, `yyyy-MM` for a monthly one.
    pub bill_date: String,
}

impl BillDownloadUrlRequest {
    pub fn new(bill_type: BillType, bill_date: impl Into<String>) -> Self {
        BillDownloadUrlRequest {
            bill_type,
            bill_date: bill_date.into(),
        }
    }

    /// The trade bill of one (Beijing) day.
    pub fn trade_day(day: NaiveDate) -> Self {
        Self::new(BillType::Trade, day.format("%Y-%m-%d").to_string())
    }

    /// The trade bill of one month.
    pub fn trade_month(year: i32, month: u32) -> Self {
        Self::new(BillType::Trade, format!("{year:04}-{month:02}"))
    }
}

impl ApiRequest for BillDownloadUrlRequest {
    const METHOD: &'static str = "alipay.data.dataservice.bill.downloadurl.query";
    type Response = BillDownloadUrlResponse;
}

/// "No bill for that date" is a verified `40004` with sub-code `isp.bill_not_exist`, i.e. a
/// [`crate::outcome::Outcome::Failed`], not a success without a URL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BillDownloadUrlResponse {
    pub bill_download_url: String,
    pub bill_file_code: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bill_dates() -> Result<(), serde_json::Error> {
        let day = NaiveDate::from_ymd_opt(2024, 3, 5).map(BillDownloadUrlRequest::trade_day);
        assert_eq!(
            day.map(|r| serde_json::to_string(&r))
                .transpose()?
                .as_deref(),
            Some(r#"{"bill_type":"trade","bill_date":"2024-03-05"}"#)
        );
        assert_eq!(
            BillDownloadUrlRequest::trade_month(2024, 3).bill_date,
            "2024-03"
        );
        Ok(())
    }
}
