//! Trade bills: `alipay.data.dataservice.bill.downloadurl.query` and the download links it
//! hands out.
//!
//! - `bill_type=trade` with `bill_date` `yyyy-MM-dd` (a Beijing day) or `yyyy-MM` (a month)
//!   answers `bill_download_url`: a link on this sandbox to a ZIP in Alipay's format (see
//!   [`format`]). The ZIP is made when the URL is asked for, from [`Sandbox::trades`]: a
//!   payment row on the day of its `gmt_payment`, a refund row (negative amounts) on the day
//!   of the refund, ordered by that time.
//! - Bills are T+1, as at Alipay, and ready only some hours later (rules `bill_ready_hour`,
//!   `month_bill_ready_day`, see [`ready_at`]): a day's bill from 09:00 Beijing time of the
//!   next day, a month's from 09:00 on the 3rd of the next month (sandbox clock). Before that
//!   the answer is `40004 isp.bill_not_exist`, as for a bill Alipay has not generated yet.
//! - A ready bill of a period without any payment or refund follows the rule `empty_bill`:
//!   `40004 isp.bill_not_exist` (the default), or `10000` with
//!   `bill_file_code=EMPTY_DATA_WITH_BILL_FILE` and a ZIP without rows (zero totals).
//! - `bill_type=signcustomer` (the account ledger) is `isp.bill_not_exist` too: the sandbox
//!   keeps no ledger. Another `bill_type`, or a malformed `bill_date`, is
//!   `40004 ACQ.INVALID_PARAMETER`.
//! - A link works for [`crate::Config::bill_url_ttl`] of **real** time (30 s by default, like
//!   Alipay's), then answers HTTP 410 (`bill link expired`); an unknown token is 404.
//!
//! [`synth`] writes large synthetic bills (and the matching orders) for reconciliation
//! benchmarks.

pub mod format;
pub mod synth;

use crate::answer::Answer;
use crate::biz::Biz;
use crate::rules::{EmptyBill, Rules};
use crate::sandbox::Sandbox;
use crate::trade::Trade;
use alipay::time::beijing;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use format::{BillWriter, Kind, Period, Row};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Alipay's bill links live about 30 seconds.
pub const DEFAULT_URL_TTL: Duration = Duration::from_secs(30);

/// Where the ZIPs are served.
pub const DOWNLOAD_PATH: &str = "/sandbox/bills/download";

/// Expired links are remembered this long after expiry (answering 410), then forgotten (404).
const REMEMBER_EXPIRED: Duration = Duration::from_secs(600);

/// `bill_file_code` of a ready bill without rows.
pub const EMPTY_DATA_WITH_BILL_FILE: &str = "EMPTY_DATA_WITH_BILL_FILE";

/// The bill links handed out by this sandbox: each token maps to the ZIP made when the URL
/// was asked for.
#[derive(Debug)]
pub struct Links {
    ttl: Duration,
    links: Mutex<HashMap<String, Link>>,
}

#[derive(Debug, Clone)]
struct Link {
    zip: Bytes,
    file_name: String,
    expires: Instant,
}

impl Links {
    pub fn new(ttl: Duration) -> Links {
        Links {
            ttl,
            links: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn insert(&self, zip: Vec<u8>, file_name: String) -> String {
        let token = crate::ids::random_alphanumeric_lower(32);
        let now = Instant::now();
        if let Ok(mut links) = self.links.lock() {
            links.retain(|_, link| now < link.expires + REMEMBER_EXPIRED);
            links.insert(
                token.clone(),
                Link {
                    zip: Bytes::from(zip),
                    file_name,
                    expires: now + self.ttl,
                },
            );
        }
        token
    }

    fn get(&self, token: &str) -> Option<Link> {
        self.links.lock().ok()?.get(token).cloned()
    }
}

fn bill_not_exist() -> Answer {
    Answer::business("isp.bill_not_exist", "账单不存在")
}

/// Answers the bill method.
pub async fn download_url(sandbox: &Sandbox, biz: &Biz) -> Answer {
    match prepare(sandbox, biz).await {
        Ok(answer) | Err(answer) => answer,
    }
}

async fn prepare(sandbox: &Sandbox, biz: &Biz) -> Result<Answer, Answer> {
    let bill_type = biz.required_text("bill_type", 32)?;
    let bill_date = biz.required_text("bill_date", 16)?;
    let period = parse_bill_date(&bill_date).ok_or_else(|| {
        Answer::invalid_parameter(format!(
            "bill_date 格式应为 yyyy-MM-dd 或 yyyy-MM: {bill_date}"
        ))
    })?;
    match bill_type.as_str() {
        "trade" => {}
        "signcustomer" => return Err(bill_not_exist()),
        other => {
            return Err(Answer::invalid_parameter(format!(
                "bill_type 取值为 trade 或 signcustomer: {other}"
            )));
        }
    }
    let (now, rules) = sandbox
        .mutate(|state, ctx| (ctx.now, state.rules.clone()))
        .await;
    // T+1, and only once Alipay has generated the bill.
    if ready_at(&period, &rules).is_none_or(|ready| now < ready) {
        return Err(bill_not_exist());
    }
    let trades = sandbox.trades().await;
    let seller_id = sandbox.identity().seller_id.clone();
    let zip = build_zip(&trades, &seller_id, &period, now, rules.empty_bill)
        .map_err(|e| {
            tracing::warn!(error = %e, "could not write the bill");
            Answer::unknown()
        })?
        .ok_or_else(bill_not_exist)?;
    let file_name = format::zip_name(&seller_id, &period);
    let token = sandbox.bill_links().insert(zip.bytes, file_name.clone());
    let url = format!(
        "{}{DOWNLOAD_PATH}?bizType=trade&userId={seller_id}&fileType=csv.zip&bizDates={}&downloadFileName={file_name}&timestamp={}&token={token}",
        sandbox.base_url(),
        period.label,
        now.timestamp_millis(),
    );
    let answer = Answer::success().field("bill_download_url", url);
    Ok(if zip.empty {
        answer.field("bill_file_code", EMPTY_DATA_WITH_BILL_FILE)
    } else {
        answer
    })
}

/// When the bill of `period` becomes available (an instant on the sandbox clock): a day's at
/// `bill_ready_hour` (Beijing time) of the next day, a month's on `month_bill_ready_day` of
/// the next month at that hour. With 0 and 1, as soon as the period has ended. `None` (never)
/// only at the end of the calendar.
pub fn ready_at(period: &Period, rules: &Rules) -> Option<DateTime<Utc>> {
    let day = if period.monthly {
        let later = rules.month_bill_ready_day.saturating_sub(1);
        period
            .end_day
            .checked_add_days(Days::new(u64::from(later)))?
    } else {
        period.end_day
    };
    day.and_hms_opt(0, 0, 0)?
        .checked_add_signed(TimeDelta::hours(i64::from(rules.bill_ready_hour)))?
        .and_local_timezone(beijing())
        .single()
        .map(|ready| ready.with_timezone(&Utc))
}

/// `yyyy-MM-dd` → that day; `yyyy-MM` → that month. Nothing else.
pub fn parse_bill_date(text: &str) -> Option<Period> {
    let digits_at = |positions: &[usize]| {
        positions
            .iter()
            .all(|&i| text.as_bytes().get(i).is_some_and(u8::is_ascii_digit))
    };
    match text.len() {
        10 if digits_at(&[0, 1, 2, 3, 5, 6, 8, 9]) => {
            Period::day(NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?)
        }
        7 if digits_at(&[0, 1, 2, 3, 5, 6]) && text.as_bytes()[4] == b'-' => {
            Period::month(text[..4].parse().ok()?, text[5..].parse().ok()?)
        }
        _ => None,
    }
}

/// The bill rows of `period`, in the order they are written (by completion time).
fn rows<'a>(trades: &'a [Trade], period: &Period, buyers: &'a [String]) -> Vec<Row<'a>> {
    let mut rows = Vec::new();
    for (trade, buyer_account) in trades.iter().zip(buyers) {
        let (Some(trade_no), Some(created_at), Some(paid_at)) =
            (&trade.trade_no, trade.gmt_create, trade.gmt_payment)
        else {
            continue;
        };
        let terms = &trade.terms;
        let row = Row {
            trade_no,
            out_trade_no: &trade.out_trade_no,
            kind: Kind::Payment,
            subject: &terms.subject,
            created_at,
            finished_at: paid_at,
            store_id: terms.store_id.as_deref(),
            store_name: None,
            operator_id: terms.operator_id.as_deref(),
            terminal_id: terms.terminal_id.as_deref(),
            buyer_account,
            amount: terms.total_amount,
            receipt: terms.total_amount,
            refund_request_no: None,
            remark: terms.body.as_deref(),
        };
        if period.contains(paid_at) {
            rows.push(row.clone());
        }
        for refund in trade.refunds.iter().filter(|r| period.contains(r.at)) {
            let negative = alipay::Fen::new(-refund.amount.get());
            rows.push(Row {
                kind: Kind::Refund,
                finished_at: refund.at,
                store_id: refund.store_id.as_deref().or(row.store_id),
                operator_id: refund.operator_id.as_deref().or(row.operator_id),
                terminal_id: refund.terminal_id.as_deref().or(row.terminal_id),
                amount: negative,
                receipt: negative,
                refund_request_no: Some(&refund.out_request_no),
                ..row.clone()
            });
        }
    }
    rows.sort_by(|a, b| {
        (a.finished_at, a.kind, a.trade_no, a.refund_request_no).cmp(&(
            b.finished_at,
            b.kind,
            b.trade_no,
            b.refund_request_no,
        ))
    });
    rows
}

/// `*买家(159****5620)`: Alipay shows the buyer's masked name and masked logon id; the sandbox
/// knows no names.
pub fn buyer_account(trade: &Trade) -> String {
    trade
        .buyer
        .as_ref()
        .map(|b| format!("*买家({})", b.logon_id))
        .unwrap_or_default()
}

/// A bill ZIP as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillZip {
    pub bytes: Vec<u8>,
    /// No detail rows (the period had no payment or refund).
    pub empty: bool,
}

/// The bill ZIP of `period`; a period without rows has one only under
/// [`EmptyBill::EmptyFile`], otherwise `None`.
pub fn build_zip(
    trades: &[Trade],
    seller_id: &str,
    period: &Period,
    exported_at: DateTime<Utc>,
    empty_bill: EmptyBill,
) -> std::io::Result<Option<BillZip>> {
    let buyers: Vec<String> = trades.iter().map(buyer_account).collect();
    let rows = rows(trades, period, &buyers);
    if rows.is_empty() && empty_bill == EmptyBill::NotExist {
        return Ok(None);
    }
    let mut writer = BillWriter::new(
        std::io::Cursor::new(Vec::new()),
        seller_id,
        period.clone(),
        exported_at,
        6,
        false,
    )?;
    for row in &rows {
        writer.row(row)?;
    }
    let (out, _) = writer.finish(exported_at)?;
    Ok(Some(BillZip {
        bytes: out.into_inner(),
        empty: rows.is_empty(),
    }))
}

/// `GET /sandbox/bills/download?…&token=…`: the ZIP, while the link lives.
pub fn routes() -> Router<Sandbox> {
    Router::new().route(DOWNLOAD_PATH, get(download))
}

async fn download(
    State(sandbox): State<Sandbox>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let link = query
        .get("token")
        .and_then(|token| sandbox.bill_links().get(token));
    let Some(link) = link else {
        return (StatusCode::NOT_FOUND, "bill link not found\n").into_response();
    };
    if Instant::now() >= link.expires {
        return (StatusCode::GONE, "bill link expired\n").into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", link.file_name),
            ),
        ],
        link.zip,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bill_dates() {
        assert_eq!(
            parse_bill_date("2019-09-16").map(|p| p.label),
            Some("20190916".to_owned())
        );
        assert_eq!(
            parse_bill_date("2019-09").map(|p| p.label),
            Some("201909".to_owned())
        );
        assert_eq!(parse_bill_date("2019-09").map(|p| p.monthly), Some(true));
        assert_eq!(
            parse_bill_date("2019-09-16").map(|p| p.monthly),
            Some(false)
        );
        for bad in [
            "2019-9-16",
            "2019-09-31",
            "20190916",
            "2019/09/16",
            "2019-13",
            "",
            "+019-09",
        ] {
            assert_eq!(parse_bill_date(bad), None, "{bad}");
        }
    }

    fn beijing_text(at: Option<DateTime<Utc>>) -> Option<String> {
        at.map(alipay::time::format_beijing)
    }

    #[test]
    fn bills_are_ready_at_the_rule_hour_of_the_next_day_or_month() {
        let rules = Rules::default();
        let day = parse_bill_date("2019-09-16");
        let ready = day.as_ref().and_then(|d| ready_at(d, &rules));
        assert_eq!(beijing_text(ready), Some("2019-09-17 09:00:00".to_owned()));
        let month = parse_bill_date("2019-12");
        let ready = month.as_ref().and_then(|m| ready_at(m, &rules));
        assert_eq!(beijing_text(ready), Some("2020-01-03 09:00:00".to_owned()));
        let at_once = Rules {
            bill_ready_hour: 0,
            month_bill_ready_day: 1,
            ..Rules::default()
        };
        let ready = day.as_ref().and_then(|d| ready_at(d, &at_once));
        assert_eq!(beijing_text(ready), Some("2019-09-17 00:00:00".to_owned()));
        let ready = month.as_ref().and_then(|m| ready_at(m, &at_once));
        assert_eq!(beijing_text(ready), Some("2020-01-01 00:00:00".to_owned()));
    }

    #[test]
    fn an_empty_period_has_a_zip_only_under_the_empty_file_rule() -> std::io::Result<()> {
        let period = parse_bill_date("2019-09-16").ok_or(std::io::ErrorKind::InvalidInput)?;
        let at = DateTime::from_timestamp(1_568_700_000, 0).unwrap_or_default();
        let seller = "2088000000000001";
        assert_eq!(
            build_zip(&[], seller, &period, at, EmptyBill::NotExist)?,
            None
        );
        let zip = build_zip(&[], seller, &period, at, EmptyBill::EmptyFile)?
            .ok_or(std::io::ErrorKind::NotFound)?;
        assert!(zip.empty);
        let bill = alipay::bill::parse_zip(&zip.bytes).map_err(std::io::Error::other)?;
        assert!(bill.records.is_empty());
        bill.check_totals().map_err(std::io::Error::other)?;
        Ok(())
    }
}
