//! One expiry message: the order it names is due. An order that is settled needs nothing; an
//! order someone holds is looked at again when their lease ends; an order nobody holds is
//! taken over (its lease), Alipay is asked, and the order is settled by Alipay's answer:
//!
//! | Alipay says | QR order | barcode order |
//! | --- | --- | --- |
//! | paid / closed | PAID / CLOSED (the missed notification) | same |
//! | waiting for the buyer | `alipay.trade.close`, then CLOSED | `alipay.trade.cancel`, then CLOSED (or REFUNDED with an anomaly if the cancel refunded) |
//! | no such trade | CLOSED here (the code was never scanned, and Alipay refuses it after `time_expire`) | `alipay.trade.cancel` (Alipay's rule for an unknown pay outcome), then CLOSED; a payment that lands later is a `paid_after_close` anomaly |
//! | unknown | lease released, the message is retried | same |
//!
//! A close that fails because the buyer paid in between is followed by a query: PAID. Every
//! close and cancel is fenced (`domain::fence`), like the pay function's calls.
//!
//! A message the pay function sent before its claim names that claim, and counts only if the
//! stored order is that claim: a retry's message (its claim failed, the number was taken) or
//! one for a claim never written is dropped; once checked, the rest of its chain is the
//! order's own.
//!
//! A paid order with PENDING refunds (the re-check each refund schedules when it is claimed)
//! has them finished by `domain::refunding`: refund query, then the identical refund again if
//! Alipay has none; one still unknown is scheduled again.

use crate::{Expiries, ExpiryError, Handled};
use alipay::api::{CloseRequest, QueryRequest, TradeRef};
use alipay::outcome::Outcome;
use aws_adapters::ExpiryMessage;
use domain::converge::{Actor, AlipayView, apply_planned, apply_view, plan_cancelled, read_query};
use domain::fence::{Fenced, apply_as_holder, cover, release};
use domain::order::{Order, Refund};
use domain::ports::{Applied, ClaimRef, Clock, ExpiryScheduler, OrderStore, PaymentGateway};
use domain::refunding::{RefundError, Refunder, Resolution};
use domain::{OutTradeNo, Scene};

/// Why an order was closed by this function, as recorded in its `Closed` event.
pub mod reasons {
    /// The order expired and Alipay's trade was closed (QR) or cancelled (barcode).
    pub const EXPIRED: &str = "expired";
    /// The order expired and Alipay never had a trade: the QR code was never scanned.
    pub const EXPIRED_NEVER_SCANNED: &str = "expired_never_scanned";
}

/// Attempts at taking an order over when other writers keep changing it.
const TAKE_OVER_ATTEMPTS: usize = 3;

impl<S, Q, G, C> Expiries<S, Q, G, C>
where
    S: OrderStore,
    Q: ExpiryScheduler,
    G: PaymentGateway,
    C: Clock,
{
    /// Handles one message; an error asks SQS to deliver it again.
    pub async fn expire(&self, message: &ExpiryMessage) -> Result<Handled, ExpiryError> {
        let no = &message.out_trade_no;
        let claimed = match &message.claim {
            Some(claim) => match self.claimed(no, claim).await? {
                Some(order) => Some(order),
                None => return Ok(Handled::NotThisClaim),
            },
            None => None,
        };
        if !message.is_due(self.clock.now()) {
            // The claim, if any, is checked: the rest of the chain is the order's own.
            self.scheduler.schedule(no, message.due_at).await?;
            return Ok(Handled::NotDue);
        }
        let mut order = match claimed {
            Some(order) => order,
            None => match self.store.get(no).await? {
                Some(order) => order,
                None => {
                    tracing::error!(out_trade_no = %no, "an expiry for an order that does not exist");
                    return Ok(Handled::NoSuchOrder);
                }
            },
        };
        if order.refunds().iter().any(Refund::is_pending) {
            return self.refunds(&order).await;
        }
        for _ in 0..TAKE_OVER_ATTEMPTS {
            let now = self.clock.now();
            if order.status().is_final() {
                return Ok(Handled::AlreadySettled(order.status()));
            }
            if let Some(until) = order.lease_until().filter(|_| order.lease_live(now)) {
                // Someone is working on it: look again once their lease has run out.
                let margin = chrono::Duration::from_std(self.policy.margin).unwrap_or_default();
                self.scheduler.schedule(no, until + margin).await?;
                return Ok(Handled::Busy);
            }
            let Ok(take_over) = order.take_over_lease(now, self.policy.lease_chrono()) else {
                // Settled or leased in the meantime is handled above; anything else: again later.
                return Err(ExpiryError::Contended);
            };
            match self.store.apply(&take_over).await? {
                Applied::Applied(held) => return self.settle(held).await,
                Applied::Conflict(Some(current)) => order = current,
                Applied::Conflict(None) => return Ok(Handled::NoSuchOrder),
            }
        }
        // Others kept changing it: SQS brings the message back.
        Err(ExpiryError::Contended)
    }

    /// The stored order if it is the claim a message scheduled before its claim names; `None`
    /// if it is not (the message is dropped). SQS delivers such a message at the earliest when
    /// the claim's lease (the time its writer has to write it) is over: due times are later
    /// than that, and a not-yet-due message arrives after the longest delay, 900 s.
    async fn claimed(
        &self,
        no: &OutTradeNo,
        claim: &ClaimRef,
    ) -> Result<Option<Order>, ExpiryError> {
        let window = self.policy.lease_chrono()
            + chrono::Duration::from_std(self.policy.margin).unwrap_or_default();
        match self.store.get(no).await? {
            Some(order) if claim.names(&order) => Ok(Some(order)),
            Some(_) => {
                tracing::info!(out_trade_no = %no, claimed_at = %claim.claimed_at, "an expiry scheduled for a retry's claim, which the stored order is not: dropped");
                Ok(None)
            }
            None if self.clock.now() < claim.claimed_at + window => {
                // Its writer may still be writing it: SQS delivers the message again.
                Err(ExpiryError::ClaimNotStoredYet)
            }
            None => {
                tracing::info!(out_trade_no = %no, claimed_at = %claim.claimed_at, "an expiry scheduled for a claim that was never stored: dropped");
                Ok(None)
            }
        }
    }

    /// Finishes the order's PENDING refunds nobody is sending; what stays unknown is checked
    /// again later (a new message), so an unsettled refund is never dropped.
    async fn refunds(&self, order: &Order) -> Result<Handled, ExpiryError> {
        let refunder = Refunder {
            store: &self.store,
            scheduler: &self.scheduler,
            gateway: &self.gateway,
            clock: &self.clock,
            policy: &self.refunds,
        };
        let no = order.out_trade_no();
        match refunder.resolve(order).await {
            Ok(Resolution::Settled) => Ok(Handled::RefundsSettled),
            Ok(Resolution::Busy { until }) => {
                let margin = chrono::Duration::from_std(self.policy.margin).unwrap_or_default();
                self.scheduler.schedule(no, until + margin).await?;
                Ok(Handled::Busy)
            }
            Ok(Resolution::StillPending) => {
                tracing::warn!(out_trade_no = %no, "a refund is still unsettled; checked again later");
                refunder.recheck_later(no).await?;
                Ok(Handled::RefundsPending)
            }
            Err(RefundError::Store(error)) => Err(ExpiryError::Store(error)),
            Err(RefundError::Scheduler(error)) => Err(ExpiryError::Scheduler(error)),
            Err(RefundError::NoSuchOrder) => Ok(Handled::NoSuchOrder),
            Err(_) => Err(ExpiryError::Contended),
        }
    }

    /// `held` is open and its lease is ours.
    async fn settle(&self, held: Order) -> Result<Handled, ExpiryError> {
        let query = QueryRequest::new(TradeRef::out_trade_no(held.out_trade_no().as_str()));
        let view = read_query(&held, self.gateway.query(&query).await);
        tracing::info!(out_trade_no = %held.out_trade_no(), alipay = view.kind(), scene = ?held.scene(), "expired order asked about");
        match (view, held.scene()) {
            (view @ (AlipayView::Paid { .. } | AlipayView::Closed { .. }), _) => {
                self.converge(&held, view).await
            }
            (AlipayView::Waiting { .. }, Scene::Qr) => self.close(held).await,
            (AlipayView::Waiting { .. } | AlipayView::NotExist, Scene::Barcode) => {
                self.cancel(held).await
            }
            (AlipayView::NotExist, Scene::Qr) => {
                let settled = apply_as_holder(&self.store, &self.clock, &held, |current, now| {
                    current.closed(reasons::EXPIRED_NEVER_SCANNED, now)
                })
                .await?;
                Ok(Handled::Settled(settled.order.status()))
            }
            (view @ AlipayView::Mismatch(_), _) => {
                // Recorded as an anomaly for an operator; nothing is sent to Alipay.
                apply_view(&self.store, &self.clock, &held, view, Actor::Holder(&held)).await?;
                release(&self.store, &self.clock, &held).await;
                Ok(Handled::Anomaly)
            }
            (AlipayView::Unknown(detail), _) => {
                release(&self.store, &self.clock, &held).await;
                Err(ExpiryError::AlipayUnknown(detail))
            }
        }
    }

    async fn converge(&self, held: &Order, view: AlipayView) -> Result<Handled, ExpiryError> {
        let converged =
            apply_view(&self.store, &self.clock, held, view, Actor::Holder(held)).await?;
        Ok(Handled::Settled(converged.order.status()))
    }

    /// Fences the next call of `held`; when someone else has the order now, what became of
    /// the message instead.
    async fn fence(&self, held: &Order) -> Result<Result<Order, Handled>, ExpiryError> {
        let work = self.gateway.call_timeout();
        match cover(&self.store, &self.clock, &self.policy, held, work).await? {
            Fenced::Held(order) => Ok(Ok(order)),
            Fenced::Lost(current) => {
                tracing::warn!(out_trade_no = %held.out_trade_no(), status = current.status().as_str(), "another function has the order now");
                if current.status().is_open() {
                    // Whoever has it may die too: look again once their lease has run out.
                    let margin = chrono::Duration::from_std(self.policy.margin).unwrap_or_default();
                    let again = current.lease_until().unwrap_or_else(|| self.clock.now()) + margin;
                    self.scheduler
                        .schedule(current.out_trade_no(), again)
                        .await?;
                    return Ok(Err(Handled::Busy));
                }
                Ok(Err(Handled::AlreadySettled(current.status())))
            }
        }
    }

    /// `alipay.trade.close` of a QR trade waiting for the buyer.
    async fn close(&self, held: Order) -> Result<Handled, ExpiryError> {
        let held = match self.fence(&held).await? {
            Ok(held) => held,
            Err(handled) => return Ok(handled),
        };
        let request = CloseRequest::new(TradeRef::out_trade_no(held.out_trade_no().as_str()));
        match Box::pin(self.gateway.close(&request)).await {
            Outcome::Success(_) => {
                let settled = apply_as_holder(&self.store, &self.clock, &held, |current, now| {
                    current.closed(reasons::EXPIRED, now)
                })
                .await?;
                Ok(Handled::Settled(settled.order.status()))
            }
            // Refused: the trade is no longer waiting (the buyer paid in between, or it closed
            // by itself). Alipay says which.
            Outcome::Failed(failure) => {
                tracing::info!(out_trade_no = %held.out_trade_no(), sub_code = failure.sub_code.as_deref().unwrap_or(&failure.code), "close refused; asking Alipay");
                let query = QueryRequest::new(TradeRef::out_trade_no(held.out_trade_no().as_str()));
                match read_query(&held, self.gateway.query(&query).await) {
                    view @ (AlipayView::Paid { .. } | AlipayView::Closed { .. }) => {
                        self.converge(&held, view).await
                    }
                    other => {
                        release(&self.store, &self.clock, &held).await;
                        Err(ExpiryError::AlipayUnknown(format!(
                            "close refused, trade {}",
                            other.kind()
                        )))
                    }
                }
            }
            _ => {
                release(&self.store, &self.clock, &held).await;
                Err(ExpiryError::AlipayUnknown("close outcome unknown".into()))
            }
        }
    }

    /// `alipay.trade.cancel` of a barcode trade (Alipay's rule for face-to-face payments: an
    /// unresolved barcode payment is cancelled, which also refunds it if it was paid).
    async fn cancel(&self, held: Order) -> Result<Handled, ExpiryError> {
        let held = match self.fence(&held).await? {
            Ok(held) => held,
            Err(handled) => return Ok(handled),
        };
        let request =
            alipay::api::CancelRequest::new(TradeRef::out_trade_no(held.out_trade_no().as_str()));
        match Box::pin(self.gateway.cancel(&request)).await {
            Outcome::Success(answer) if !answer.retry_flag => {
                let settled = apply_planned(&self.store, &self.clock, &held, |current, now| {
                    plan_cancelled(current, &answer, reasons::EXPIRED, now)
                })
                .await?;
                Ok(Handled::Settled(settled.order.status()))
            }
            Outcome::Failed(failure) => {
                tracing::info!(out_trade_no = %held.out_trade_no(), sub_code = failure.sub_code.as_deref().unwrap_or(&failure.code), "cancel refused; asking Alipay");
                let query = QueryRequest::new(TradeRef::out_trade_no(held.out_trade_no().as_str()));
                let view = read_query(&held, self.gateway.query(&query).await);
                let converged =
                    apply_view(&self.store, &self.clock, &held, view, Actor::Holder(&held)).await?;
                if converged.order.status().is_final() {
                    return Ok(Handled::Settled(converged.order.status()));
                }
                release(&self.store, &self.clock, &converged.order).await;
                Err(ExpiryError::AlipayUnknown("cancel refused".into()))
            }
            _ => {
                release(&self.store, &self.clock, &held).await;
                Err(ExpiryError::AlipayUnknown(
                    "cancel outcome unknown or to be retried".into(),
                ))
            }
        }
    }
}
