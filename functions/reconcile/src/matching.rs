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

/// A row as matching needs it, borrowed from the record (rows that match allocate nothing).
#[derive(Debug, Clone, Copy)]
struct Row<'a> {
    out_trade_no: &'a str,
    trade_no: &'a str,
    refund: bool,
    out_request_no: Option<&'a str>,
    fen: i64,
    line: u64,
    finished_at: chrono::DateTime<chrono::Utc>,
}

impl<'a> Row<'a> {
    fn of(record: &'a BillRecord) -> Row<'a> {
        Row {
            out_trade_no: &record.out_trade_no,
            trade_no: &record.trade_no,
            refund: record.kind == RecordKind::Refund,
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
    refund: bool,
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
            refund: row.refund,
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
            refund: self.refund,
            out_request_no: self.out_request_no.as_deref(),
            fen: self.fen,
            line: self.line,
            finished_at: self.finished_at,
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
        let row = Row::of(record);
        match record.kind {
            RecordKind::Payment => self.bill.payments.add(row.fen),
            RecordKind::Refund => self.bill.refunds.add(row.fen),
            // Not a payment or a refund of a face-to-face trade: not ours to match.
            RecordKind::Other(_) => return,
        }
        if self.entries.contains_key(row.out_trade_no) {
            self.classify(row);
        } else {
            self.aside.push(Aside::of(row));
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
            self.classify(aside.row());
        }
    }

    fn classify(&mut self, row: Row<'_>) {
        let (class, status, ledger_fen) = match self.entries.get_mut(row.out_trade_no) {
            None => (Class::UnknownOutTradeNo, None, None),
            Some(entry) => {
                let class = if row.refund {
                    refund_class(entry, &row)
                } else {
                    entry.seen = true;
                    payment_class(entry, &row)
                };
                let ledger_fen = if row.refund {
                    row.out_request_no
                        .and_then(|no| entry.refunds.iter().find(|r| &*r.out_request_no == no))
                        .map(|r| r.amount_fen)
                } else {
                    Some(entry.amount_fen)
                };
                (class, Some(entry.status), ledger_fen)
            }
        };
        if let Some(tally) = self.classes.get_mut(&class) {
            tally.add(row.fen);
        }
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
            matcher.row(&record);
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

    #[test]
    fn a_second_run_after_healing_classifies_as_the_first() {
        let healed = paid("OPEN", 100, PaymentSource::Reconciliation);
        let mut matcher = Matcher::new(day());
        matcher.add_order(&healed);
        matcher.row(&row("OPEN", RecordKind::Payment, 100, None));
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
