//! The invariants. [`invariants`] hold after every step, whatever is still in flight:
//!
//! - an order is never paid (PAID, PARTIALLY_REFUNDED, REFUNDED) here unless Alipay was paid,
//!   and never closed or failed here while Alipay holds the buyer's money (a payment after
//!   the close is Alipay's contradiction, an anomaly; a close after it would be ours);
//! - statuses only move along the state machine's edges (a paid order is never closed);
//! - refunded plus reserved never exceeds the amount, and nothing counts as refunded here that
//!   Alipay has not refunded (for each refund: the same number and amount at Alipay);
//! - the outbox: every committed change has exactly one audit event, numbered by the order's
//!   version (1, 2, 3, ...: strictly increasing, no gap, no repeat), from the status it left to
//!   the one it made; an event is published (a business event type) exactly when the change
//!   is one subscribers see (status, money, a refund, a scan); at most one `order.created`,
//!   `order.scanned`, `order.paid` and settling event per order, at most one request and one outcome per refund;
//! - every side-effecting Alipay call is sent under a stored lease covering its timeout and
//!   the margin (fencing);
//! - the only anomalies are the contradictions the model can produce (a cancel that refunded,
//!   a payment after close, a refund nobody here accounts for): no false alarm.
//!
//! [`settled`] holds once everything was delivered and handled: no order or refund is left
//! open, and every order agrees with Alipay (paid there exactly when paid here, refunded the
//! same total), unless an anomaly record tells an operator that it does not.

use crate::alipay::{Alipay, State};
use crate::world::World;
use domain::anomaly::AnomalyKind;
use domain::business_event::EventType;
use domain::memory::StoredEvent;
use domain::order::{EventKind, Order, RefundStatus};
use domain::{OrderStatus, OutTradeNo};
use std::collections::{BTreeMap, BTreeSet};

fn paid(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::Paid | OrderStatus::PartiallyRefunded | OrderStatus::Refunded
    )
}

/// The state machine's edges (a status may also stay as it is).
fn edge(from: OrderStatus, to: OrderStatus) -> bool {
    use OrderStatus::*;
    from == to
        || matches!(
            (from, to),
            (Creating, Pending | Paid | Closed | Failed | Refunded)
                | (Pending, Paid | Closed | Failed | Refunded)
                | (Paid, PartiallyRefunded | Refunded)
                | (PartiallyRefunded, Refunded)
        )
}

/// Whether a change is one subscribers see.
fn visible(before: Option<&Order>, after: &Order) -> bool {
    let Some(before) = before else {
        return true;
    };
    let refunds = |order: &Order| -> Vec<(String, RefundStatus)> {
        order
            .refunds()
            .iter()
            .map(|r| (r.out_request_no().to_string(), r.status()))
            .collect()
    };
    before.status() != after.status()
        || before.refunded_fen() != after.refunded_fen()
        || refunds(before) != refunds(after)
        || before.scanned_at() != after.scanned_at()
}

fn check_order(order: &Order, alipay: &Alipay) -> Result<(), String> {
    let no = order.out_trade_no();
    let trade = alipay.trades.get(no.as_str());
    if paid(order.status()) && trade.is_none_or(|t| t.paid_at.is_none()) {
        return Err(format!(
            "{no} is {} but Alipay was never paid",
            order.status().as_str()
        ));
    }
    if let (Some(closed_at), Some(trade)) = (order.closed_at(), trade)
        && let Some(paid_at) = trade.paid_at.filter(|at| *at <= closed_at)
    {
        let given_back: i64 = trade
            .refunds
            .iter()
            .filter(|r| r.at <= closed_at)
            .map(|r| r.fen)
            .sum();
        if given_back < trade.total_fen {
            return Err(format!(
                "{no} was made {} at {closed_at} while Alipay held the payment of {paid_at}",
                order.status().as_str()
            ));
        }
    }
    let amount = order.amount().fen().get();
    if order.refunded_fen() < 0 || order.refunded_fen() + order.reserved_fen() > amount {
        return Err(format!(
            "{no}: refunded {} + reserved {} exceed the amount {amount}",
            order.refunded_fen(),
            order.reserved_fen()
        ));
    }
    let refunded_there = trade.map_or(0, |t| t.refunded_fen());
    if order.refunded_fen() > refunded_there {
        return Err(format!(
            "{no}: {} refunded here, {refunded_there} at Alipay",
            order.refunded_fen()
        ));
    }
    let succeeded: i64 = order
        .refunds()
        .iter()
        .filter(|r| r.status() == RefundStatus::Succeeded)
        .map(|r| r.amount_fen())
        .sum();
    if succeeded > order.refunded_fen() {
        return Err(format!(
            "{no}: refunds of {succeeded} succeeded, {} counted as refunded",
            order.refunded_fen()
        ));
    }
    for refund in order.refunds() {
        if refund.status() != RefundStatus::Succeeded {
            continue;
        }
        let made = trade.is_some_and(|t| {
            t.refunds.iter().any(|r| {
                r.out_request_no.as_deref() == Some(refund.out_request_no().as_str())
                    && r.fen == refund.amount_fen()
            })
        });
        if !made {
            return Err(format!(
                "{no}: refund {} succeeded here, Alipay never made it",
                refund.out_request_no()
            ));
        }
    }
    Ok(())
}

/// The audit events of one order, in commit order, against the order as stored.
fn check_events(
    no: &OutTradeNo,
    events: &[&StoredEvent],
    stored: Option<&Order>,
) -> Result<(), String> {
    let mut before: Option<&Order> = None;
    let mut published: BTreeMap<String, u32> = BTreeMap::new();
    for (index, stored_event) in events.iter().enumerate() {
        let StoredEvent { event, order } = stored_event;
        let expected = index as u64 + 1;
        if event.version != expected || order.version() != expected {
            return Err(format!(
                "{no}: event {index} is numbered {} for order version {}, expected {expected}",
                event.version,
                order.version()
            ));
        }
        if event.from != before.map(Order::status) || event.to != order.status() {
            return Err(format!(
                "{no} v{expected}: the event says {:?} -> {:?}, the order went {:?} -> {:?}",
                event.from,
                event.to,
                before.map(Order::status),
                order.status()
            ));
        }
        if let Some(from) = before.map(Order::status)
            && !edge(from, order.status())
        {
            return Err(format!(
                "{no} v{expected}: {} -> {} is not a transition of the state machine",
                from.as_str(),
                order.status().as_str()
            ));
        }
        let kind = EventType::of(&event.kind);
        if kind.is_some() != visible(before, order) {
            return Err(format!(
                "{no} v{expected}: {:?} is published as {kind:?} but the change is{} visible",
                event.kind,
                if kind.is_some() { " not" } else { "" }
            ));
        }
        let key = match &event.kind {
            EventKind::Paid { .. } => Some("paid".to_owned()),
            EventKind::Closed { .. }
            | EventKind::Failed { .. }
            | EventKind::RefundedByCancel { .. } => Some("settled".to_owned()),
            EventKind::RefundRequested { out_request_no, .. } => {
                Some(format!("requested {out_request_no}"))
            }
            EventKind::RefundSucceeded { out_request_no, .. }
            | EventKind::RefundFailed { out_request_no, .. } => {
                Some(format!("refund outcome {out_request_no}"))
            }
            EventKind::Claimed => Some("created".to_owned()),
            EventKind::Scanned { .. } => Some("scanned".to_owned()),
            _ => None,
        };
        if let Some(key) = key {
            let count = published.entry(key.clone()).or_default();
            *count += 1;
            if *count > 1 {
                return Err(format!("{no} v{expected}: a second \"{key}\" event"));
            }
        }
        before = Some(order);
    }
    if before != stored {
        return Err(format!(
            "{no}: the stored order is not the one its last event left behind"
        ));
    }
    Ok(())
}

/// What must hold after every step.
pub fn invariants(world: &World) -> Result<(), String> {
    if let Some(violation) = world.violations().first() {
        return Err(violation.clone());
    }
    let orders = world.store.orders();
    let events = world.store.events();
    {
        let alipay = world.alipay();
        for trade in alipay.trades.values() {
            if trade.refunded_fen() > trade.total_fen {
                return Err(format!("the model refunded more than {trade:?} took"));
            }
        }
        for order in &orders {
            check_order(order, &alipay)?;
        }
    }
    let numbers: BTreeSet<&OutTradeNo> = events.iter().map(|e| &e.event.out_trade_no).collect();
    for no in numbers {
        let of_order: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| &e.event.out_trade_no == no)
            .collect();
        let stored = orders.iter().find(|o| o.out_trade_no() == no);
        check_events(no, &of_order, stored)?;
    }
    for record in world.store.anomalies() {
        let expected = matches!(
            record.latest.kind,
            AnomalyKind::RefundedByCancel
                | AnomalyKind::PaidAfterClose
                | AnomalyKind::UnrequestedRefund
        );
        if !expected {
            return Err(format!(
                "a false alarm: {} ({})",
                record.id, record.latest.detail
            ));
        }
    }
    Ok(())
}

/// What must hold once everything was delivered and handled.
pub fn settled(world: &World) -> Result<(), String> {
    let anomalies: BTreeSet<String> = world
        .store
        .anomalies()
        .into_iter()
        .filter_map(|r| r.latest.out_trade_no.map(|no| no.to_string()))
        .collect();
    let alipay = world.alipay();
    let orders = world.store.orders();
    for order in &orders {
        let no = order.out_trade_no().as_str();
        if order.status().is_open() {
            return Err(format!("{no} is left {}", order.status().as_str()));
        }
        if let Some(refund) = order.refunds().iter().find(|r| r.is_pending()) {
            return Err(format!(
                "{no}: refund {} is left PENDING",
                refund.out_request_no()
            ));
        }
        let trade = alipay.trades.get(no);
        let paid_there = trade.is_some_and(|t| t.paid_at.is_some());
        let refunded_there = trade.map_or(0, |t| t.refunded_fen());
        let agrees = paid(order.status()) == paid_there
            && order.refunded_fen() == refunded_there
            && trade.is_none_or(|t| t.state != State::Waiting);
        if !agrees && !anomalies.contains(no) {
            return Err(format!(
                "{no} is {} (refunded {}) while Alipay has {trade:?}, and no anomaly says so",
                order.status().as_str(),
                order.refunded_fen()
            ));
        }
    }
    for trade in alipay.trades.values() {
        let known = orders
            .iter()
            .any(|o| o.out_trade_no().as_str() == trade.out_trade_no);
        if trade.paid_at.is_some() && !known {
            return Err(format!(
                "{} was paid at Alipay for no order",
                trade.out_trade_no
            ));
        }
    }
    Ok(())
}
