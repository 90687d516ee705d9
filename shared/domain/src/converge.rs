//! Convergence: ask Alipay what happened to an order (`alipay.trade.query`) and apply the
//! matching conditional transition. Every path that learns a trade's state (pay, query, and
//! the notification and expiry functions) goes through [`read_query`] / [`plan`] and
//! [`apply_planned`], so they cannot disagree.
//!
//! Nothing here guesses: an answer that cannot be believed (unknown outcome, a rejection)
//! changes nothing. A verified answer that contradicts the order (another number, amount or
//! trade; paid while the order is closed) is an anomaly record, never just a log line.
//!
//! A transition that loses a race is planned again from the order the failed condition
//! returned (`ALL_OLD`), never given up and never retried blindly: the winner's write may
//! have made ours unnecessary, illegal, or still right.

use crate::Scene;
use crate::anomaly::{AlipayFacts, Anomaly, AnomalyKind, FactSource};
use crate::order::{Buyer, Order, OrderStatus, PaymentSource, Transition};
use crate::ports::{Applied, Clock, OrderStore, PaymentGateway, StoreError};
use alipay::api::{CancelAction, CancelResponse, QueryRequest, QueryResponse, TradeRef};
use alipay::notify::TradeStatus;
use alipay::outcome::{Outcome, Rejection, UnknownCause};
use chrono::{DateTime, Utc};

/// Why an order was closed, as recorded in its `Closed` event.
pub mod reasons {
    /// Alipay reports the trade closed (expired, declined by the buyer, closed elsewhere).
    pub const CLOSED_AT_ALIPAY: &str = "closed_at_alipay";
    /// A barcode payment waited for the buyer's confirmation until the end of the polling
    /// schedule and was cancelled.
    pub const BUYER_DID_NOT_CONFIRM: &str = "buyer_did_not_confirm";
    /// A barcode payment's outcome could not be learned and the trade was cancelled, so it
    /// can never be paid later.
    pub const PAY_OUTCOME_UNKNOWN_CANCELLED: &str = "pay_outcome_unknown_cancelled";
    /// A retried barcode request found the payment unresolved and cancelled it.
    pub const UNRESOLVED_CANCELLED: &str = "unresolved_cancelled";
    /// A claim nobody finished (its request died before the expiry was scheduled) is past
    /// its expiry and Alipay has no trade for it: none can be made any more.
    pub const EXPIRED_WITHOUT_TRADE: &str = "expired_without_trade";
}

/// What Alipay's answer says about an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlipayView {
    /// `TRADE_SUCCESS` or `TRADE_FINISHED` for the order's amount.
    Paid {
        trade_no: String,
        paid_at: Option<DateTime<Utc>>,
        source: PaymentSource,
        buyer: Buyer,
    },
    /// `WAIT_BUYER_PAY`: the trade exists, the buyer has not paid (yet).
    Waiting { trade_no: String },
    /// `TRADE_CLOSED`: never paid, or paid and then refunded in full.
    Closed {
        trade_no: String,
        source: FactSource,
    },
    /// `ACQ.TRADE_NOT_EXIST`: Alipay has no trade (an unscanned QR code, or a request that
    /// never arrived).
    NotExist,
    /// The answer says nothing we may act on: transport trouble, a system error, a rejection,
    /// an unverifiable body or another business failure.
    Unknown(String),
    /// The verified answer contradicts the order: recorded as an anomaly, nothing else.
    Mismatch(Mismatch),
}

/// A contradiction between a verified Alipay answer and the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub kind: AnomalyKind,
    pub facts: AlipayFacts,
    pub detail: String,
}

impl AlipayView {
    /// A short, stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            AlipayView::Paid { .. } => "paid",
            AlipayView::Waiting { .. } => "waiting",
            AlipayView::Closed { .. } => "closed",
            AlipayView::NotExist => "not_exist",
            AlipayView::Unknown(_) => "unknown",
            AlipayView::Mismatch(_) => "mismatch",
        }
    }
}

/// Describes an unknown outcome without any request data.
pub fn describe_unknown(cause: &UnknownCause) -> String {
    match cause {
        UnknownCause::Timeout => "timeout".into(),
        UnknownCause::Connection(_) => "connection".into(),
        UnknownCause::HttpStatus(status) => format!("http_status_{status}"),
        UnknownCause::SystemError(failure) => failure
            .sub_code
            .clone()
            .unwrap_or_else(|| failure.code.clone()),
        UnknownCause::Unverifiable(_) => "unverifiable".into(),
    }
}

/// Describes a rejection without any request data (never Alipay's `sub_msg`, which may echo
/// the signed request).
pub fn describe_rejection(rejection: &Rejection) -> String {
    match rejection {
        Rejection::Gateway { failure, .. } => format!(
            "rejected_{}",
            failure.sub_code.as_deref().unwrap_or(&failure.code)
        ),
        Rejection::Local(_) => "rejected_locally".into(),
    }
}

/// The facts of a verified trade answer, for an anomaly record.
pub fn trade_facts(trade: &QueryResponse, source: FactSource) -> AlipayFacts {
    AlipayFacts {
        source: Some(source),
        out_trade_no: Some(trade.out_trade_no.clone()),
        trade_no: Some(trade.trade_no.clone()),
        trade_status: Some(trade.trade_status.as_str().to_owned()),
        total_amount_fen: Some(trade.total_amount.get()),
        refund_fen: None,
    }
}

/// Checks a verified answer's number, amount and trade number against the order.
pub fn check_trade(
    order: &Order,
    out_trade_no: &str,
    total_fen: Option<i64>,
    trade_no: Option<&str>,
    facts: impl FnOnce() -> AlipayFacts,
) -> Option<Mismatch> {
    let (kind, detail) = if out_trade_no != order.out_trade_no().as_str() {
        (
            AnomalyKind::OutTradeNoMismatch,
            format!("Alipay answered for out_trade_no {out_trade_no:?}"),
        )
    } else if let Some(fen) = total_fen.filter(|fen| *fen != order.amount().fen().get()) {
        (
            AnomalyKind::AmountMismatch,
            format!(
                "Alipay reports a trade of {} for an order of {}",
                alipay::Fen::new(fen).to_yuan(),
                order.amount().fen().to_yuan()
            ),
        )
    } else if let (Some(ours), Some(theirs)) = (order.alipay_trade_no(), trade_no)
        && !theirs.is_empty()
        && ours != theirs
    {
        (
            AnomalyKind::TradeNoMismatch,
            format!("Alipay reports trade_no {theirs} for the order recorded with {ours}"),
        )
    } else {
        return None;
    };
    Some(Mismatch {
        kind,
        facts: facts(),
        detail,
    })
}

/// Reads a query's outcome for `order`.
pub fn read_query(order: &Order, outcome: Outcome<QueryResponse>) -> AlipayView {
    let trade = match outcome {
        Outcome::Success(trade) | Outcome::WaitingForBuyer(trade) => trade,
        Outcome::Failed(failure) if failure.sub_code_is("ACQ.TRADE_NOT_EXIST") => {
            return AlipayView::NotExist;
        }
        Outcome::Failed(failure) => {
            return AlipayView::Unknown(format!(
                "query_failed_{}",
                failure.sub_code.as_deref().unwrap_or(&failure.code)
            ));
        }
        Outcome::Unknown(cause) => return AlipayView::Unknown(describe_unknown(&cause)),
        Outcome::Rejected(rejection) => {
            return AlipayView::Unknown(describe_rejection(&rejection));
        }
    };
    if let Some(mismatch) = check_trade(
        order,
        &trade.out_trade_no,
        Some(trade.total_amount.get()),
        Some(&trade.trade_no),
        || trade_facts(&trade, FactSource::Query),
    ) {
        return AlipayView::Mismatch(mismatch);
    }
    match trade.trade_status {
        status if status.is_paid() => {
            let paid_at = trade
                .send_pay_date
                .as_deref()
                .and_then(|t| alipay::time::parse_beijing(t).ok());
            AlipayView::Paid {
                trade_no: trade.trade_no,
                paid_at,
                source: PaymentSource::Query,
                buyer: Buyer::new(trade.buyer_user_id, trade.buyer_open_id),
            }
        }
        TradeStatus::WaitBuyerPay => AlipayView::Waiting {
            trade_no: trade.trade_no,
        },
        _ => AlipayView::Closed {
            trade_no: trade.trade_no,
            source: FactSource::Query,
        },
    }
}

/// Who is converging: someone who only looks (a GET, the expiry job before it takes the
/// lease), the holder of the order's lease (`held` is its copy of the order), or a witness of
/// a fact Alipay signed unasked (a notification).
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    Observer,
    Holder(&'a Order),
    /// Writes what Alipay reports (paid, closed, scanned) whoever holds the order: these are
    /// facts about money, and none of them sends an Alipay call. A fact that settles the order
    /// ends the holder's lease (its next fenced step finds the order settled and stops); a
    /// scan leaves the lease alone. A witness never marks an order synced.
    Witness,
}

impl Actor<'_> {
    /// Whether this actor may change `order` at `now`: nobody acts under someone else's live
    /// lease.
    pub fn may_act_on(&self, order: &Order, now: DateTime<Utc>) -> bool {
        match self {
            Actor::Witness => true,
            _ if !order.lease_live(now) => true,
            Actor::Holder(held) => held.same_holder(order),
            Actor::Observer => false,
        }
    }
}

/// What to write: a transition (with its anomaly, if any), or an anomaly alone, or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub transition: Option<Transition>,
    pub anomaly: Option<Anomaly>,
}

impl Plan {
    pub fn nothing() -> Plan {
        Plan::default()
    }

    pub fn transition(transition: Option<Transition>) -> Plan {
        Plan {
            transition,
            anomaly: None,
        }
    }
}

/// The anomaly of `mismatch` on `order`.
pub fn anomaly(order: &Order, mismatch: Mismatch, now: DateTime<Utc>) -> Anomaly {
    Anomaly {
        kind: mismatch.kind,
        out_trade_no: Some(order.out_trade_no().clone()),
        order_status: Some(order.status()),
        order_amount_fen: Some(order.amount().fen().get()),
        facts: mismatch.facts,
        detail: mismatch.detail,
        seen_at: now,
    }
}

/// What brings `order` in line with `view`, if anything. Settled orders never move (a
/// payment Alipay reports for a CLOSED or FAILED order is an anomaly); a claim Alipay has no
/// trade for is only marked as looked at (its holder alone may re-send the request) until it
/// expires: then Alipay refuses any request for it (`time_expire`), so it is closed.
pub fn plan(order: &Order, view: &AlipayView, now: DateTime<Utc>, actor: Actor<'_>) -> Plan {
    if let AlipayView::Mismatch(mismatch) = view {
        return Plan {
            transition: None,
            anomaly: Some(anomaly(order, mismatch.clone(), now)),
        };
    }
    if order.status().is_final() {
        return match (view, order.status()) {
            (AlipayView::Closed { trade_no, source }, _) => {
                let mut facts = AlipayFacts::from(*source);
                facts.trade_no = Some(trade_no.clone());
                facts.trade_status = Some(TradeStatus::TradeClosed.as_str().to_owned());
                plan_closed_after_payment(order, facts, now)
            }
            (
                AlipayView::Paid {
                    trade_no, source, ..
                },
                OrderStatus::Closed | OrderStatus::Failed,
            ) => {
                let mut facts = AlipayFacts::from(fact_source(*source));
                facts.trade_no = Some(trade_no.clone());
                facts.trade_status = Some(TradeStatus::TradeSuccess.as_str().to_owned());
                facts.total_amount_fen = Some(order.amount().fen().get());
                let mismatch = Mismatch {
                    kind: AnomalyKind::PaidAfterClose,
                    facts,
                    detail: format!(
                        "Alipay reports trade {trade_no} paid for an order that is {} here",
                        order.status().as_str()
                    ),
                };
                Plan {
                    transition: None,
                    anomaly: Some(anomaly(order, mismatch, now)),
                }
            }
            _ => Plan::nothing(),
        };
    }
    if !actor.may_act_on(order, now) {
        return Plan::nothing();
    }
    let transition = match (view, order.status(), actor) {
        (
            AlipayView::Paid {
                trade_no,
                paid_at,
                source,
                buyer,
            },
            _,
            _,
        ) => order.paid(
            trade_no.clone(),
            paid_at.unwrap_or(now),
            *source,
            buyer.clone(),
            now,
        ),
        (AlipayView::Closed { .. }, _, _) => order.closed(reasons::CLOSED_AT_ALIPAY, now),
        (AlipayView::Waiting { trade_no }, _, Actor::Witness) => {
            if order.scanned_at().is_some() {
                return Plan::nothing();
            }
            order.scanned(Some(trade_no.clone()), now, now)
        }
        (_, _, Actor::Witness) => return Plan::nothing(),
        (AlipayView::NotExist, OrderStatus::Creating, _) if now >= order.expires_at() => {
            order.closed(reasons::EXPIRED_WITHOUT_TRADE, now)
        }
        (AlipayView::Waiting { trade_no }, OrderStatus::Creating, _) => {
            order.created_at_alipay(None, Some(trade_no.clone()), now)
        }
        (AlipayView::Waiting { .. } | AlipayView::NotExist, _, _) => order.synced(now),
        _ => return Plan::nothing(),
    };
    Plan::transition(transition.ok())
}

/// What Alipay closing the trade of an order paid here means (`TRADE_CLOSED` after a payment:
/// the rest of the amount went back to the buyer). With a refund of ours in flight, its own
/// flow settles it. Otherwise nothing here refunded it: for a barcode order the one refund
/// this system makes without a refund record is a cancel's, sent while the payment was unclear
/// and whose answer was lost, so a PAID barcode order becomes REFUNDED with a
/// `refunded_by_cancel` anomaly (the money is back with the buyer, whoever sent it); any other
/// order keeps its state with an `unrequested_refund` anomaly. A witness's write: money facts.
pub fn plan_closed_after_payment(order: &Order, facts: AlipayFacts, now: DateTime<Utc>) -> Plan {
    if !order.status().is_refundable() || order.reserved_fen() > 0 {
        return Plan::nothing();
    }
    let mut facts = facts;
    facts.out_trade_no = Some(order.out_trade_no().to_string());
    facts.total_amount_fen = Some(order.amount().fen().get());
    let by_cancel = order.status() == OrderStatus::Paid && order.scene() == Scene::Barcode;
    if by_cancel {
        facts.refund_fen = Some(order.amount().fen().get());
        let trade_no = facts.trade_no.clone();
        let mismatch = Mismatch {
            kind: AnomalyKind::RefundedByCancel,
            facts,
            detail: "Alipay reports the paid trade closed (refunded in full) and no refund here \
                     accounts for it: the cancel sent while the payment was unclear refunded it"
                .to_owned(),
        };
        let transition = order.refunded_by_cancel(trade_no, now).ok();
        let mut anomaly = anomaly(order, mismatch, now);
        if let Some(transition) = &transition {
            anomaly.order_status = Some(transition.next.status());
        }
        return Plan {
            transition,
            anomaly: Some(anomaly),
        };
    }
    let refunded = alipay::Fen::new(order.refunded_fen()).to_yuan();
    let mismatch = Mismatch {
        kind: AnomalyKind::UnrequestedRefund,
        facts,
        detail: format!(
            "Alipay reports the paid trade closed (refunded in full); refunds here account for {refunded}"
        ),
    };
    Plan {
        transition: None,
        anomaly: Some(anomaly(order, mismatch, now)),
    }
}

/// What a completed `alipay.trade.cancel` means for the order as stored now: closed, or (the
/// buyer had paid and the cancel refunded it) REFUNDED with an anomaly record. These are facts
/// about money, written whoever holds the order now; a settled order that disagrees (or one
/// with a refund in flight, which its own flow settles) is left as it is, with the anomaly.
pub fn plan_cancelled(
    current: &Order,
    answer: &CancelResponse,
    reason: &str,
    now: DateTime<Utc>,
) -> Plan {
    if answer.action != CancelAction::Refund {
        return if current.status().is_open() {
            Plan::transition(current.closed(reason, now).ok())
        } else {
            Plan::nothing()
        };
    }
    if current.status() == OrderStatus::Refunded {
        return Plan::nothing();
    }
    let mut facts = AlipayFacts::from(FactSource::Cancel);
    facts.trade_no = answer.trade_no.clone();
    facts.out_trade_no = answer.out_trade_no.clone();
    facts.refund_fen = Some(current.amount().fen().get());
    let mismatch = Mismatch {
        kind: AnomalyKind::RefundedByCancel,
        facts,
        detail: format!(
            "the cancel refunded the payment of an order that was {} ({reason})",
            current.status().as_str()
        ),
    };
    let transition = current
        .refunded_by_cancel(answer.trade_no.clone(), now)
        .ok();
    let mut anomaly = anomaly(current, mismatch, now);
    if let Some(transition) = &transition {
        anomaly.order_status = Some(transition.next.status());
    }
    Plan {
        transition,
        anomaly: Some(anomaly),
    }
}

fn fact_source(source: PaymentSource) -> FactSource {
    match source {
        PaymentSource::PayResponse => FactSource::PayResponse,
        PaymentSource::Query => FactSource::Query,
        PaymentSource::Notification => FactSource::Notification,
        PaymentSource::Reconciliation => FactSource::Bill,
    }
}

/// The result of applying a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The order as stored now (after our transition, or someone else's).
    pub order: Order,
    /// `false` when nothing of ours was written (nothing to do, or someone else's write made
    /// ours unnecessary or illegal).
    pub applied: bool,
}

/// Plans against the order as stored at most this many times before answering with it.
const PLAN_ATTEMPTS: usize = 4;

/// Writes what `planner` says about `order`; when the write loses a race, plans again from
/// the order the failed condition returned. A recorded anomaly is reported (error log and
/// metric) once it is durable.
pub async fn apply_planned<S, C>(
    store: &S,
    clock: &C,
    order: &Order,
    planner: impl Fn(&Order, DateTime<Utc>) -> Plan,
) -> Result<Settled, StoreError>
where
    S: OrderStore,
    C: Clock,
{
    let mut current = order.clone();
    for _ in 0..PLAN_ATTEMPTS {
        let plan = planner(&current, clock.now());
        let Some(transition) = plan.transition else {
            if let Some(anomaly) = plan.anomaly {
                Box::pin(store.record_anomaly(&anomaly)).await?;
                anomaly.report();
            }
            return Ok(Settled {
                order: current,
                applied: false,
            });
        };
        let transition = transition.with_anomaly(plan.anomaly);
        match Box::pin(store.apply(&transition)).await? {
            Applied::Applied(order) => {
                if let Some(anomaly) = &transition.anomaly {
                    anomaly.report();
                }
                return Ok(Settled {
                    order,
                    applied: true,
                });
            }
            Applied::Conflict(Some(stored)) => current = stored,
            Applied::Conflict(None) => {
                return Err(StoreError::Corrupt(format!(
                    "order {} vanished during a transition",
                    transition.next.out_trade_no()
                )));
            }
        }
    }
    Ok(Settled {
        order: current,
        applied: false,
    })
}

/// The result of one convergence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converged {
    /// The order as stored now (after our transition, or someone else's).
    pub order: Order,
    /// What Alipay said.
    pub view: AlipayView,
    /// Whether our transition was written.
    pub applied: bool,
}

/// Queries Alipay about `order` by its `out_trade_no` and applies what the answer implies.
pub async fn converge<S, G, C>(
    store: &S,
    gateway: &G,
    clock: &C,
    order: &Order,
    actor: Actor<'_>,
) -> Result<Converged, StoreError>
where
    S: OrderStore,
    G: PaymentGateway,
    C: Clock,
{
    let request = QueryRequest::new(TradeRef::out_trade_no(order.out_trade_no().as_str()));
    let view = read_query(order, gateway.query(&request).await);
    apply_view(store, clock, order, view, actor).await
}

/// Applies an already obtained view (e.g. from a poll) to `order`.
pub async fn apply_view<S, C>(
    store: &S,
    clock: &C,
    order: &Order,
    view: AlipayView,
    actor: Actor<'_>,
) -> Result<Converged, StoreError>
where
    S: OrderStore,
    C: Clock,
{
    let settled = apply_planned(store, clock, order, |current, now| {
        plan(current, &view, now, actor)
    })
    .await?;
    Ok(Converged {
        order: settled.order,
        view,
        applied: settled.applied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::NewOrder;
    use crate::{OrderAmount, OutTradeNo, Scene};
    use alipay::Fen;
    use alipay::api::QueryResponse;
    use alipay::outcome::Failure;
    use chrono::{Duration, TimeZone};

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0)
            .single()
            .unwrap()
    }

    fn order() -> Order {
        let new = crate::test_orders::new_order("T1", 100, Scene::Qr);
        Order::claim(new, at(0), Duration::seconds(30)).0
    }

    fn trade(status: TradeStatus, fen: i64) -> Outcome<QueryResponse> {
        Outcome::Success(QueryResponse {
            trade_no: "2024".into(),
            out_trade_no: "T1".into(),
            trade_status: status,
            total_amount: Fen::new(fen),
            receipt_amount: None,
            buyer_pay_amount: None,
            buyer_logon_id: None,
            buyer_user_id: None,
            buyer_open_id: None,
            send_pay_date: Some("2023-11-15 06:13:20".into()),
            store_id: None,
            terminal_id: None,
        })
    }

    fn failure(sub_code: &str) -> Failure {
        Failure {
            code: "40004".into(),
            msg: "Business Failed".into(),
            sub_code: Some(sub_code.into()),
            sub_msg: None,
        }
    }

    #[test]
    fn reads_each_trade_status() {
        let o = order();
        assert_eq!(
            read_query(&o, trade(TradeStatus::TradeSuccess, 100)),
            AlipayView::Paid {
                trade_no: "2024".into(),
                paid_at: alipay::time::parse_beijing("2023-11-15 06:13:20").ok(),
                source: PaymentSource::Query,
                buyer: Buyer::default(),
            }
        );
        assert_eq!(
            read_query(&o, trade(TradeStatus::WaitBuyerPay, 100)).kind(),
            "waiting"
        );
        assert_eq!(
            read_query(&o, trade(TradeStatus::TradeClosed, 100)).kind(),
            "closed"
        );
        assert_eq!(
            read_query(&o, Outcome::Failed(failure("ACQ.TRADE_NOT_EXIST"))),
            AlipayView::NotExist
        );
        assert_eq!(
            read_query(&o, Outcome::Failed(failure("ACQ.INVALID_PARAMETER"))).kind(),
            "unknown"
        );
        assert_eq!(
            read_query(&o, Outcome::Unknown(UnknownCause::Timeout)),
            AlipayView::Unknown("timeout".into())
        );
    }

    #[test]
    fn a_paid_trade_of_another_amount_is_never_taken_as_paid() {
        let o = order();
        let view = read_query(&o, trade(TradeStatus::TradeSuccess, 99));
        assert_eq!(view.kind(), "mismatch");
        let planned = plan(&o, &view, at(1), Actor::Observer);
        assert!(planned.transition.is_none());
        let anomaly = planned.anomaly.unwrap();
        assert_eq!(anomaly.kind, AnomalyKind::AmountMismatch);
        assert_eq!(anomaly.facts.total_amount_fen, Some(99));
        assert_eq!(anomaly.order_amount_fen, Some(100));
        let waiting = read_query(&o, trade(TradeStatus::WaitBuyerPay, 99));
        assert_eq!(waiting.kind(), "mismatch", "any status of another amount");
    }

    #[test]
    fn another_number_or_trade_is_a_mismatch() {
        let o = order();
        let mut other = trade(TradeStatus::TradeSuccess, 100);
        if let Outcome::Success(t) = &mut other {
            t.out_trade_no = "T2".into();
        }
        let Some(AlipayView::Mismatch(m)) = Some(read_query(&o, other)) else {
            unreachable!()
        };
        assert_eq!(m.kind, AnomalyKind::OutTradeNoMismatch);
        let known = o
            .created_at_alipay(None, Some("2023".into()), at(1))
            .unwrap()
            .next;
        let Some(AlipayView::Mismatch(m)) =
            Some(read_query(&known, trade(TradeStatus::TradeSuccess, 100)))
        else {
            unreachable!()
        };
        assert_eq!(m.kind, AnomalyKind::TradeNoMismatch);
    }

    fn paid(scene: Scene) -> Order {
        crate::test_orders::paid(scene)
    }

    #[test]
    fn a_paid_barcode_trade_closed_at_alipay_was_refunded_by_the_cancel() {
        let closed = AlipayView::Closed {
            trade_no: "2024".into(),
            source: FactSource::Query,
        };
        for actor in [Actor::Observer, Actor::Witness] {
            let plan = plan(&paid(Scene::Barcode), &closed, at(5), actor);
            let next = plan.transition.unwrap().next;
            assert_eq!(next.status(), OrderStatus::Refunded);
            assert_eq!(next.refunded_fen(), 100);
            let anomaly = plan.anomaly.unwrap();
            assert_eq!(anomaly.kind, AnomalyKind::RefundedByCancel);
            assert_eq!(anomaly.order_status, Some(OrderStatus::Refunded));
            assert_eq!(anomaly.facts.trade_status.as_deref(), Some("TRADE_CLOSED"));
            assert_eq!(anomaly.facts.source, Some(FactSource::Query));
            // Once refunded, the same answer says nothing new.
            assert_eq!(super::plan(&next, &closed, at(6), actor), Plan::nothing());
        }
    }

    #[test]
    fn a_paid_qr_trade_closed_at_alipay_is_a_refund_nobody_here_asked_for() {
        let closed = AlipayView::Closed {
            trade_no: "2024".into(),
            source: FactSource::Notification,
        };
        let plan = plan(&paid(Scene::Qr), &closed, at(5), Actor::Witness);
        assert_eq!(plan.transition, None);
        let anomaly = plan.anomaly.unwrap();
        assert_eq!(anomaly.kind, AnomalyKind::UnrequestedRefund);
        assert_eq!(anomaly.order_status, Some(OrderStatus::Paid));
    }

    #[test]
    fn a_trade_closed_while_a_refund_is_in_flight_is_left_to_the_refund() {
        let order = paid(Scene::Barcode);
        let refund = crate::order::NewRefund {
            out_request_no: crate::OutRequestNo::parse("R1").unwrap(),
            amount_fen: 100,
            reason: None,
            store_id: None,
            operator_id: None,
            terminal_id: None,
            request_hash: "r".into(),
        };
        let refunding = order
            .claim_refund(refund, at(2), Duration::seconds(30))
            .unwrap()
            .next;
        let closed = AlipayView::Closed {
            trade_no: "2024".into(),
            source: FactSource::Query,
        };
        assert_eq!(
            plan(&refunding, &closed, at(5), Actor::Witness),
            Plan::nothing()
        );
    }

    #[test]
    fn a_payment_for_a_closed_or_failed_order_is_an_anomaly_not_a_transition() {
        let closed = order().closed("expired", at(1)).unwrap().next;
        let paid_view = AlipayView::Paid {
            trade_no: "2024".into(),
            paid_at: None,
            source: PaymentSource::Query,
            buyer: Buyer::default(),
        };
        let planned = plan(&closed, &paid_view, at(2), Actor::Observer);
        assert!(planned.transition.is_none());
        let anomaly = planned.anomaly.unwrap();
        assert_eq!(anomaly.kind, AnomalyKind::PaidAfterClose);
        assert_eq!(anomaly.order_status, Some(OrderStatus::Closed));
        assert_eq!(anomaly.facts.trade_no.as_deref(), Some("2024"));
        let paid = order()
            .paid(
                "2024".into(),
                at(1),
                PaymentSource::Query,
                Buyer::default(),
                at(1),
            )
            .unwrap()
            .next;
        assert_eq!(
            plan(&paid, &paid_view, at(2), Actor::Observer),
            Plan::nothing()
        );
    }

    #[test]
    fn nobody_but_the_holder_acts_under_a_live_lease() {
        let claim = order();
        let waiting = AlipayView::Waiting {
            trade_no: "2024".into(),
        };
        assert_eq!(
            plan(&claim, &waiting, at(1), Actor::Observer),
            Plan::nothing()
        );
        assert!(
            plan(&claim, &waiting, at(1), Actor::Holder(&claim))
                .transition
                .is_some()
        );
        let stranger = Order::claim(
            NewOrder {
                out_trade_no: OutTradeNo::parse("T1").unwrap(),
                amount: OrderAmount::from_fen(100).unwrap(),
                subject: "coffee".into(),
                scene: Scene::Qr,
                store_id: None,
                operator_id: None,
                terminal_id: None,
                request_hash: "h".into(),
                expires_at: at(900),
            },
            at(0),
            Duration::seconds(30),
        )
        .0;
        assert_eq!(
            plan(&claim, &waiting, at(1), Actor::Holder(&stranger)),
            Plan::nothing()
        );
        assert!(
            plan(&claim, &waiting, at(30), Actor::Observer)
                .transition
                .is_some(),
            "a lease that ran out is no obstacle"
        );
    }

    fn planned(order: &Order, view: &AlipayView, now: DateTime<Utc>) -> Option<Transition> {
        plan(order, view, now, Actor::Observer).transition
    }

    #[test]
    fn plans_follow_the_state_machine() {
        let creating = order();
        let waiting = AlipayView::Waiting {
            trade_no: "2024".into(),
        };
        let after_lease = at(31);
        let pending = planned(&creating, &waiting, after_lease).unwrap();
        assert_eq!(pending.next.status(), OrderStatus::Pending);
        assert_eq!(pending.next.alipay_trade_no(), Some("2024"));
        let looked = planned(&creating, &AlipayView::NotExist, after_lease).unwrap();
        assert_eq!(
            looked.next.status(),
            OrderStatus::Creating,
            "an abandoned claim Alipay does not know is only marked as looked at"
        );
        assert_eq!(looked.next.last_synced_at(), Some(after_lease));
        let pending = pending.next;
        assert_eq!(
            planned(&pending, &AlipayView::NotExist, at(32))
                .unwrap()
                .next
                .last_synced_at(),
            Some(at(32))
        );
        let closed = planned(
            &pending,
            &AlipayView::Closed {
                trade_no: "2024".into(),
                source: FactSource::Query,
            },
            at(33),
        )
        .unwrap()
        .next;
        assert_eq!(closed.status(), OrderStatus::Closed);
        let paid_view = AlipayView::Paid {
            trade_no: "2024".into(),
            paid_at: None,
            source: PaymentSource::Query,
            buyer: Buyer::default(),
        };
        assert!(
            planned(&closed, &paid_view, at(34)).is_none(),
            "final stays final"
        );
        let paid = planned(&pending, &paid_view, at(34)).unwrap().next;
        assert_eq!(paid.paid_at(), Some(at(34)));
    }

    #[test]
    fn an_abandoned_claim_without_a_trade_is_closed_once_it_expired() {
        // Claimed at 0, expiring at 900, its creator gone before scheduling the expiry job.
        let claim = order();
        let before = planned(&claim, &AlipayView::NotExist, at(899)).unwrap();
        assert_eq!(
            before.next.status(),
            OrderStatus::Creating,
            "a retry may still send it"
        );
        let after = planned(&claim, &AlipayView::NotExist, at(900)).unwrap();
        assert_eq!(after.next.status(), OrderStatus::Closed);
        assert_eq!(
            after.event.kind,
            crate::order::EventKind::Closed {
                reason: reasons::EXPIRED_WITHOUT_TRADE.into()
            }
        );
        assert_eq!(
            plan(&claim, &AlipayView::NotExist, at(900), Actor::Witness),
            Plan::nothing(),
            "only whoever asked Alipay closes it"
        );
        let pending = claim.created_at_alipay(None, None, at(1)).unwrap().next;
        assert_eq!(
            planned(&pending, &AlipayView::NotExist, at(901))
                .unwrap()
                .next
                .status(),
            OrderStatus::Pending,
            "a PENDING order has its expiry job, which closes (or cancels) it at Alipay too"
        );
    }

    #[test]
    fn a_witness_writes_facts_under_any_lease_records_one_scan_and_never_syncs() {
        // Claimed at 0 with a 30 s lease: live at 5.
        let leased = order();
        assert!(leased.lease_live(at(5)));
        let waiting = AlipayView::Waiting {
            trade_no: "2024".into(),
        };
        let scan = plan(&leased, &waiting, at(5), Actor::Witness)
            .transition
            .unwrap();
        assert!(matches!(
            scan.event.kind,
            crate::order::EventKind::Scanned { .. }
        ));
        assert_eq!(scan.next.status(), OrderStatus::Creating, "status kept");
        assert!(scan.next.same_holder(&leased), "the holder keeps its lease");
        assert_eq!(
            plan(&scan.next, &waiting, at(6), Actor::Witness),
            Plan::nothing(),
            "a second scan is not news"
        );
        assert_eq!(
            plan(&leased, &AlipayView::NotExist, at(5), Actor::Witness),
            Plan::nothing()
        );
        assert_eq!(
            plan(&leased, &waiting, at(5), Actor::Observer),
            Plan::nothing(),
            "an observer leaves a leased order alone"
        );
        let paid = AlipayView::Paid {
            trade_no: "2024".into(),
            paid_at: Some(at(4)),
            source: PaymentSource::Notification,
            buyer: Buyer::new(None, Some("open-id".into())),
        };
        let settled = plan(&leased, &paid, at(5), Actor::Witness)
            .transition
            .unwrap();
        assert_eq!(settled.next.status(), OrderStatus::Paid);
        assert_eq!(settled.next.buyer().open_id.as_deref(), Some("open-id"));
        assert_eq!(settled.next.lease_holder(), None, "the holder's lease ends");
    }
}
