//! Refunding an order exactly once.
//!
//! 1. Claim: one conditional write adds the refund to the order (PENDING, amount reserved)
//!    and takes the order's lease for the refund call. Before it, the refund's re-check is
//!    scheduled on the expiry queue, so a refund whose sender dies is never forgotten.
//! 2. Send `alipay.trade.refund` under the lease ([`crate::fence`]), with the merchant's
//!    `out_request_no` unchanged: Alipay refunds at most once per number.
//! 3. Settle from Alipay's verified answer: `fund_change=Y` is a success; `fund_change=N`
//!    (Alipay had this number already) and every unknown outcome (timeout, `20000`,
//!    `ACQ.SYSTEM_ERROR`, an unverifiable answer) are resolved by
//!    `alipay.trade.fastpay.refund.query`: `REFUND_SUCCESS` is a success, an absent status means
//!    Alipay has no such refund (yet), so the identical request is sent again. A verified
//!    business refusal (`ACQ.TRADE_STATUS_ERROR`, `ACQ.REASON_TRADE_REFUND_FEE_ERR`,
//!    `ACQ.DISCORDANT_REPEAT_REQUEST`, `ACQ.SELLER_BALANCE_NOT_ENOUGH`, …) is a FAILED refund
//!    with Alipay's `sub_code`, and releases the reservation. `ACQ.TRADE_STATUS_ERROR` also
//!    means the trade is not refundable there although it is here (a cancel closed it, or it
//!    was refunded elsewhere): the trade is queried and what it says recorded.
//! 4. Still unknown after the attempts: the lease is released and the refund stays PENDING
//!    with its reservation, to be finished by an identical retry of the request, by the
//!    scheduled re-check (which repeats until the refund settles), or by a notification;
//!    a GET asks the refund query (it never sends a refund).
//!
//! Settling is a fact about money: it is written whoever holds the order then, and a refund
//! Alipay reports that nothing here accounts for is an `unrequested_refund` anomaly.

use crate::anomaly::{AlipayFacts, Anomaly, AnomalyKind, FactSource};
use crate::converge::{
    Actor, Mismatch, Plan, Settled, anomaly, apply_planned, check_trade, converge,
    describe_rejection, describe_unknown, plan_closed_after_payment,
};
use crate::fence::{Fenced, LeasePolicy, apply_as_holder, cover};
use crate::notification::RefundNotice;
use crate::order::{
    NewRefund, Order, OrderFailure, OrderStatus, Refund, RefundRefused, RefundSource,
};
use crate::ports::{
    Applied, Clock, ExpiryScheduler, OrderStore, PaymentGateway, ScheduleError, StoreError,
};
use crate::{OutRequestNo, OutTradeNo};
use alipay::Fen;
use alipay::api::{RefundQueryRequest, RefundRequest, RefundResponse, RefundStatus, TradeRef};
use alipay::notify::TradeStatus;
use alipay::outcome::{Outcome, Rejection};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Alipay's refusal of a refund because the trade is not in a refundable state.
const TRADE_STATUS_ERROR: &str = "ACQ.TRADE_STATUS_ERROR";

/// The knobs of the refund flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundPolicy {
    pub lease: LeasePolicy,
    /// Refund calls one request may send while Alipay's answer stays unknown (each after a
    /// refund query found no refund).
    pub send_attempts: u32,
    /// When the expiry queue brings a refund back to be checked, counted from its claim (and
    /// again from each check that could not settle it).
    pub recheck_after: Duration,
}

/// Why a finished request left a refund PENDING.
pub mod pending_reasons {
    /// Alipay's answer is unknown; an identical retry, the scheduled re-check or a
    /// notification settles it.
    pub const OUTCOME_UNKNOWN: &str = "refund_outcome_unknown";
    /// Alipay refused the call itself (configuration, rate limit): nothing was refunded by
    /// it; the re-check sends it again.
    pub const ALIPAY_REJECTED: &str = "alipay_rejected";
    /// Alipay's answer contradicts the order: an anomaly is recorded for an operator.
    pub const ALIPAY_MISMATCH: &str = "alipay_mismatch";
}

/// A refund request's answer: the order as it is now, holding the refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundAnswer {
    pub order: Order,
    pub out_request_no: OutRequestNo,
    /// The refund existed before this request (an identical retry).
    pub replayed: bool,
    /// Why the refund is still PENDING although this request has finished with it.
    pub pending_reason: Option<&'static str>,
}

impl RefundAnswer {
    pub fn refund(&self) -> Option<&Refund> {
        self.order.refund(&self.out_request_no)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error("no such order")]
    NoSuchOrder,
    #[error("out_request_no is already used by a different refund of this order")]
    Mismatch,
    /// This refund is being sent by another request.
    #[error("this refund is being sent by another request")]
    InFlight { retry_after: u64 },
    /// Another refund of the order is being sent (one at a time per order).
    #[error("another refund of this order is being sent")]
    OrderBusy { retry_after: u64 },
    #[error("the order is {} and cannot be refunded", .0.as_str())]
    NotRefundable(OrderStatus),
    #[error("the refund exceeds the refundable remainder of {refundable_fen} fen")]
    ExceedsPaid { refundable_fen: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Scheduler(#[from] ScheduleError),
}

/// What a scheduled re-check did with an order's PENDING refunds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// No refund of the order is pending (any there were are settled now).
    Settled,
    /// Someone is sending one of them: look again when their lease ends.
    Busy { until: DateTime<Utc> },
    /// At least one is still pending: look again later.
    StillPending,
}

/// Attempts at claiming when other writers keep changing the order.
const CLAIM_ATTEMPTS: usize = 4;

/// The refund flow over the ports of whichever function runs it.
pub struct Refunder<'a, S, Q, G, C> {
    pub store: &'a S,
    pub scheduler: &'a Q,
    pub gateway: &'a G,
    pub clock: &'a C,
    pub policy: &'a RefundPolicy,
}

impl<S, Q, G, C> Refunder<'_, S, Q, G, C>
where
    S: OrderStore,
    Q: ExpiryScheduler,
    G: PaymentGateway,
    C: Clock,
{
    /// `POST …/refunds`: a new refund is claimed and sent; an identical retry answers with the
    /// refund as it is, finishing it first if its sender is gone.
    pub async fn request(
        &self,
        out_trade_no: &OutTradeNo,
        new: &NewRefund,
    ) -> Result<RefundAnswer, RefundError> {
        let mut order = self
            .store
            .get(out_trade_no)
            .await?
            .ok_or(RefundError::NoSuchOrder)?;
        let no = &new.out_request_no;
        let mut scheduled = false;
        for _ in 0..CLAIM_ATTEMPTS {
            let now = self.clock.now();
            if let Some(existing) = order.refund(no) {
                if existing.request_hash() != new.request_hash {
                    return Err(RefundError::Mismatch);
                }
                if !existing.is_pending() {
                    return Ok(answer(order, no, true, None));
                }
                if order.lease_live(now) {
                    return Err(RefundError::InFlight {
                        retry_after: order.lease_seconds_left(now),
                    });
                }
                let Ok(take_over) = order.take_over_refund(no, now, self.lease()) else {
                    continue;
                };
                match self.store.apply(&take_over).await? {
                    Applied::Applied(held) => {
                        return Box::pin(self.finish(held, no, true, true)).await;
                    }
                    Applied::Conflict(Some(current)) => order = current,
                    Applied::Conflict(None) => return Err(RefundError::NoSuchOrder),
                }
                continue;
            }
            let claim = match order.claim_refund(new.clone(), now, self.lease()) {
                Ok(claim) => claim,
                Err(RefundRefused::NotRefundable { status, .. }) => {
                    return Err(RefundError::NotRefundable(status));
                }
                Err(RefundRefused::ExceedsPaid { refundable_fen }) => {
                    return Err(RefundError::ExceedsPaid { refundable_fen });
                }
                Err(RefundRefused::Busy { .. }) => {
                    return Err(RefundError::OrderBusy {
                        retry_after: order.lease_seconds_left(now),
                    });
                }
                Err(RefundRefused::Exists(_)) => continue,
            };
            if !scheduled {
                // Before anything can be sent: a refund whose sender dies is still checked.
                self.scheduler
                    .schedule(out_trade_no, now + self.recheck_after())
                    .await?;
                scheduled = true;
            }
            match self.store.apply(&claim).await? {
                Applied::Applied(held) => {
                    return Box::pin(self.finish(held, no, false, false)).await;
                }
                Applied::Conflict(Some(current)) => order = current,
                Applied::Conflict(None) => return Err(RefundError::NoSuchOrder),
            }
        }
        Err(RefundError::InFlight { retry_after: 1 })
    }

    /// The scheduled re-check: finishes every PENDING refund of `order` nobody is sending.
    pub async fn resolve(&self, order: &Order) -> Result<Resolution, RefundError> {
        let pending: Vec<OutRequestNo> = order
            .refunds()
            .iter()
            .filter(|r| r.is_pending())
            .map(|r| r.out_request_no().clone())
            .collect();
        let mut current = order.clone();
        for no in &pending {
            let now = self.clock.now();
            if let Some(until) = current.lease_until().filter(|_| current.lease_live(now)) {
                return Ok(Resolution::Busy { until });
            }
            let Ok(take_over) = current.take_over_refund(no, now, self.lease()) else {
                continue; // settled meanwhile
            };
            current = match self.store.apply(&take_over).await? {
                Applied::Applied(held) => Box::pin(self.finish(held, no, true, true)).await?.order,
                Applied::Conflict(Some(stored)) => stored,
                Applied::Conflict(None) => return Err(RefundError::NoSuchOrder),
            };
        }
        Ok(if current.refunds().iter().any(Refund::is_pending) {
            Resolution::StillPending
        } else {
            Resolution::Settled
        })
    }

    /// Schedules the next re-check of an order whose refunds are not all settled.
    pub async fn recheck_later(&self, out_trade_no: &OutTradeNo) -> Result<(), ScheduleError> {
        self.scheduler
            .schedule(out_trade_no, self.clock.now() + self.recheck_after())
            .await
    }

    fn lease(&self) -> chrono::Duration {
        self.policy.lease.lease_chrono()
    }

    fn recheck_after(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.policy.recheck_after)
            .unwrap_or(chrono::Duration::seconds(60))
    }

    /// `held` holds the lease for refund `no`: send (or first ask, when something may have
    /// been sent before) until Alipay's answer settles it or the attempts run out.
    async fn finish(
        &self,
        mut held: Order,
        no: &OutRequestNo,
        replayed: bool,
        mut ask_first: bool,
    ) -> Result<RefundAnswer, RefundError> {
        for _ in 0..self.policy.send_attempts.max(1) {
            if ask_first {
                match ask(self.gateway, &held, no).await {
                    Asked::Succeeded { at } => {
                        let fact = Fact::Succeeded {
                            at,
                            source: RefundSource::RefundQuery,
                            alipay_total_fen: None,
                        };
                        return self.settle(&held, no, fact, replayed).await;
                    }
                    Asked::NotSucceeded => {}
                    Asked::Unknown(detail) => {
                        tracing::warn!(out_request_no = %no, detail, "refund query unknown");
                        return self
                            .give_up(&held, no, replayed, pending_reasons::OUTCOME_UNKNOWN)
                            .await;
                    }
                    Asked::Mismatch(mismatch) => {
                        return self.mismatch(&held, no, replayed, mismatch).await;
                    }
                }
            }
            held = match cover(
                self.store,
                self.clock,
                &self.policy.lease,
                &held,
                self.gateway.call_timeout(),
            )
            .await?
            {
                Fenced::Held(order) => order,
                Fenced::Lost(current) => return Ok(self.lost(current, no, replayed)),
            };
            let Some(request) = refund_request(&held, no) else {
                return Ok(answer(held, no, replayed, None));
            };
            match read_refund(&held, self.gateway.refund(&request).await) {
                Sent::Succeeded { at, total_fen } => {
                    let fact = Fact::Succeeded {
                        at,
                        source: RefundSource::RefundResponse,
                        alipay_total_fen: Some(total_fen),
                    };
                    return self.settle(&held, no, fact, replayed).await;
                }
                Sent::Refused(failure) => {
                    tracing::info!(out_request_no = %no, sub_code = failure.code, "Alipay refused the refund");
                    let trade_not_refundable = failure.code == TRADE_STATUS_ERROR;
                    let settled = self
                        .settle(&held, no, Fact::Failed(failure), replayed)
                        .await?;
                    if !trade_not_refundable {
                        return Ok(settled);
                    }
                    // The trade is not refundable at Alipay although it is here (closed by a
                    // cancel, or refunded elsewhere): ask what it is, and record it.
                    let converged = converge(
                        self.store,
                        self.gateway,
                        self.clock,
                        &settled.order,
                        Actor::Observer,
                    )
                    .await?;
                    return Ok(self.lost(converged.order, no, replayed));
                }
                Sent::AlreadyKnown => ask_first = true,
                Sent::Unknown(detail) => {
                    tracing::warn!(out_request_no = %no, detail, "refund outcome unknown");
                    ask_first = true;
                }
                Sent::Rejected(detail) => {
                    tracing::error!(out_request_no = %no, detail, "Alipay rejected the refund call");
                    return self
                        .give_up(&held, no, replayed, pending_reasons::ALIPAY_REJECTED)
                        .await;
                }
                Sent::Mismatch(mismatch) => {
                    return self.mismatch(&held, no, replayed, mismatch).await;
                }
            }
        }
        self.give_up(&held, no, replayed, pending_reasons::OUTCOME_UNKNOWN)
            .await
    }

    async fn settle(
        &self,
        held: &Order,
        no: &OutRequestNo,
        fact: Fact,
        replayed: bool,
    ) -> Result<RefundAnswer, RefundError> {
        let settled = apply_planned(self.store, self.clock, held, |current, now| {
            plan_fact(current, no, &fact, now)
        })
        .await?;
        Ok(self.lost(settled.order, no, replayed))
    }

    async fn mismatch(
        &self,
        held: &Order,
        no: &OutRequestNo,
        replayed: bool,
        mismatch: Mismatch,
    ) -> Result<RefundAnswer, RefundError> {
        let now = self.clock.now();
        let record = anomaly(held, mismatch, now);
        self.store.record_anomaly(&record).await?;
        record.report();
        self.give_up(held, no, replayed, pending_reasons::ALIPAY_MISMATCH)
            .await
    }

    /// Ends the lease without an answer: the refund stays PENDING with its reservation.
    async fn give_up(
        &self,
        held: &Order,
        no: &OutRequestNo,
        replayed: bool,
        reason: &'static str,
    ) -> Result<RefundAnswer, RefundError> {
        let Settled { order, .. } =
            apply_as_holder(self.store, self.clock, held, |current, now| {
                current.release_lease(now)
            })
            .await?;
        let reason = order.refund(no).filter(|r| r.is_pending()).map(|_| reason);
        Ok(answer(order, no, replayed, reason))
    }

    /// The answer from the order as stored now, when someone else may have it.
    fn lost(&self, current: Order, no: &OutRequestNo, replayed: bool) -> RefundAnswer {
        let reason = current
            .refund(no)
            .filter(|r| r.is_pending())
            .map(|_| pending_reasons::OUTCOME_UNKNOWN);
        answer(current, no, replayed, reason)
    }
}

fn answer(
    order: Order,
    no: &OutRequestNo,
    replayed: bool,
    pending_reason: Option<&'static str>,
) -> RefundAnswer {
    RefundAnswer {
        order,
        out_request_no: no.clone(),
        replayed,
        pending_reason,
    }
}

/// `GET …/refunds/{no}`: a PENDING refund nobody is sending is asked about (the refund query
/// only; a GET never sends a refund), at most once per `check_interval`. Returns the order as
/// stored now and, when Alipay could not tell, why (`alipay_unavailable`, `alipay_mismatch`).
pub async fn check<S, G, C>(
    store: &S,
    gateway: &G,
    clock: &C,
    check_interval: Duration,
    order: Order,
    no: &OutRequestNo,
) -> Result<(Order, Option<String>), StoreError>
where
    S: OrderStore,
    G: PaymentGateway,
    C: Clock,
{
    let now = clock.now();
    let interval = chrono::Duration::from_std(check_interval).unwrap_or_default();
    let due = order.refund(no).is_some_and(|r| {
        r.is_pending() && r.last_checked_at().is_none_or(|at| at + interval <= now)
    });
    if !due || order.lease_live(now) {
        return Ok((order, None));
    }
    match ask(gateway, &order, no).await {
        Asked::Succeeded { at } => {
            let fact = Fact::Succeeded {
                at,
                source: RefundSource::RefundQuery,
                alipay_total_fen: None,
            };
            let settled = apply_planned(store, clock, &order, |current, now| {
                plan_fact(current, no, &fact, now)
            })
            .await?;
            Ok((settled.order, None))
        }
        Asked::NotSucceeded => {
            let settled = apply_planned(store, clock, &order, |current, now| {
                Plan::transition(current.refund_checked(no, now).ok())
            })
            .await?;
            Ok((settled.order, None))
        }
        Asked::Unknown(detail) => {
            tracing::warn!(out_request_no = %no, detail, "refund query unknown");
            Ok((order, Some("alipay_unavailable".to_owned())))
        }
        Asked::Mismatch(mismatch) => {
            let record = anomaly(&order, mismatch, now);
            store.record_anomaly(&record).await?;
            record.report();
            Ok((order, Some(pending_reasons::ALIPAY_MISMATCH.to_owned())))
        }
    }
}

/// What Alipay's refund query says about refund `no` of `order`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Asked {
    Succeeded {
        at: Option<DateTime<Utc>>,
    },
    /// Alipay has no such refund (or it failed): sending the identical request is safe.
    NotSucceeded,
    Unknown(String),
    Mismatch(Mismatch),
}

async fn ask<G: PaymentGateway>(gateway: &G, order: &Order, no: &OutRequestNo) -> Asked {
    let request = RefundQueryRequest::new(
        TradeRef::out_trade_no(order.out_trade_no().as_str()),
        no.as_str(),
    );
    read_refund_query(order, no, gateway.refund_query(&request).await)
}

fn read_refund_query(
    order: &Order,
    no: &OutRequestNo,
    outcome: Outcome<alipay::api::RefundQueryResponse>,
) -> Asked {
    let answer = match outcome {
        Outcome::Success(answer) | Outcome::WaitingForBuyer(answer) => answer,
        Outcome::Failed(failure) => {
            return Asked::Unknown(format!(
                "refund_query_failed_{}",
                failure.sub_code.as_deref().unwrap_or(&failure.code)
            ));
        }
        Outcome::Unknown(cause) => return Asked::Unknown(describe_unknown(&cause)),
        Outcome::Rejected(rejection) => return Asked::Unknown(describe_rejection(&rejection)),
    };
    if answer.refund_status != RefundStatus::Success {
        return Asked::NotSucceeded;
    }
    let expected = order.refund(no).map(Refund::amount_fen);
    let facts = || AlipayFacts {
        source: Some(FactSource::RefundQuery),
        out_trade_no: answer.out_trade_no.clone(),
        trade_no: answer.trade_no.clone(),
        trade_status: None,
        total_amount_fen: answer.total_amount.map(Fen::get),
        refund_fen: answer.refund_amount.map(Fen::get),
    };
    if let Some(out_trade_no) = answer.out_trade_no.as_deref()
        && let Some(mismatch) =
            check_trade(order, out_trade_no, None, answer.trade_no.as_deref(), facts)
    {
        return Asked::Mismatch(mismatch);
    }
    if let (Some(theirs), Some(ours)) = (answer.refund_amount.map(Fen::get), expected)
        && theirs != ours
    {
        return Asked::Mismatch(Mismatch {
            kind: AnomalyKind::AmountMismatch,
            facts: facts(),
            detail: format!(
                "Alipay refunded {} under out_request_no {no}, asked for {}",
                Fen::new(theirs).to_yuan(),
                Fen::new(ours).to_yuan()
            ),
        });
    }
    Asked::Succeeded {
        at: beijing_time(answer.gmt_refund_pay.as_deref()),
    }
}

/// What Alipay answered to a refund call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    /// `fund_change=Y`: this call refunded; `total_fen` is the trade's refunded total.
    Succeeded {
        at: Option<DateTime<Utc>>,
        total_fen: i64,
    },
    /// `fund_change=N`: Alipay knew this `out_request_no`; its refund query says how it ended.
    AlreadyKnown,
    /// A verified business refusal: the refund failed for good.
    Refused(OrderFailure),
    Unknown(String),
    /// The gateway refused the call (nothing was refunded by it).
    Rejected(String),
    Mismatch(Mismatch),
}

fn refund_request(order: &Order, no: &OutRequestNo) -> Option<RefundRequest> {
    let refund = order.refund(no)?;
    let mut request = RefundRequest::new(
        TradeRef::out_trade_no(order.out_trade_no().as_str()),
        Fen::new(refund.amount_fen()),
        no.as_str(),
    );
    request.refund_reason = refund.reason().map(str::to_owned);
    request.store_id = refund.store_id().map(str::to_owned);
    request.operator_id = refund.operator_id().map(str::to_owned);
    request.terminal_id = refund.terminal_id().map(str::to_owned);
    Some(request)
}

fn read_refund(order: &Order, outcome: Outcome<RefundResponse>) -> Sent {
    let answer = match outcome {
        Outcome::Success(answer) => answer,
        // Not an answer a refund has: nothing in it can be acted on.
        Outcome::WaitingForBuyer(_) => return Sent::Unknown("waiting_for_buyer".into()),
        Outcome::Failed(failure) => {
            return Sent::Refused(OrderFailure {
                code: failure
                    .sub_code
                    .clone()
                    .unwrap_or_else(|| failure.code.clone()),
                message: failure.sub_msg.clone().unwrap_or(failure.msg),
            });
        }
        Outcome::Unknown(cause) => return Sent::Unknown(describe_unknown(&cause)),
        Outcome::Rejected(rejection) => {
            if let Rejection::Gateway { failure, .. } = &rejection
                && failure.code == "40005"
            {
                return Sent::Rejected("rate_limited".into());
            }
            return Sent::Rejected(describe_rejection(&rejection));
        }
    };
    let facts = || AlipayFacts {
        source: Some(FactSource::RefundResponse),
        out_trade_no: Some(answer.out_trade_no.clone()),
        trade_no: Some(answer.trade_no.clone()),
        trade_status: None,
        total_amount_fen: None,
        refund_fen: Some(answer.refund_fee.get()),
    };
    if let Some(mismatch) = check_trade(
        order,
        &answer.out_trade_no,
        None,
        Some(&answer.trade_no),
        facts,
    ) {
        return Sent::Mismatch(mismatch);
    }
    if answer.fund_change {
        Sent::Succeeded {
            at: beijing_time(answer.gmt_refund_pay.as_deref()),
            total_fen: answer.refund_fee.get(),
        }
    } else {
        Sent::AlreadyKnown
    }
}

fn beijing_time(text: Option<&str>) -> Option<DateTime<Utc>> {
    text.and_then(|t| alipay::time::parse_beijing(t).ok())
}

/// A settled refund as learned from Alipay.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fact {
    Succeeded {
        at: Option<DateTime<Utc>>,
        source: RefundSource,
        /// Alipay's refunded total of the trade, when the answer carries it.
        alipay_total_fen: Option<i64>,
    },
    Failed(OrderFailure),
}

/// The write that records `fact` about refund `no` on the order as stored now.
fn plan_fact(current: &Order, no: &OutRequestNo, fact: &Fact, now: DateTime<Utc>) -> Plan {
    let Some(refund) = current.refund(no) else {
        return Plan::nothing();
    };
    match fact {
        Fact::Succeeded {
            at,
            source,
            alipay_total_fen,
        } => {
            if !refund.is_pending() {
                if refund.status() == crate::order::RefundStatus::Failed {
                    let detail = format!(
                        "Alipay reports refund {no} made, recorded here as failed ({})",
                        refund.failure().map_or("", |f| f.code.as_str())
                    );
                    return Plan {
                        transition: None,
                        anomaly: Some(unrequested(current, detail, *alipay_total_fen, now)),
                    };
                }
                return Plan::nothing();
            }
            let Ok(transition) = current.refund_succeeded(no, at.unwrap_or(now), *source, now)
            else {
                return Plan::nothing();
            };
            let anomaly = alipay_total_fen
                .filter(|total| {
                    *total > transition.next.refunded_fen() + transition.next.reserved_fen()
                })
                .map(|total| {
                    let detail = format!(
                        "Alipay's refunded total is {}, refunds here account for {}",
                        Fen::new(total).to_yuan(),
                        Fen::new(transition.next.refunded_fen()).to_yuan()
                    );
                    let mut record = unrequested(&transition.next, detail, Some(total), now);
                    record.order_status = Some(transition.next.status());
                    record
                });
            Plan {
                transition: Some(transition),
                anomaly,
            }
        }
        Fact::Failed(failure) => {
            Plan::transition(current.refund_failed(no, failure.clone(), now).ok())
        }
    }
}

fn unrequested(
    order: &Order,
    detail: String,
    alipay_total_fen: Option<i64>,
    now: DateTime<Utc>,
) -> Anomaly {
    let mut facts = AlipayFacts::from(FactSource::RefundResponse);
    facts.out_trade_no = Some(order.out_trade_no().to_string());
    facts.trade_no = order.alipay_trade_no().map(str::to_owned);
    facts.refund_fen = alipay_total_fen;
    anomaly(
        order,
        Mismatch {
            kind: AnomalyKind::UnrequestedRefund,
            facts,
            detail,
        },
        now,
    )
}

/// What a verified refund notification (it carries `refund_fee`, the trade's refunded total)
/// means for `order`: the refund it names (`out_biz_no`) succeeded, if it is PENDING here; a
/// refund that nothing here accounts for (another number, a total above what is refunded and
/// reserved here, an order that is not paid here) is an `unrequested_refund` anomaly;
/// anything else is already known. A witness's write: it never sends anything.
pub fn plan_refund_notice(
    order: &Order,
    notice: &RefundNotice,
    trade_no: Option<&str>,
    now: DateTime<Utc>,
) -> Plan {
    let mut facts = AlipayFacts::from(FactSource::Notification);
    facts.out_trade_no = Some(order.out_trade_no().to_string());
    facts.trade_no = trade_no.map(str::to_owned);
    facts.trade_status = Some(notice.trade_status.clone());
    facts.refund_fen = Some(notice.refund_fee_fen);
    let contradiction = |detail: String| Plan {
        transition: None,
        anomaly: Some(anomaly(
            order,
            Mismatch {
                kind: AnomalyKind::UnrequestedRefund,
                facts: facts.clone(),
                detail,
            },
            now,
        )),
    };
    if !order.status().is_refundable() && order.status() != OrderStatus::Refunded {
        return contradiction(format!(
            "Alipay notified a refund of {} for an order that is {} here",
            Fen::new(notice.refund_fee_fen).to_yuan(),
            order.status().as_str()
        ));
    }
    let named = notice
        .out_biz_no
        .as_deref()
        .and_then(|no| OutRequestNo::parse(no).ok())
        .filter(|no| order.refund(no).is_some());
    if let Some(no) = &named
        && order.refund(no).is_some_and(Refund::is_pending)
    {
        let at = beijing_time(notice.gmt_refund.as_deref()).unwrap_or(now);
        let fact = Fact::Succeeded {
            at: Some(at),
            source: RefundSource::Notification,
            alipay_total_fen: Some(notice.refund_fee_fen),
        };
        let mut plan = plan_fact(order, no, &fact, now);
        if let Some(record) = plan.anomaly.as_mut() {
            record.facts = facts;
        }
        return plan;
    }
    if let Some(no) = &named
        && order
            .refund(no)
            .is_some_and(|r| r.status() == crate::order::RefundStatus::Failed)
    {
        return contradiction(format!(
            "Alipay notified refund {no}, recorded here as failed"
        ));
    }
    let accounted = order.refunded_fen() + order.reserved_fen();
    if notice.refund_fee_fen > accounted && notice.trade_status == TradeStatus::TradeClosed.as_str()
    {
        // Closed there, refunded in full: a refund in flight here learns the trade's state
        // from its own answer (it settles, or is refused and asks); otherwise the order is
        // brought in line now.
        return plan_closed_after_payment(order, facts, now);
    }
    if notice.refund_fee_fen > accounted {
        return contradiction(format!(
            "Alipay notified a refunded total of {}, refunds here account for {}",
            Fen::new(notice.refund_fee_fen).to_yuan(),
            Fen::new(accounted).to_yuan()
        ));
    }
    Plan::nothing()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scene;
    use crate::order::RefundStatus as Status;
    use alipay::outcome::{Failure, UnknownCause};

    use crate::test_orders::at;

    fn no(text: &str) -> OutRequestNo {
        OutRequestNo::parse(text).unwrap_or_else(|e| unreachable!("{e}"))
    }

    /// A paid order of 1.00 with a pending refund `r1` of 0.30.
    fn with_pending() -> Order {
        let paid = crate::test_orders::paid(Scene::Qr);
        let ask = NewRefund {
            out_request_no: no("r1"),
            amount_fen: 30,
            reason: None,
            store_id: None,
            operator_id: None,
            terminal_id: None,
            request_hash: "r".into(),
        };
        paid.claim_refund(ask, at(2), chrono::Duration::seconds(15))
            .unwrap_or_else(|e| unreachable!("{e}"))
            .next
    }

    fn response(fund_change: bool, total: i64) -> RefundResponse {
        RefundResponse {
            trade_no: "2024T1".into(),
            out_trade_no: "T1".into(),
            buyer_logon_id: None,
            fund_change,
            refund_fee: Fen::new(total),
            gmt_refund_pay: Some("2023-11-15 06:13:25".into()),
        }
    }

    fn failure(code: &str, sub_code: &str) -> Failure {
        Failure {
            code: code.into(),
            msg: "Business Failed".into(),
            sub_code: Some(sub_code.into()),
            sub_msg: Some("余额不足".into()),
        }
    }

    #[test]
    fn fund_change_decides_and_a_business_refusal_is_final() {
        let order = with_pending();
        assert!(matches!(
            read_refund(&order, Outcome::Success(response(true, 30))),
            Sent::Succeeded {
                total_fen: 30,
                at: Some(_)
            }
        ));
        assert_eq!(
            read_refund(&order, Outcome::Success(response(false, 30))),
            Sent::AlreadyKnown
        );
        assert!(matches!(
            read_refund(&order, Outcome::Failed(failure("40004", "ACQ.SELLER_BALANCE_NOT_ENOUGH"))),
            Sent::Refused(OrderFailure { code, .. }) if code == "ACQ.SELLER_BALANCE_NOT_ENOUGH"
        ));
        assert!(matches!(
            read_refund(&order, Outcome::Unknown(UnknownCause::Timeout)),
            Sent::Unknown(_)
        ));
        let mut other = response(true, 30);
        other.trade_no = "2024OTHER".into();
        assert!(matches!(
            read_refund(&order, Outcome::Success(other)),
            Sent::Mismatch(Mismatch {
                kind: AnomalyKind::TradeNoMismatch,
                ..
            })
        ));
    }

    #[test]
    fn a_refunded_total_beyond_the_refunds_here_is_an_anomaly_with_the_success() {
        let order = with_pending();
        let fact = |total| Fact::Succeeded {
            at: None,
            source: RefundSource::RefundResponse,
            alipay_total_fen: Some(total),
        };
        let plan = plan_fact(&order, &no("r1"), &fact(30), at(3));
        assert!(plan.transition.is_some() && plan.anomaly.is_none());
        let plan = plan_fact(&order, &no("r1"), &fact(80), at(3));
        let transition = plan.transition.unwrap_or_else(|| unreachable!());
        assert_eq!(transition.next.status(), OrderStatus::PartiallyRefunded);
        assert!(matches!(
            plan.anomaly,
            Some(Anomaly {
                kind: AnomalyKind::UnrequestedRefund,
                ..
            })
        ));
    }

    #[test]
    fn a_refund_notification_settles_its_pending_refund_and_flags_the_unknown() {
        let order = with_pending();
        let notice = |fee, out_biz_no: Option<&str>| RefundNotice {
            refund_fee_fen: fee,
            gmt_refund: Some("2023-11-15 06:13:25.123".into()),
            out_biz_no: out_biz_no.map(str::to_owned),
            trade_status: "TRADE_SUCCESS".into(),
        };
        let plan = plan_refund_notice(&order, &notice(30, Some("r1")), Some("2024T1"), at(4));
        let next = plan
            .transition
            .map(|t| t.next)
            .unwrap_or_else(|| unreachable!());
        assert_eq!(
            next.refund(&no("r1")).map(Refund::status),
            Some(Status::Succeeded)
        );
        assert_eq!(plan.anomaly, None);
        // Repeated: already known.
        assert_eq!(
            plan_refund_notice(&next, &notice(30, Some("r1")), None, at(5)),
            Plan::nothing()
        );
        // Explained by the pending refund (no number given): left to the refund flow.
        assert_eq!(
            plan_refund_notice(&order, &notice(30, None), None, at(5)),
            Plan::nothing()
        );
        // Nobody here asked for more.
        let plan = plan_refund_notice(&next, &notice(50, Some("portal_1")), None, at(6));
        assert!(plan.transition.is_none());
        assert!(matches!(
            plan.anomaly,
            Some(Anomaly {
                kind: AnomalyKind::UnrequestedRefund,
                ..
            })
        ));
    }

    #[test]
    fn a_closed_trade_notified_with_the_whole_amount_refunded_settles_a_paid_barcode_order() {
        let paid = crate::test_orders::paid;
        // The cancel's refund, as Alipay notifies it: the trade closed, all of it refunded.
        let notice = RefundNotice {
            refund_fee_fen: 100,
            gmt_refund: Some("2023-11-15 06:13:25".into()),
            out_biz_no: Some("T1".into()),
            trade_status: "TRADE_CLOSED".into(),
        };
        let plan = plan_refund_notice(&paid(Scene::Barcode), &notice, Some("2024T1"), at(4));
        let next = plan
            .transition
            .map(|t| t.next)
            .unwrap_or_else(|| unreachable!());
        assert_eq!(next.status(), OrderStatus::Refunded);
        assert!(matches!(
            plan.anomaly,
            Some(Anomaly {
                kind: AnomalyKind::RefundedByCancel,
                ..
            })
        ));
        // Delivered again: already known.
        assert_eq!(
            plan_refund_notice(&next, &notice, Some("2024T1"), at(5)),
            Plan::nothing()
        );
        // A QR order is never cancelled: a refund nobody here asked for, the order unchanged.
        let plan = plan_refund_notice(&paid(Scene::Qr), &notice, Some("2024T1"), at(4));
        assert!(plan.transition.is_none());
        assert!(matches!(
            plan.anomaly,
            Some(Anomaly {
                kind: AnomalyKind::UnrequestedRefund,
                ..
            })
        ));
    }

    #[test]
    fn the_refund_query_tells_success_from_absence_and_checks_the_amount() {
        let order = with_pending();
        let answer = |status: Option<&str>, amount: i64| {
            serde_json::from_value::<alipay::api::RefundQueryResponse>(serde_json::json!({
                "trade_no": "2024T1", "out_trade_no": "T1", "out_request_no": "r1",
                "refund_amount": Fen::new(amount).to_yuan(), "refund_status": status,
            }))
            .unwrap_or_else(|e| unreachable!("{e}"))
        };
        assert!(matches!(
            read_refund_query(
                &order,
                &no("r1"),
                Outcome::Success(answer(Some("REFUND_SUCCESS"), 30))
            ),
            Asked::Succeeded { .. }
        ));
        assert_eq!(
            read_refund_query(&order, &no("r1"), Outcome::Success(answer(None, 30))),
            Asked::NotSucceeded
        );
        assert!(matches!(
            read_refund_query(
                &order,
                &no("r1"),
                Outcome::Success(answer(Some("REFUND_SUCCESS"), 31))
            ),
            Asked::Mismatch(Mismatch {
                kind: AnomalyKind::AmountMismatch,
                ..
            })
        ));
        assert!(matches!(
            read_refund_query(&order, &no("r1"), Outcome::Unknown(UnknownCause::Timeout)),
            Asked::Unknown(_)
        ));
    }
}
