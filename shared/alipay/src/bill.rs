//! Reading Alipay's trade bill (`bill_type=trade`), the file behind
//! [`crate::client::AlipayClient::download_bill`].
//!
//! A bill is a ZIP with two GBK-encoded CSV files, `<PID>0156_<yyyyMMdd>_业务明细.csv` (one row
//! per payment or refund) and `<PID>0156_<yyyyMMdd>_业务明细(汇总).csv` (per-store totals).
//! Entry names are GBK bytes without the ZIP UTF-8 flag. The detail file looks like:
//!
//! ```text
//! #支付宝业务明细查询
//! #账号：[20880000000000000156]
//! #起始日期：[2019年09月16日 00:00:00]   终止日期：[2019年09月17日 00:00:00]
//! #-----------------------------------------业务明细列表----------------------------------------
//! 支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,…,退款批次号/请求号,服务费（元）,分润（元）,备注
//! 2019091622001458860515315453\t,service_1568601259302\t,交易\t,下单测试,2019-09-16 10:55:16,…
//! #-----------------------------------------业务明细列表结束------------------------------------
//! #交易合计：6笔，商家实收共0.06元，商家优惠共0.00元
//! #退款合计：4笔，商家实收退款共-0.04元，商家优惠退款共0.00元
//! #导出时间：[2019年09月17日 05:46:49]
//! ```
//!
//! The reader is streaming (a ZIP entry is inflated and read chunk by chunk, split into CSV
//! cells on its GBK bytes, and only the cells kept are decoded: memory does not grow with the
//! bill, see [`csv_reader`]) and header-driven: the header row is found by its content (`支付宝交易号`),
//! columns are mapped by name (so reordered or added columns and the older `退款批次号` header
//! are fine), every cell is trimmed of the trailing tabs Alipay writes, and reading stops
//! being about rows at `业务明细列表结束`. A malformed row is an error naming its line; reading
//! goes on with the next row, so the caller decides whether one bad row fails the day. The
//! footer totals are parsed and compared with what was read ([`DetailReader::check_totals`]),
//! so a reconciler can prove it saw every row; [`DetailReader::check_bill`] adds the summary's
//! `合计` row, for one answer on whether the bill is complete and consistent.
//!
//! Whatever the input, reading costs time linear in it and memory independent of it: columns
//! are mapped once per file; a row (quoted content included) is at most [`MAX_ROW_BYTES`] long
//! and has at most [`MAX_COLUMNS`] cells; at most [`MAX_COMMENT_LINES`] `#` lines of at most
//! [`MAX_COMMENT_LINE_BYTES`] are kept before a header row and after it; the summary has at
//! most [`MAX_SUMMARY_ROWS`] rows, the archive at most [`MAX_ENTRIES`] entries; and an entry may
//! inflate to at most [`BillLimits`] (by default [`MAX_DETAIL_BYTES`] and
//! [`MAX_SUMMARY_BYTES`]). Past a cap the bill is malformed (a `BillError` saying so, with
//! the line where there is one), and reading ends.

use crate::money::Fen;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use encoding_rs::GBK;
use std::borrow::Cow;
use std::io::{self, Read, Seek};

/// Part of the detail file's name (and of its first line, `#支付宝业务明细查询`).
pub const DETAIL_MARKER: &str = "业务明细";
/// Part of the summary file's name (`…_业务明细(汇总).csv`).
pub const SUMMARY_MARKER: &str = "汇总";
/// The first cell of the detail header row.
pub const TRADE_NO_HEADER: &str = "支付宝交易号";
/// The footer line that closes the detail rows.
pub const DETAIL_END_MARKER: &str = "业务明细列表结束";

/// The most a detail entry may inflate to, by default ([`BillLimits::max_detail_bytes`]):
/// a day of a million rows is 300–400 MB of CSV.
pub const MAX_DETAIL_BYTES: u64 = 2 << 30;
/// The most a summary entry may inflate to, by default ([`BillLimits::max_summary_bytes`]):
/// it has a row per store.
pub const MAX_SUMMARY_BYTES: u64 = 16 << 20;
/// The longest row (or `#` line) in bytes, quoted content and line break included. Alipay's
/// detail rows are about 300 bytes; a longer row is most likely an unclosed quote.
pub const MAX_ROW_BYTES: u64 = 64 * 1024;
/// The most cells a row may have: Alipay writes 25 in the detail file and 12 in the summary.
pub const MAX_COLUMNS: usize = 256;
/// The most `#` lines kept before a file's header row, and again after it (Alipay writes 4
/// and 4 in the detail file).
pub const MAX_COMMENT_LINES: usize = 64;
/// The longest `#` line in bytes (Alipay's are about 100).
pub const MAX_COMMENT_LINE_BYTES: u64 = 4 * 1024;
/// The most store rows a summary file may have.
pub const MAX_SUMMARY_ROWS: usize = 100_000;
/// The most entries a bill archive may have (Alipay's have two).
pub const MAX_ENTRIES: usize = 64;

/// How much of an unnamed entry is read to tell the detail file from the summary.
const SNIFF_BYTES: u64 = 8 * 1024;
const BUFFER_BYTES: usize = 64 * 1024;

/// How large the entries of a bill archive may inflate to: past that, the bill is refused as
/// malformed (a ZIP bomb) instead of being read for ever. The other caps (row length, cells,
/// `#` lines) are fixed: Alipay's files are far from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillLimits {
    /// The detail file (`…业务明细.csv`), in bytes.
    pub max_detail_bytes: u64,
    /// The summary file (`…业务明细(汇总).csv`), in bytes.
    pub max_summary_bytes: u64,
}

impl Default for BillLimits {
    fn default() -> Self {
        BillLimits {
            max_detail_bytes: MAX_DETAIL_BYTES,
            max_summary_bytes: MAX_SUMMARY_BYTES,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillError {
    #[error("the bill is not a readable ZIP archive: {0}")]
    Zip(String),
    #[error("the bill archive has no detail file (业务明细); entries: {0:?}")]
    NoDetail(Vec<String>),
    #[error("reading the bill failed: {0}")]
    Read(String),
    #[error("the detail file has no header row (支付宝交易号,…)")]
    NoHeader,
    #[error("line {line}: the header row has no column {column}")]
    MissingColumn { line: u64, column: &'static str },
    #[error("line {line}: {reason}")]
    Row { line: u64, reason: String },
    #[error("the detail file ends before its end marker (业务明细列表结束)")]
    Truncated,
    #[error("the footer has no {0} line")]
    NoFooterTotals(&'static str),
    #[error("the footer says {what} {stated}, the rows add up to {counted}")]
    TotalsMismatch {
        what: &'static str,
        stated: String,
        counted: String,
    },
    #[error("malformed bill: line {line}: a row longer than {max} bytes (an unclosed quote?)")]
    RowTooLong { line: u64, max: u64 },
    #[error("malformed bill: line {line}: {columns} cells, more than {max}")]
    TooManyColumns {
        line: u64,
        columns: usize,
        max: usize,
    },
    #[error("malformed bill: line {line}: more than {max} `#` lines {place}")]
    TooManyCommentLines {
        line: u64,
        max: usize,
        place: &'static str,
    },
    #[error("malformed bill: line {line}: a `#` line longer than {max} bytes")]
    CommentLineTooLong { line: u64, max: u64 },
    #[error("malformed bill: line {line}: the summary has more than {max} rows")]
    TooManySummaryRows { line: u64, max: usize },
    #[error("malformed bill: {entry} inflates to more than {max} bytes")]
    EntryTooLarge { entry: String, max: u64 },
    #[error("malformed bill: the archive has {entries} entries, more than {max}")]
    TooManyEntries { entries: usize, max: usize },
    #[error("the bill has no summary file (汇总) to check the detail file against")]
    NoSummary,
    #[error("the summary file has no 合计 row")]
    NoSummaryTotal,
    #[error("the summary's 合计 row says {what} {stated}, the detail rows add up to {counted}")]
    SummaryMismatch {
        what: &'static str,
        stated: String,
        counted: String,
    },
}

impl From<zip::result::ZipError> for BillError {
    fn from(e: zip::result::ZipError) -> Self {
        BillError::Zip(e.to_string())
    }
}

impl From<io::Error> for BillError {
    fn from(e: io::Error) -> Self {
        BillError::Read(e.to_string())
    }
}

/// `业务类型`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// `交易`: a payment, on the day it was paid.
    Payment,
    /// `退款`: a refund, on the day it was made; its amounts are negative.
    Refund,
    /// Anything else, as written.
    Other(String),
}

impl RecordKind {
    pub fn parse(text: &str) -> RecordKind {
        match text {
            "交易" => RecordKind::Payment,
            "退款" => RecordKind::Refund,
            other => RecordKind::Other(other.to_owned()),
        }
    }
}

/// One row of the detail file. Text cells are trimmed; empty optional cells are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRecord {
    /// The 1-based line of the row in the detail file.
    pub line: u64,
    /// `支付宝交易号`.
    pub trade_no: String,
    /// `商户订单号`.
    pub out_trade_no: String,
    /// `业务类型`.
    pub kind: RecordKind,
    /// `商品名称`.
    pub subject: String,
    /// `创建时间` (Beijing time in the file): when the trade was created, also on refund rows.
    pub created_at: DateTime<Utc>,
    /// `完成时间`: when it was paid (payment rows) or refunded (refund rows).
    pub finished_at: DateTime<Utc>,
    /// `门店编号`.
    pub store_id: Option<String>,
    /// `门店名称`.
    pub store_name: Option<String>,
    /// `操作员`.
    pub operator_id: Option<String>,
    /// `终端号`.
    pub terminal_id: Option<String>,
    /// `对方账户`: the masked buyer account.
    pub buyer_account: Option<String>,
    /// `订单金额（元）`: negative on refund rows.
    pub amount: Fen,
    /// `商家实收（元）`: what the merchant received (negative on refund rows).
    pub receipt: Fen,
    /// `商家优惠（元）` (zero when the column is absent).
    pub merchant_discount: Fen,
    /// `退款批次号/请求号` (`out_request_no` of the refund).
    pub refund_request_no: Option<String>,
    /// `服务费（元）` (zero when the column is absent).
    pub fee: Fen,
    /// `备注`: the request's `body`.
    pub remark: Option<String>,
}

/// One `#…合计` footer line, or the same sums counted over the rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub count: u64,
    pub receipt: Fen,
    pub merchant_discount: Fen,
}

impl Totals {
    fn add(&mut self, receipt: Fen, merchant_discount: Fen) {
        self.count += 1;
        self.receipt = self.receipt.checked_add(receipt).unwrap_or(self.receipt);
        self.merchant_discount = self
            .merchant_discount
            .checked_add(merchant_discount)
            .unwrap_or(self.merchant_discount);
    }
}

/// The `#` lines after the header row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Footer {
    /// `#交易合计：6笔，商家实收共0.06元，商家优惠共0.00元`.
    pub payments: Option<Totals>,
    /// `#退款合计：4笔，商家实收退款共-0.04元，商家优惠退款共0.00元`.
    pub refunds: Option<Totals>,
    /// `2019年09月17日 05:46:49` from `#导出时间：[…]`.
    pub exported_at: Option<String>,
    /// Whether `#…业务明细列表结束…` was seen.
    pub ended: bool,
    /// Every footer line as written, without line breaks.
    pub lines: Vec<String>,
}

/// What the successfully parsed rows add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    pub payments: Totals,
    pub refunds: Totals,
    /// Rows of another `业务类型`.
    pub other: u64,
}

/// Trims what Alipay pads cells with: the trailing tab of ID and text cells, and spaces; and
/// the `\r` of a CRLF line end (rows end at `\n`, see [`csv_reader`]). Works on GBK bytes:
/// these ASCII bytes are never part of a GBK character.
fn trim(cell: &[u8]) -> &[u8] {
    let pad = |b: &u8| matches!(b, b'\t' | b' ' | b'\r');
    let start = cell.iter().position(|b| !pad(b)).unwrap_or(cell.len());
    let end = cell.iter().rposition(|b| !pad(b)).map_or(start, |i| i + 1);
    &cell[start..end]
}

/// A GBK cell as text (borrowed when it is ASCII, as IDs, times and amounts are).
fn text(gbk: &[u8]) -> Cow<'_, str> {
    GBK.decode_without_bom_handling(gbk).0
}

/// A whole row as one line of text, its commas put back (`#` lines).
fn line_text(row: &csv::ByteRecord) -> String {
    let mut bytes = Vec::with_capacity(row.as_slice().len() + row.len());
    for (i, cell) in row.iter().enumerate() {
        if i > 0 {
            bytes.push(b',');
        }
        bytes.extend_from_slice(cell);
    }
    text(trim_line_end(&bytes)).into_owned()
}

fn trim_line_end(bytes: &[u8]) -> &[u8] {
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

/// The CSV reader both files are read with, straight over the **GBK bytes**: no header handling
/// (the header row is found by content), rows of any length, rows ending at `\n`.
///
/// Splitting before decoding is exact: GBK/GB18030 multi-byte characters consist of bytes
/// `0x81..=0xFE` and trail bytes `0x30..=0xFE`, so `,` `"` `\t` `\r` `\n` never occur inside
/// a character. Only the cells that are kept are decoded (encoding_rs, cell by cell; ASCII
/// cells without copying), which is about twice as fast as decoding the whole stream to UTF-8
/// and validating it again in the CSV reader.
///
/// With csv's default CRLF terminator a row would end at `\r` and its `\n` would be counted
/// with the next row, making the line numbers of CRLF files one short; the `\r` left in the
/// last cell is trimmed instead.
fn csv_reader<R: Read>(gbk: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .buffer_capacity(BUFFER_BYTES)
        .from_reader(gbk)
}

/// The input under the CSV reader, enforcing what one row and the whole entry may cost.
///
/// The CSV reader asks for more input only once it has consumed everything it was given, so
/// at each read everything delivered since the current row's start belongs to that row: past
/// [`MAX_ROW_BYTES`] the row is refused before it is buffered any further (an unclosed quote
/// would otherwise swallow the rest of the file into one cell). Rows that end within the last
/// chunk are measured exactly by [`Rows::read`].
struct Guard<R> {
    inner: R,
    /// Names the entry in [`BillError::EntryTooLarge`].
    entry: String,
    max_bytes: u64,
    delivered: u64,
    /// Where the row being read starts (byte offset, line), set before each row.
    row_start: u64,
    row_line: u64,
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.delivered.saturating_sub(self.row_start) > MAX_ROW_BYTES {
            return Err(io::Error::other(BillError::RowTooLong {
                line: self.row_line,
                max: MAX_ROW_BYTES,
            }));
        }
        // One byte past the cap is enough to tell that the entry is too large.
        let room = self
            .max_bytes
            .saturating_sub(self.delivered)
            .saturating_add(1);
        let len = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..len])?;
        self.delivered = self.delivered.saturating_add(read as u64);
        if self.delivered > self.max_bytes {
            return Err(io::Error::other(BillError::EntryTooLarge {
                entry: self.entry.clone(),
                max: self.max_bytes,
            }));
        }
        Ok(read)
    }
}

/// The rows of one file, each at most [`MAX_ROW_BYTES`] long, the file at most `max_bytes`.
struct Rows<R: Read> {
    csv: csv::Reader<Guard<R>>,
}

impl<R: Read> Rows<R> {
    fn new(gbk: R, entry: String, max_bytes: u64) -> Self {
        Rows {
            csv: csv_reader(Guard {
                inner: gbk,
                entry,
                max_bytes,
                delivered: 0,
                row_start: 0,
                row_line: 1,
            }),
        }
    }

    /// Reads the next row into `row`: `Some(length in bytes)`, or `None` at the end.
    fn read(&mut self, row: &mut csv::ByteRecord) -> Result<Option<u64>, BillError> {
        let start = self.csv.position().byte();
        let line = self.csv.position().line();
        let guard = self.csv.get_mut();
        guard.row_start = start;
        guard.row_line = line;
        if !self.csv.read_byte_record(row).map_err(csv_error)? {
            return Ok(None);
        }
        let length = self.csv.position().byte().saturating_sub(start);
        if length > MAX_ROW_BYTES {
            return Err(BillError::RowTooLong {
                line,
                max: MAX_ROW_BYTES,
            });
        }
        Ok(Some(length))
    }
}

/// Where the `#` lines of a file go: before or after its header row.
const BEFORE_HEADER: &str = "before the header row";
const AFTER_HEADER: &str = "after the header row";

/// Keeps a `#` line, within [`MAX_COMMENT_LINE_BYTES`] and [`MAX_COMMENT_LINES`].
fn keep_comment(
    lines: &mut Vec<String>,
    row: &csv::ByteRecord,
    line: u64,
    length: u64,
    place: &'static str,
) -> Result<(), BillError> {
    if length > MAX_COMMENT_LINE_BYTES {
        return Err(BillError::CommentLineTooLong {
            line,
            max: MAX_COMMENT_LINE_BYTES,
        });
    }
    if lines.len() >= MAX_COMMENT_LINES {
        return Err(BillError::TooManyCommentLines {
            line,
            max: MAX_COMMENT_LINES,
            place,
        });
    }
    lines.push(line_text(row));
    Ok(())
}

/// A row with more than [`MAX_COLUMNS`] cells is malformed.
fn check_columns(row: &csv::ByteRecord, line: u64) -> Result<(), BillError> {
    if row.len() > MAX_COLUMNS {
        return Err(BillError::TooManyColumns {
            line,
            columns: row.len(),
            max: MAX_COLUMNS,
        });
    }
    Ok(())
}

/// Header names compared without padding and with ASCII parentheses read as full-width ones.
fn normalize_header(cell: &[u8]) -> String {
    text(trim(cell)).replace('(', "（").replace(')', "）")
}

/// Where each field is in the detail rows (indexes from the header row).
#[derive(Debug, Clone)]
struct Columns {
    trade_no: usize,
    out_trade_no: usize,
    kind: usize,
    subject: Option<usize>,
    created_at: usize,
    finished_at: usize,
    store_id: Option<usize>,
    store_name: Option<usize>,
    operator_id: Option<usize>,
    terminal_id: Option<usize>,
    buyer_account: Option<usize>,
    amount: usize,
    receipt: usize,
    merchant_discount: Option<usize>,
    refund_request_no: Option<usize>,
    fee: Option<usize>,
    remark: Option<usize>,
    /// `交易` and `退款` in GBK, to classify rows without decoding.
    payment: Vec<u8>,
    refund: Vec<u8>,
}

impl Columns {
    fn from_header(record: &csv::ByteRecord, line: u64) -> Result<Columns, BillError> {
        let names: Vec<String> = record.iter().map(normalize_header).collect();
        let find = |candidates: &[&str]| {
            candidates
                .iter()
                .find_map(|name| names.iter().position(|n| n == name))
        };
        let required =
            |column: &'static str| find(&[column]).ok_or(BillError::MissingColumn { line, column });
        Ok(Columns {
            trade_no: required("支付宝交易号")?,
            out_trade_no: required("商户订单号")?,
            kind: required("业务类型")?,
            subject: find(&["商品名称"]),
            created_at: required("创建时间")?,
            finished_at: required("完成时间")?,
            store_id: find(&["门店编号"]),
            store_name: find(&["门店名称"]),
            operator_id: find(&["操作员"]),
            terminal_id: find(&["终端号"]),
            buyer_account: find(&["对方账户"]),
            amount: required("订单金额（元）")?,
            receipt: required("商家实收（元）")?,
            merchant_discount: find(&["商家优惠（元）"]),
            refund_request_no: find(&["退款批次号/请求号", "退款批次号", "退款请求号"]),
            fee: find(&["服务费（元）"]),
            remark: find(&["备注"]),
            payment: GBK.encode("交易").0.into_owned(),
            refund: GBK.encode("退款").0.into_owned(),
        })
    }

    /// The row's cell at `index`, trimmed (a missing cell is empty).
    fn raw(row: &csv::ByteRecord, index: usize) -> &[u8] {
        row.get(index).map_or(&b""[..], trim)
    }

    fn row<'a>(&'a self, row: &'a csv::ByteRecord, line: u64) -> Result<BillRow<'a>, BillError> {
        let raw = |index: usize| Self::raw(row, index);
        let cell = |index: usize| text(raw(index));
        let error = |reason: String| BillError::Row { line, reason };
        let amount = |index: usize, name: &str| {
            Fen::from_yuan(&cell(index)).map_err(|_| {
                error(format!(
                    "{name} is not a yuan amount: {:?}",
                    text(row.get(index).unwrap_or_default())
                ))
            })
        };
        let optional_amount = |index: Option<usize>, name: &str| match index {
            Some(index) if !raw(index).is_empty() => amount(index, name),
            _ => Ok(Fen::ZERO),
        };
        let time = |index: usize, name: &str| {
            parse_beijing_time(&cell(index)).ok_or_else(|| {
                error(format!(
                    "{name} is not a time yyyy-MM-dd HH:mm:ss: {:?}",
                    cell(index)
                ))
            })
        };
        let trade_no = cell(self.trade_no);
        if trade_no.is_empty() {
            return Err(error("支付宝交易号 is empty".to_owned()));
        }
        let kind = match raw(self.kind) {
            kind if kind == self.payment => RecordKind::Payment,
            kind if kind == self.refund => RecordKind::Refund,
            kind => RecordKind::Other(text(kind).into_owned()),
        };
        Ok(BillRow {
            line,
            trade_no,
            out_trade_no: cell(self.out_trade_no),
            kind,
            created_at: time(self.created_at, "创建时间")?,
            finished_at: time(self.finished_at, "完成时间")?,
            amount: amount(self.amount, "订单金额（元）")?,
            receipt: amount(self.receipt, "商家实收（元）")?,
            merchant_discount: optional_amount(self.merchant_discount, "商家优惠（元）")?,
            refund_request_no: self
                .refund_request_no
                .map(raw)
                .filter(|b| !b.is_empty())
                .map(text),
            fee: optional_amount(self.fee, "服务费（元）")?,
            cells: row,
            columns: self,
        })
    }
}

/// One row of the detail file borrowed from the reader ([`DetailReader::next_row`]), for
/// reading a million rows without a million sets of strings: the cells reconciliation reads
/// of every row are parsed and checked (a malformed one is the row's error, as for
/// [`BillRecord`]) and borrowed where they are ASCII; the descriptive text cells are decoded
/// only when asked for. [`BillRow::to_record`] makes the owned record.
#[derive(Debug, Clone)]
pub struct BillRow<'a> {
    /// The 1-based line of the row in the detail file.
    pub line: u64,
    /// `支付宝交易号`.
    pub trade_no: Cow<'a, str>,
    /// `商户订单号`.
    pub out_trade_no: Cow<'a, str>,
    /// `业务类型`.
    pub kind: RecordKind,
    /// `创建时间`.
    pub created_at: DateTime<Utc>,
    /// `完成时间`.
    pub finished_at: DateTime<Utc>,
    /// `订单金额（元）`: negative on refund rows.
    pub amount: Fen,
    /// `商家实收（元）`.
    pub receipt: Fen,
    /// `商家优惠（元）` (zero when the column is absent).
    pub merchant_discount: Fen,
    /// `退款批次号/请求号`.
    pub refund_request_no: Option<Cow<'a, str>>,
    /// `服务费（元）` (zero when the column is absent).
    pub fee: Fen,
    cells: &'a csv::ByteRecord,
    columns: &'a Columns,
}

impl<'a> BillRow<'a> {
    fn optional(&self, index: Option<usize>) -> Option<Cow<'a, str>> {
        index
            .map(|index| Columns::raw(self.cells, index))
            .filter(|bytes| !bytes.is_empty())
            .map(text)
    }

    /// `商品名称` (empty when the column is absent).
    pub fn subject(&self) -> Cow<'a, str> {
        self.optional(self.columns.subject).unwrap_or_default()
    }

    /// `门店编号`.
    pub fn store_id(&self) -> Option<Cow<'a, str>> {
        self.optional(self.columns.store_id)
    }

    /// `门店名称`.
    pub fn store_name(&self) -> Option<Cow<'a, str>> {
        self.optional(self.columns.store_name)
    }

    /// `操作员`.
    pub fn operator_id(&self) -> Option<Cow<'a, str>> {
        self.optional(self.columns.operator_id)
    }

    /// `终端号`.
    pub fn terminal_id(&self) -> Option<Cow<'a, str>> {
        self.optional(self.columns.terminal_id)
    }

    /// `对方账户`.
    pub fn buyer_account(&self) -> Option<Cow<'a, str>> {
        self.optional(self.columns.buyer_account)
    }

    /// `备注`.
    pub fn remark(&self) -> Option<Cow<'a, str>> {
        self.optional(self.columns.remark)
    }

    /// The row as an owned record.
    pub fn to_record(&self) -> BillRecord {
        BillRecord {
            line: self.line,
            trade_no: self.trade_no.clone().into_owned(),
            out_trade_no: self.out_trade_no.clone().into_owned(),
            kind: self.kind.clone(),
            subject: self.subject().into_owned(),
            created_at: self.created_at,
            finished_at: self.finished_at,
            store_id: self.store_id().map(Cow::into_owned),
            store_name: self.store_name().map(Cow::into_owned),
            operator_id: self.operator_id().map(Cow::into_owned),
            terminal_id: self.terminal_id().map(Cow::into_owned),
            buyer_account: self.buyer_account().map(Cow::into_owned),
            amount: self.amount,
            receipt: self.receipt,
            merchant_discount: self.merchant_discount,
            refund_request_no: self.refund_request_no.clone().map(Cow::into_owned),
            fee: self.fee,
            remark: self.remark().map(Cow::into_owned),
        }
    }
}

/// `yyyy-MM-dd HH:mm:ss` in Beijing time (UTC+8) to an instant, without a format parser (a
/// bill has two per row, a million rows a day).
pub fn parse_beijing_time(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        b[range].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(number(0..4)?).ok()?;
    let local = NaiveDate::from_ymd_opt(year, number(5..7)?, number(8..10)?)?.and_hms_opt(
        number(11..13)?,
        number(14..16)?,
        number(17..19)?,
    )?;
    local.and_utc().checked_sub_signed(TimeDelta::hours(8))
}

/// The number in `text` between `after` and the next `until`.
fn between<'a>(text: &'a str, after: &str, until: char) -> Option<&'a str> {
    let start = text.find(after)? + after.len();
    let rest = &text[start..];
    Some(&rest[..rest.find(until)?])
}

/// `#交易合计：6笔，商家实收共0.06元，商家优惠共0.00元` (and the refund line).
fn parse_totals(line: &str, receipt_label: &str, discount_label: &str) -> Option<Totals> {
    let count = between(line, "合计：", '笔')?.trim().parse().ok()?;
    let receipt = Fen::from_yuan(between(line, receipt_label, '元')?.trim()).ok()?;
    let merchant_discount = match between(line, discount_label, '元') {
        Some(text) => Fen::from_yuan(text.trim()).ok()?,
        None => Fen::ZERO,
    };
    Some(Totals {
        count,
        receipt,
        merchant_discount,
    })
}

/// Streams the rows of one detail file (GBK bytes). An iterator of
/// `Result<BillRecord, BillError>`; the header and footer lines are available alongside.
///
/// Reading costs time linear in the input and memory independent of it: a row longer than
/// [`MAX_ROW_BYTES`], a header row of more than [`MAX_COLUMNS`] cells, too many or too long
/// `#` lines, or an input larger than its cap end the reading with an error (a data row of
/// too many cells is an error of that row only).
pub struct DetailReader<R: Read> {
    rows: Rows<R>,
    row: csv::ByteRecord,
    columns: Option<Columns>,
    header_lines: Vec<String>,
    footer: Footer,
    counted: Counted,
    finished: bool,
    /// The error that ended the reading before the end of the file, if one did.
    failed: Option<BillError>,
}

impl<R: Read> DetailReader<R> {
    /// Reads the detail CSV from `gbk` (GBK-encoded bytes; CRLF or LF line ends), at most
    /// [`MAX_DETAIL_BYTES`] of it.
    pub fn new(gbk: R) -> Self {
        Self::with_max_bytes(gbk, MAX_DETAIL_BYTES)
    }

    /// Reads the detail CSV from `gbk`; more than `max_bytes` is [`BillError::EntryTooLarge`].
    pub fn with_max_bytes(gbk: R, max_bytes: u64) -> Self {
        Self::reading(gbk, "the detail file".to_owned(), max_bytes)
    }

    fn reading(gbk: R, entry: String, max_bytes: u64) -> Self {
        DetailReader {
            rows: Rows::new(gbk, entry, max_bytes),
            row: csv::ByteRecord::new(),
            columns: None,
            header_lines: Vec::new(),
            footer: Footer::default(),
            counted: Counted::default(),
            finished: false,
            failed: None,
        }
    }

    /// The `#` lines before the header row (`#支付宝业务明细查询`, `#账号：[…]`, …).
    pub fn header_lines(&self) -> &[String] {
        &self.header_lines
    }

    /// The footer read so far (complete once the iterator is exhausted).
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// Sums over the rows returned so far.
    pub fn counted(&self) -> &Counted {
        &self.counted
    }

    /// After the last row: the file was read to its end, the end marker was there, and the
    /// footer's counts and sums equal the rows read (a row that failed to parse makes this
    /// fail too).
    pub fn check_totals(&self) -> Result<(), BillError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        check_totals(&self.footer, &self.counted)
    }

    /// After the last row, the one check of the whole bill: the detail file was read to its
    /// end, its footer totals equal the rows read (see [`DetailReader::check_totals`]), and
    /// the summary's `合计` row equals them too (see [`check_bill`]). Read the summary first
    /// ([`BillArchive::summary`]), then the rows, then call this:
    ///
    /// ```no_run
    /// # fn reconcile(file: std::fs::File) -> Result<(), alipay::bill::BillError> {
    /// let mut archive = alipay::bill::BillArchive::new(file)?;
    /// let summary = archive.summary()?;
    /// let mut reader = archive.detail()?;
    /// for row in reader.by_ref() {
    ///     let _row = row?; // or note the bad row and go on
    /// }
    /// reader.check_bill(summary.as_ref())?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn check_bill(&self, summary: Option<&Summary>) -> Result<(), BillError> {
        self.check_totals()?;
        check_bill(&self.footer, &self.counted, summary)
    }

    /// Ends the reading with `error`.
    fn fail<T>(&mut self, error: BillError) -> Option<Result<T, BillError>> {
        self.finished = true;
        self.failed = Some(error.clone());
        Some(Err(error))
    }

    fn comment(&mut self, line: u64, length: u64) -> Result<(), BillError> {
        if self.columns.is_none() {
            return keep_comment(
                &mut self.header_lines,
                &self.row,
                line,
                length,
                BEFORE_HEADER,
            );
        }
        keep_comment(
            &mut self.footer.lines,
            &self.row,
            line,
            length,
            AFTER_HEADER,
        )?;
        let text = self.footer.lines.last().map_or("", String::as_str);
        if text.contains(DETAIL_END_MARKER) {
            self.footer.ended = true;
        } else if text.contains("交易合计") {
            self.footer.payments = parse_totals(text, "商家实收共", "商家优惠共");
        } else if text.contains("退款合计") {
            self.footer.refunds = parse_totals(text, "商家实收退款共", "商家优惠退款共");
        } else if let Some(at) = between(text, "导出时间：[", ']') {
            self.footer.exported_at = Some(at.to_owned());
        }
        Ok(())
    }
}

impl<R: Read> DetailReader<R> {
    /// The next row, borrowed from the reader until the next call (a lending iterator: the
    /// rows of [`Iterator::next`] without their allocations). `None` at the end.
    pub fn next_row(&mut self) -> Option<Result<BillRow<'_>, BillError>> {
        let line = loop {
            if self.finished {
                return None;
            }
            let length = match self.rows.read(&mut self.row) {
                Ok(Some(length)) => length,
                Ok(None) => {
                    if self.columns.is_none() {
                        return self.fail(BillError::NoHeader);
                    }
                    self.finished = true;
                    return None;
                }
                Err(e) => return self.fail(e),
            };
            let line = self.row.position().map_or(0, csv::Position::line);
            if self.row.get(0).is_some_and(|first| first.starts_with(b"#")) {
                // A `#` line read as CSV: its commas are put back.
                if let Err(e) = self.comment(line, length) {
                    return self.fail(e);
                }
                continue;
            }
            if self.footer.ended || self.row.iter().all(|cell| trim(cell).is_empty()) {
                continue;
            }
            if let Err(e) = check_columns(&self.row, line) {
                return match self.columns {
                    // A data row: that row is malformed.
                    Some(_) => Some(Err(e)),
                    None => self.fail(e),
                };
            }
            if self.columns.is_some() {
                break line;
            }
            if self
                .row
                .iter()
                .any(|cell| text(trim(cell)) == TRADE_NO_HEADER)
            {
                match Columns::from_header(&self.row, line) {
                    Ok(columns) => self.columns = Some(columns),
                    Err(e) => return self.fail(e),
                }
            }
        };
        let columns = self.columns.as_ref()?;
        let result = columns.row(&self.row, line);
        if let Ok(row) = &result {
            match row.kind {
                RecordKind::Payment => self
                    .counted
                    .payments
                    .add(row.receipt, row.merchant_discount),
                RecordKind::Refund => self.counted.refunds.add(row.receipt, row.merchant_discount),
                RecordKind::Other(_) => self.counted.other += 1,
            }
        }
        Some(result)
    }
}

impl<R: Read> Iterator for DetailReader<R> {
    type Item = Result<BillRecord, BillError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row().map(|row| row.map(|row| row.to_record()))
    }
}

fn csv_error(e: csv::Error) -> BillError {
    let line = e.position().map_or(0, csv::Position::line);
    match e.into_kind() {
        // A cap of [`Guard`] comes through the CSV reader as an I/O error.
        csv::ErrorKind::Io(io) => match io.get_ref().and_then(|e| e.downcast_ref::<BillError>()) {
            Some(cap) => cap.clone(),
            None => BillError::Read(io.to_string()),
        },
        other => BillError::Row {
            line,
            reason: format!("{other:?}"),
        },
    }
}

fn check_totals(footer: &Footer, counted: &Counted) -> Result<(), BillError> {
    if !footer.ended {
        return Err(BillError::Truncated);
    }
    let payments = footer
        .payments
        .ok_or(BillError::NoFooterTotals("交易合计"))?;
    let refunds = footer
        .refunds
        .ok_or(BillError::NoFooterTotals("退款合计"))?;
    let compare = |what: &'static str, stated: String, counted: String| {
        if stated == counted {
            Ok(())
        } else {
            Err(BillError::TotalsMismatch {
                what,
                stated,
                counted,
            })
        }
    };
    compare(
        "交易合计 笔数",
        payments.count.to_string(),
        counted.payments.count.to_string(),
    )?;
    compare(
        "交易合计 商家实收",
        payments.receipt.to_yuan(),
        counted.payments.receipt.to_yuan(),
    )?;
    compare(
        "退款合计 笔数",
        refunds.count.to_string(),
        counted.refunds.count.to_string(),
    )?;
    compare(
        "退款合计 商家实收退款",
        refunds.receipt.to_yuan(),
        counted.refunds.receipt.to_yuan(),
    )
}

/// The whole bill is complete and consistent: the detail file's end marker and footer totals
/// are there and equal the rows read (`footer` against `counted`), and the summary's `合计`
/// row states the same payment count, refund count and merchant receipt (`商家实收（元）`,
/// payments and refunds together). A bill without a summary (`None`) or without its `合计`
/// row is not complete.
pub fn check_bill(
    footer: &Footer,
    counted: &Counted,
    summary: Option<&Summary>,
) -> Result<(), BillError> {
    check_totals(footer, counted)?;
    let total = summary
        .ok_or(BillError::NoSummary)?
        .total
        .as_ref()
        .ok_or(BillError::NoSummaryTotal)?;
    let compare = |what: &'static str, stated: String, counted: String| {
        if stated == counted {
            Ok(())
        } else {
            Err(BillError::SummaryMismatch {
                what,
                stated,
                counted,
            })
        }
    };
    compare(
        "交易订单总笔数",
        total.payment_count.to_string(),
        counted.payments.count.to_string(),
    )?;
    compare(
        "退款订单总笔数",
        total.refund_count.to_string(),
        counted.refunds.count.to_string(),
    )?;
    compare(
        "商家实收（元）",
        total.receipt.to_yuan(),
        counted
            .payments
            .receipt
            .checked_add(counted.refunds.receipt)
            .map_or_else(|| "out of range".to_owned(), Fen::to_yuan),
    )
}

/// One row of the summary file (`门店编号,门店名称,交易订单总笔数,…,实收净额（元）`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SummaryRow {
    /// `门店编号`; `合计` on the totals row.
    pub store_id: String,
    pub store_name: String,
    pub payment_count: u64,
    pub refund_count: u64,
    /// `订单金额（元）`: payments minus refunds.
    pub amount: Fen,
    pub receipt: Fen,
    pub alipay_discount: Fen,
    pub merchant_discount: Fen,
    pub card: Fen,
    pub fee: Fen,
    pub profit_share: Fen,
    /// `实收净额（元）`.
    pub net_receipt: Fen,
}

/// The summary file: per-store rows and the `合计` row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    pub header_lines: Vec<String>,
    pub rows: Vec<SummaryRow>,
    pub total: Option<SummaryRow>,
    pub footer_lines: Vec<String>,
}

/// Where each field is in the summary rows (indexes from the header row, found once per
/// file; a missing column reads as empty).
#[derive(Debug, Clone)]
struct SummaryColumns {
    store_id: Option<usize>,
    store_name: Option<usize>,
    payment_count: Option<usize>,
    refund_count: Option<usize>,
    amount: Option<usize>,
    receipt: Option<usize>,
    alipay_discount: Option<usize>,
    merchant_discount: Option<usize>,
    card: Option<usize>,
    fee: Option<usize>,
    profit_share: Option<usize>,
    net_receipt: Option<usize>,
}

impl SummaryColumns {
    fn from_header(record: &csv::ByteRecord) -> SummaryColumns {
        let names: Vec<String> = record.iter().map(normalize_header).collect();
        let find = |name: &str| names.iter().position(|n| n == name);
        SummaryColumns {
            store_id: find("门店编号"),
            store_name: find("门店名称"),
            payment_count: find("交易订单总笔数"),
            refund_count: find("退款订单总笔数"),
            amount: find("订单金额（元）"),
            receipt: find("商家实收（元）"),
            alipay_discount: find("支付宝优惠（元）"),
            merchant_discount: find("商家优惠（元）"),
            card: find("卡消费金额（元）"),
            fee: find("服务费（元）"),
            profit_share: find("分润（元）"),
            net_receipt: find("实收净额（元）"),
        }
    }

    fn row(&self, row: &csv::ByteRecord, line: u64) -> Result<SummaryRow, BillError> {
        let cell =
            |index: Option<usize>| text(index.and_then(|i| row.get(i)).map_or(&b""[..], trim));
        let error = |reason: String| BillError::Row { line, reason };
        let count = |index: Option<usize>, name: &str| {
            let text = cell(index);
            if text.is_empty() {
                return Ok(0);
            }
            text.parse::<u64>()
                .map_err(|_| error(format!("{name} is not a count: {text:?}")))
        };
        let amount = |index: Option<usize>, name: &str| {
            let text = cell(index);
            if text.is_empty() {
                return Ok(Fen::ZERO);
            }
            Fen::from_yuan(&text).map_err(|_| error(format!("{name} is not an amount: {text:?}")))
        };
        Ok(SummaryRow {
            store_id: cell(self.store_id).into_owned(),
            store_name: cell(self.store_name).into_owned(),
            payment_count: count(self.payment_count, "交易订单总笔数")?,
            refund_count: count(self.refund_count, "退款订单总笔数")?,
            amount: amount(self.amount, "订单金额（元）")?,
            receipt: amount(self.receipt, "商家实收（元）")?,
            alipay_discount: amount(self.alipay_discount, "支付宝优惠（元）")?,
            merchant_discount: amount(self.merchant_discount, "商家优惠（元）")?,
            card: amount(self.card, "卡消费金额（元）")?,
            fee: amount(self.fee, "服务费（元）")?,
            profit_share: amount(self.profit_share, "分润（元）")?,
            net_receipt: amount(self.net_receipt, "实收净额（元）")?,
        })
    }
}

/// Parses a summary file (GBK bytes), at most [`MAX_SUMMARY_BYTES`] of it. Header-driven
/// like the detail file: the columns are mapped once, from the header row.
pub fn parse_summary(gbk: impl Read) -> Result<Summary, BillError> {
    read_summary(Rows::new(
        gbk,
        "the summary file".to_owned(),
        MAX_SUMMARY_BYTES,
    ))
}

fn read_summary<R: Read>(mut rows: Rows<R>) -> Result<Summary, BillError> {
    let mut summary = Summary::default();
    let mut columns: Option<SummaryColumns> = None;
    let mut row = csv::ByteRecord::new();
    while let Some(length) = rows.read(&mut row)? {
        let line = row.position().map_or(0, csv::Position::line);
        if row.get(0).is_some_and(|first| first.starts_with(b"#")) {
            match columns {
                None => keep_comment(&mut summary.header_lines, &row, line, length, BEFORE_HEADER)?,
                Some(_) => {
                    keep_comment(&mut summary.footer_lines, &row, line, length, AFTER_HEADER)?
                }
            }
            continue;
        }
        if row.iter().all(|cell| trim(cell).is_empty()) {
            continue;
        }
        check_columns(&row, line)?;
        let Some(columns) = &columns else {
            if row.iter().any(|cell| text(trim(cell)) == "门店编号") {
                columns = Some(SummaryColumns::from_header(&row));
            }
            continue;
        };
        let parsed = columns.row(&row, line)?;
        if parsed.store_id == "合计" {
            summary.total = Some(parsed);
        } else if summary.rows.len() >= MAX_SUMMARY_ROWS {
            return Err(BillError::TooManySummaryRows {
                line,
                max: MAX_SUMMARY_ROWS,
            });
        } else {
            summary.rows.push(parsed);
        }
    }
    if columns.is_none() {
        return Err(BillError::NoHeader);
    }
    Ok(summary)
}

/// An entry name: UTF-8 when it is valid UTF-8 (flagged archives), otherwise GBK, as
/// Alipay writes it.
pub fn decode_entry_name(raw: &[u8]) -> String {
    match std::str::from_utf8(raw) {
        Ok(text) => text.to_owned(),
        Err(_) => GBK.decode_without_bom_handling(raw).0.into_owned(),
    }
}

/// A bill ZIP: finds the detail and summary entries (by name, or by content when the names
/// say nothing) and reads them.
pub struct BillArchive<R: Read + Seek> {
    archive: zip::ZipArchive<R>,
    names: Vec<String>,
    detail: usize,
    summary: Option<usize>,
    limits: BillLimits,
}

impl<R: Read + Seek> BillArchive<R> {
    /// Opens a bill archive with the default [`BillLimits`].
    pub fn new(reader: R) -> Result<Self, BillError> {
        Self::with_limits(reader, BillLimits::default())
    }

    /// Opens a bill archive whose entries may inflate to at most `limits`.
    pub fn with_limits(reader: R, limits: BillLimits) -> Result<Self, BillError> {
        let mut archive = zip::ZipArchive::new(reader)?;
        if archive.len() > MAX_ENTRIES {
            return Err(BillError::TooManyEntries {
                entries: archive.len(),
                max: MAX_ENTRIES,
            });
        }
        // In index order (the archive keeps its entries in an ordered map).
        let names: Vec<String> = archive.file_names_raw().map(decode_entry_name).collect();
        let is_file = |name: &String| !name.ends_with('/');
        let detail = names
            .iter()
            .position(|n| is_file(n) && n.contains(DETAIL_MARKER) && !n.contains(SUMMARY_MARKER));
        let summary = names
            .iter()
            .position(|n| is_file(n) && n.contains(SUMMARY_MARKER));
        let detail = match detail {
            Some(detail) => detail,
            None => sniff_detail(&mut archive, &names)?
                .ok_or_else(|| BillError::NoDetail(names.clone()))?,
        };
        Ok(BillArchive {
            archive,
            names,
            detail,
            summary: summary.filter(|&s| s != detail),
            limits,
        })
    }

    /// What the entries may inflate to.
    pub fn limits(&self) -> BillLimits {
        self.limits
    }

    /// Every entry name, decoded.
    pub fn entry_names(&self) -> &[String] {
        &self.names
    }

    pub fn detail_name(&self) -> &str {
        &self.names[self.detail]
    }

    pub fn summary_name(&self) -> Option<&str> {
        self.summary.map(|i| self.names[i].as_str())
    }

    /// Streams the detail rows straight out of the archive, at most
    /// [`BillLimits::max_detail_bytes`] of them.
    pub fn detail(&mut self) -> Result<DetailReader<zip::read::ZipFile<'_, R>>, BillError> {
        let max = self.limits.max_detail_bytes;
        let (entry, name) = self.entry(self.detail, max)?;
        Ok(DetailReader::reading(entry, name, max))
    }

    /// The parsed summary file, if the archive has one (at most
    /// [`BillLimits::max_summary_bytes`] of it).
    pub fn summary(&mut self) -> Result<Option<Summary>, BillError> {
        let Some(index) = self.summary else {
            return Ok(None);
        };
        let max = self.limits.max_summary_bytes;
        let (entry, name) = self.entry(index, max)?;
        read_summary(Rows::new(entry, name, max)).map(Some)
    }

    /// An entry and its name; refused at once when its stated size is over `max_bytes` (the
    /// reading enforces the cap whatever the entry states).
    fn entry(
        &mut self,
        index: usize,
        max_bytes: u64,
    ) -> Result<(zip::read::ZipFile<'_, R>, String), BillError> {
        let name = self.names.get(index).cloned().unwrap_or_default();
        let entry = self.archive.by_index(index)?;
        if entry.size() > max_bytes {
            return Err(BillError::EntryTooLarge {
                entry: name,
                max: max_bytes,
            });
        }
        Ok((entry, name))
    }
}

/// The entry whose beginning looks like a detail file (`#支付宝业务明细查询` or the header row).
fn sniff_detail<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    names: &[String],
) -> Result<Option<usize>, BillError> {
    for (index, name) in names.iter().enumerate() {
        if name.ends_with('/') {
            continue;
        }
        let mut head = Vec::new();
        archive
            .by_index(index)?
            .take(SNIFF_BYTES)
            .read_to_end(&mut head)?;
        let text = GBK.decode_without_bom_handling(&head).0;
        let first_line = text.lines().next().unwrap_or_default();
        if text.contains(TRADE_NO_HEADER)
            || (first_line.contains(DETAIL_MARKER) && !first_line.contains(SUMMARY_MARKER))
        {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

/// A whole bill in memory: for tests, tools and small bills. Streaming callers use
/// [`BillArchive`] and [`DetailReader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    pub detail_name: String,
    pub summary_name: Option<String>,
    pub header_lines: Vec<String>,
    pub records: Vec<BillRecord>,
    pub footer: Footer,
    pub counted: Counted,
    pub summary: Option<Summary>,
}

impl Bill {
    /// The footer totals match the rows (see [`DetailReader::check_totals`]).
    pub fn check_totals(&self) -> Result<(), BillError> {
        check_totals(&self.footer, &self.counted)
    }

    /// The whole bill is complete and consistent, summary included (see [`check_bill`]).
    pub fn check_bill(&self) -> Result<(), BillError> {
        check_bill(&self.footer, &self.counted, self.summary.as_ref())
    }
}

/// Parses a downloaded bill ZIP; the first malformed row fails the whole bill.
pub fn parse_zip(bytes: &[u8]) -> Result<Bill, BillError> {
    let mut archive = BillArchive::new(io::Cursor::new(bytes))?;
    let detail_name = archive.detail_name().to_owned();
    let summary_name = archive.summary_name().map(str::to_owned);
    let mut reader = archive.detail()?;
    let records = reader.by_ref().collect::<Result<Vec<_>, _>>()?;
    let header_lines = reader.header_lines().to_vec();
    let footer = reader.footer().clone();
    let counted = *reader.counted();
    drop(reader);
    let summary = archive.summary()?;
    Ok(Bill {
        detail_name,
        summary_name,
        header_lines,
        records,
        footer,
        counted,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::{Duration, Instant};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn gbk(text: &str) -> Vec<u8> {
        GBK.encode(text).0.into_owned()
    }

    const HEADER: &str = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注";

    /// An Alipay-shaped detail file: 4 header lines, header, rows, 4 footer lines.
    fn detail_text(header: &str, rows: &[&str], line_end: &str) -> String {
        let mut lines = vec![
            "#支付宝业务明细查询".to_owned(),
            "#账号：[20881234567890120156]".to_owned(),
            "#起始日期：[2019年09月16日 00:00:00]   终止日期：[2019年09月17日 00:00:00]"
                .to_owned(),
            "#-----------------------------------------业务明细列表----------------------------------------".to_owned(),
            header.to_owned(),
        ];
        lines.extend(rows.iter().map(|r| (*r).to_owned()));
        lines.extend([
            "#-----------------------------------------业务明细列表结束------------------------------------".to_owned(),
            "#交易合计：2笔，商家实收共0.11元，商家优惠共0.00元".to_owned(),
            "#退款合计：1笔，商家实收退款共-0.01元，商家优惠退款共0.00元".to_owned(),
            "#导出时间：[2019年09月17日 05:46:49]".to_owned(),
        ]);
        let mut text = lines.join(line_end);
        text.push_str(line_end);
        text
    }

    const ROWS: [&str; 3] = [
        "2019091622001458860515315453\t,service_1568601259302\t,交易\t,下单测试,2019-09-16 10:55:16,2019-09-16 10:55:26,S1\t,\t,op1\t,t1\t,*津水(602***@qq.com)\t,0.01,0.01,0.00,0.00,0.00,0.00,0.00,\t,0.00,0.00,\t,0.00,0.00,备注一\t",
        "2019091622001458860515315454\t,service_2\t,交易\t,\"咖啡,大杯\",2019-09-16 11:00:00,2019-09-16 11:00:05,\t,\t,\t,\t,\t,0.10,0.10,0.00,0.00,0.00,0.00,0.00,\t,0.00,0.00,\t,0.00,0.00,\t",
        "2019091622001458860515315453\t,service_1568601259302\t,退款\t,下单测试,2019-09-16 10:55:16,2019-09-16 12:00:00,S1\t,\t,op1\t,t1\t,*津水(602***@qq.com)\t,-0.01,-0.01,0.00,0.00,0.00,0.00,0.00,\t,0.00,0.00,r1\t,0.00,0.00,\t",
    ];

    fn parse_text(text: &str) -> (Vec<Result<BillRecord, BillError>>, Footer, Counted, usize) {
        let mut reader = DetailReader::new(io::Cursor::new(gbk(text)));
        let results: Vec<_> = reader.by_ref().collect();
        let header_lines = reader.header_lines().len();
        (
            results,
            reader.footer().clone(),
            *reader.counted(),
            header_lines,
        )
    }

    /// The borrowed rows are the owned records: the same cells, the same row errors, the same
    /// counts and footer; only ASCII cells are borrowed, text is decoded when asked for.
    #[test]
    fn borrowed_rows_read_as_the_owned_records() -> TestResult {
        let bad = ROWS[1].replace(",0.10,0.10,", ",0.1x,0.10,");
        let text = detail_text(HEADER, &[ROWS[0], &bad, ROWS[2]], "\r\n");
        let (owned, footer, counted, _) = parse_text(&text);
        let mut reader = DetailReader::new(io::Cursor::new(gbk(&text)));
        let mut borrowed = Vec::new();
        while let Some(row) = reader.next_row() {
            let row = row.map(|row| {
                assert!(matches!(row.out_trade_no, Cow::Borrowed(_)));
                assert!(matches!(row.trade_no, Cow::Borrowed(_)));
                row.to_record()
            });
            borrowed.push(row);
        }
        assert_eq!(borrowed, owned);
        assert_eq!(reader.footer(), &footer);
        assert_eq!(reader.counted(), &counted);
        assert!(borrowed[1].is_err());

        let mut reader = DetailReader::new(io::Cursor::new(gbk(&text)));
        let row = reader.next_row().ok_or("no row")??;
        assert_eq!(row.subject(), "下单测试");
        assert_eq!(row.store_id().as_deref(), Some("S1"));
        assert_eq!(row.store_name(), None);
        assert_eq!(row.operator_id().as_deref(), Some("op1"));
        assert_eq!(row.terminal_id().as_deref(), Some("t1"));
        assert_eq!(row.buyer_account().as_deref(), Some("*津水(602***@qq.com)"));
        assert_eq!(row.remark().as_deref(), Some("备注一"));
        Ok(())
    }

    fn records(results: Vec<Result<BillRecord, BillError>>) -> Result<Vec<BillRecord>, BillError> {
        results.into_iter().collect()
    }

    #[test]
    fn reads_rows_with_crlf_tabs_quotes_and_footer() -> TestResult {
        let (results, footer, counted, header_lines) =
            parse_text(&detail_text(HEADER, &ROWS, "\r\n"));
        let rows = records(results)?;
        assert_eq!(header_lines, 4);
        assert_eq!(rows.len(), 3);
        let first = &rows[0];
        assert_eq!(first.line, 6);
        assert_eq!(first.trade_no, "2019091622001458860515315453");
        assert_eq!(first.out_trade_no, "service_1568601259302");
        assert_eq!(first.kind, RecordKind::Payment);
        assert_eq!(first.subject, "下单测试");
        assert_eq!(
            crate::time::format_beijing(first.created_at),
            "2019-09-16 10:55:16"
        );
        assert_eq!(
            crate::time::format_beijing(first.finished_at),
            "2019-09-16 10:55:26"
        );
        assert_eq!(first.store_id.as_deref(), Some("S1"));
        assert_eq!(first.store_name, None);
        assert_eq!(first.operator_id.as_deref(), Some("op1"));
        assert_eq!(first.terminal_id.as_deref(), Some("t1"));
        assert_eq!(first.buyer_account.as_deref(), Some("*津水(602***@qq.com)"));
        assert_eq!(first.amount, Fen::new(1));
        assert_eq!(first.receipt, Fen::new(1));
        assert_eq!(first.refund_request_no, None);
        assert_eq!(first.remark.as_deref(), Some("备注一"));
        assert_eq!(rows[1].subject, "咖啡,大杯");
        let refund = &rows[2];
        assert_eq!(refund.kind, RecordKind::Refund);
        assert_eq!(refund.amount, Fen::new(-1));
        assert_eq!(refund.receipt, Fen::new(-1));
        assert_eq!(refund.refund_request_no.as_deref(), Some("r1"));
        assert!(footer.ended);
        assert_eq!(
            footer.payments,
            Some(Totals {
                count: 2,
                receipt: Fen::new(11),
                merchant_discount: Fen::ZERO
            })
        );
        assert_eq!(
            footer.refunds.map(|t| (t.count, t.receipt)),
            Some((1, Fen::new(-1)))
        );
        assert_eq!(
            footer.exported_at.as_deref(),
            Some("2019年09月17日 05:46:49")
        );
        assert_eq!(counted.payments.count, 2);
        check_totals(&footer, &counted)?;
        Ok(())
    }

    #[test]
    fn lf_line_ends_read_the_same() -> TestResult {
        let crlf = records(parse_text(&detail_text(HEADER, &ROWS, "\r\n")).0)?;
        let lf = records(parse_text(&detail_text(HEADER, &ROWS, "\n")).0)?;
        assert_eq!(crlf, lf);
        Ok(())
    }

    /// Columns are found by name: a shuffled header with the older `退款批次号` name and
    /// ASCII parentheses reads the same.
    #[test]
    fn columns_are_mapped_by_header_name() -> TestResult {
        let header = "备注,退款批次号,商家实收(元),订单金额(元),完成时间,创建时间,业务类型,商户订单号,支付宝交易号,商品名称,门店编号";
        let rows = [
            "re\t,\t,0.01,0.01,2019-09-16 10:55:26,2019-09-16 10:55:16,交易\t,o1\t,T1\t,苹果,S9\t",
            "\t,r-7\t,-0.01,-0.01,2019-09-16 12:00:00,2019-09-16 10:55:16,退款\t,o1\t,T1\t,苹果,\t",
        ];
        let (results, _, counted, _) = parse_text(&detail_text(header, &rows, "\n"));
        let rows = records(results)?;
        assert_eq!(rows[0].trade_no, "T1");
        assert_eq!(rows[0].out_trade_no, "o1");
        assert_eq!(rows[0].subject, "苹果");
        assert_eq!(rows[0].remark.as_deref(), Some("re"));
        assert_eq!(rows[0].store_id.as_deref(), Some("S9"));
        assert_eq!(rows[0].fee, Fen::ZERO);
        assert_eq!(rows[1].refund_request_no.as_deref(), Some("r-7"));
        assert_eq!(rows[1].receipt, Fen::new(-1));
        assert_eq!(counted.refunds.count, 1);
        Ok(())
    }

    #[test]
    fn a_malformed_amount_is_an_error_with_its_line_and_reading_goes_on() {
        let bad = ROWS[1].replace(",0.10,0.10,", ",0.1x,0.10,");
        let text = detail_text(HEADER, &[ROWS[0], &bad, ROWS[2]], "\r\n");
        let (results, footer, counted, _) = parse_text(&text);
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok());
        match &results[1] {
            Err(BillError::Row { line, reason }) => {
                assert_eq!(*line, 7);
                assert!(reason.contains("订单金额"), "{reason}");
            }
            other => panic!("expected a row error, got {other:?}"),
        }
        assert!(results[2].is_ok());
        // The footer counts the bad row; the rows read do not add up.
        assert!(matches!(
            check_totals(&footer, &counted),
            Err(BillError::TotalsMismatch { .. })
        ));
    }

    #[test]
    fn a_missing_required_column_or_header_is_an_error() {
        let header = HEADER.replace("商家实收（元）", "实收");
        let (results, _, _, _) = parse_text(&detail_text(&header, &ROWS, "\n"));
        assert_eq!(
            results.first(),
            Some(&Err(BillError::MissingColumn {
                line: 5,
                column: "商家实收（元）"
            }))
        );
        let (results, _, _, _) = parse_text("#只有注释\n#没有表头\n");
        assert_eq!(results, vec![Err(BillError::NoHeader)]);
    }

    #[test]
    fn a_cut_off_file_fails_the_totals_check() -> TestResult {
        let text = detail_text(HEADER, &ROWS, "\n");
        let end = text.find(DETAIL_END_MARKER).ok_or("no end marker")?;
        let cut = &text[..text[..end].rfind('\n').ok_or("no line")? + 1];
        let mut reader = DetailReader::new(io::Cursor::new(gbk(cut)));
        assert_eq!(reader.by_ref().filter(Result::is_ok).count(), 3);
        assert_eq!(reader.check_totals(), Err(BillError::Truncated));
        Ok(())
    }

    #[test]
    fn times_are_beijing_time() {
        assert_eq!(
            parse_beijing_time("2019-09-16 10:55:16"),
            crate::time::parse_beijing("2019-09-16 10:55:16").ok()
        );
        for bad in [
            "2019-09-16T10:55:16",
            "2019-13-16 10:55:16",
            "2019-09-16 1:55:16",
            "",
        ] {
            assert_eq!(parse_beijing_time(bad), None, "{bad}");
        }
    }

    /// A ZIP with GBK names and no UTF-8 flag, as Alipay makes it.
    fn zip_of(entries: &[(&str, Vec<u8>)]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let mut writer = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        for (name, content) in entries {
            let raw = gbk(name);
            writer.start_file_with_options(zip::write::SimpleFileOptions::default().name(&raw))?;
            writer.write_all(content)?;
        }
        Ok(writer.finish()?.into_inner())
    }

    const SUMMARY: &str = "#支付宝业务汇总查询\r\n#账号：[20881234567890120156]\r\n门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）\r\nS1\t,\t,1,1,0.00,0.00,0.00,0.00,0.00,0.00,0.00,0.00\r\n\t,\t,1,0,0.10,0.10,0.00,0.00,0.00,0.00,0.00,0.10\r\n合计,,2,1,0.10,0.10,0.00,0.00,0.00,0.00,0.00,0.10\r\n#导出时间：[2019年09月17日 05:46:49]\r\n";

    #[test]
    fn reads_a_zip_with_gbk_entry_names() -> TestResult {
        let bytes = zip_of(&[
            (
                "20881234567890120156_20190916_业务明细(汇总).csv",
                gbk(SUMMARY),
            ),
            (
                "20881234567890120156_20190916_业务明细.csv",
                gbk(&detail_text(HEADER, &ROWS, "\r\n")),
            ),
        ])?;
        let bill = parse_zip(&bytes)?;
        assert_eq!(
            bill.detail_name,
            "20881234567890120156_20190916_业务明细.csv"
        );
        assert_eq!(
            bill.summary_name.as_deref(),
            Some("20881234567890120156_20190916_业务明细(汇总).csv")
        );
        assert_eq!(bill.records.len(), 3);
        bill.check_totals()?;
        let summary = bill.summary.ok_or("no summary")?;
        assert_eq!(summary.rows.len(), 2);
        assert_eq!(summary.rows[0].store_id, "S1");
        let total = summary.total.ok_or("no total")?;
        assert_eq!((total.payment_count, total.refund_count), (2, 1));
        assert_eq!(total.net_receipt, Fen::new(10));
        Ok(())
    }

    #[test]
    fn finds_the_detail_entry_by_content_when_names_say_nothing() -> TestResult {
        let bytes = zip_of(&[
            ("a.csv", gbk(SUMMARY)),
            ("b.csv", gbk(&detail_text(HEADER, &ROWS, "\n"))),
        ])?;
        let bill = parse_zip(&bytes)?;
        assert_eq!(bill.detail_name, "b.csv");
        assert_eq!(bill.records.len(), 3);
        Ok(())
    }

    #[test]
    fn an_archive_without_a_detail_file_is_an_error() -> TestResult {
        let bytes = zip_of(&[("x_业务明细(汇总).csv", gbk(SUMMARY))])?;
        assert!(matches!(parse_zip(&bytes), Err(BillError::NoDetail(names)) if names.len() == 1));
        assert!(matches!(parse_zip(b"not a zip"), Err(BillError::Zip(_))));
        Ok(())
    }

    /// Cells are split on the GBK bytes, then decoded: trail bytes that look like ASCII
    /// (`@`, letters, `\\`) and GB18030 four-byte sequences (digits as second and fourth byte)
    /// stay inside their cell.
    #[test]
    fn cells_are_split_on_gbk_bytes_exactly() -> TestResult {
        let tricky = "丂乗亅嘰誠表";
        let mut bytes = gbk(&detail_text(HEADER, &[], "\r\n"));
        let mut row = gbk(ROWS[0]).to_vec();
        let subject = gbk("下单测试");
        let at = row
            .windows(subject.len())
            .position(|w| w == subject.as_slice())
            .ok_or("no subject")?;
        let mut replacement = gbk(tricky);
        replacement.extend_from_slice(&[0x81, 0x30, 0x81, 0x30]); // U+0080 in GB18030
        row.splice(at..at + subject.len(), replacement);
        row.extend_from_slice(b"\r\n");
        let header_end = bytes
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w == b"\r\n")
            .nth(4)
            .map(|(i, _)| i + 2)
            .ok_or("no header")?;
        bytes.splice(header_end..header_end, row);
        let rows: Vec<BillRecord> =
            DetailReader::new(bytes.as_slice()).collect::<Result<_, _>>()?;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].subject, format!("{tricky}\u{80}"));
        assert_eq!(
            rows[0].created_at,
            parse_beijing_time("2019-09-16 10:55:16").ok_or("time")?
        );
        Ok(())
    }

    /// Runs `f`, which must finish well within a test's time (debug build, busy machine):
    /// what the caps promise is a prompt answer whatever the input.
    fn promptly<T>(f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = f();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "took {took:?}");
        result
    }

    const DETAIL_NAME: &str = "20881234567890120156_20190916_业务明细.csv";
    const SUMMARY_NAME: &str = "20881234567890120156_20190916_业务明细(汇总).csv";

    /// A bill archive of `detail` (text) and `summary` (GBK bytes).
    fn bill_zip(detail: &str, summary: Vec<u8>) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        zip_of(&[(DETAIL_NAME, gbk(detail)), (SUMMARY_NAME, summary)])
    }

    /// The summary fuzzing found (a header of 100,000 cells over 100,000 short rows, under a
    /// kilobyte zipped) took a minute when every field of every row looked its column up in
    /// the header; now its header row is refused at once.
    #[test]
    fn a_summary_with_a_huge_header_is_refused_promptly() -> TestResult {
        let mut summary = gbk("#支付宝业务汇总查询\n门店编号");
        summary.extend(b",x".repeat(100_000));
        summary.push(b'\n');
        summary.extend(b"S1\n".repeat(100_000));
        let bytes = bill_zip(&detail_text(HEADER, &ROWS, "\n"), summary)?;
        let mut archive = BillArchive::new(io::Cursor::new(bytes))?;
        assert_eq!(
            promptly(|| archive.summary()),
            Err(BillError::RowTooLong {
                line: 2,
                max: MAX_ROW_BYTES
            })
        );
        Ok(())
    }

    /// A header row under the row cap but over the cell cap is refused too.
    #[test]
    fn a_summary_with_too_many_columns_is_refused() -> TestResult {
        let mut summary = gbk("门店编号");
        summary.extend(b",x".repeat(MAX_COLUMNS));
        summary.extend(b"\nS1\n".repeat(1_000));
        let result = promptly(|| parse_summary(summary.as_slice()));
        assert_eq!(
            result,
            Err(BillError::TooManyColumns {
                line: 1,
                columns: MAX_COLUMNS + 1,
                max: MAX_COLUMNS
            })
        );
        Ok(())
    }

    /// As wide a summary as is allowed, over many rows, costs a column lookup per file, not
    /// per field: it reads at the speed of its bytes.
    #[test]
    fn a_wide_summary_reads_in_linear_time() -> TestResult {
        let header = "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）";
        let mut text = header.to_owned();
        text.push_str(&",".repeat(MAX_COLUMNS - 12));
        text.push('\n');
        for i in 0..20_000 {
            text.push_str(&format!(
                "S{i}\t,,1,0,0.01,0.01,0.00,0.00,0.00,0.00,0.00,0.01\n"
            ));
        }
        text.push_str("合计,,20000,0,200.00,200.00,0.00,0.00,0.00,0.00,0.00,200.00\n");
        let bytes = bill_zip(&detail_text(HEADER, &ROWS, "\n"), gbk(&text))?;
        let mut archive = BillArchive::new(io::Cursor::new(bytes))?;
        let summary = promptly(|| archive.summary())?.ok_or("no summary")?;
        assert_eq!(summary.rows.len(), 20_000);
        assert_eq!(summary.rows[19_999].store_id, "S19999");
        let total = summary.total.ok_or("no total")?;
        assert_eq!(total.payment_count, 20_000);
        assert_eq!(total.receipt, Fen::new(20_000));
        Ok(())
    }

    /// One quote never closed once made the rest of a 255 KiB ZIP a single 300 MiB cell; now
    /// the row is refused at [`MAX_ROW_BYTES`], having buffered no more than that and a chunk.
    #[test]
    fn an_unclosed_quote_is_refused_at_the_row_cap() -> TestResult {
        let unclosed = ROWS[1].replace("\"咖啡,大杯\"", "\"咖啡,大杯");
        let mut rows = vec![ROWS[0], unclosed.as_str()];
        // Rows without quotes after it: a later quote would close the cell.
        rows.extend(std::iter::repeat_n(ROWS[0], 1_000));
        let bytes = bill_zip(&detail_text(HEADER, &rows, "\r\n"), gbk(SUMMARY))?;
        let mut archive = BillArchive::new(io::Cursor::new(bytes))?;
        let mut reader = archive.detail()?;
        let results: Vec<_> = promptly(|| reader.by_ref().collect());
        let error = BillError::RowTooLong {
            line: 7,
            max: MAX_ROW_BYTES,
        };
        assert_eq!(results.len(), 2);
        assert!(results[0].is_ok());
        assert_eq!(results[1], Err(error.clone()));
        let guard = reader.rows.csv.get_ref();
        assert!(
            guard.delivered <= guard.row_start + MAX_ROW_BYTES + BUFFER_BYTES as u64,
            "read {} bytes",
            guard.delivered
        );
        assert_eq!(reader.next(), None);
        assert_eq!(reader.check_totals(), Err(error));
        Ok(())
    }

    /// A data row of too many cells is that row's error; the reading goes on.
    #[test]
    fn a_data_row_of_too_many_cells_is_an_error_of_that_row() {
        let wide = format!("{}{}", ROWS[1], ",".repeat(MAX_COLUMNS));
        let text = detail_text(HEADER, &[ROWS[0], &wide, ROWS[2]], "\n");
        let (results, _, _, _) = parse_text(&text);
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok());
        assert_eq!(
            results[1],
            Err(BillError::TooManyColumns {
                line: 7,
                columns: 25 + MAX_COLUMNS,
                max: MAX_COLUMNS
            })
        );
        assert!(results[2].is_ok());
    }

    /// `#` lines are kept (header and footer), so only so many of them: a ZIP of `#` lines
    /// once kept hundreds of MiB.
    #[test]
    fn too_many_hash_lines_are_refused() -> TestResult {
        let many = "#-\n".repeat(100_000);
        let before = format!("{many}{}", detail_text(HEADER, &ROWS, "\n"));
        let mut archive = BillArchive::new(io::Cursor::new(bill_zip(&before, gbk(SUMMARY))?))?;
        let mut reader = archive.detail()?;
        assert_eq!(
            promptly(|| reader.next()),
            Some(Err(BillError::TooManyCommentLines {
                line: MAX_COMMENT_LINES as u64 + 1,
                max: MAX_COMMENT_LINES,
                place: BEFORE_HEADER
            }))
        );
        assert_eq!(reader.next(), None);
        assert!(reader.header_lines().len() <= MAX_COMMENT_LINES);

        // After the footer: the rows and totals were fine, the bill is not.
        let after = format!("{}{many}", detail_text(HEADER, &ROWS, "\n"));
        let mut archive = BillArchive::new(io::Cursor::new(bill_zip(&after, gbk(SUMMARY))?))?;
        let mut reader = archive.detail()?;
        let results: Vec<_> = promptly(|| reader.by_ref().collect());
        // Lines 9 to 12 are the end marker and the footer; line 73 is the 65th `#` line.
        let error = BillError::TooManyCommentLines {
            line: 9 + MAX_COMMENT_LINES as u64,
            max: MAX_COMMENT_LINES,
            place: AFTER_HEADER,
        };
        assert_eq!(results.len(), 4);
        assert_eq!(results[3], Err(error.clone()));
        assert_eq!(reader.footer().lines.len(), MAX_COMMENT_LINES);
        assert_eq!(reader.check_totals(), Err(error));

        let summary = gbk(&format!("{many}{SUMMARY}"));
        let result = promptly(|| parse_summary(summary.as_slice()));
        assert!(
            matches!(result, Err(BillError::TooManyCommentLines { line: 65, .. })),
            "{result:?}"
        );
        Ok(())
    }

    #[test]
    fn a_long_hash_line_is_refused() {
        let long = format!(
            "#{}\n{}",
            "x".repeat(5_000),
            detail_text(HEADER, &ROWS, "\n")
        );
        let (results, _, _, _) = parse_text(&long);
        assert_eq!(
            results,
            vec![Err(BillError::CommentLineTooLong {
                line: 1,
                max: MAX_COMMENT_LINE_BYTES
            })]
        );
    }

    /// An entry inflating past its cap is refused: at once when its stated size says so,
    /// while reading when it does not (a lying or streamed entry).
    #[test]
    fn an_entry_inflating_past_its_cap_is_refused() -> TestResult {
        let rows = vec![ROWS[1]; 2_000];
        let detail = detail_text(HEADER, &rows, "\r\n");
        let bytes = bill_zip(&detail, gbk(SUMMARY))?;
        let limits = BillLimits {
            max_detail_bytes: 64 * 1024,
            max_summary_bytes: 100,
        };
        let mut archive = BillArchive::with_limits(io::Cursor::new(bytes.as_slice()), limits)?;
        assert_eq!(archive.limits(), limits);
        assert_eq!(
            archive.detail().err(),
            Some(BillError::EntryTooLarge {
                entry: DETAIL_NAME.to_owned(),
                max: 64 * 1024
            })
        );
        assert_eq!(
            archive.summary(),
            Err(BillError::EntryTooLarge {
                entry: SUMMARY_NAME.to_owned(),
                max: 100
            })
        );
        // The default caps read it.
        let mut archive = BillArchive::new(io::Cursor::new(bytes.as_slice()))?;
        assert_eq!(archive.detail()?.filter(Result::is_ok).count(), 2_000);

        // A reader states no size: the cap holds while reading.
        let raw = gbk(&detail);
        let mut reader = DetailReader::with_max_bytes(raw.as_slice(), 64 * 1024);
        let results: Vec<_> = promptly(|| reader.by_ref().collect());
        assert!(results.len() < 1_000, "{} rows", results.len());
        assert_eq!(
            results.last(),
            Some(&Err(BillError::EntryTooLarge {
                entry: "the detail file".to_owned(),
                max: 64 * 1024
            }))
        );
        assert_eq!(reader.rows.csv.get_ref().delivered, 64 * 1024 + 1);
        Ok(())
    }

    /// An entry whose headers state less than it inflates to (the ZIP bomb that passes the
    /// stated-size check) is refused as soon as it reads past what it stated.
    #[test]
    fn an_entry_larger_than_it_states_is_refused() -> TestResult {
        let rows = vec![ROWS[1]; 2_000];
        let detail = gbk(&detail_text(HEADER, &rows, "\r\n"));
        let mut bytes = zip_of(&[(DETAIL_NAME, detail.clone())])?;
        let real = u32::try_from(detail.len())?.to_le_bytes();
        // The uncompressed size in the local header and in the central directory.
        let mut patched = 0;
        for at in 0..bytes.len().saturating_sub(30) {
            let size_at = match &bytes[at..at + 4] {
                b"PK\x03\x04" => at + 22,
                b"PK\x01\x02" => at + 24,
                _ => continue,
            };
            if bytes[size_at..size_at + 4] == real {
                bytes[size_at..size_at + 4].copy_from_slice(&1_000u32.to_le_bytes());
                patched += 1;
            }
        }
        assert_eq!(patched, 2);
        let limits = BillLimits {
            max_detail_bytes: 64 * 1024,
            ..BillLimits::default()
        };
        let mut archive = BillArchive::with_limits(io::Cursor::new(bytes), limits)?;
        let mut reader = archive.detail()?;
        let results: Vec<_> = promptly(|| reader.by_ref().collect());
        assert!(
            matches!(
                results.last(),
                Some(Err(BillError::Read(_) | BillError::EntryTooLarge { .. }))
            ),
            "{results:?}"
        );
        assert!(reader.rows.csv.get_ref().delivered <= 64 * 1024);
        assert!(reader.check_totals().is_err());
        Ok(())
    }

    #[test]
    fn an_archive_of_too_many_entries_is_refused() -> TestResult {
        let names: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("{i}.csv")).collect();
        let entries: Vec<(&str, Vec<u8>)> =
            names.iter().map(|n| (n.as_str(), Vec::new())).collect();
        let bytes = zip_of(&entries)?;
        assert_eq!(
            BillArchive::new(io::Cursor::new(bytes)).err(),
            Some(BillError::TooManyEntries {
                entries: MAX_ENTRIES + 1,
                max: MAX_ENTRIES
            })
        );
        Ok(())
    }

    #[test]
    fn a_summary_of_too_many_rows_is_refused() {
        let mut summary = gbk("门店编号,交易订单总笔数\n");
        summary.extend(b"S,1\n".repeat(MAX_SUMMARY_ROWS + 1));
        let result = promptly(|| parse_summary(summary.as_slice()));
        assert_eq!(
            result,
            Err(BillError::TooManySummaryRows {
                line: MAX_SUMMARY_ROWS as u64 + 2,
                max: MAX_SUMMARY_ROWS
            })
        );
    }

    /// The reconciler's one check: read the summary, every row, then ask.
    fn check_whole_bill(bytes: &[u8]) -> Result<(), BillError> {
        let mut archive = BillArchive::new(io::Cursor::new(bytes))?;
        let summary = archive.summary()?;
        let mut reader = archive.detail()?;
        for row in reader.by_ref() {
            std::hint::black_box(row.ok());
        }
        reader.check_bill(summary.as_ref())
    }

    #[test]
    fn a_complete_bill_passes_the_whole_bill_check() -> TestResult {
        let bytes = bill_zip(&detail_text(HEADER, &ROWS, "\r\n"), gbk(SUMMARY))?;
        check_whole_bill(&bytes)?;
        parse_zip(&bytes)?.check_bill()?;
        Ok(())
    }

    #[test]
    fn the_whole_bill_check_fails_on_a_cut_off_detail_file() -> TestResult {
        let text = detail_text(HEADER, &ROWS, "\n");
        // Cut before the end marker, and (footer lost) just after it.
        let end = text.find(DETAIL_END_MARKER).ok_or("no end marker")?;
        let before = &text[..text[..end].rfind('\n').ok_or("no line")? + 1];
        let after = &text[..end + text[end..].find('\n').ok_or("no line")? + 1];
        assert_eq!(
            check_whole_bill(&bill_zip(before, gbk(SUMMARY))?),
            Err(BillError::Truncated)
        );
        assert_eq!(
            check_whole_bill(&bill_zip(after, gbk(SUMMARY))?),
            Err(BillError::NoFooterTotals("交易合计"))
        );
        Ok(())
    }

    #[test]
    fn the_whole_bill_check_fails_when_the_summary_disagrees() -> TestResult {
        let detail = detail_text(HEADER, &ROWS, "\r\n");
        let cases = [
            (",2,1,0.10,0.10,", ",3,1,0.10,0.10,", "交易订单总笔数"),
            (",2,1,0.10,0.10,", ",2,0,0.10,0.10,", "退款订单总笔数"),
            (",2,1,0.10,0.10,", ",2,1,0.10,0.11,", "商家实收（元）"),
        ];
        for (right, wrong, column) in cases {
            let total = SUMMARY.find("合计").ok_or("no total")?;
            let summary = format!(
                "{}{}",
                &SUMMARY[..total],
                SUMMARY[total..].replacen(right, wrong, 1)
            );
            assert_ne!(summary, SUMMARY);
            match check_whole_bill(&bill_zip(&detail, gbk(&summary))?) {
                Err(BillError::SummaryMismatch { what, .. }) => assert_eq!(what, column),
                other => panic!("{column}: expected a summary mismatch, got {other:?}"),
            }
        }
        let no_total: String = SUMMARY
            .lines()
            .filter(|l| !l.starts_with("合计"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            check_whole_bill(&bill_zip(&detail, gbk(&no_total))?),
            Err(BillError::NoSummaryTotal)
        );
        let detail_only = zip_of(&[(DETAIL_NAME, gbk(&detail))])?;
        assert_eq!(check_whole_bill(&detail_only), Err(BillError::NoSummary));
        Ok(())
    }

    /// A row that failed to parse is missing from the counts: the footer says otherwise.
    #[test]
    fn the_whole_bill_check_fails_when_a_row_did_not_parse() -> TestResult {
        let bad = ROWS[1].replace(",0.10,0.10,", ",0.1x,0.10,");
        let detail = detail_text(HEADER, &[ROWS[0], &bad, ROWS[2]], "\n");
        assert!(matches!(
            check_whole_bill(&bill_zip(&detail, gbk(SUMMARY))?),
            Err(BillError::TotalsMismatch { .. })
        ));
        Ok(())
    }
}
