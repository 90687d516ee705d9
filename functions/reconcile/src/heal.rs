//! Acting on the discrepancies: only what is safe is healed, through the same conditional
//! transitions every other function uses (a bill is Alipay's account of money that moved, so
//! it is a witness's fact, like a notification): an open order paid at Alipay becomes PAID
//! (source `reconciliation`, with its audit and business event); a PENDING refund Alipay made
//! becomes SUCCEEDED. Everything else becomes an anomaly record for an operator. Writing
//! either again changes nothing (the transitions are conditional; an anomaly is one record per
//! order and kind).

use crate::matching::{Class, Finding};
use crate::report::Actions;
use chrono::{DateTime, Utc};
use domain::anomaly::{AlipayFacts, Anomaly, AnomalyKind, FactSource};
use domain::converge::{Actor, AlipayView, Mismatch, Plan, anomaly, apply_planned, apply_view};
use domain::order::{Buyer, Order, PaymentSource, RefundSource};
use domain::ports::{Clock, OrderStore, StoreError};
use domain::{OutRequestNo, OutTradeNo};

/// Acts on every finding; returns what was done.
pub async fn act<S: OrderStore, C: Clock>(
    store: &S,
    clock: &C,
    findings: &[Finding],
) -> Result<Actions, StoreError> {
    let mut actions = Actions::default();
    for finding in findings {
        let order = match OutTradeNo::parse(&finding.out_trade_no) {
            Ok(no) => store.get(&no).await?,
            Err(_) => None,
        };
        match (finding.class, order) {
            (Class::Matched, _) => {}
            (Class::PaidThereNotHere | Class::StatusMismatch, Some(order)) => {
                let view = AlipayView::Paid {
                    trade_no: finding.trade_no.clone().unwrap_or_default(),
                    paid_at: finished_at(finding),
                    source: PaymentSource::Reconciliation,
                    buyer: Buyer::default(),
                };
                let converged = apply_view(store, clock, &order, view, Actor::Witness).await?;
                if finding.class == Class::PaidThereNotHere {
                    actions.healed += 1;
                    tracing::info!(out_trade_no = %finding.out_trade_no, applied = converged.applied, "paid at Alipay: PAID here");
                } else {
                    actions.anomalies += 1;
                }
            }
            (Class::RefundPendingHere, Some(order)) => {
                let Some(no) = finding
                    .out_request_no
                    .as_deref()
                    .and_then(|no| OutRequestNo::parse(no).ok())
                else {
                    continue;
                };
                let at = finished_at(finding);
                apply_planned(store, clock, &order, |current, now| {
                    let pending = current.refund(&no).is_some_and(|r| r.is_pending());
                    Plan::transition(
                        pending
                            .then(|| {
                                current
                                    .refund_succeeded(
                                        &no,
                                        at.unwrap_or(now),
                                        RefundSource::Reconciliation,
                                        now,
                                    )
                                    .ok()
                            })
                            .flatten(),
                    )
                })
                .await?;
                actions.healed += 1;
            }
            (class, order) => {
                let record = anomaly_of(class, finding, order.as_ref(), clock.now());
                store.record_anomaly(&record).await?;
                record.report();
                actions.anomalies += 1;
            }
        }
    }
    Ok(actions)
}

fn finished_at(finding: &Finding) -> Option<DateTime<Utc>> {
    finding
        .finished_at
        .as_deref()
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .map(|at| at.with_timezone(&Utc))
}

/// The anomaly a discrepancy is, named after what the bill shows.
fn anomaly_of(
    class: Class,
    finding: &Finding,
    order: Option<&Order>,
    now: DateTime<Utc>,
) -> Anomaly {
    let kind = match class {
        Class::AmountMismatch => AnomalyKind::AmountMismatch,
        Class::StatusMismatch => AnomalyKind::PaidAfterClose,
        Class::PaidHereMissingFromBill | Class::RefundHereMissingFromBill => {
            AnomalyKind::MissingFromBill
        }
        Class::RefundThereNoneHere | Class::RefundPendingHere => AnomalyKind::UnrequestedRefund,
        Class::RefundAmountMismatch => AnomalyKind::RefundMismatch,
        Class::UnknownOutTradeNo | Class::PaidThereNotHere | Class::Matched => {
            AnomalyKind::UnknownOrder
        }
    };
    let refund = matches!(
        class,
        Class::RefundThereNoneHere
            | Class::RefundPendingHere
            | Class::RefundAmountMismatch
            | Class::RefundHereMissingFromBill
    );
    let facts = AlipayFacts {
        source: Some(FactSource::Bill),
        out_trade_no: Some(finding.out_trade_no.clone()),
        trade_no: finding.trade_no.clone(),
        trade_status: None,
        total_amount_fen: finding.bill_fen.filter(|_| !refund),
        refund_fen: finding.bill_fen.filter(|_| refund),
    };
    let detail = describe(class, finding);
    match order {
        Some(order) => anomaly(
            order,
            Mismatch {
                kind,
                facts,
                detail,
            },
            now,
        ),
        None => Anomaly {
            kind,
            out_trade_no: OutTradeNo::parse(&finding.out_trade_no).ok(),
            order_status: None,
            order_amount_fen: None,
            facts,
            detail,
            seen_at: now,
        },
    }
}

fn describe(class: Class, finding: &Finding) -> String {
    let yuan =
        |fen: Option<i64>| fen.map_or_else(|| "-".to_owned(), |f| alipay::Fen::new(f).to_yuan());
    let line = finding
        .line
        .map_or_else(String::new, |l| format!(" (bill line {l})"));
    match class {
        Class::AmountMismatch => format!(
            "the bill shows a payment of {} for an order of {}{line}",
            yuan(finding.bill_fen),
            yuan(finding.ledger_fen)
        ),
        Class::StatusMismatch => format!(
            "the bill shows a payment of {} for an order that is {} here{line}",
            yuan(finding.bill_fen),
            finding.status_here.map_or("unknown", |s| s.as_str())
        ),
        Class::PaidHereMissingFromBill => format!(
            "paid here ({}) on the bill's day, but the bill has no payment for it",
            yuan(finding.ledger_fen)
        ),
        Class::RefundThereNoneHere | Class::RefundPendingHere => format!(
            "the bill shows a refund of {} ({}) that no refund here accounts for{line}",
            yuan(finding.bill_fen),
            finding
                .out_request_no
                .as_deref()
                .unwrap_or("no request number")
        ),
        Class::RefundAmountMismatch => format!(
            "the bill shows refund {} of {}, recorded here as {}{line}",
            finding.out_request_no.as_deref().unwrap_or("-"),
            yuan(finding.bill_fen),
            yuan(finding.ledger_fen)
        ),
        Class::RefundHereMissingFromBill => format!(
            "refund {} of {} succeeded here on the bill's day, but the bill has no refund row for it",
            finding.out_request_no.as_deref().unwrap_or("-"),
            yuan(finding.ledger_fen)
        ),
        Class::UnknownOutTradeNo | Class::PaidThereNotHere | Class::Matched => format!(
            "the bill shows trade {} ({}) for out_trade_no {:?}, which this system never created{line}",
            finding.trade_no.as_deref().unwrap_or("-"),
            yuan(finding.bill_fen),
            finding.out_trade_no
        ),
    }
}
