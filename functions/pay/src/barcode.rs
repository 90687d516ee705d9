//! The barcode flow: `alipay.trade.pay` with the buyer's payment code.
//!
//! - `10000`: paid.
//! - `10003`: the buyer must confirm in the app: PENDING, then `alipay.trade.query` every
//!   poll interval until the poll window ends; still waiting then: `alipay.trade.cancel`.
//! - unknown (`20000`, `ACQ.SYSTEM_ERROR`, timeout, unverifiable): query; paid, closed or
//!   waiting converge; a trade Alipay does not know (or cannot tell) is cancelled, which also
//!   stops a late-arriving pay.
//! - a definitive refusal: FAILED with Alipay's `sub_code`, so the cashier can ask for
//!   another payment method.
//!
//! The payment code is a bearer credential: it goes to Alipay and nowhere else.

use crate::pending_reasons::{ALIPAY_MISMATCH, CANCEL_OUTCOME_UNKNOWN, CANCEL_REFUSED};
use crate::validation::AuthCode;
use crate::{CreateError, Created, Payments, order_failure, says_trade_exists};
use alipay::api::{CancelAction, CancelRequest, PayRequest, QueryRequest, TradeRef};
use alipay::outcome::{Outcome, Rejection};
use chrono::{DateTime, Utc};
use domain::OrderStatus;
use domain::converge::{
    AlipayView, apply_view, converge, describe_rejection, describe_unknown, read_query, reasons,
    same_amount,
};
use domain::order::{Order, PaymentSource};
use domain::ports::{Clock, ExpiryScheduler, OrderStore, PaymentGateway};
use f2f_runtime::telemetry::count;

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
        let outcome = self.gateway.pay(&pay_request(&order, code)).await;
        match outcome {
            Outcome::Success(answer)
                if answer.out_trade_no == order.out_trade_no().as_str()
                    && same_amount(&order, answer.total_amount) =>
            {
                let now = self.clock.now();
                let paid_at = answer
                    .gmt_payment
                    .as_deref()
                    .and_then(|t| alipay::time::parse_beijing(t).ok())
                    .unwrap_or(now);
                let order = self
                    .settle(order.paid(answer.trade_no, paid_at, PaymentSource::PayResponse, now))
                    .await?;
                count("barcode_paid");
                Ok(Created::new(order))
            }
            Outcome::Success(_) => {
                tracing::error!("pay answered for another number or amount; asking Alipay");
                self.unknown_pay(order, started).await
            }
            Outcome::WaitingForBuyer(answer) => {
                count("barcode_waiting_for_buyer");
                let now = self.clock.now();
                let transition = order.created_at_alipay(None, Some(answer.trade_no), now)?;
                let settled = domain::converge::settle(&self.store, &transition).await?;
                if !settled.applied {
                    return Ok(Created::new(settled.order));
                }
                self.poll(settled.order, started).await
            }
            Outcome::Failed(failure) if says_trade_exists(&failure) => {
                self.unknown_pay(order, started).await
            }
            Outcome::Failed(failure) => {
                let failure = order_failure(&failure);
                tracing::info!(code = failure.code, "pay refused");
                count("payment_failed");
                let now = self.clock.now();
                Ok(Created::new(self.settle(order.failed(failure, now)).await?))
            }
            Outcome::Unknown(cause) => {
                count("alipay_unknown_outcome");
                tracing::warn!(
                    cause = describe_unknown(&cause),
                    "pay outcome unknown; asking Alipay"
                );
                self.unknown_pay(order, started).await
            }
            Outcome::Rejected(rejection) => {
                self.release(&order).await;
                let detail = describe_rejection(&rejection);
                tracing::error!(detail, "Alipay rejected the pay");
                match rejection {
                    Rejection::Gateway { .. } => Err(CreateError::AlipayRejected(detail)),
                    Rejection::Local(_) => Err(CreateError::Internal(detail)),
                }
            }
        }
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
            AlipayView::Paid { .. } | AlipayView::Closed { .. } => Ok(Created::new(
                apply_view(&self.store, &self.clock, &order, view)
                    .await?
                    .order,
            )),
            AlipayView::Waiting { .. } => {
                let converged = apply_view(&self.store, &self.clock, &order, view).await?;
                if !converged.applied {
                    return Ok(Created::new(converged.order));
                }
                self.poll(converged.order, started).await
            }
            AlipayView::Mismatch(detail) => {
                tracing::error!(detail, "Alipay's trade does not match the order");
                self.release(&order).await;
                Err(CreateError::AlipayUnavailable("alipay_mismatch".into()))
            }
            AlipayView::NotExist | AlipayView::Unknown(_) => {
                self.cancel(order, reasons::PAY_OUTCOME_UNKNOWN_CANCELLED)
                    .await
            }
        }
    }

    /// `order` is PENDING: query until paid or closed, or until the poll window (counted from
    /// `started`, the pay call) ends; then cancel.
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
        while self.clock.now() + step <= deadline {
            self.clock.sleep(interval).await;
            let view = read_query(&order, self.gateway.query(&query).await);
            match view {
                AlipayView::Paid { .. } | AlipayView::Closed { .. } => {
                    let converged = apply_view(&self.store, &self.clock, &order, view).await?;
                    count("barcode_settled_by_poll");
                    return Ok(Created::new(converged.order));
                }
                AlipayView::Mismatch(detail) => {
                    tracing::error!(detail, "Alipay's trade does not match the order");
                    return Ok(Created::pending_because(order, ALIPAY_MISMATCH));
                }
                AlipayView::Waiting { .. } | AlipayView::NotExist | AlipayView::Unknown(_) => {}
            }
        }
        // A notification or a GET may have settled it meanwhile: never cancel a final order.
        if let Some(stored) = self.store.get(order.out_trade_no()).await?
            && stored.status().is_final()
        {
            return Ok(Created::new(stored));
        }
        self.cancel(order, reasons::BUYER_DID_NOT_CONFIRM).await
    }

    /// Cancels the trade (retrying as Alipay's `retry_flag` asks, a bounded number of times)
    /// and closes the order. `order` is CREATING (unclear pay) or PENDING.
    pub(crate) async fn cancel(
        &self,
        order: Order,
        reason: &'static str,
    ) -> Result<Created, CreateError> {
        let request = CancelRequest::new(TradeRef::out_trade_no(order.out_trade_no().as_str()));
        for attempt in 1..=self.settings.cancel_attempts.max(1) {
            if attempt > 1 {
                self.clock.sleep(self.settings.cancel_retry_delay).await;
            }
            match self.gateway.cancel(&request).await {
                Outcome::Success(answer) if answer.retry_flag => {
                    tracing::info!(attempt, "cancel asks for a retry");
                }
                Outcome::Success(answer) => {
                    let refunded = answer.action == CancelAction::Refund;
                    let reason = if refunded {
                        reasons::CANCELLED_AND_REFUNDED
                    } else {
                        reason
                    };
                    let now = self.clock.now();
                    let transition = order.closed(reason, now)?;
                    let settled = domain::converge::settle(&self.store, &transition).await?;
                    if !settled.applied && refunded && settled.order.status() == OrderStatus::Paid {
                        count("paid_order_refunded_by_cancel");
                        tracing::error!("the cancel refunded a payment the order records as PAID");
                    }
                    count("barcode_cancelled");
                    tracing::info!(reason, refunded, "trade cancelled");
                    return Ok(Created::new(settled.order));
                }
                Outcome::Failed(failure) => {
                    tracing::warn!(
                        sub_code = failure.sub_code.as_deref().unwrap_or(&failure.code),
                        "cancel refused; asking Alipay"
                    );
                    let converged =
                        converge(&self.store, &self.gateway, &self.clock, &order).await?;
                    if converged.order.status().is_final() {
                        return Ok(Created::new(converged.order));
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

    /// Hands an unresolved order to the expiry job: PENDING (a CREATING order is moved there,
    /// so that no retry re-sends the pay).
    async fn leave_pending(
        &self,
        order: Order,
        reason: &'static str,
    ) -> Result<Created, CreateError> {
        count("left_pending");
        tracing::warn!(reason, "order left PENDING for the expiry job");
        let order = if order.status() == OrderStatus::Creating {
            let now = self.clock.now();
            self.settle(order.created_at_alipay(None, None, now))
                .await?
        } else {
            order
        };
        if order.status() == OrderStatus::Pending {
            Ok(Created::pending_because(order, reason))
        } else {
            Ok(Created::new(order))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::fakes::*;
    use crate::pending_reasons::CANCEL_OUTCOME_UNKNOWN;
    use alipay::api::CancelAction;
    use alipay::notify::TradeStatus;
    use alipay::outcome::{Outcome, UnknownCause};
    use domain::OrderStatus;
    use domain::order::EventKind;

    fn closed_reason(p: &TestPayments) -> String {
        p.store
            .events
            .lock()
            .unwrap()
            .iter()
            .find_map(|e| match &e.kind {
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
    async fn a_cancel_of_unknown_outcome_leaves_the_order_pending() {
        let p = payments();
        p.gateway
            .queries
            .lock()
            .unwrap()
            .push_back(Outcome::Unknown(UnknownCause::Timeout));
        let created = p.create(&barcode_request("B7")).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Pending);
        assert_eq!(created.pending_reason, Some(CANCEL_OUTCOME_UNKNOWN));
        assert_eq!(p.gateway.calls("cancel"), 3);
        assert_eq!(p.gateway.calls("pay"), 1);
        // A retry now replays instead of paying again.
        let again = p.create(&barcode_request("B7")).await.unwrap();
        assert!(again.replayed);
        assert_eq!(p.gateway.calls("pay"), 1);
    }
}
