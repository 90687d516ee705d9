//! Matching a day's bill against the ledger, row by row, in bounded memory: the orders are
//! kept as compact [`Entry`]s (a few dozen bytes each, not whole orders), every row is
//! classified as it is read, and only discrepancies are kept as [`Finding`]s. Rows whose order
//! is not among the day's orders (created on another day: a payment across midnight, a refund
//! of an older order) are put aside and classified once their orders are looked up.
//!
//! | class | when | what happens |
//! | --- | --- | --- |
//! | `matched` | the row agrees with the order | nothing |
//! | `paid_there_not_here` | paid at Alipay, open here | healed: PAID (source `reconciliation`) |
//! | `status_mismatch` | paid at Alipay, CLOSED or FAILED here | `paid_after_close` anomaly |
//! | `amount_mismatch` | paid at Alipay for another amount | `amount_mismatch` anomaly |
//! | `paid_here_missing_from_bill` | paid here on the day, no payment row | `missing_from_bill` anomaly |
//! | `refund_pending_here` | refunded at Alipay, PENDING here | healed: SUCCEEDED (source `reconciliation`) |
//! | `refund_there_none_here` | a refund no refund here accounts for | `unrequested_refund` anomaly |
//! | `refund_amount_mismatch` | a refund of another amount than recorded | `refund_mismatch` anomaly |
//! | `refund_here_missing_from_bill` | refunded here on the day, no refund row | `missing_from_bill` anomaly |
//! | `unknown_out_trade_no` | no such order here | `unknown_order` anomaly |

use alipay::bill::{BillRecord, BillRow, RecordKind};
use chrono::NaiveDate;
use domain::order::{Order, OrderStatus, PaymentSource, RefundSource, RefundStatus};
use hashbrown::HashTable;
use serde::Serialize;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::ops::Range;

/// The ledger: entries in the order they were added (the day index's order, creation time,
/// which is nearly the bill's order of completion time), their order numbers side by side in
/// one string in that order, and an index of positions by order number. Consecutive rows so
/// find their entries and numbers next to each other in memory, where a std `HashMap` would
/// hold them in buckets scattered by hash, at up to twice their number, each number in an
/// allocation of its own; hashbrown's `HashTable` (the table under std's map) holds only the
/// 4-byte positions. Hashed with foldhash, randomly seeded per ledger as std's SipHash is, at
/// a fraction of its cost per lookup (a bill is a million lookups).
#[derive(Debug, Default)]
struct Ledger {
    entries: Vec<Entry>,
    numbers: String,
    index: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl Ledger {
    fn number(&self, entry: &Entry) -> &str {
        self.numbers.get(entry.number.clone()).unwrap_or_default()
    }

    fn position(&self, out_trade_no: &str) -> Option<usize> {
        let hash = self.hasher.hash_one(out_trade_no);
        let found = self.index.find(hash, |&at| {
            self.entries
                .get(at as usize)
                .is_some_and(|entry| self.number(entry) == out_trade_no)
        })?;
        Some(*found as usize)
    }

    fn find_mut(&mut self, out_trade_no: &str) -> Option<&mut Entry> {
        let at = self.position(out_trade_no)?;
        self.entries.get_mut(at)
    }

    /// Adds the order's entry unless it is there already.
    fn add(&mut self, order: &Order) {
        let no = order.out_trade_no().as_str();
        if self.position(no).is_some() {
            return;
        }
        // Past u32::MAX bytes of order numbers (tens of millions of orders in a day) the
        // positions would not fit; a Lambda could not hold such a ledger anyway.
        let (Ok(at), Ok(start), Ok(end)) = (
            u32::try_from(self.entries.len()),
            u32::try_from(self.numbers.len()),
            u32::try_from(self.numbers.len() + no.len()),
        ) else {
            return;
        };
        self.numbers.push_str(no);
        self.entries
            .push(Entry::of(order, start as usize..end as usize));
        let Ledger {
            entries,
            numbers,
            index,
            hasher,
        } = self;
        index.insert_unique(hasher.hash_one(no), at, |&at| {
            let number = entries
                .get(at as usize)
                .and_then(|entry| numbers.get(entry.number.clone()));
            hasher.hash_one(number.unwrap_or_default())
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Matched,
    PaidThereNotHere,
    StatusMismatch,
    AmountMismatch,
    PaidHereMissingFromBill,
    RefundPendingHere,
    RefundThereNoneHere,
    RefundAmountMismatch,
    RefundHereMissingFromBill,
    UnknownOutTradeNo,
}

impl Class {
    pub const ALL: [Class; 10] = [
        Class::Matched,
        Class::PaidThereNotHere,
        Class::StatusMismatch,
        Class::AmountMismatch,
        Class::PaidHereMissingFromBill,
        Class::RefundPendingHere,
        Class::RefundThereNoneHere,
        Class::RefundAmountMismatch,
        Class::RefundHereMissingFromBill,
        Class::UnknownOutTradeNo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Matched => "matched",
            Class::PaidThereNotHere => "paid_there_not_here",
            Class::StatusMismatch => "status_mismatch",
            Class::AmountMismatch => "amount_mismatch",
            Class::PaidHereMissingFromBill => "paid_here_missing_from_bill",
            Class::RefundPendingHere => "refund_pending_here",
            Class::RefundThereNoneHere => "refund_there_none_here",
            Class::RefundAmountMismatch => "refund_amount_mismatch",
            Class::RefundHereMissingFromBill => "refund_here_missing_from_bill",
            Class::UnknownOutTradeNo => "unknown_out_trade_no",
        }
    }

    /// Everything but `matched` is a discrepancy (healed ones included: the ledger was wrong).
    pub fn is_discrepancy(self) -> bool {
        self != Class::Matched
    }
}

/// A refund of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRefund {
    pub out_request_no: Box<str>,
    pub amount_fen: i64,
    pub status: RefundStatus,
    pub refunded_day: Option<NaiveDate>,
    /// Settled by a reconciliation (so a second run classifies it as the first did).
    pub by_reconciliation: bool,
    seen: bool,
}

/// What matching needs of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where its order number is in the ledger's numbers.
    number: Range<usize>,
    pub status: OrderStatus,
    pub amount_fen: i64,
    pub refunded_fen: i64,
    pub paid_day: Option<NaiveDate>,
    /// Marked PAID by a reconciliation (so a second run classifies it as the first did).
    pub paid_by_reconciliation: bool,
    pub refunds: Vec<EntryRefund>,
    seen: bool,
}

impl Entry {
    fn of(order: &Order, number: Range<usize>) -> Entry {
        Entry {
            number,
            status: order.status(),
            amount_fen: order.amount().fen().get(),
            refunded_fen: order.refunded_fen(),
            paid_day: order.paid_at().map(domain::beijing_day),
            paid_by_reconciliation: order.payment_source() == Some(PaymentSource::Reconciliation),
            refunds: order
                .refunds()
                .iter()
                .map(|r| EntryRefund {
                    out_request_no: r.out_request_no().as_str().into(),
                    amount_fen: r.amount_fen(),
                    status: r.status(),
                    refunded_day: r.refunded_at().map(domain::beijing_day),
                    by_reconciliation: r.source() == Some(RefundSource::Reconciliation),
                    seen: false,
                })
                .collect(),
            seen: false,
        }
    }

    fn is_paid(&self) -> bool {
        matches!(
            self.status,
            OrderStatus::Paid | OrderStatus::PartiallyRefunded | OrderStatus::Refunded
        )
    }
}

/// One discrepancy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub class: Class,
    pub out_trade_no: String,
    pub trade_no: Option<String>,
    pub out_request_no: Option<String>,
    /// The row's amount (positive, also for refunds), if a row shows it.
    pub bill_fen: Option<i64>,
    /// The ledger's amount (the order's, or the refund's), if the ledger has it.
    pub ledger_fen: Option<i64>,
    pub status_here: Option<OrderStatus>,
    /// The row's line in the detail file.
    pub line: Option<u64>,
    /// When Alipay paid or refunded (the row's `完成时间`), RFC 3339.
    pub finished_at: Option<String>,
}

/// Count and fen per class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub count: u64,
    pub fen: i64,
}

impl Tally {
    fn add(&mut self, fen: i64) {
        self.count += 1;
        self.fen = self.fen.saturating_add(fen);
    }
}

/// Payments and refunds, counted and summed in fen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub payments: Tally,
    pub refunds: Tally,
}

/// What a bill row is, for matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Payment,
    Refund,
    /// Not a payment or a refund of a face-to-face trade: not ours to match.
    Other,
}

impl From<&RecordKind> for RowKind {
    fn from(kind: &RecordKind) -> RowKind {
        match kind {
            RecordKind::Payment => RowKind::Payment,
            RecordKind::Refund => RowKind::Refund,
            RecordKind::Other(_) => RowKind::Other,
        }
    }
}

/// A bill row as matching needs it, borrowed from the parser's row (rows that match
/// allocate nothing).
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub out_trade_no: &'a str,
    pub trade_no: &'a str,
    pub kind: RowKind,
    pub out_request_no: Option<&'a str>,
    /// The row's amount in fen, positive also for refunds.
    pub fen: i64,
    pub line: u64,
    pub finished_at: chrono::DateTime<chrono::Utc>,
}

impl<'a> From<&'a BillRow<'_>> for Row<'a> {
    fn from(row: &'a BillRow<'_>) -> Row<'a> {
        Row {
            out_trade_no: &row.out_trade_no,
            trade_no: &row.trade_no,
            kind: RowKind::from(&row.kind),
            out_request_no: row.refund_request_no.as_deref(),
            fen: row.amount.get().saturating_abs(),
            line: row.line,
            finished_at: row.finished_at,
        }
    }
}

impl<'a> From<&'a BillRecord> for Row<'a> {
    fn from(record: &'a BillRecord) -> Row<'a> {
        Row {
            out_trade_no: &record.out_trade_no,
            trade_no: &record.trade_no,
            kind: RowKind::from(&record.kind),
            out_request_no: record.refund_request_no.as_deref(),
            fen: record.amount.get().saturating_abs(),
            line: record.line,
            finished_at: record.finished_at,
        }
    }
}

/// A row put aside until its order is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Aside {
    out_trade_no: Box<str>,
    trade_no: Box<str>,
    kind: RowKind,
    out_request_no: Option<Box<str>>,
    fen: i64,
    line: u64,
    finished_at: chrono::DateTime<chrono::Utc>,
}

impl Aside {
    fn of(row: Row<'_>) -> Aside {
        Aside {
            out_trade_no: row.out_trade_no.into(),
            trade_no: row.trade_no.into(),
            kind: row.kind,
            out_request_no: row.out_request_no.map(Into::into),
            fen: row.fen,
            line: row.line,
            finished_at: row.finished_at,
        }
    }

    fn row(&self) -> Row<'_> {
        Row {
            out_trade_no: &self.out_trade_no,
            trade_no: &self.trade_no,
            kind: self.kind,
            out_request_no: self.out_request_no.as_deref(),
            fen: self.fen,
            line: self.line,
            finished_at: self.finished_at,
        }
    }
}

/// How many rows are looked up together. A lookup is a hash table probe in memory the size of
/// the day (tens of MB): one at a time, each row waits for its cache misses; a batch of
/// independent lookups lets the processor overlap them.
const BATCH: usize = 64;

/// A row waiting in the batch, its text in the batch's buffer.
#[derive(Debug, Clone)]
struct Waiting {
    out_trade_no: Range<usize>,
    trade_no: Range<usize>,
    out_request_no: Option<Range<usize>>,
    kind: RowKind,
    fen: i64,
    line: u64,
    finished_at: chrono::DateTime<chrono::Utc>,
}

/// Rows read but not yet classified, in the bill's order (buffers reused: no allocation per
/// row once warm).
#[derive(Debug, Default)]
struct Batch {
    text: String,
    rows: Vec<Waiting>,
    positions: Vec<Option<usize>>,
}

impl Batch {
    fn keep(&mut self, text: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(text);
        start..self.text.len()
    }

    fn push(&mut self, row: Row<'_>) {
        let waiting = Waiting {
            out_trade_no: self.keep(row.out_trade_no),
            trade_no: self.keep(row.trade_no),
            out_request_no: row.out_request_no.map(|no| self.keep(no)),
            kind: row.kind,
            fen: row.fen,
            line: row.line,
            finished_at: row.finished_at,
        };
        self.rows.push(waiting);
    }

    fn text(&self, range: &Range<usize>) -> &str {
        self.text.get(range.clone()).unwrap_or_default()
    }

    fn row(&self, waiting: &Waiting) -> Row<'_> {
        Row {
            out_trade_no: self.text(&waiting.out_trade_no),
            trade_no: self.text(&waiting.trade_no),
            kind: waiting.kind,
            out_request_no: waiting.out_request_no.as_ref().map(|r| self.text(r)),
            fen: waiting.fen,
            line: waiting.line,
            finished_at: waiting.finished_at,
        }
    }
}

/// The counts per class and the discrepancies found.
#[derive(Debug)]
struct Tallies {
    /// Indexed by `Class as usize` (the order of [`Class::ALL`]).
    classes: [Tally; Class::ALL.len()],
    findings: Vec<Finding>,
}

impl Tallies {
    fn add(&mut self, row: &Row<'_>, judged: Judged) {
        let Judged {
            class,
            status,
            ledger_fen,
        } = judged;
        self.classes[class as usize].add(row.fen);
        // Only a discrepancy is kept (and costs allocations): most rows match.
        if class.is_discrepancy() {
            self.findings.push(Finding {
                class,
                out_trade_no: row.out_trade_no.to_owned(),
                trade_no: Some(row.trade_no.to_owned()),
                out_request_no: row.out_request_no.map(str::to_owned),
                bill_fen: Some(row.fen),
                ledger_fen,
                status_here: status,
                line: Some(row.line),
                finished_at: Some(row.finished_at.to_rfc3339()),
            });
        }
    }

    fn record(&mut self, finding: Finding, fen: i64) {
        self.classes[finding.class as usize].add(fen);
        if finding.class.is_discrepancy() {
            self.findings.push(finding);
        }
    }
}

/// The matching of one day's bill.
#[derive(Debug)]
pub struct Matcher {
    day: NaiveDate,
    entries: Ledger,
    batch: Batch,
    aside: Vec<Aside>,
    tallies: Tallies,
    bill: Totals,
}

impl Matcher {
    pub fn new(day: NaiveDate) -> Matcher {
        Matcher {
            day,
            entries: Ledger::default(),
            batch: Batch::default(),
            aside: Vec::new(),
            tallies: Tallies {
                classes: [Tally::default(); Class::ALL.len()],
                findings: Vec::new(),
            },
            bill: Totals::default(),
        }
    }

    pub fn day(&self) -> NaiveDate {
        self.day
    }

    /// Adds an order of the ledger (the day's orders, then the ones looked up).
    pub fn add_order(&mut self, order: &Order) {
        // The rows read so far are classified against the ledger they were read with.
        self.flush();
        self.entries.add(order);
    }

    pub fn orders(&self) -> usize {
        self.entries.entries.len()
    }

    /// Classifies a row (in a batch of [`BATCH`], in the bill's order), or puts it aside when
    /// its order is not in the ledger.
    pub fn row(&mut self, row: Row<'_>) {
        match row.kind {
            RowKind::Payment => self.bill.payments.add(row.fen),
            RowKind::Refund => self.bill.refunds.add(row.fen),
            RowKind::Other => return,
        }
        self.batch.push(row);
        if self.batch.rows.len() >= BATCH {
            self.flush();
        }
    }

    /// Classifies the rows of the batch: first every lookup, then every row.
    fn flush(&mut self) {
        let Matcher {
            entries,
            batch,
            aside,
            tallies,
            ..
        } = self;
        batch.positions.clear();
        for waiting in &batch.rows {
            let position = entries.position(batch.text(&waiting.out_trade_no));
            batch.positions.push(position);
        }
        for (waiting, position) in batch.rows.iter().zip(&batch.positions) {
            let row = batch.row(waiting);
            match position.and_then(|at| entries.entries.get_mut(at)) {
                Some(entry) => tallies.add(&row, judge(entry, &row)),
                None => aside.push(Aside::of(row)),
            }
        }
        batch.rows.clear();
        batch.text.clear();
    }

    /// The order numbers of the rows put aside (to look them up).
    pub fn aside_numbers(&mut self) -> Vec<String> {
        self.flush();
        let mut numbers: Vec<String> = self
            .aside
            .iter()
            .map(|a| a.out_trade_no.to_string())
            .collect();
        numbers.sort();
        numbers.dedup();
        numbers
    }

    /// Classifies the rows put aside, once the orders found for them were added.
    pub fn classify_aside(&mut self) {
        self.flush();
        for aside in std::mem::take(&mut self.aside) {
            self.classify(aside.row());
        }
    }

    fn classify(&mut self, row: Row<'_>) {
        let judged = match self.entries.find_mut(row.out_trade_no) {
            None => Judged {
                class: Class::UnknownOutTradeNo,
                status: None,
                ledger_fen: None,
            },
            Some(entry) => judge(entry, &row),
        };
        self.tallies.add(&row, judged);
    }

    /// Ends the matching: what the ledger has for the day and the bill does not.
    pub fn finish(mut self) -> Matched {
        self.flush();
        let mut ledger = Totals::default();
        let mut missing = Vec::new();
        for entry in &self.entries.entries {
            let no = self.entries.number(entry);
            if entry.is_paid() && entry.paid_day == Some(self.day) {
                ledger.payments.add(entry.amount_fen);
                if !entry.seen {
                    missing.push(Finding {
                        class: Class::PaidHereMissingFromBill,
                        out_trade_no: no.to_string(),
                        trade_no: None,
                        out_request_no: None,
                        bill_fen: None,
                        ledger_fen: Some(entry.amount_fen),
                        status_here: Some(entry.status),
                        line: None,
                        finished_at: None,
                    });
                }
            }
            for refund in &entry.refunds {
                if refund.status == RefundStatus::Succeeded && refund.refunded_day == Some(self.day)
                {
                    ledger.refunds.add(refund.amount_fen);
                    if !refund.seen {
                        missing.push(Finding {
                            class: Class::RefundHereMissingFromBill,
                            out_trade_no: no.to_string(),
                            trade_no: None,
                            out_request_no: Some(refund.out_request_no.to_string()),
                            bill_fen: None,
                            ledger_fen: Some(refund.amount_fen),
                            status_here: Some(entry.status),
                            line: None,
                            finished_at: None,
                        });
                    }
                }
            }
        }
        // A stable order: the same bill gives the same report.
        missing.sort_by(|a, b| {
            (&a.out_trade_no, &a.out_request_no).cmp(&(&b.out_trade_no, &b.out_request_no))
        });
        for finding in missing {
            let fen = finding.ledger_fen.unwrap_or(0);
            self.tallies.record(finding, fen);
        }
        Matched {
            day: self.day,
            classes: Class::ALL.into_iter().zip(self.tallies.classes).collect(),
            bill: self.bill,
            ledger,
            findings: self.tallies.findings,
        }
    }
}

/// A row's class, and what the ledger has against it.
struct Judged {
    class: Class,
    status: Option<OrderStatus>,
    ledger_fen: Option<i64>,
}

fn judge(entry: &mut Entry, row: &Row<'_>) -> Judged {
    let refund = row.kind == RowKind::Refund;
    let class = if refund {
        refund_class(entry, row)
    } else {
        entry.seen = true;
        payment_class(entry, row)
    };
    let ledger_fen = if refund {
        row.out_request_no
            .and_then(|no| entry.refunds.iter().find(|r| &*r.out_request_no == no))
            .map(|r| r.amount_fen)
    } else {
        Some(entry.amount_fen)
    };
    Judged {
        class,
        status: Some(entry.status),
        ledger_fen,
    }
}

fn payment_class(entry: &Entry, row: &Row<'_>) -> Class {
    if row.fen != entry.amount_fen {
        return Class::AmountMismatch;
    }
    match entry.status {
        OrderStatus::Creating | OrderStatus::Pending => Class::PaidThereNotHere,
        OrderStatus::Closed | OrderStatus::Failed => Class::StatusMismatch,
        _ if entry.paid_by_reconciliation => Class::PaidThereNotHere,
        _ => Class::Matched,
    }
}

fn refund_class(entry: &mut Entry, row: &Row<'_>) -> Class {
    let cancelled_in_full = entry.status == OrderStatus::Refunded
        && entry.refunds.is_empty()
        && entry.refunded_fen == row.fen;
    let named = row
        .out_request_no
        .and_then(|no| entry.refunds.iter_mut().find(|r| &*r.out_request_no == no));
    match named {
        Some(refund) => {
            refund.seen = true;
            if refund.amount_fen != row.fen {
                Class::RefundAmountMismatch
            } else if refund.status == RefundStatus::Pending || refund.by_reconciliation {
                Class::RefundPendingHere
            } else if refund.status == RefundStatus::Failed {
                Class::RefundThereNoneHere
            } else {
                Class::Matched
            }
        }
        // A cancel that refunded the whole payment has no refund record: its row is the
        // order's whole amount.
        None if cancelled_in_full => Class::Matched,
        None => Class::RefundThereNoneHere,
    }
}

/// The outcome of matching one bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub day: NaiveDate,
    pub classes: BTreeMap<Class, Tally>,
    /// What the bill's payment and refund rows add up to.
    pub bill: Totals,
    /// What the ledger has for the day: payments paid and refunds refunded on it.
    pub ledger: Totals,
    /// Every discrepancy, in the bill's order, then the ledger's leftovers.
    pub findings: Vec<Finding>,
}

impl Matched {
    pub fn discrepancies(&self) -> u64 {
        self.classes
            .iter()
            .filter(|(class, _)| class.is_discrepancy())
            .map(|(_, tally)| tally.count)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alipay::Fen;
    use chrono::{DateTime, TimeZone, Utc};
    use domain::order::{Buyer, NewOrder, NewRefund, Transition};
    use domain::{OrderAmount, OutRequestNo, OutTradeNo, Scene};

    /// 2024-03-05 10:00 Beijing.
    fn at(hours: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 5, 2, 0, 0)
            .single()
            .unwrap_or_default()
            + chrono::Duration::hours(hours)
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, 5).unwrap_or_default()
    }

    fn next(transition: Result<Transition, impl std::fmt::Debug>) -> Order {
        transition
            .map(|t| t.next)
            .unwrap_or_else(|e| unreachable!("{e:?}"))
    }

    fn order(no: &str, fen: i64) -> Order {
        let new = NewOrder {
            out_trade_no: OutTradeNo::parse(no).unwrap_or_else(|e| unreachable!("{e}")),
            amount: OrderAmount::from_fen(fen).unwrap_or_else(|_| unreachable!()),
            subject: "tea".into(),
            scene: Scene::Qr,
            store_id: None,
            operator_id: None,
            terminal_id: None,
            request_hash: "h".into(),
            expires_at: at(1),
        };
        Order::claim(new, at(0), chrono::Duration::seconds(15)).0
    }

    fn paid(no: &str, fen: i64, source: PaymentSource) -> Order {
        next(order(no, fen).paid(format!("T_{no}"), at(0), source, Buyer::default(), at(0)))
    }

    fn refunded(order: Order, request: &str, fen: i64, settle: bool) -> Order {
        let ask = NewRefund {
            out_request_no: OutRequestNo::parse(request).unwrap_or_else(|e| unreachable!("{e}")),
            amount_fen: fen,
            reason: None,
            store_id: None,
            operator_id: None,
            terminal_id: None,
            request_hash: "r".into(),
        };
        let claimed = next(order.claim_refund(ask, at(0), chrono::Duration::seconds(15)));
        if !settle {
            return claimed;
        }
        let no = OutRequestNo::parse(request).unwrap_or_else(|e| unreachable!("{e}"));
        next(claimed.refund_succeeded(&no, at(1), RefundSource::RefundResponse, at(1)))
    }

    fn row(no: &str, kind: RecordKind, fen: i64, request: Option<&str>) -> BillRecord {
        BillRecord {
            line: 6,
            trade_no: format!("T_{no}"),
            out_trade_no: no.to_owned(),
            kind,
            subject: "tea".into(),
            created_at: at(0),
            finished_at: at(1),
            store_id: None,
            store_name: None,
            operator_id: None,
            terminal_id: None,
            buyer_account: None,
            amount: Fen::new(fen),
            receipt: Fen::new(fen),
            merchant_discount: Fen::ZERO,
            refund_request_no: request.map(str::to_owned),
            fee: Fen::ZERO,
            remark: None,
        }
    }

    fn count(matched: &Matched, class: Class) -> u64 {
        matched.classes.get(&class).map_or(0, |t| t.count)
    }

    #[test]
    fn every_class_of_payment_and_refund_is_told_apart() {
        let mut matcher = Matcher::new(day());
        let closed = next(order("CLOSED", 100).closed("expired", at(0)));
        let cancelled = next(
            paid("CANCELLED", 100, PaymentSource::PayResponse).refunded_by_cancel(None, at(1)),
        );
        for order in [
            paid("OK", 100, PaymentSource::PayResponse),
            paid("OTHER_AMOUNT", 100, PaymentSource::Query),
            order("OPEN", 100),
            closed,
            paid("UNBILLED", 100, PaymentSource::Notification),
            refunded(paid("REFUNDED", 100, PaymentSource::Query), "R1", 30, true),
            refunded(
                paid("PENDING_REFUND", 100, PaymentSource::Query),
                "R1",
                30,
                false,
            ),
            refunded(
                paid("REFUND_DIFFERS", 100, PaymentSource::Query),
                "R1",
                30,
                true,
            ),
            refunded(
                paid("REFUND_UNBILLED", 100, PaymentSource::Query),
                "R1",
                30,
                true,
            ),
            paid("PORTAL", 100, PaymentSource::Query),
            cancelled,
        ] {
            matcher.add_order(&order);
        }
        for record in [
            row("OK", RecordKind::Payment, 100, None),
            row("OTHER_AMOUNT", RecordKind::Payment, 99, None),
            row("OPEN", RecordKind::Payment, 100, None),
            row("CLOSED", RecordKind::Payment, 100, None),
            row("REFUNDED", RecordKind::Payment, 100, None),
            row("REFUNDED", RecordKind::Refund, -30, Some("R1")),
            row("PENDING_REFUND", RecordKind::Payment, 100, None),
            row("PENDING_REFUND", RecordKind::Refund, -30, Some("R1")),
            row("REFUND_DIFFERS", RecordKind::Payment, 100, None),
            row("REFUND_DIFFERS", RecordKind::Refund, -31, Some("R1")),
            row("REFUND_UNBILLED", RecordKind::Payment, 100, None),
            row("PORTAL", RecordKind::Payment, 100, None),
            row("PORTAL", RecordKind::Refund, -10, Some("P1")),
            row("CANCELLED", RecordKind::Payment, 100, None),
            row("CANCELLED", RecordKind::Refund, -100, None),
            row("NOBODY", RecordKind::Payment, 100, None),
            row("OK", RecordKind::Other("转账".into()), 5, None),
        ] {
            matcher.row(Row::from(&record));
        }
        assert_eq!(matcher.aside_numbers(), vec!["NOBODY".to_owned()]);
        matcher.classify_aside();
        let matched = matcher.finish();
        assert_eq!(
            count(&matched, Class::Matched),
            7 + 1 + 1,
            "payments, R1, the cancel"
        );
        for (class, n) in [
            (Class::AmountMismatch, 1),
            (Class::PaidThereNotHere, 1),
            (Class::StatusMismatch, 1),
            (Class::PaidHereMissingFromBill, 1),
            (Class::RefundPendingHere, 1),
            (Class::RefundAmountMismatch, 1),
            (Class::RefundHereMissingFromBill, 1),
            (Class::RefundThereNoneHere, 1),
            (Class::UnknownOutTradeNo, 1),
        ] {
            assert_eq!(count(&matched, class), n, "{class:?}");
        }
        assert_eq!(matched.discrepancies(), 9);
        assert_eq!(matched.findings.len(), 9);
        assert_eq!(
            matched.bill.payments.count, 11,
            "other kinds are not counted"
        );
        assert_eq!(matched.bill.refunds.count, 5);
        assert_eq!(matched.bill.refunds.fen, 30 + 30 + 31 + 10 + 100);
    }

    /// Rows are classified in batches: across batch boundaries, and with an order's payment
    /// and refund in one batch, every row is classified once, in the bill's order.
    #[test]
    fn rows_over_many_batches_are_each_classified_once_in_order() {
        let mut matcher = Matcher::new(day());
        let orders = 3 * BATCH + 5;
        for i in 0..orders {
            let no = format!("N{i:04}");
            let order = paid(&no, 100, PaymentSource::Query);
            if i % 7 == 0 {
                matcher.add_order(&refunded(order, "R1", 40, true));
            } else {
                matcher.add_order(&order);
            }
        }
        let mut rows = Vec::new();
        for i in 0..orders {
            let no = format!("N{i:04}");
            rows.push(row(&no, RecordKind::Payment, 100, None));
            if i % 7 == 0 {
                rows.push(row(&no, RecordKind::Refund, -40, Some("R1")));
            }
            if i % 50 == 0 {
                rows.push(row(&format!("X{i:04}"), RecordKind::Payment, 1, None));
            }
        }
        // An amount mismatch on the last row: the findings keep the bill's order.
        rows.push(row("N0001", RecordKind::Refund, -5, Some("R9")));
        for record in &rows {
            matcher.row(Row::from(record));
        }
        let unknown: Vec<String> = (0..orders)
            .filter(|i| i % 50 == 0)
            .map(|i| format!("X{i:04}"))
            .collect();
        assert_eq!(matcher.aside_numbers(), unknown);
        matcher.classify_aside();
        let matched = matcher.finish();
        let refunds = (0..orders).filter(|i| i % 7 == 0).count() as u64;
        assert_eq!(count(&matched, Class::Matched), orders as u64 + refunds);
        assert_eq!(
            count(&matched, Class::UnknownOutTradeNo),
            unknown.len() as u64
        );
        assert_eq!(count(&matched, Class::RefundThereNoneHere), 1);
        assert_eq!(matched.discrepancies(), unknown.len() as u64 + 1);
        assert_eq!(matched.bill.payments.count, (orders + unknown.len()) as u64);
        assert_eq!(matched.bill.refunds.count, refunds + 1);
        // The row put aside come after the rows classified in the bill's order.
        let classes: Vec<Class> = matched.findings.iter().map(|f| f.class).collect();
        let mut expected = vec![Class::RefundThereNoneHere];
        expected.extend(std::iter::repeat_n(Class::UnknownOutTradeNo, unknown.len()));
        assert_eq!(classes, expected);
    }

    /// A row read before its order was added is put aside, and classified once it is.
    #[test]
    fn an_order_added_after_its_row_is_looked_up_aside() {
        let mut matcher = Matcher::new(day());
        matcher.row(Row::from(&row("LATE", RecordKind::Payment, 100, None)));
        matcher.add_order(&paid("LATE", 100, PaymentSource::Query));
        assert_eq!(matcher.aside_numbers(), vec!["LATE".to_owned()]);
        matcher.classify_aside();
        let matched = matcher.finish();
        assert_eq!(count(&matched, Class::Matched), 1);
        assert_eq!(matched.discrepancies(), 0);
    }

    #[test]
    fn classes_are_counted_in_the_order_of_all() {
        for (index, class) in Class::ALL.into_iter().enumerate() {
            assert_eq!(class as usize, index, "{class:?}");
        }
    }

    #[test]
    fn a_second_run_after_healing_classifies_as_the_first() {
        let healed = paid("OPEN", 100, PaymentSource::Reconciliation);
        let mut matcher = Matcher::new(day());
        matcher.add_order(&healed);
        matcher.row(Row::from(&row("OPEN", RecordKind::Payment, 100, None)));
        assert_eq!(count(&matcher.finish(), Class::PaidThereNotHere), 1);
    }

    #[test]
    fn what_was_paid_on_another_day_is_not_missing_from_this_bill() {
        let mut matcher = Matcher::new(day() - chrono::Duration::days(1));
        matcher.add_order(&paid("YESTERDAY", 100, PaymentSource::Query));
        let matched = matcher.finish();
        assert_eq!(matched.discrepancies(), 0);
        assert_eq!(matched.ledger.payments.count, 0);
    }
}
