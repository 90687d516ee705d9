//! The barcode flow: `alipay.trade.pay` with the buyer's payment code.
//!
//! - `10000` with the order's amount and a `trade_no`: paid. Another amount or number is an
//!   anomaly, and the trade is asked about.
//! - `10003`: the buyer must confirm in the app: PENDING (the lease stays ours), then
//!   `alipay.trade.query` every poll interval until the poll window ends; still waiting then:
//!   `alipay.trade.cancel`.
//! - unknown (`20000`, `ACQ.SYSTEM_ERROR`, timeout, unverifiable): query; paid, closed or
//!   waiting converge; a trade Alipay does not know (or cannot tell) is cancelled (Alipay's
//!   documented answer to an unknown pay outcome). Whether a cancel of a trade Alipay has no
//!   record of blocks a pay still in flight is not documented; a payment that lands after the
//!   order was closed is a `paid_after_close` anomaly wherever it is seen.
//! - a definitive refusal: FAILED with Alipay's `sub_code`, so the cashier can ask for
//!   another payment method (`422` when the request itself was at fault).
//!
//! Every pay and cancel is fenced: sent only while our lease covers it. A cancel that
//! refunded a payment (`action=refund`) leaves the order REFUNDED with an anomaly record,
//! whatever the order said meanwhile. Nothing is left waiting at Alipay: an unresolved order
//! is handed (PENDING, lease released) to the expiry job, due soon after the flow's longest
//! run, and to the caller's identical retry, which finishes it.
//!
//! The payment code is a bearer credential: it goes to Alipay and nowhere else.

use crate::pending_reasons::{ALIPAY_MISMATCH, CANCEL_OUTCOME_UNKNOWN, CANCEL_REFUSED};
use crate::validation::AuthCode;
use crate::{CreateError, Created, Next, Payments, says_trade_exists};
use alipay::api::{CancelAction, CancelRequest, CancelResponse, PayRequest, PayResponse};
use alipay::api::{QueryRequest, TradeRef};
use alipay::outcome::{Outcome, Rejection};
use chrono::{DateTime, Utc};
use domain::anomaly::{AlipayFacts, FactSource};
use domain::converge::{
    Actor, AlipayView, Mismatch, Plan, anomaly, apply_planned, apply_view, check_trade, converge,
    describe_rejection, describe_unknown, plan_cancelled, read_query, reasons,
};
use domain::order::{Buyer, Order, OrderStatus, PaymentSource};
use domain::ports::{Clock, ExpiryScheduler, OrderStore, PaymentGateway};
use f2f_runtime::telemetry::count;
use std::time::Duration;

/// The pay request for `order` (every field but the code comes from the stored order).
pub fn pay_request(order: &Order, code: &AuthCode) -> PayRequest {
    let mut request = PayRequest::new(
        order.out_trade_no().as_str(),
        order.amount().fen(),
        order.subject(),
        code.expose(),
    );
    request.store_id = order.store_id().map(str::to_owned);
    request.operator_id = order.operator_id().map(str::to_owned);
    request.terminal_id = order.terminal_id().map(str::to_owned);
    request.time_expire = Some(order.expires_at());
    request
}

/// What a verified `10000` pay answer proves.
enum PayAnswer {
    /// The order's number and amount, with Alipay's trade number: paid.
    Paid(AlipayView),
    /// It contradicts the order: an anomaly.
    Contradicts(Mismatch),
    /// It lacks the amount or the trade number: not proof of payment.
    Incomplete,
}

fn read_pay_answer(order: &Order, answer: PayResponse) -> PayAnswer {
    let facts = || AlipayFacts {
        source: Some(FactSource::PayResponse),
        out_trade_no: Some(answer.out_trade_no.clone()),
        trade_no: Some(answer.trade_no.clone()),
        trade_status: None,
        total_amount_fen: answer.total_amount.map(|fen| fen.get()),
        refund_fen: None,
    };
    if let Some(mismatch) = check_trade(
        order,
        &answer.out_trade_no,
        answer.total_amount.map(|fen| fen.get()),
        Some(&answer.trade_no),
        facts,
    ) {
        return PayAnswer::Contradicts(mismatch);
    }
    if answer.total_amount.is_none() || answer.trade_no.trim().is_empty() {
        return PayAnswer::Incomplete;
    }
    let paid_at = answer
        .gmt_payment
        .as_deref()
        .and_then(|t| alipay::time::parse_beijing(t).ok());
    PayAnswer::Paid(AlipayView::Paid {
        trade_no: answer.trade_no,
        paid_at,
        source: PaymentSource::PayResponse,
        buyer: Buyer::new(answer.buyer_user_id, answer.buyer_open_id),
    })
}

impl<S, Q, G, C> Payments<S, Q, G, C>
where
    S: OrderStore,
    Q: ExpiryScheduler,
    G: PaymentGateway,
    C: Clock,
{
    /// `order` is CREATING and the lease is ours.
    pub(crate) async fn barcode(
        &self,
        order: Order,
        code: &AuthCode,
    ) -> Result<Created, CreateError> {
        let started = self.clock.now();
        let order = match self.fence(&order, Duration::ZERO).await? {
            Next::Go(order) => order,
            Next::Stop(answer) => return answer,
        };
        match self.gateway.pay(&pay_request(&order, code)).await {
            Outcome::Success(answer) => match read_pay_answer(&order, answer) {
                PayAnswer::Paid(view) => {
                    count("barcode_paid");
                    self.converge_with(&order, view).await
                }
                PayAnswer::Contradicts(mismatch) => {
                    self.record(&order, mismatch).await?;
                    Box::pin(self.unknown_pay(order, started)).await
                }
                PayAnswer::Incomplete => {
                    tracing::warn!("a pay answer without amount or trade_no; asking Alipay");
                    Box::pin(self.unknown_pay(order, started)).await
                }
            },
            Outcome::WaitingForBuyer(answer) => {
                count("barcode_waiting_for_buyer");
                let lease = self.lease();
                let settled = self
                    .hold_and_apply(&order, |current, now| {
                        current.waiting_for_buyer(Some(answer.trade_no.clone()), now, lease)
                    })
                    .await?;
                if !settled.applied {
                    return self.answer_for(settled.order);
                }
                Box::pin(self.poll(settled.order, started)).await
            }
            Outcome::Failed(failure) if says_trade_exists(&failure) => {
                Box::pin(self.unknown_pay(order, started)).await
            }
            Outcome::Failed(failure) => self.refused(&order, &failure, true, true).await,
            Outcome::Unknown(cause) => {
                count("alipay_unknown_outcome");
                tracing::warn!(
                    cause = describe_unknown(&cause),
                    "pay outcome unknown; asking Alipay"
                );
                Box::pin(self.unknown_pay(order, started)).await
            }
            Outcome::Rejected(Rejection::Gateway { failure, signed }) => {
                self.refused(&order, &failure, signed, false).await
            }
            Outcome::Rejected(Rejection::Local(_)) => {
                self.release(&order).await;
                tracing::error!("the pay could not be built or signed");
                Err(CreateError::Internal("rejected_locally".into()))
            }
        }
    }

    /// Applies what Alipay said as the holder of `held`; answers with the order as stored.
    async fn converge_with(&self, held: &Order, view: AlipayView) -> Result<Created, CreateError> {
        let converged =
            apply_view(&self.store, &self.clock, held, view, Actor::Holder(held)).await?;
        if converged.applied {
            return Ok(Created::new(converged.order));
        }
        self.answer_for(converged.order)
    }

    /// Records an anomaly about `order` (no transition).
    async fn record(&self, order: &Order, mismatch: Mismatch) -> Result<(), CreateError> {
        apply_planned(&self.store, &self.clock, order, |current, now| Plan {
            transition: None,
            anomaly: Some(anomaly(current, mismatch.clone(), now)),
        })
        .await?;
        Ok(())
    }

    /// The pay may or may not have happened: ask, then converge, keep polling, or cancel.
    async fn unknown_pay(
        &self,
        order: Order,
        started: DateTime<Utc>,
    ) -> Result<Created, CreateError> {
        let query = QueryRequest::new(TradeRef::out_trade_no(order.out_trade_no().as_str()));
        let view = read_query(&order, self.gateway.query(&query).await);
        tracing::info!(alipay = view.kind(), "queried after an unclear pay");
        match view {
            AlipayView::Paid { .. } | AlipayView::Closed { .. } => {
                self.converge_with(&order, view).await
            }
            AlipayView::Waiting { trade_no } => {
                let lease = self.lease();
                let settled = self
                    .hold_and_apply(&order, |current, now| {
                        current.waiting_for_buyer(Some(trade_no.clone()), now, lease)
                    })
                    .await?;
                if !settled.applied {
                    return self.answer_for(settled.order);
                }
                Box::pin(self.poll(settled.order, started)).await
            }
            AlipayView::Mismatch(mismatch) => {
                self.record(&order, mismatch).await?;
                self.leave_pending(order, ALIPAY_MISMATCH).await
            }
            AlipayView::NotExist | AlipayView::Unknown(_) => {
                Box::pin(self.cancel(order, reasons::PAY_OUTCOME_UNKNOWN_CANCELLED)).await
            }
        }
    }

    /// `order` is open and held: query until paid or closed, or until the poll window
    /// (counted from `started`) ends; then cancel. The lease is kept covering the next poll
    /// (and the final cancel is fenced on its own), so nobody else acts meanwhile; if someone
    /// has the order anyway (a take-over after our lease ran out, a settled order), we stop.
    pub(crate) async fn poll(
        &self,
        order: Order,
        started: DateTime<Utc>,
    ) -> Result<Created, CreateError> {
        let interval = self.settings.poll_interval;
        let deadline =
            started + chrono::Duration::from_std(self.settings.poll_duration).unwrap_or_default();
        let step = chrono::Duration::from_std(interval).unwrap_or_default();
        let query = QueryRequest::new(TradeRef::out_trade_no(order.out_trade_no().as_str()));
        let mut order = order;
        while self.clock.now() + step <= deadline {
            order = match self.fence(&order, interval).await? {
                Next::Go(order) => order,
                Next::Stop(answer) => return answer,
            };
            self.clock.sleep(interval).await;
            let view = read_query(&order, self.gateway.query(&query).await);
            match view {
                AlipayView::Paid { .. } | AlipayView::Closed { .. } => {
                    count("barcode_settled_by_poll");
                    return self.converge_with(&order, view).await;
                }
                AlipayView::Mismatch(mismatch) => {
                    self.record(&order, mismatch).await?;
                    return self.leave_pending(order, ALIPAY_MISMATCH).await;
                }
                AlipayView::Waiting { .. } | AlipayView::NotExist | AlipayView::Unknown(_) => {}
            }
        }
        Box::pin(self.cancel(order, reasons::BUYER_DID_NOT_CONFIRM)).await
    }

    /// Cancels the trade (retrying as Alipay's `retry_flag` asks, a bounded number of times)
    /// and settles the order by what the cancel did. `order` is open and held.
    pub(crate) async fn cancel(
        &self,
        order: Order,
        reason: &'static str,
    ) -> Result<Created, CreateError> {
        let request = CancelRequest::new(TradeRef::out_trade_no(order.out_trade_no().as_str()));
        let mut order = order;
        // Whether a cancel may have reached Alipay (its outcome unknown): if someone else
        // settles the order meanwhile, it is not sent again (we no longer hold the order) but
        // Alipay is asked what the first one did.
        let mut maybe_sent = false;
        for attempt in 1..=self.settings.cancel_attempts.max(1) {
            let wait = if attempt > 1 {
                self.settings.cancel_retry_delay
            } else {
                Duration::ZERO
            };
            order = match self.fence(&order, wait).await? {
                Next::Go(order) => order,
                Next::Stop(answer) if maybe_sent => {
                    return self.after_lost_cancel(answer).await;
                }
                Next::Stop(answer) => return answer,
            };
            if attempt > 1 {
                self.clock.sleep(wait).await;
            }
            // A cancel of a paid trade refunds it: never after someone else has settled it.
            order = match self.still_held(&order).await? {
                Next::Go(order) => order,
                Next::Stop(answer) if maybe_sent => {
                    return self.after_lost_cancel(answer).await;
                }
                Next::Stop(answer) => return answer,
            };
            match self.gateway.cancel(&request).await {
                Outcome::Success(answer) if answer.retry_flag => {
                    tracing::info!(attempt, "cancel asks for a retry");
                }
                Outcome::Success(answer) => return self.cancelled(&order, answer, reason).await,
                Outcome::Failed(failure) => {
                    tracing::warn!(
                        sub_code = failure.sub_code.as_deref().unwrap_or(&failure.code),
                        "cancel refused; asking Alipay"
                    );
                    let converged = converge(
                        &self.store,
                        &self.gateway,
                        &self.clock,
                        &order,
                        Actor::Holder(&order),
                    )
                    .await?;
                    if converged.order.status().is_final() {
                        return Ok(Created::new(converged.order));
                    }
                    if !converged.order.same_holder(&order) {
                        return self.answer_for(converged.order);
                    }
                    return self.leave_pending(converged.order, CANCEL_REFUSED).await;
                }
                Outcome::Unknown(cause) => {
                    count("alipay_unknown_outcome");
                    tracing::warn!(
                        attempt,
                        cause = describe_unknown(&cause),
                        "cancel outcome unknown"
                    );
                    maybe_sent = true;
                }
                Outcome::WaitingForBuyer(_) => {}
                Outcome::Rejected(rejection) => {
                    tracing::error!(
                        detail = describe_rejection(&rejection),
                        "Alipay rejected the cancel"
                    );
                    break;
                }
            }
        }
        self.leave_pending(order, CANCEL_OUTCOME_UNKNOWN).await
    }

    /// Someone else settled the order after a cancel of ours whose outcome is unknown. If it
    /// is PAID here, Alipay is asked: a trade closed there means that cancel refunded the
    /// buyer, which [`converge`] records (a fact about money, written whoever holds the
    /// order). Only a query is sent: we no longer hold the order.
    async fn after_lost_cancel(
        &self,
        answer: Result<Created, CreateError>,
    ) -> Result<Created, CreateError> {
        let Ok(settled) = &answer else {
            return answer;
        };
        if settled.order.status() != OrderStatus::Paid {
            return answer;
        }
        let converged = converge(
            &self.store,
            &self.gateway,
            &self.clock,
            &settled.order,
            Actor::Observer,
        )
        .await?;
        Ok(Created::new(converged.order))
    }

    /// Whether we still hold the order as stored. A notification may have settled it since we
    /// last wrote it (the buyer confirmed during a poll or a retry's wait, or the last cancel
    /// went through): that ends our lease without touching our copy, whose lease may still look
    /// long enough to send on, so the stored order is read.
    async fn still_held(&self, held: &Order) -> Result<Next, CreateError> {
        match self.store.get(held.out_trade_no()).await? {
            Some(current) if current.same_holder(held) => Ok(Next::Go(current)),
            Some(current) => Ok(Next::Stop(self.answer_for(current))),
            None => Err(CreateError::Internal(format!(
                "order {} vanished while its cancel was retried",
                held.out_trade_no()
            ))),
        }
    }

    /// Settles the order by a completed cancel: closed, or (the buyer had paid and the cancel
    /// refunded) REFUNDED with an anomaly record. These are facts about money, so they are
    /// written whoever holds the order now; only a settled order that disagrees is left as it
    /// is, with the anomaly.
    async fn cancelled(
        &self,
        held: &Order,
        answer: CancelResponse,
        reason: &'static str,
    ) -> Result<Created, CreateError> {
        let refunded = answer.action == CancelAction::Refund;
        let settled = apply_planned(&self.store, &self.clock, held, |current, now| {
            plan_cancelled(current, &answer, reason, now)
        })
        .await?;
        count("barcode_cancelled");
        tracing::info!(
            reason,
            refunded,
            status = settled.order.status().as_str(),
            "trade cancelled"
        );
        Ok(Created::new(settled.order))
    }

    /// Hands an unresolved order to the expiry job and the caller's retry: PENDING (a CREATING
    /// order is moved there, so that no retry re-sends the pay) with the lease released.
    pub(crate) async fn leave_pending(
        &self,
        order: Order,
        reason: &'static str,
    ) -> Result<Created, CreateError> {
        count("left_pending");
        tracing::warn!(reason, "order left PENDING for the expiry job");
        let settled = self
            .hold_and_apply(&order, |current, now| match current.status() {
                OrderStatus::Creating => current.created_at_alipay(None, None, now),
                _ => current.release_lease(now),
            })
            .await?;
        if !settled.applied {
            return self.answer_for(settled.order);
        }
        Ok(Created::pending_because(settled.order, reason))
    }
}

#[cfg(test)]
mod tests {
    use crate::CreateError;
    use crate::fakes::*;
    use crate::pending_reasons::CANCEL_OUTCOME_UNKNOWN;
    use alipay::Fen;
    use alipay::api::CancelAction;
    use alipay::notify::TradeStatus;
    use alipay::outcome::{Outcome, UnknownCause};
    use domain::OrderStatus;
    use domain::anomaly::AnomalyKind;
    use domain::order::{EventKind, Order, PaymentSource};
    use domain::ports::Clock;
    use std::time::Duration;

    fn closed_reason(p: &TestPayments) -> String {
        p.store
            .events()
            .iter()
            .find_map(|e| match &e.event.kind {
                EventKind::Closed { reason } => Some(reason.clone()),
                _ => None,
            })
            .unwrap()
    }

    #[tokio::test]
    async fn an_immediate_success_is_paid() {
        let p = payments();
        p.gateway
            .pays
            .lock()
            .unwrap()
            .push_back(Outcome::Success(pay_answer("B1")));
        let created = p.create(&barcode_request("B1")).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Paid);
        assert_eq!(created.order.alipay_trade_no(), Some("2024B1"));
    }

    #[tokio::test]
    async fn waiting_then_paid_while_polling() {
        let p = payments();
        p.gateway
            .pays
            .lock()
            .unwrap()
            .push_back(Outcome::WaitingForBuyer(pay_answer("B2")));
        {
            let mut q = p.gateway.queries.lock().unwrap();
            q.push_back(trade("B2", TradeStatus::WaitBuyerPay));
            q.push_back(trade("B2", TradeStatus::TradeSuccess));
        }
        let start = p.clock.0.lock().unwrap().to_owned();
        let created = p.create(&barcode_request("B2")).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Paid);
        assert_eq!(p.gateway.calls("query"), 2);
        assert_eq!(
            (p.clock.0.lock().unwrap().to_owned() - start).num_seconds(),
            6
        );
    }

    #[tokio::test]
    async fn a_buyer_who_never_confirms_is_cancelled_after_the_window() {
        let p = payments();
        p.gateway
            .pays
            .lock()
            .unwrap()
            .push_back(Outcome::WaitingForBuyer(pay_answer("B3")));
        for _ in 0..20 {
            p.gateway
                .queries
                .lock()
                .unwrap()
                .push_back(trade("B3", TradeStatus::WaitBuyerPay));
        }
        p.gateway
            .cancels
            .lock()
            .unwrap()
            .push_back(cancelled(CancelAction::Close, false));
        let created = p.create(&barcode_request("B3")).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Closed);
        assert_eq!(p.gateway.calls("query"), 8, "every 3 s for 24 s");
        assert_eq!(closed_reason(&p), "buyer_did_not_confirm");
    }

    #[tokio::test]
    async fn a_definitive_refusal_fails_with_the_sub_code() {
        let p = payments();
        p.gateway
            .pays
            .lock()
            .unwrap()
            .push_back(Outcome::Failed(failure("ACQ.PAYMENT_AUTH_CODE_INVALID")));
        let created = p.create(&barcode_request("B4")).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Failed);
        assert_eq!(
            created.order.failure().unwrap().code,
            "ACQ.PAYMENT_AUTH_CODE_INVALID"
        );
        assert_eq!(p.gateway.calls("query"), 0);
    }

    #[tokio::test]
    async fn an_unknown_pay_that_happened_converges_to_paid() {
        let p = payments();
        p.gateway
            .queries
            .lock()
            .unwrap()
            .push_back(trade("B5", TradeStatus::TradeSuccess));
        let created = p.create(&barcode_request("B5")).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Paid);
        assert_eq!(p.gateway.calls("cancel"), 0);
    }

    #[tokio::test]
    async fn an_unknown_pay_alipay_does_not_know_is_cancelled() {
        let p = payments();
        p.gateway
            .queries
            .lock()
            .unwrap()
            .push_back(Outcome::Failed(failure("ACQ.TRADE_NOT_EXIST")));
        {
            let mut c = p.gateway.cancels.lock().unwrap();
            c.push_back(cancelled(CancelAction::Close, true));
            c.push_back(cancelled(CancelAction::Close, false));
        }
        let created = p.create(&barcode_request("B6")).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Closed);
        assert_eq!(p.gateway.calls("cancel"), 2, "retry_flag=Y is honoured");
        assert_eq!(closed_reason(&p), "pay_outcome_unknown_cancelled");
    }

    #[tokio::test]
    async fn a_cancel_of_unknown_outcome_leaves_the_order_pending_and_the_retry_finishes_it() {
        let p = payments();
        p.gateway
            .queries
            .lock()
            .unwrap()
            .push_back(Outcome::Unknown(UnknownCause::Timeout));
        let created = p.create(&barcode_request("B7")).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Pending);
        assert_eq!(created.pending_reason, Some(CANCEL_OUTCOME_UNKNOWN));
        assert!(
            !created.order.lease_live(p.clock.now()),
            "handed over: nobody holds it"
        );
        assert_eq!(p.gateway.calls("cancel"), 3);
        assert_eq!(p.gateway.calls("pay"), 1);
        // The identical retry takes it over, asks Alipay, and cancels the waiting trade
        // instead of replaying PENDING; it never pays again.
        {
            let mut q = p.gateway.queries.lock().unwrap();
            for _ in 0..20 {
                q.push_back(trade("B7", TradeStatus::WaitBuyerPay));
            }
        }
        p.gateway
            .cancels
            .lock()
            .unwrap()
            .push_back(cancelled(CancelAction::Close, false));
        let again = p.create(&barcode_request("B7")).await.unwrap();
        assert!(!again.replayed);
        assert_eq!(again.order.status(), OrderStatus::Closed);
        assert_eq!(p.gateway.calls("pay"), 1);
        assert_eq!(p.gateway.calls("cancel"), 4);
    }

    #[tokio::test]
    async fn a_poll_answer_is_planned_again_on_the_order_as_stored_after_a_lost_race() {
        let p = payments();
        p.gateway
            .pays
            .lock()
            .unwrap()
            .push_back(Outcome::WaitingForBuyer(pay_answer("B8")));
        {
            let mut q = p.gateway.queries.lock().unwrap();
            q.push_back(trade("B8", TradeStatus::WaitBuyerPay));
            q.push_back(trade("B8", TradeStatus::TradeSuccess));
        }
        // Writes: 1 = waiting for the buyer; 2 = paid, preceded by someone else's sync.
        p.store.interfere_next(None);
        p.store.interfere_next(Some(Box::new(|current: &Order| {
            current.synced(current.last_synced_at().unwrap()).ok()
        })));
        let created = p.create(&barcode_request("B8")).await.unwrap();
        assert_eq!(
            created.order.status(),
            OrderStatus::Paid,
            "Alipay said TRADE_SUCCESS: the POST answers PAID"
        );
        assert_eq!(created.pending_reason, None);
        let events = p.store.events();
        assert!(events.iter().any(|e| e.event.kind == EventKind::Synced));
    }

    #[tokio::test]
    async fn a_cancel_that_refunds_a_payment_leaves_the_order_refunded_with_an_anomaly() {
        let p = payments();
        p.gateway
            .queries
            .lock()
            .unwrap()
            .push_back(Outcome::Unknown(UnknownCause::Timeout));
        p.gateway
            .cancels
            .lock()
            .unwrap()
            .push_back(cancelled(CancelAction::Refund, false));
        let created = p.create(&barcode_request("B9")).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Refunded);
        assert_eq!(created.order.refunded_fen(), 100);
        let anomalies: Vec<_> = p.store.anomalies().into_iter().map(|r| r.latest).collect();
        assert_eq!(anomalies.len(), 1);
        assert_eq!(anomalies[0].kind, AnomalyKind::RefundedByCancel);
        assert_eq!(anomalies[0].order_status, Some(OrderStatus::Refunded));
    }

    #[tokio::test]
    async fn a_refunding_cancel_after_someone_marked_the_order_paid_still_ends_refunded() {
        let p = payments();
        p.gateway
            .queries
            .lock()
            .unwrap()
            .push_back(Outcome::Unknown(UnknownCause::Timeout));
        p.gateway
            .cancels
            .lock()
            .unwrap()
            .push_back(cancelled(CancelAction::Refund, false));
        // The cancel's write (the first write of the flow) loses to a notification of the
        // payment.
        p.store.interfere_next(Some(Box::new(|current: &Order| {
            current
                .paid(
                    "2024B10".into(),
                    current.created_at(),
                    PaymentSource::Notification,
                    domain::order::Buyer::default(),
                    current.created_at(),
                )
                .ok()
        })));
        let created = p.create(&barcode_request("B10")).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Refunded);
        let anomalies: Vec<_> = p.store.anomalies().into_iter().map(|r| r.latest).collect();
        assert_eq!(anomalies.len(), 1);
        assert_eq!(anomalies[0].kind, AnomalyKind::RefundedByCancel);
    }

    #[tokio::test]
    async fn a_paid_answer_of_another_amount_is_an_anomaly_and_asked_about() {
        let p = payments();
        let mut answer = pay_answer("B11");
        answer.total_amount = Some(Fen::new(1));
        p.gateway
            .pays
            .lock()
            .unwrap()
            .push_back(Outcome::Success(answer));
        p.gateway
            .queries
            .lock()
            .unwrap()
            .push_back(trade("B11", TradeStatus::TradeSuccess));
        let created = p.create(&barcode_request("B11")).await.unwrap();
        assert_eq!(
            created.order.status(),
            OrderStatus::Paid,
            "the query says 1.00 paid"
        );
        let anomalies: Vec<_> = p.store.anomalies().into_iter().map(|r| r.latest).collect();
        assert_eq!(anomalies.len(), 1);
        assert_eq!(anomalies[0].kind, AnomalyKind::AmountMismatch);
        assert_eq!(anomalies[0].facts.total_amount_fen, Some(1));
    }

    #[tokio::test]
    async fn a_paid_answer_without_amount_or_trade_number_is_not_proof() {
        let p = payments();
        let mut answer = pay_answer("B12");
        answer.total_amount = None;
        p.gateway
            .pays
            .lock()
            .unwrap()
            .push_back(Outcome::Success(answer));
        p.gateway
            .queries
            .lock()
            .unwrap()
            .push_back(Outcome::Failed(failure("ACQ.TRADE_NOT_EXIST")));
        p.gateway
            .cancels
            .lock()
            .unwrap()
            .push_back(cancelled(CancelAction::Close, false));
        let created = p.create(&barcode_request("B12")).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Closed);
        assert_eq!(p.gateway.calls("query"), 1);
    }

    /// The review's scenario with a slow Alipay (every call takes its whole 5 s timeout): the
    /// claim's 15 s lease would run out during the cancels, so each fenced call extends it
    /// first. At the start of every pay and cancel, the stored lease reaches past the call's
    /// timeout plus the margin.
    #[tokio::test]
    async fn every_side_effecting_call_is_covered_by_the_lease() {
        let p = payments();
        *p.gateway.call_time.lock().unwrap() = Duration::from_secs(5);
        p.gateway
            .queries
            .lock()
            .unwrap()
            .push_back(Outcome::Unknown(UnknownCause::Timeout));
        {
            let mut c = p.gateway.cancels.lock().unwrap();
            c.push_back(Outcome::Unknown(UnknownCause::Timeout));
            c.push_back(Outcome::Unknown(UnknownCause::Timeout));
            c.push_back(cancelled(CancelAction::Refund, false));
        }
        let created = p.create(&barcode_request("B13")).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Refunded);
        let history = p.store.events();
        let starts = p.gateway.side_effects.lock().unwrap().clone();
        assert_eq!(starts.len(), 4, "pay and three cancels: {starts:?}");
        for (method, at) in starts {
            let lease = history
                .iter()
                .rfind(|written| written.event.at <= at)
                .and_then(|written| written.order.lease_until())
                .unwrap();
            assert!(
                lease >= at + chrono::Duration::seconds(7),
                "{method} at {at} under a lease until {lease}"
            );
        }
        let events = p.store.events();
        assert!(
            events
                .iter()
                .any(|e| e.event.kind == EventKind::LeaseExtended)
        );
    }

    #[tokio::test]
    async fn a_late_10003_is_cancelled_at_once() {
        let p = payments();
        // The pay answer arrives after the whole poll window.
        *p.gateway.call_time.lock().unwrap() = Duration::from_secs(25);
        p.gateway
            .pays
            .lock()
            .unwrap()
            .push_back(Outcome::WaitingForBuyer(pay_answer("B14")));
        p.gateway
            .cancels
            .lock()
            .unwrap()
            .push_back(cancelled(CancelAction::Close, false));
        let created = p.create(&barcode_request("B14")).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Closed);
        assert_eq!(p.gateway.calls("query"), 0, "no poll fits in the window");
        assert_eq!(p.gateway.calls("cancel"), 1);
    }

    #[tokio::test]
    async fn a_store_failure_before_the_cancel_sends_nothing_unfenced_and_the_expiry_is_near() {
        let p = payments();
        *p.gateway.call_time.lock().unwrap() = Duration::from_secs(1);
        p.gateway
            .pays
            .lock()
            .unwrap()
            .push_back(Outcome::WaitingForBuyer(pay_answer("B15")));
        for _ in 0..20 {
            p.gateway
                .queries
                .lock()
                .unwrap()
                .push_back(trade("B15", TradeStatus::WaitBuyerPay));
        }
        // Write 1 records the 10003; from write 2 on (the lease extensions of the polls)
        // DynamoDB is unavailable.
        p.store.fail_applies_from(2);
        let result = p.create(&barcode_request("B15")).await;
        assert!(matches!(result, Err(CreateError::Store(_))));
        assert_eq!(p.gateway.calls("cancel"), 0, "never without the lease");
        let due_at = p.scheduler.scheduled()[0].due_at;
        let order = p.store.order("B15").unwrap();
        assert!(due_at < order.expires_at());
        assert!(
            due_at - order.created_at() <= chrono::Duration::seconds(90),
            "the expiry job finishes it soon: due {due_at}"
        );
    }
}
