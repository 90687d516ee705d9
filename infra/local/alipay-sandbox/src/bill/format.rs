//! Alipay's trade bill file format, written as a stream: a ZIP with the detail file
//! `<PID>0156_<label>_业务明细.csv` and the summary file `<PID>0156_<label>_业务明细(汇总).csv`,
//! both GBK-encoded CSV with CRLF line ends, `#` header and footer lines, and the trailing tab
//! Alipay puts after ID and text cells (so that spreadsheets keep long numbers as text). Which
//! cells carry the tab follows a public detail file with real sandbox rows (README, "Bills"):
//! every ID and text cell but 商品名称, 券名称 and 备注, and, oddly, the amount
//! 商家红包消费金额. A bill without rows keeps the whole layout: `#` lines, column header, end
//! marker, zero totals, and a summary with only its zero `合计` row.
//!
//! Entry names are GBK bytes **without** the ZIP UTF-8 flag (general purpose bit 11), like
//! Alipay's: the `zip` crate writes raw name bytes given through `FileOptions::name`, and sets
//! the flag only for names that are valid non-ASCII UTF-8, which GBK names are not (checked by
//! the sandbox tests on the raw archive bytes). No hand-written ZIP writer is needed.
//!
//! Rows are formatted into a small text buffer that is GBK-encoded (see [`encode_gbk`]) and
//! handed to the deflater every 64 KiB, so a bill of any size is written in bounded memory. Characters GBK cannot
//! encode (emoji, for instance) become HTML numeric character references (`&#128512;`),
//! which is what encoding_rs's encoder substitutes.

use alipay::Fen;
use alipay::time::beijing;
use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{self, Seek, Write};
use zip::ZipWriter;
use zip::write::SimpleFileOptions;

/// The detail file's column header (25 columns, full-width parentheses).
pub const DETAIL_HEADER: &str = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注";

/// The summary file's column header.
pub const SUMMARY_HEADER: &str = "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）";

const DETAIL_START: &str = "#-----------------------------------------业务明细列表----------------------------------------";
const DETAIL_END: &str = "#-----------------------------------------业务明细列表结束------------------------------------";
const SUMMARY_START: &str = "#-----------------------------------------业务汇总列表----------------------------------------";
/// Not the detail end marker with another word: Alipay writes one dash less before the text
/// and one more after it (41 + 36 in the detail file, 40 + 37 here).
const SUMMARY_END: &str = "#----------------------------------------业务汇总列表结束-------------------------------------";

/// Alipay's suffix of the merchant account in bill names: the PID plus `0156` (CNY).
pub const ACCOUNT_SUFFIX: &str = "0156";

/// Rows are encoded and compressed in chunks of about this size.
const CHUNK: usize = 64 * 1024;

/// The days a bill covers, `[first_day, end_day)` in Beijing time, and its label in file
/// names (`yyyyMMdd` for a day, `yyyyMM` for a month).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub first_day: NaiveDate,
    pub end_day: NaiveDate,
    pub label: String,
    /// A month's bill (`bill_date=yyyy-MM`) rather than a day's.
    pub monthly: bool,
}

impl Period {
    pub fn day(day: NaiveDate) -> Option<Period> {
        Some(Period {
            first_day: day,
            end_day: day.succ_opt()?,
            label: day.format("%Y%m%d").to_string(),
            monthly: false,
        })
    }

    pub fn month(year: i32, month: u32) -> Option<Period> {
        let first_day = NaiveDate::from_ymd_opt(year, month, 1)?;
        let end_day = if month == 12 {
            NaiveDate::from_ymd_opt(year.checked_add(1)?, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)?
        };
        Some(Period {
            first_day,
            end_day,
            label: first_day.format("%Y%m").to_string(),
            monthly: true,
        })
    }

    /// Whether `at` falls in the period (by its Beijing calendar day).
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let day = at.with_timezone(&beijing()).date_naive();
        self.first_day <= day && day < self.end_day
    }
}

/// `<PID>0156_<label>.csv.zip`: the download name of the ZIP.
pub fn zip_name(seller_id: &str, period: &Period) -> String {
    format!("{seller_id}{ACCOUNT_SUFFIX}_{}.csv.zip", period.label)
}

/// `<PID>0156_<label>_业务明细.csv`.
pub fn detail_name(seller_id: &str, period: &Period) -> String {
    format!("{seller_id}{ACCOUNT_SUFFIX}_{}_业务明细.csv", period.label)
}

/// `<PID>0156_<label>_业务明细(汇总).csv`.
pub fn summary_name(seller_id: &str, period: &Period) -> String {
    format!(
        "{seller_id}{ACCOUNT_SUFFIX}_{}_业务明细(汇总).csv",
        period.label
    )
}

/// `业务类型` of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Payment,
    Refund,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Payment => "交易",
            Kind::Refund => "退款",
        }
    }
}

/// One detail row. Amounts are as they appear in the bill: negative on refund rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row<'a> {
    pub trade_no: &'a str,
    pub out_trade_no: &'a str,
    pub kind: Kind,
    pub subject: &'a str,
    /// The trade's creation, also on refund rows.
    pub created_at: DateTime<Utc>,
    /// Payment time (payment rows) or refund time (refund rows).
    pub finished_at: DateTime<Utc>,
    pub store_id: Option<&'a str>,
    pub store_name: Option<&'a str>,
    pub operator_id: Option<&'a str>,
    pub terminal_id: Option<&'a str>,
    /// `对方账户`, masked (`*津水(602***@qq.com)`).
    pub buyer_account: &'a str,
    pub amount: Fen,
    pub receipt: Fen,
    pub refund_request_no: Option<&'a str>,
    /// `备注`: the request's `body`.
    pub remark: Option<&'a str>,
}

/// Per-store sums for the summary file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreTotals {
    pub payments: u64,
    pub refunds: u64,
    pub amount: i64,
    pub receipt: i64,
}

impl StoreTotals {
    fn add(&mut self, other: &StoreTotals) {
        self.payments += other.payments;
        self.refunds += other.refunds;
        self.amount = self.amount.saturating_add(other.amount);
        self.receipt = self.receipt.saturating_add(other.receipt);
    }
}

/// What was written: for the footer, the summary and the caller's report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    pub payments: u64,
    pub payment_receipt: i64,
    pub refunds: u64,
    pub refund_receipt: i64,
    /// Keyed by `(store_id, store_name)`.
    pub stores: BTreeMap<(String, String), StoreTotals>,
}

/// Writes one bill ZIP: create, feed rows in order, finish.
pub struct BillWriter<W: Write + Seek> {
    zip: ZipWriter<W>,
    options: SimpleFileOptions,
    seller_id: String,
    period: Period,
    text: String,
    /// The GBK bytes of the non-ASCII runs seen so far (see [`encode_gbk`]).
    gbk_runs: HashMap<String, Vec<u8>>,
    gbk: Vec<u8>,
    written: Written,
}

impl<W: Write + Seek> BillWriter<W> {
    /// Starts the archive and the detail file (header lines and column header). `level` is the
    /// deflate level (1 fast … 9 small; 6 is zlib's default). `large` allows entries over
    /// 4 GiB (ZIP64).
    pub fn new(
        out: W,
        seller_id: &str,
        period: Period,
        exported_at: DateTime<Utc>,
        level: i64,
        large: bool,
    ) -> io::Result<Self> {
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(level))
            .last_modified_time(zip_time(exported_at))
            .large_file(large);
        let mut writer = BillWriter {
            zip: ZipWriter::new(out),
            options,
            seller_id: seller_id.to_owned(),
            period,
            text: String::with_capacity(CHUNK + 4096),
            gbk_runs: HashMap::new(),
            gbk: Vec::with_capacity(CHUNK + 4096),
            written: Written::default(),
        };
        writer.start_entry(&detail_name(seller_id, &writer.period))?;
        writer.header_lines("#支付宝业务明细查询", DETAIL_START);
        writer.line(DETAIL_HEADER);
        Ok(writer)
    }

    fn start_entry(&mut self, name: &str) -> io::Result<()> {
        let raw = encoding_rs::GBK.encode(name).0;
        self.zip
            .start_file_with_options(self.options.name(&raw))
            .map_err(io::Error::other)
    }

    fn header_lines(&mut self, title: &str, start: &str) {
        let account = format!("#账号：[{}{ACCOUNT_SUFFIX}]", self.seller_id);
        let range = format!(
            "#起始日期：[{} 00:00:00]   终止日期：[{} 00:00:00]",
            self.period.first_day.format("%Y年%m月%d日"),
            self.period.end_day.format("%Y年%m月%d日"),
        );
        for line in [title, &account, &range, start] {
            self.line(line);
        }
    }

    fn line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push_str("\r\n");
    }

    /// GBK-encodes and compresses the buffered text.
    fn flush_text(&mut self) -> io::Result<()> {
        self.gbk.clear();
        encode_gbk(&self.text, &mut self.gbk, &mut self.gbk_runs);
        self.zip.write_all(&self.gbk)?;
        self.text.clear();
        Ok(())
    }

    /// Appends one detail row.
    pub fn row(&mut self, row: &Row<'_>) -> io::Result<()> {
        let text = &mut self.text;
        id_cell(text, row.trade_no);
        id_cell(text, row.out_trade_no);
        id_cell(text, row.kind.as_str());
        plain_cell(text, row.subject);
        push_time(text, row.created_at);
        text.push(',');
        push_time(text, row.finished_at);
        text.push(',');
        id_cell(text, row.store_id.unwrap_or(""));
        id_cell(text, row.store_name.unwrap_or(""));
        id_cell(text, row.operator_id.unwrap_or(""));
        id_cell(text, row.terminal_id.unwrap_or(""));
        id_cell(text, row.buyer_account);
        push_yuan(text, row.amount);
        text.push(',');
        push_yuan(text, row.receipt);
        // 支付宝红包, 集分宝, 支付宝优惠, 商家优惠, 券核销金额, 券名称 (empty, no tab),
        // 商家红包消费金额 (with a tab, as in Alipay's files), 卡消费金额: the sandbox has no
        // discounts, vouchers or cards.
        text.push_str(",0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,");
        id_cell(text, row.refund_request_no.unwrap_or(""));
        // 服务费, 分润: no fees in the sandbox.
        text.push_str("0.00,0.00,");
        // 备注 is the last cell and has no tab.
        push_cell(text, row.remark.unwrap_or(""), false);
        text.push_str("\r\n");

        let store = StoreTotals {
            payments: u64::from(row.kind == Kind::Payment),
            refunds: u64::from(row.kind == Kind::Refund),
            amount: row.amount.get(),
            receipt: row.receipt.get(),
        };
        let key = (
            row.store_id.unwrap_or("").to_owned(),
            row.store_name.unwrap_or("").to_owned(),
        );
        self.written.stores.entry(key).or_default().add(&store);
        match row.kind {
            Kind::Payment => {
                self.written.payments += 1;
                self.written.payment_receipt += row.receipt.get();
            }
            Kind::Refund => {
                self.written.refunds += 1;
                self.written.refund_receipt += row.receipt.get();
            }
        }
        if self.text.len() >= CHUNK {
            self.flush_text()?;
        }
        Ok(())
    }

    /// Writes the detail footer and the summary file and closes the archive.
    pub fn finish(mut self, exported_at: DateTime<Utc>) -> io::Result<(W, Written)> {
        let exported = exported_at
            .with_timezone(&beijing())
            .format("#导出时间：[%Y年%m月%d日 %H:%M:%S]")
            .to_string();
        let written = std::mem::take(&mut self.written);
        self.line(DETAIL_END);
        self.line(&format!(
            "#交易合计：{}笔，商家实收共{}元，商家优惠共0.00元",
            written.payments,
            Fen::new(written.payment_receipt).to_yuan()
        ));
        self.line(&format!(
            "#退款合计：{}笔，商家实收退款共{}元，商家优惠退款共0.00元",
            written.refunds,
            Fen::new(written.refund_receipt).to_yuan()
        ));
        self.line(&exported);
        self.flush_text()?;

        self.start_entry(&summary_name(&self.seller_id, &self.period))?;
        self.header_lines("#支付宝业务汇总查询", SUMMARY_START);
        self.line(SUMMARY_HEADER);
        let mut total = StoreTotals::default();
        for ((store_id, store_name), store) in &written.stores {
            total.add(store);
            let mut line = String::new();
            id_cell(&mut line, store_id);
            id_cell(&mut line, store_name);
            summary_numbers(&mut line, store);
            self.line(&line);
        }
        let mut line = String::from("合计,,");
        summary_numbers(&mut line, &total);
        self.line(&line);
        self.line(SUMMARY_END);
        self.line(&exported);
        self.flush_text()?;
        let out = self.zip.finish().map_err(io::Error::other)?;
        Ok((out, written))
    }
}

/// Remembered GBK runs are forgotten past this many (subjects may all differ).
const MAX_GBK_RUNS: usize = 100_000;

/// GBK-encodes `text` into `out`. encoding_rs encodes GBK character by character with a table
/// search (its encoders favour size over speed), which made encoding the slowest part of a
/// large bill; bill text is ASCII with short runs of Chinese from a small vocabulary (业务类型,
/// subjects, buyer names, remarks), so ASCII is copied as is and each non-ASCII run is encoded
/// once and remembered. The bytes are exactly `GBK.encode(text)`'s (a run is a whole sequence
/// of non-ASCII characters, and GBK is stateless).
pub fn encode_gbk(text: &str, out: &mut Vec<u8>, runs: &mut HashMap<String, Vec<u8>>) {
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let ascii_end = at + encoding_rs::Encoding::ascii_valid_up_to(&bytes[at..]);
        out.extend_from_slice(&bytes[at..ascii_end]);
        if ascii_end == bytes.len() {
            break;
        }
        let run_end = bytes[ascii_end..]
            .iter()
            .position(u8::is_ascii)
            .map_or(bytes.len(), |p| ascii_end + p);
        // Both ends are character boundaries: after an ASCII byte (or the start), before one
        // (or the end).
        let run = &text[ascii_end..run_end];
        match runs.get(run) {
            Some(encoded) => out.extend_from_slice(encoded),
            None => {
                let encoded = encoding_rs::GBK.encode(run).0.into_owned();
                out.extend_from_slice(&encoded);
                if runs.len() >= MAX_GBK_RUNS {
                    runs.clear();
                }
                runs.insert(run.to_owned(), encoded);
            }
        }
        at = run_end;
    }
}

/// `交易订单总笔数,退款订单总笔数,订单金额,商家实收,支付宝优惠,商家优惠,卡消费金额,服务费,分润,实收净额`.
fn summary_numbers(line: &mut String, store: &StoreTotals) {
    let _ = write!(line, "{},{},", store.payments, store.refunds);
    push_yuan(line, Fen::new(store.amount));
    line.push(',');
    push_yuan(line, Fen::new(store.receipt));
    line.push_str(",0.00,0.00,0.00,0.00,0.00,");
    // 实收净额 = 商家实收 - 服务费 (no fees in the sandbox).
    push_yuan(line, Fen::new(store.receipt));
}

/// An ID or text cell: the value, a tab, a comma.
fn id_cell(text: &mut String, value: &str) {
    push_cell(text, value, true);
    text.push(',');
}

/// A cell without the tab (商品名称), then a comma.
fn plain_cell(text: &mut String, value: &str) {
    push_cell(text, value, false);
    text.push(',');
}

/// A CSV cell, quoted when it holds a comma, a quote or a line break (the tab goes inside
/// the quotes, so the cell stays one field).
fn push_cell(text: &mut String, value: &str, tab: bool) {
    if value.contains([',', '"', '\r', '\n']) {
        text.push('"');
        text.push_str(&value.replace('"', "\"\""));
        if tab {
            text.push('\t');
        }
        text.push('"');
    } else {
        text.push_str(value);
        if tab {
            text.push('\t');
        }
    }
}

/// `yyyy-MM-dd HH:mm:ss`, Beijing time.
fn push_time(text: &mut String, at: DateTime<Utc>) {
    let local = at.with_timezone(&beijing());
    push_padded(text, u64::try_from(local.year()).unwrap_or(0), 4);
    text.push('-');
    push_padded(text, local.month().into(), 2);
    text.push('-');
    push_padded(text, local.day().into(), 2);
    text.push(' ');
    push_padded(text, local.hour().into(), 2);
    text.push(':');
    push_padded(text, local.minute().into(), 2);
    text.push(':');
    push_padded(text, local.second().into(), 2);
}

/// `n` in decimal, zero-padded to at least `width` digits (without `fmt`: two of these per
/// row and six numbers each).
fn push_padded(text: &mut String, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    while n > 0 || start == digits.len() {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    start = start.min(digits.len().saturating_sub(width));
    for &digit in &digits[start..] {
        text.push(char::from(digit));
    }
}

/// `0.01`, `-12.30`.
fn push_yuan(text: &mut String, amount: Fen) {
    let fen = amount.get();
    if fen < 0 {
        text.push('-');
    }
    let abs = fen.unsigned_abs();
    push_padded(text, abs / 100, 1);
    text.push('.');
    push_padded(text, abs % 100, 2);
}

/// The entries' modification time: the export time, Beijing time (ZIP times have no zone).
fn zip_time(at: DateTime<Utc>) -> zip::DateTime {
    let local = at.with_timezone(&beijing());
    zip::DateTime::from_date_and_time(
        u16::try_from(local.year()).unwrap_or(1980),
        local.month() as u8,
        local.day() as u8,
        local.hour() as u8,
        local.minute() as u8,
        local.second() as u8,
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_only_when_needed() {
        let mut text = String::new();
        push_cell(&mut text, "a,b", true);
        push_cell(&mut text, "say \"hi\"", false);
        push_cell(&mut text, "plain", true);
        assert_eq!(text, "\"a,b\t\"\"say \"\"hi\"\"\"plain\t");
        let mut amounts = String::new();
        for fen in [1, -1, 0, 123_456, -1_230] {
            push_yuan(&mut amounts, Fen::new(fen));
            amounts.push(' ');
        }
        assert_eq!(amounts, "0.01 -0.01 0.00 1234.56 -12.30 ");
        let mut time = String::new();
        push_time(
            &mut time,
            DateTime::from_timestamp(1_568_602_516, 0).unwrap_or_default(),
        );
        assert_eq!(time, "2019-09-16 10:55:16");
    }

    #[test]
    fn run_encoding_equals_whole_text_encoding() {
        let text = "2019\t,交易\t,牛奶,大杯,*津水(602***@qq.com)\t,😀,备注\r\n交易（元）".repeat(3);
        let mut runs = HashMap::new();
        let mut out = Vec::new();
        encode_gbk(&text, &mut out, &mut runs);
        assert_eq!(out, encoding_rs::GBK.encode(&text).0.into_owned());
        assert!(runs.contains_key("交易"));
    }

    #[test]
    fn periods() {
        let day = NaiveDate::from_ymd_opt(2019, 12, 31).and_then(Period::day);
        assert_eq!(day.as_ref().map(|p| p.label.as_str()), Some("20191231"));
        let month = Period::month(2019, 12);
        assert_eq!(
            month.map(|p| (p.label, p.end_day.to_string())),
            Some(("201912".to_owned(), "2020-01-01".to_owned()))
        );
    }
}
