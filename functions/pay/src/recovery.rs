//! Finishing an order nobody is working on: its holder died somewhere between the claim and
//! its answer, or left a barcode payment unresolved. Alipay may or may not have the trade, so
//! ask (`alipay.trade.query`) and never guess: a paid or closed trade converges; a QR trade
//! waiting for the buyer gets its code back from the identical precreate; a barcode trade
//! waiting for the buyer is polled until its window (counted from the order's creation)
//! ends, then cancelled; a trade Alipay does not know is created by re-sending the identical
//! request when the order never reached Alipay, and cancelled when it did (a payment that
//! still lands after that is a `paid_after_close` anomaly wherever it is seen).

use crate::pending_reasons::ALIPAY_MISMATCH;
use crate::{CreateError, Created, Payments};
use alipay::api::{QueryRequest, TradeRef};
use domain::OrderStatus;
use domain::Scene;
use domain::converge::{Actor, AlipayView, apply_view, read_query, reasons};
use domain::order::Order;
use domain::ports::{Clock, ExpiryScheduler, OrderStore, PaymentGateway};

pub enum Recovered {
    /// Settled from Alipay's answer.
    Done(Created),
    /// Alipay has no trade for a claim: run the scene's flow with the identical request.
    Proceed(Order),
}

impl<S, Q, G, C> Payments<S, Q, G, C>
where
    S: OrderStore,
    Q: ExpiryScheduler,
    G: PaymentGateway,
    C: Clock,
{
    /// `order` is open and its lease is ours (just taken over).
    pub(crate) async fn recover(&self, order: Order) -> Result<Recovered, CreateError> {
        let query = QueryRequest::new(TradeRef::out_trade_no(order.out_trade_no().as_str()));
        let view = read_query(&order, self.gateway.query(&query).await);
        tracing::info!(
            alipay = view.kind(),
            status = order.status().as_str(),
            "recovering an order nobody is working on"
        );
        let done = |created| Ok(Recovered::Done(created));
        match (&view, order.scene(), order.status()) {
            (AlipayView::Paid { .. } | AlipayView::Closed { .. }, _, _) => {
                let converged = apply_view(
                    &self.store,
                    &self.clock,
                    &order,
                    view,
                    Actor::Holder(&order),
                )
                .await?;
                done(self.answer_for(converged.order)?)
            }
            (AlipayView::Waiting { trade_no }, Scene::Qr, _) => {
                let trade_no = trade_no.clone();
                done(self.qr(order, Some(trade_no)).await?)
            }
            (AlipayView::Waiting { trade_no }, Scene::Barcode, status) => {
                let order = if status == OrderStatus::Creating {
                    let trade_no = trade_no.clone();
                    let lease = self.lease();
                    let settled = self
                        .hold_and_apply(&order, |current, now| {
                            current.waiting_for_buyer(Some(trade_no.clone()), now, lease)
                        })
                        .await?;
                    if !settled.applied {
                        return done(self.answer_for(settled.order)?);
                    }
                    settled.order
                } else {
                    order
                };
                let started = order.created_at();
                done(Box::pin(self.poll(order, started)).await?)
            }
            (AlipayView::NotExist, _, OrderStatus::Creating) => Ok(Recovered::Proceed(order)),
            (AlipayView::NotExist, _, _) => {
                // A pending barcode order without a trade: cancel, as Alipay prescribes for an
                // unknown pay outcome, and close the order.
                done(Box::pin(self.cancel(order, reasons::UNRESOLVED_CANCELLED)).await?)
            }
            (AlipayView::Mismatch(_), scene, _) => {
                // Recorded as an anomaly for an operator; nothing is sent.
                apply_view(
                    &self.store,
                    &self.clock,
                    &order,
                    view.clone(),
                    Actor::Holder(&order),
                )
                .await?;
                match scene {
                    Scene::Barcode => done(self.leave_pending(order, ALIPAY_MISMATCH).await?),
                    Scene::Qr => {
                        self.release(&order).await;
                        Err(CreateError::AlipayUnavailable("alipay_mismatch".into()))
                    }
                }
            }
            (AlipayView::Unknown(detail), _, _) => {
                let detail = detail.clone();
                self.release(&order).await;
                Err(CreateError::AlipayUnavailable(detail))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::fakes::*;
    use alipay::notify::TradeStatus;
    use alipay::outcome::Outcome;
    use domain::OrderStatus;
    use domain::order::Order;
    use std::time::Duration;

    fn abandon(p: &TestPayments, request: &crate::validation::PaymentRequest) {
        let now = p.clock.0.lock().unwrap().to_owned();
        let (claim, _) = Order::claim(request.new_order(now), now, chrono::Duration::seconds(15));
        p.store.put(claim);
        p.clock.advance(Duration::from_secs(20));
    }

    #[tokio::test]
    async fn a_paid_trade_converges_without_a_new_request() {
        let p = payments();
        let request = barcode_request("R1");
        abandon(&p, &request);
        p.gateway
            .queries
            .lock()
            .unwrap()
            .push_back(trade("R1", TradeStatus::TradeSuccess));
        let created = p.create(&request).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Paid);
        assert_eq!(p.gateway.calls("pay"), 0);
    }

    #[tokio::test]
    async fn a_barcode_trade_alipay_never_saw_is_paid_with_this_requests_code() {
        let p = payments();
        let request = barcode_request("R2");
        abandon(&p, &request);
        p.gateway
            .queries
            .lock()
            .unwrap()
            .push_back(Outcome::Failed(failure("ACQ.TRADE_NOT_EXIST")));
        p.gateway
            .pays
            .lock()
            .unwrap()
            .push_back(Outcome::Success(pay_answer("R2")));
        let created = p.create(&request).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Paid);
        assert_eq!(p.gateway.calls("pay"), 1);
    }

    #[tokio::test]
    async fn a_scanned_qr_trade_gets_its_code_back_from_an_identical_precreate() {
        let p = payments();
        let request = qr_request("R3");
        abandon(&p, &request);
        p.gateway
            .queries
            .lock()
            .unwrap()
            .push_back(trade("R3", TradeStatus::WaitBuyerPay));
        p.gateway.precreates.lock().unwrap().push_back(qr_ok("R3"));
        let created = p.create(&request).await.unwrap();
        assert_eq!(created.order.status(), OrderStatus::Pending);
        assert_eq!(created.order.qr_code(), Some("https://qr.alipay.com/R3"));
        assert_eq!(created.order.alipay_trade_no(), Some("2024R3"));
    }

    #[tokio::test]
    async fn an_unanswered_query_releases_the_claim_again() {
        let p = payments();
        let request = qr_request("R4");
        abandon(&p, &request);
        let result = p.create(&request).await;
        assert!(matches!(
            result,
            Err(crate::CreateError::AlipayUnavailable(_))
        ));
        assert_eq!(p.gateway.calls("precreate"), 0, "never guess");
    }
}
