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

use alipay::bill::{BillRecord, RecordKind};
use chrono::NaiveDate;
use domain::order::{Order, OrderStatus, PaymentSource, RefundSource, RefundStatus};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

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
    pub fn of(order: &Order) -> Entry {
        Entry {
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

/// A row put aside until its order is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Aside {
    out_trade_no: Box<str>,
    trade_no: Box<str>,
    refund: bool,
    out_request_no: Option<Box<str>>,
    fen: i64,
    line: u64,
    finished_at: chrono::DateTime<chrono::Utc>,
}

impl Aside {
    fn of(record: &BillRecord) -> Aside {
        Aside {
            out_trade_no: record.out_trade_no.as_str().into(),
            trade_no: record.trade_no.as_str().into(),
            refund: record.kind == RecordKind::Refund,
            out_request_no: record.refund_request_no.as_deref().map(Into::into),
            fen: record.amount.get().saturating_abs(),
            line: record.line,
            finished_at: record.finished_at,
        }
    }
}

/// The matching of one day's bill.
#[derive(Debug)]
pub struct Matcher {
    day: NaiveDate,
    entries: HashMap<Box<str>, Entry>,
    aside: Vec<Aside>,
    classes: BTreeMap<Class, Tally>,
    bill: Totals,
    findings: Vec<Finding>,
}

impl Matcher {
    pub fn new(day: NaiveDate) -> Matcher {
        Matcher {
            day,
            entries: HashMap::new(),
            aside: Vec::new(),
            classes: Class::ALL.iter().map(|c| (*c, Tally::default())).collect(),
            bill: Totals::default(),
            findings: Vec::new(),
        }
    }

    pub fn day(&self) -> NaiveDate {
        self.day
    }

    /// Adds an order of the ledger (the day's orders, then the ones looked up).
    pub fn add_order(&mut self, order: &Order) {
        self.entries
            .entry(order.out_trade_no().as_str().into())
            .or_insert_with(|| Entry::of(order));
    }

    pub fn orders(&self) -> usize {
        self.entries.len()
    }

    /// Classifies a row now, or puts it aside when its order is not in the ledger.
    pub fn row(&mut self, record: &BillRecord) {
        let aside = Aside::of(record);
        match record.kind {
            RecordKind::Payment => self.bill.payments.add(aside.fen),
            RecordKind::Refund => self.bill.refunds.add(aside.fen),
            // Not a payment or a refund of a face-to-face trade: not ours to match.
            RecordKind::Other(_) => return,
        }
        if self.entries.contains_key(&aside.out_trade_no) {
            self.classify(&aside);
        } else {
            self.aside.push(aside);
        }
    }

    /// The order numbers of the rows put aside (to look them up).
    pub fn aside_numbers(&self) -> Vec<String> {
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
        for aside in std::mem::take(&mut self.aside) {
            self.classify(&aside);
        }
    }

    fn classify(&mut self, row: &Aside) {
        let finding = |class: Class, entry: Option<&Entry>, ledger_fen: Option<i64>| Finding {
            class,
            out_trade_no: row.out_trade_no.to_string(),
            trade_no: Some(row.trade_no.to_string()),
            out_request_no: row.out_request_no.as_deref().map(str::to_owned),
            bill_fen: Some(row.fen),
            ledger_fen,
            status_here: entry.map(|e| e.status),
            line: Some(row.line),
            finished_at: Some(row.finished_at.to_rfc3339()),
        };
        let Some(entry) = self.entries.get_mut(&row.out_trade_no) else {
            self.record(finding(Class::UnknownOutTradeNo, None, None), row.fen);
            return;
        };
        let class = if row.refund {
            refund_class(entry, row)
        } else {
            entry.seen = true;
            payment_class(entry, row)
        };
        let ledger_fen = if row.refund {
            row.out_request_no
                .as_deref()
                .and_then(|no| entry.refunds.iter().find(|r| &*r.out_request_no == no))
                .map(|r| r.amount_fen)
        } else {
            Some(entry.amount_fen)
        };
        let finding = finding(class, Some(entry), ledger_fen);
        self.record(finding, row.fen);
    }

    fn record(&mut self, finding: Finding, fen: i64) {
        if let Some(tally) = self.classes.get_mut(&finding.class) {
            tally.add(fen);
        }
        if finding.class.is_discrepancy() {
            self.findings.push(finding);
        }
    }

    /// Ends the matching: what the ledger has for the day and the bill does not.
    pub fn finish(mut self) -> Matched {
        let mut ledger = Totals::default();
        let mut missing = Vec::new();
        for (no, entry) in &self.entries {
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
            self.record(finding, fen);
        }
        Matched {
            day: self.day,
            classes: self.classes,
            bill: self.bill,
            ledger,
            findings: self.findings,
        }
    }
}

fn payment_class(entry: &Entry, row: &Aside) -> Class {
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

fn refund_class(entry: &mut Entry, row: &Aside) -> Class {
    let cancelled_in_full = entry.status == OrderStatus::Refunded
        && entry.refunds.is_empty()
        && entry.refunded_fen == row.fen;
    let named = row
        .out_request_no
        .as_deref()
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
