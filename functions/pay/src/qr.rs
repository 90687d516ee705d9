//! The QR flow: `alipay.trade.precreate`, built from the stored order only, so that every
//! re-send is identical (Alipay answers an identical precreate with the same QR code, and no
//! trade exists at Alipay until the code is scanned, so a query cannot tell whether a lost
//! precreate arrived). An unknown outcome is retried a bounded number of times; after that
//! the claim is released and the caller's retry recovers.

use crate::{CreateError, Created, Payments, order_failure, says_trade_exists};
use alipay::api::PrecreateRequest;
use alipay::outcome::{Outcome, Rejection};
use domain::converge::{converge, describe_rejection, describe_unknown};
use domain::order::Order;
use domain::ports::{Clock, ExpiryScheduler, OrderStore, PaymentGateway};
use f2f_runtime::telemetry::count;

/// The precreate for `order`: every field comes from the stored order.
pub fn precreate_request(order: &Order, seller_id: Option<&str>) -> PrecreateRequest {
    let mut request = PrecreateRequest::new(
        order.out_trade_no().as_str(),
        order.amount().fen(),
        order.subject(),
    );
    request.store_id = order.store_id().map(str::to_owned);
    request.operator_id = order.operator_id().map(str::to_owned);
    request.terminal_id = order.terminal_id().map(str::to_owned);
    request.time_expire = Some(order.expires_at());
    request.seller_id = seller_id.map(str::to_owned);
    request
}

impl<S, Q, G, C> Payments<S, Q, G, C>
where
    S: OrderStore,
    Q: ExpiryScheduler,
    G: PaymentGateway,
    C: Clock,
{
    /// `order` is CREATING and the lease is ours. `trade_no` is Alipay's number when a
    /// recovery found the trade already scanned.
    pub(crate) async fn qr(
        &self,
        order: Order,
        trade_no: Option<String>,
    ) -> Result<Created, CreateError> {
        let request = precreate_request(&order, self.settings.seller_id.as_deref());
        let attempts = self.settings.precreate_attempts.max(1);
        let mut outcome = self.gateway.precreate(&request).await;
        for _ in 1..attempts {
            if !matches!(outcome, Outcome::Unknown(_) | Outcome::WaitingForBuyer(_)) {
                break;
            }
            count("precreate_resent");
            outcome = self.gateway.precreate(&request).await;
        }
        match outcome {
            Outcome::Success(answer) if answer.out_trade_no == order.out_trade_no().as_str() => {
                let now = self.clock.now();
                let order = self
                    .settle(order.created_at_alipay(Some(answer.qr_code), trade_no, now))
                    .await?;
                count("qr_created");
                Ok(Created::new(order))
            }
            Outcome::Success(_) => {
                tracing::error!("precreate answered for another out_trade_no");
                self.release(&order).await;
                Err(CreateError::AlipayUnavailable("mismatched_answer".into()))
            }
            Outcome::Failed(failure) if says_trade_exists(&failure) => {
                // The trade exists in some state (paid, even): learn it, never record a failure.
                let converged = converge(&self.store, &self.gateway, &self.clock, &order).await?;
                if converged.order.status() == domain::OrderStatus::Creating {
                    self.release(&converged.order).await;
                    return Err(CreateError::AlipayUnavailable(converged.view.kind().into()));
                }
                Ok(Created::new(converged.order))
            }
            Outcome::Failed(failure) => {
                let failure = order_failure(&failure);
                tracing::info!(code = failure.code, "precreate refused");
                count("payment_failed");
                let now = self.clock.now();
                Ok(Created::new(self.settle(order.failed(failure, now)).await?))
            }
            Outcome::Unknown(cause) => {
                count("alipay_unknown_outcome");
                self.release(&order).await;
                Err(CreateError::AlipayUnavailable(describe_unknown(&cause)))
            }
            Outcome::WaitingForBuyer(_) => {
                self.release(&order).await;
                Err(CreateError::AlipayUnavailable("unexpected_10003".into()))
            }
            Outcome::Rejected(rejection) => {
                self.release(&order).await;
                let detail = describe_rejection(&rejection);
                tracing::error!(detail, "Alipay rejected the precreate");
                match rejection {
                    Rejection::Gateway { .. } => Err(CreateError::AlipayRejected(detail)),
                    Rejection::Local(_) => Err(CreateError::Internal(detail)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::CreateError;
    use crate::fakes::*;
    use alipay::notify::TradeStatus;
    use alipay::outcome::{Outcome, UnknownCause};
    use domain::OrderStatus;

    #[tokio::test]
    async fn an_unknown_precreate_is_resent_identically_then_released() {
        let p = payments();
        let result = p.create(&qr_request("Q1")).await;
        assert!(matches!(result, Err(CreateError::AlipayUnavailable(_))));
        let sent = p.gateway.sent_precreates.lock().unwrap().clone();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0], sent[1], "identical re-send");
        let stored = p.store.order("Q1").unwrap();
        assert_eq!(stored.status(), OrderStatus::Creating);
        assert!(stored.lease_expired(p.clock.0.lock().unwrap().to_owned()));
    }

    #[tokio::test]
    async fn a_second_identical_precreate_can_succeed() {
        let p = payments();
        {
            let mut script = p.gateway.precreates.lock().unwrap();
            script.push_back(Outcome::Unknown(UnknownCause::Timeout));
            script.push_back(qr_ok("Q2"));
        }
        let created = p.create(&qr_request("Q2")).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Pending);
    }

    #[tokio::test]
    async fn a_definitive_refusal_fails_the_order_with_the_sub_code() {
        let p = payments();
        p.gateway
            .precreates
            .lock()
            .unwrap()
            .push_back(Outcome::Failed(failure("ACQ.INVALID_PARAMETER")));
        let created = p.create(&qr_request("Q3")).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Failed);
        assert_eq!(
            created.order.failure().unwrap().code,
            "ACQ.INVALID_PARAMETER"
        );
    }

    #[tokio::test]
    async fn a_refusal_saying_the_trade_was_paid_is_checked_not_recorded_as_failure() {
        let p = payments();
        p.gateway
            .precreates
            .lock()
            .unwrap()
            .push_back(Outcome::Failed(failure("ACQ.TRADE_HAS_SUCCESS")));
        p.gateway
            .queries
            .lock()
            .unwrap()
            .push_back(trade("Q4", TradeStatus::TradeSuccess));
        let created = p.create(&qr_request("Q4")).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Paid);
    }
}
