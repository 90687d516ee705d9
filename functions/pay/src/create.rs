//! Creating a payment: schedule the expiry of the claim about to be written, claim the order
//! number (one conditional write), then either run the scene's flow (a fresh claim), answer
//! from the stored order (a retry), or take over an order nobody is working on and finish it.
//!
//! The expiry is scheduled before the claim, so that a process that ends right after its claim
//! cannot leave an order the expiry job never sees. A retry schedules one too, for its own
//! claim, which is never stored: the message names the claim ([`ClaimRef`]) and the expiry job
//! drops it on its first delivery.

use crate::idempotency::{Existing, classify};
use crate::validation::PaymentRequest;
use crate::{CreateError, Created, Payments};
use chrono::{DateTime, SubsecRound, Utc};
use domain::Scene;
use domain::order::Order;
use domain::ports::{Applied, Claim, ClaimRef, Clock, ExpiryScheduler, OrderStore, PaymentGateway};
use f2f_runtime::telemetry::count;

impl<S, Q, G, C> Payments<S, Q, G, C>
where
    S: OrderStore,
    Q: ExpiryScheduler,
    G: PaymentGateway,
    C: Clock,
{
    /// Creates the payment `request` describes, or answers for the order it already created.
    pub async fn create(&self, request: &PaymentRequest) -> Result<Created, CreateError> {
        // Whole seconds: `time_expire` is sent with second precision, and a re-sent precreate
        // must be byte-identical to the first.
        let now = self.clock.now().trunc_subsecs(0);
        let (order, event) = Order::claim(request.new_order(now), now, self.lease());
        let claim = ClaimRef::of(&order);
        if let Err(error) = self
            .scheduler
            .schedule_claim(order.out_trade_no(), self.due_at(&order), &claim)
            .await
        {
            tracing::error!(%error, "the expiry could not be scheduled; nothing was written");
            return Err(error.into());
        }
        match self.store.claim(&order, &event).await? {
            Claim::Claimed => {
                count("order_claimed");
                self.proceed(order, request, false).await
            }
            // Leases are compared with the precise time (a released lease ends "now").
            Claim::Exists(existing) => self.existing(existing, request, self.clock.now()).await,
        }
    }

    async fn existing(
        &self,
        existing: Order,
        request: &PaymentRequest,
        now: DateTime<Utc>,
    ) -> Result<Created, CreateError> {
        match classify(&existing, &request.hash, now) {
            Existing::Mismatch => {
                count("idempotency_mismatch");
                Err(CreateError::Mismatch)
            }
            Existing::InFlight { retry_after } => {
                count("request_in_flight");
                Err(CreateError::InFlight { retry_after })
            }
            Existing::Replay => {
                count("idempotent_replay");
                Ok(Created::replayed(existing))
            }
            Existing::Abandoned => {
                let Ok(transition) = existing.take_over_lease(now, self.lease()) else {
                    return Err(CreateError::InFlight { retry_after: 1 });
                };
                match self.store.apply(&transition).await? {
                    Applied::Applied(order) => {
                        count("order_taken_over");
                        tracing::warn!(
                            status = order.status().as_str(),
                            version = order.version(),
                            "taking over an order nobody is working on"
                        );
                        self.proceed(order, request, true).await
                    }
                    // Another retry took it over first, or it moved meanwhile.
                    Applied::Conflict(Some(current)) => {
                        match classify(&current, &request.hash, now) {
                            Existing::Replay => Ok(Created::replayed(current)),
                            Existing::Mismatch => Err(CreateError::Mismatch),
                            Existing::InFlight { retry_after } => {
                                Err(CreateError::InFlight { retry_after })
                            }
                            Existing::Abandoned => Err(CreateError::InFlight { retry_after: 1 }),
                        }
                    }
                    Applied::Conflict(None) => Err(CreateError::Internal(format!(
                        "order {} vanished during a take-over",
                        existing.out_trade_no()
                    ))),
                }
            }
        }
    }

    /// When the expiry job must look at the order: its own expiry, or for a barcode payment
    /// as soon as nobody can still be working on it.
    fn due_at(&self, order: &Order) -> DateTime<Utc> {
        match order.scene() {
            Scene::Qr => order.expires_at(),
            Scene::Barcode => {
                let settle = self
                    .settings
                    .barcode_settle_after(self.gateway.call_timeout());
                let settled_by = order.created_at()
                    + chrono::Duration::from_std(settle).unwrap_or(chrono::Duration::MAX);
                settled_by.min(order.expires_at())
            }
        }
    }

    /// The order is open, its expiry scheduled and the lease is ours: talk to Alipay.
    async fn proceed(
        &self,
        order: Order,
        request: &PaymentRequest,
        recovering: bool,
    ) -> Result<Created, CreateError> {
        // A taken-over claim's expiry was scheduled before it, unless an older release claimed
        // it (one that scheduled after the claim, and may have ended in between): scheduled
        // again before any Alipay call. A duplicate is harmless: the expiry job is idempotent.
        if recovering
            && let Err(error) = self
                .scheduler
                .schedule(order.out_trade_no(), self.due_at(&order))
                .await
        {
            tracing::error!(%error, "the expiry could not be scheduled; Alipay was not called");
            self.release(&order).await;
            return Err(error.into());
        }
        let order = if recovering {
            match Box::pin(self.recover(order)).await? {
                crate::recovery::Recovered::Done(created) => return Ok(created),
                crate::recovery::Recovered::Proceed(order) => order,
            }
        } else {
            order
        };
        match (order.scene(), &request.auth_code) {
            (Scene::Qr, _) => Box::pin(self.qr(order, None)).await,
            (Scene::Barcode, Some(code)) => Box::pin(self.barcode(order, code)).await,
            (Scene::Barcode, None) => {
                self.release(&order).await;
                Err(CreateError::Internal(
                    "a barcode order without auth_code".into(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::CreateError;
    use crate::fakes::*;
    use domain::OrderStatus;
    use domain::order::Order;
    use std::time::Duration;

    #[tokio::test]
    async fn a_fresh_qr_request_schedules_the_expiry_and_issues_a_code() {
        let p = payments();
        p.gateway.precreates.lock().unwrap().push_back(qr_ok("T1"));
        let created = p.create(&qr_request("T1")).await.unwrap();
        assert!(!created.replayed);
        assert_eq!(created.order.status(), OrderStatus::Pending);
        assert_eq!(created.order.qr_code(), Some("https://qr.alipay.com/T1"));
        let scheduled = p.scheduler.scheduled();
        assert_eq!(scheduled.len(), 1);
        assert_eq!(scheduled[0].due_at, created.order.expires_at());
        let claim = scheduled[0]
            .claim
            .as_ref()
            .expect("scheduled before its claim");
        assert!(claim.names(&created.order));
        assert_eq!(
            p.gateway.sent_precreates.lock().unwrap()[0].time_expire,
            Some(created.order.expires_at())
        );
    }

    #[tokio::test]
    async fn a_retry_replays_a_mismatch_is_refused_and_an_in_flight_claim_waits() {
        let p = payments();
        p.gateway.precreates.lock().unwrap().push_back(qr_ok("T1"));
        let first = p.create(&qr_request("T1")).await.unwrap();
        let again = p.create(&qr_request("T1")).await.unwrap();
        assert!(again.replayed);
        assert_eq!(again.order, first.order);
        assert_eq!(p.gateway.calls("precreate"), 1);

        let mut other = qr_request("T1");
        other.hash = "different".into();
        assert!(matches!(p.create(&other).await, Err(CreateError::Mismatch)));
        assert_eq!(p.store.order("T1").unwrap(), first.order, "nothing changed");

        let request = qr_request("T2");
        let now = p.clock.0.lock().unwrap().to_owned();
        let (claim, _) = Order::claim(request.new_order(now), now, chrono::Duration::seconds(15));
        p.store.put(claim);
        p.clock.advance(Duration::from_secs(5));
        assert!(matches!(
            p.create(&request).await,
            Err(CreateError::InFlight { retry_after: 10 })
        ));
        assert_eq!(
            p.gateway.calls("precreate"),
            1,
            "no call for an in-flight claim"
        );
    }

    #[tokio::test]
    async fn an_abandoned_claim_is_taken_over_and_recovered_by_asking_alipay() {
        let p = payments();
        let request = qr_request("T3");
        let now = p.clock.0.lock().unwrap().to_owned();
        let (claim, _) = Order::claim(request.new_order(now), now, chrono::Duration::seconds(15));
        p.store.put(claim.clone());
        p.clock.advance(Duration::from_secs(16));
        p.gateway
            .queries
            .lock()
            .unwrap()
            .push_back(alipay::outcome::Outcome::Failed(failure(
                "ACQ.TRADE_NOT_EXIST",
            )));
        p.gateway.precreates.lock().unwrap().push_back(qr_ok("T3"));
        let created = p.create(&request).await.unwrap();
        assert!(!created.replayed);
        assert_eq!(created.order.status(), OrderStatus::Pending);
        assert_eq!(p.gateway.calls("query"), 1);
        assert_eq!(p.gateway.calls("precreate"), 1);
        assert_eq!(created.order.version(), 3, "claim, take-over, created");
        // Scheduled again before Alipay was asked (a claim of an older release may have none).
        let plain: Vec<_> = p
            .scheduler
            .scheduled()
            .into_iter()
            .filter(|m| m.claim.is_none())
            .collect();
        assert_eq!(plain.len(), 1, "{plain:?}");
        assert_eq!(plain[0].due_at, claim.expires_at());
    }

    #[tokio::test]
    async fn no_alipay_call_without_a_scheduled_expiry() {
        let p = payments();
        p.scheduler.fail(true);
        let result = p.create(&qr_request("T4")).await;
        assert!(matches!(result, Err(CreateError::Scheduler(_))));
        assert!(p.gateway.calls.lock().unwrap().is_empty());
        assert!(p.store.order("T4").is_none(), "no claim without its expiry");
    }

    #[tokio::test]
    async fn a_retry_schedules_for_its_own_claim_which_names_another_order() {
        let p = payments();
        p.gateway.precreates.lock().unwrap().push_back(qr_ok("T5"));
        let first = p.create(&qr_request("T5")).await.unwrap();
        p.clock.advance(Duration::from_secs(3));
        let again = p.create(&qr_request("T5")).await.unwrap();
        assert!(again.replayed);
        let scheduled = p.scheduler.scheduled();
        assert_eq!(scheduled.len(), 2);
        let claims: Vec<bool> = scheduled
            .iter()
            .map(|m| m.claim.as_ref().is_some_and(|c| c.names(&first.order)))
            .collect();
        assert_eq!(
            claims,
            [true, false],
            "only the first names the stored claim"
        );
    }
}
