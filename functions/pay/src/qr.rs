//! The QR flow: `alipay.trade.precreate`, built from the stored order only, so that every
//! re-send is identical (Alipay answers an identical precreate with the same QR code, and no
//! trade exists at Alipay until the code is scanned, so a query cannot tell whether a lost
//! precreate arrived). An unknown outcome is retried a bounded number of times; after that
//! the claim is released and the caller's retry recovers.

use crate::{CreateError, Created, Next, Payments, says_trade_exists};
use alipay::api::PrecreateRequest;
use alipay::outcome::{Outcome, Rejection};
use domain::anomaly::{AlipayFacts, FactSource};
use domain::converge::{
    Actor, Plan, anomaly, apply_planned, check_trade, converge, describe_unknown,
};
use domain::order::Order;
use domain::ports::{Clock, ExpiryScheduler, OrderStore, PaymentGateway};
use f2f_runtime::telemetry::count;
use std::time::Duration;

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
        let mut order = order;
        let mut outcome = None;
        for attempt in 0..self.settings.precreate_attempts.max(1) {
            order = match self.fence(&order, Duration::ZERO).await? {
                Next::Go(order) => order,
                Next::Stop(answer) => return answer,
            };
            if attempt > 0 {
                count("precreate_resent");
            }
            let answer = self.gateway.precreate(&request).await;
            let settled = !matches!(answer, Outcome::Unknown(_) | Outcome::WaitingForBuyer(_));
            outcome = Some(answer);
            if settled {
                break;
            }
        }
        let Some(outcome) = outcome else {
            return Err(CreateError::Internal("no precreate was sent".into()));
        };
        match outcome {
            Outcome::Success(answer) => {
                let mismatch = check_trade(&order, &answer.out_trade_no, None, None, || {
                    let mut facts = AlipayFacts::from(FactSource::PrecreateResponse);
                    facts.out_trade_no = Some(answer.out_trade_no.clone());
                    facts
                });
                if let Some(mismatch) = mismatch {
                    apply_planned(&self.store, &self.clock, &order, |current, now| Plan {
                        transition: None,
                        anomaly: Some(anomaly(current, mismatch.clone(), now)),
                    })
                    .await?;
                    self.release(&order).await;
                    return Err(CreateError::AlipayUnavailable("mismatched_answer".into()));
                }
                let created = self
                    .settle(&order, |current, now| {
                        current.created_at_alipay(
                            Some(answer.qr_code.clone()),
                            trade_no.clone(),
                            now,
                        )
                    })
                    .await?;
                count("qr_created");
                Ok(created)
            }
            Outcome::Failed(failure) if says_trade_exists(&failure) => {
                // The trade exists in some state (paid, even): learn it, never record a failure.
                let converged = converge(
                    &self.store,
                    &self.gateway,
                    &self.clock,
                    &order,
                    Actor::Holder(&order),
                )
                .await?;
                if converged.order.status().is_open() {
                    self.release(&converged.order).await;
                    return Err(CreateError::AlipayUnavailable(converged.view.kind().into()));
                }
                Ok(Created::new(converged.order))
            }
            Outcome::Failed(failure) => self.refused(&order, &failure, true, true).await,
            Outcome::Unknown(cause) => {
                count("alipay_unknown_outcome");
                self.release(&order).await;
                Err(CreateError::AlipayUnavailable(describe_unknown(&cause)))
            }
            Outcome::WaitingForBuyer(_) => {
                self.release(&order).await;
                Err(CreateError::AlipayUnavailable("unexpected_10003".into()))
            }
            Outcome::Rejected(Rejection::Gateway { failure, signed }) => {
                self.refused(&order, &failure, signed, false).await
            }
            Outcome::Rejected(Rejection::Local(_)) => {
                self.release(&order).await;
                tracing::error!("the precreate could not be built or signed");
                Err(CreateError::Internal("rejected_locally".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::CreateError;
    use crate::fakes::*;
    use alipay::notify::TradeStatus;
    use alipay::outcome::{Failure, Outcome, Rejection, UnknownCause};
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
        assert!(!stored.lease_live(p.clock.0.lock().unwrap().to_owned()));
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
            .push_back(Outcome::Failed(failure("ACQ.ACCESS_FORBIDDEN")));
        let created = p.create(&qr_request("Q3")).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Failed);
        assert_eq!(
            created.order.failure().unwrap().code,
            "ACQ.ACCESS_FORBIDDEN"
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

    #[tokio::test]
    async fn a_refusal_of_the_requests_content_is_the_callers_and_fails_the_order() {
        let p = payments();
        p.gateway
            .precreates
            .lock()
            .unwrap()
            .push_back(Outcome::Failed(failure("ACQ.EXIST_FORBIDDEN_WORD")));
        let result = p.create(&qr_request("Q5")).await;
        assert!(matches!(
            result,
            Err(CreateError::AlipayRefusedRequest { ref sub_code }) if sub_code == "ACQ.EXIST_FORBIDDEN_WORD"
        ));
        let stored = p.store.order("Q5").unwrap();
        assert_eq!(stored.status(), OrderStatus::Failed);
        assert_eq!(stored.failure().unwrap().code, "ACQ.EXIST_FORBIDDEN_WORD");
    }

    #[tokio::test]
    async fn an_unsigned_refusal_of_the_content_is_answered_but_not_recorded_as_fact() {
        let p = payments();
        p.gateway
            .precreates
            .lock()
            .unwrap()
            .push_back(Outcome::Rejected(Rejection::Gateway {
                failure: Failure {
                    code: "40002".into(),
                    msg: "Invalid Arguments".into(),
                    sub_code: Some("isv.suspected-attack".into()),
                    sub_msg: None,
                },
                signed: false,
            }));
        let result = p.create(&qr_request("Q6")).await;
        assert!(matches!(
            result,
            Err(CreateError::AlipayRefusedRequest { .. })
        ));
        let stored = p.store.order("Q6").unwrap();
        assert_eq!(stored.status(), OrderStatus::Creating);
        assert!(!stored.lease_live(p.clock.0.lock().unwrap().to_owned()));
    }

    #[tokio::test]
    async fn alipays_rate_limit_changes_nothing_and_asks_to_come_back() {
        let p = payments();
        p.gateway
            .precreates
            .lock()
            .unwrap()
            .push_back(Outcome::Rejected(Rejection::Gateway {
                failure: Failure {
                    code: "40005".into(),
                    msg: "Call Limited".into(),
                    sub_code: Some("isv.app-call-limited".into()),
                    sub_msg: None,
                },
                signed: false,
            }));
        let result = p.create(&qr_request("Q7")).await;
        assert!(matches!(result, Err(CreateError::AlipayRateLimited { .. })));
        let stored = p.store.order("Q7").unwrap();
        assert_eq!(stored.status(), OrderStatus::Creating, "nothing recorded");
        assert_eq!(p.gateway.calls("precreate"), 1, "not hammered again");
    }
}
