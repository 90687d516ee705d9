//! Large synthetic bills for reconciliation benchmarks (`alipay-sandbox synth-bill`).
//!
//! Writes, for one Beijing day, a bill ZIP in Alipay's format with exactly `rows` detail rows
//! (payments, and about `refund_percent` % refunds of earlier payments of the same day,
//! partial or full) plus the merchant's side: an orders file, one JSON object per line, with
//! what a reconciler compares against the bill:
//!
//! ```json
//! {"out_trade_no":"synth_20261125_00000001","trade_no":"2026112522001…","amount_fen":1234,
//!  "subject":"咖啡","store_id":"S003","created_at":"2026-11-25T00:00:40+08:00",
//!  "paid_at":"2026-11-25T00:01:12+08:00","status":"TRADE_SUCCESS","refunded_fen":200,
//!  "refunds":[{"out_request_no":"synth_20261125_00000001_r1","amount_fen":200,
//!              "refunded_at":"2026-11-25T03:10:00+08:00"}]}
//! ```
//!
//! `status` is `TRADE_CLOSED` once fully refunded. Output is deterministic for a given seed.
//! Memory stays bounded: rows are streamed into the ZIP, and an order is written to the orders
//! file as soon as it leaves the window of recent orders that refunds are drawn from.

use super::format::{self, BillWriter, Kind, Period, Row};
use alipay::Fen;
use alipay::time::beijing;
use chrono::{DateTime, NaiveDate, SecondsFormat, TimeDelta, Utc};
use serde::Serialize;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Refunds are drawn from this many most recent orders.
const WINDOW: usize = 4096;

const SUBJECTS: [&str; 6] = [
    "咖啡",
    "面包",
    "午市套餐A",
    "下单测试",
    "牛奶,大杯",
    "水果拼盘",
];
const BUYERS: [&str; 5] = [
    "*津水(602***@qq.com)",
    "*明(138****1234)",
    "*丽华(lih***@163.com)",
    "*小红(186****0021)",
    "*伟(wei***@alipay.com)",
];

#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// The Beijing day of the bill.
    pub date: NaiveDate,
    /// Detail rows in all (payments plus refunds).
    pub rows: u64,
    pub out_dir: PathBuf,
    pub seed: u64,
    /// The merchant PID (`2088` + 12 digits).
    pub seller_id: String,
    /// Percentage of rows that are refunds (0-100).
    pub refund_percent: u64,
    /// Deflate level, 1-9.
    pub level: i64,
}

impl SynthOptions {
    pub fn new(date: NaiveDate, rows: u64, out_dir: impl Into<PathBuf>) -> SynthOptions {
        SynthOptions {
            date,
            rows,
            out_dir: out_dir.into(),
            seed: 1,
            seller_id: "2088000000000001".to_owned(),
            refund_percent: 5,
            level: 6,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SynthReport {
    pub rows: u64,
    pub payments: u64,
    pub refunds: u64,
    pub zip_path: PathBuf,
    pub zip_bytes: u64,
    pub orders_path: PathBuf,
    pub elapsed: Duration,
}

impl SynthReport {
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// SplitMix64: small, fast, and the same sequence everywhere for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// An order still in the refund window.
struct Order {
    out_trade_no: String,
    trade_no: String,
    amount: i64,
    subject: &'static str,
    store_id: Option<String>,
    operator_id: String,
    terminal_id: String,
    buyer: &'static str,
    remark: Option<String>,
    created_at: DateTime<Utc>,
    paid_at: DateTime<Utc>,
    refunds: Vec<(String, i64, DateTime<Utc>)>,
}

impl Order {
    fn refunded(&self) -> i64 {
        self.refunds.iter().map(|r| r.1).sum()
    }

    fn row(&self) -> Row<'_> {
        Row {
            trade_no: &self.trade_no,
            out_trade_no: &self.out_trade_no,
            kind: Kind::Payment,
            subject: self.subject,
            created_at: self.created_at,
            finished_at: self.paid_at,
            store_id: self.store_id.as_deref(),
            store_name: None,
            operator_id: Some(&self.operator_id),
            terminal_id: Some(&self.terminal_id),
            buyer_account: self.buyer,
            amount: Fen::new(self.amount),
            receipt: Fen::new(self.amount),
            refund_request_no: None,
            remark: self.remark.as_deref(),
        }
    }
}

/// One line of the orders file.
#[derive(Debug, Serialize)]
struct OrderLine<'a> {
    out_trade_no: &'a str,
    trade_no: &'a str,
    amount_fen: i64,
    subject: &'a str,
    store_id: Option<&'a str>,
    created_at: String,
    paid_at: String,
    status: &'static str,
    refunded_fen: i64,
    refunds: Vec<RefundLine<'a>>,
}

#[derive(Debug, Serialize)]
struct RefundLine<'a> {
    out_request_no: &'a str,
    amount_fen: i64,
    refunded_at: String,
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.with_timezone(&beijing())
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn write_order(out: &mut impl Write, order: &Order) -> io::Result<()> {
    let refunded = order.refunded();
    let line = OrderLine {
        out_trade_no: &order.out_trade_no,
        trade_no: &order.trade_no,
        amount_fen: order.amount,
        subject: order.subject,
        store_id: order.store_id.as_deref(),
        created_at: rfc3339(order.created_at),
        paid_at: rfc3339(order.paid_at),
        status: if refunded >= order.amount {
            "TRADE_CLOSED"
        } else {
            "TRADE_SUCCESS"
        },
        refunded_fen: refunded,
        refunds: order
            .refunds
            .iter()
            .map(|(no, amount, at)| RefundLine {
                out_request_no: no,
                amount_fen: *amount,
                refunded_at: rfc3339(*at),
            })
            .collect(),
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// Writes `<PID>0156_<yyyyMMdd>.csv.zip` and `<PID>0156_<yyyyMMdd>.orders.jsonl` into
/// `out_dir`.
pub fn synth_bill(options: &SynthOptions) -> io::Result<SynthReport> {
    let started = Instant::now();
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
    let period = Period::day(options.date).ok_or_else(|| invalid("date out of range"))?;
    let day_start = options
        .date
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc() - TimeDelta::hours(8))
        .ok_or_else(|| invalid("date out of range"))?;
    let exported_at = day_start + TimeDelta::hours(24 + 5);
    std::fs::create_dir_all(&options.out_dir)?;
    let zip_path = options
        .out_dir
        .join(format::zip_name(&options.seller_id, &period));
    let orders_path = orders_path(&options.out_dir, &options.seller_id, options.date);
    let mut bill = BillWriter::new(
        BufWriter::with_capacity(1 << 20, File::create(&zip_path)?),
        &options.seller_id,
        period.clone(),
        exported_at,
        options.level.clamp(1, 9),
        // About 250 bytes a row: beyond ~15 M rows the detail file passes 4 GiB.
        options.rows > 12_000_000,
    )?;
    let mut orders_out = BufWriter::with_capacity(1 << 20, File::create(&orders_path)?);

    let mut rng = Rng(options.seed);
    let mut window: VecDeque<Order> = VecDeque::with_capacity(WINDOW + 1);
    let date = period.label.clone();
    let (mut payments, mut refunds) = (0u64, 0u64);
    let day_ms = 86_400_000u64;
    for i in 0..options.rows {
        // Rows are spread evenly over the day, at whole seconds.
        let offset_ms = i.saturating_mul(day_ms) / options.rows.max(1);
        let at = day_start + TimeDelta::seconds((offset_ms / 1000) as i64);
        let want_refund = rng.below(100) < options.refund_percent;
        let refundable = if want_refund && !window.is_empty() {
            let index = rng.below(window.len() as u64) as usize;
            (window[index].refunded() < window[index].amount).then_some(index)
        } else {
            None
        };
        if let Some(index) = refundable {
            let order = &mut window[index];
            let remaining = order.amount - order.refunded();
            let amount = if rng.below(2) == 0 {
                remaining
            } else {
                1 + rng.below(remaining as u64) as i64
            };
            let out_request_no = format!("{}_r{}", order.out_trade_no, order.refunds.len() + 1);
            bill.row(&Row {
                kind: Kind::Refund,
                finished_at: at,
                amount: Fen::new(-amount),
                receipt: Fen::new(-amount),
                refund_request_no: Some(&out_request_no),
                ..order.row()
            })?;
            order.refunds.push((out_request_no, amount, at));
            refunds += 1;
            continue;
        }
        payments += 1;
        let created_at = (at - TimeDelta::seconds(1 + rng.below(120) as i64)).max(day_start);
        let amount = match rng.below(10) {
            0 => 1 + rng.below(100),         // small change
            1..=7 => 100 + rng.below(9_900), // 1-100 yuan
            _ => 10_000 + rng.below(490_000),
        } as i64;
        let store = rng.below(9);
        let order = Order {
            out_trade_no: format!("synth_{date}_{payments:08}"),
            trade_no: format!("{date}22001{payments:08}{:07}", rng.below(10_000_000)),
            amount,
            subject: SUBJECTS[rng.below(SUBJECTS.len() as u64) as usize],
            store_id: (store > 0).then(|| format!("S{store:03}")),
            operator_id: format!("op{:02}", rng.below(20)),
            terminal_id: format!("T{:04}", rng.below(50)),
            buyer: BUYERS[rng.below(BUYERS.len() as u64) as usize],
            remark: (rng.below(4) == 0).then(|| format!("桌号{}", rng.below(40))),
            created_at,
            paid_at: at,
            refunds: Vec::new(),
        };
        bill.row(&order.row())?;
        window.push_back(order);
        if window.len() > WINDOW
            && let Some(old) = window.pop_front()
        {
            write_order(&mut orders_out, &old)?;
        }
    }
    for order in &window {
        write_order(&mut orders_out, order)?;
    }
    orders_out.flush()?;
    let (zip_file, _) = bill.finish(exported_at)?;
    zip_file
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    Ok(SynthReport {
        rows: options.rows,
        payments,
        refunds,
        zip_bytes: std::fs::metadata(&zip_path)?.len(),
        zip_path,
        orders_path,
        elapsed: started.elapsed(),
    })
}

/// `<out_dir>/<PID>0156_<yyyyMMdd>.orders.jsonl`.
pub fn orders_path(out_dir: &Path, seller_id: &str, date: NaiveDate) -> PathBuf {
    out_dir.join(format!(
        "{seller_id}{}_{}.orders.jsonl",
        format::ACCOUNT_SUFFIX,
        date.format("%Y%m%d")
    ))
}
