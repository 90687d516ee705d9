//! Reading an order, synced with Alipay when it may be out of date.
//!
//! An order is asked about when it is open (PENDING, or CREATING whose creator died: Alipay
//! may have a trade), nobody holds its lease (a request working on it is the one to learn
//! what Alipay did; a GET never acts on a live lease), and it was last synced more than
//! `sync_after` ago, even when Alipay's answer was "no trade" (so an abandoned claim does not
//! cost a query per GET). The convergence applies conditional transitions only; a lost race
//! is planned again from the order as stored by the winner. When Alipay cannot be asked, the
//! stored order is the answer, marked stale. A contradiction (another amount, a payment for a
//! closed order) is recorded as an anomaly and reported as `sync_error`.

use chrono::{DateTime, Utc};
use domain::converge::{Actor, AlipayView, converge};
use domain::order::Order;
use domain::ports::{Clock, OrderStore, PaymentGateway, StoreError};
use domain::refunding::check;
use domain::{OutRequestNo, OutTradeNo};
use std::time::Duration;

/// The lookup logic over its ports.
pub struct Orders<S, G, C> {
    pub store: S,
    pub gateway: G,
    pub clock: C,
    /// Ask Alipay again only when the last sync is older than this.
    pub sync_after: Duration,
}

/// A lookup's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Looked {
    pub order: Order,
    /// Set when Alipay should have been asked but could not be: why.
    pub sync_error: Option<String>,
}

/// A refund lookup's answer.
// One value per request, moved once: boxing the order would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundLookup {
    NoOrder,
    NoRefund,
    /// The order holding the refund (synced with Alipay's refund query when due).
    Found(Looked),
}

/// Whether Alipay may know more than the store about `order`.
pub fn needs_sync(order: &Order, now: DateTime<Utc>, sync_after: Duration) -> bool {
    let sync_after = chrono::Duration::from_std(sync_after).unwrap_or_default();
    order.status().is_open()
        && !order.lease_live(now)
        && order
            .last_synced_at()
            .is_none_or(|synced| now - synced >= sync_after)
}

impl<S, G, C> Orders<S, G, C>
where
    S: OrderStore,
    G: PaymentGateway,
    C: Clock,
{
    /// A refund of an order; a PENDING one nobody is sending is checked with Alipay's refund
    /// query at most once per `sync_after` (`domain::refunding::check`).
    pub async fn lookup_refund(
        &self,
        out_trade_no: &OutTradeNo,
        out_request_no: &OutRequestNo,
    ) -> Result<RefundLookup, StoreError> {
        let Some(order) = self.store.get(out_trade_no).await? else {
            return Ok(RefundLookup::NoOrder);
        };
        if order.refund(out_request_no).is_none() {
            return Ok(RefundLookup::NoRefund);
        }
        let (order, sync_error) = check(
            &self.store,
            &self.gateway,
            &self.clock,
            self.sync_after,
            order,
            out_request_no,
        )
        .await?;
        Ok(RefundLookup::Found(Looked { order, sync_error }))
    }

    /// `Ok(None)` when there is no such order.
    pub async fn lookup(&self, out_trade_no: &OutTradeNo) -> Result<Option<Looked>, StoreError> {
        let Some(order) = self.store.get(out_trade_no).await? else {
            return Ok(None);
        };
        if !needs_sync(&order, self.clock.now(), self.sync_after) {
            return Ok(Some(Looked {
                order,
                sync_error: None,
            }));
        }
        let converged = converge(
            &self.store,
            &self.gateway,
            &self.clock,
            &order,
            Actor::Observer,
        )
        .await?;
        tracing::info!(
            alipay = converged.view.kind(),
            applied = converged.applied,
            status = converged.order.status().as_str(),
            "synced with Alipay"
        );
        let sync_error = match &converged.view {
            AlipayView::Unknown(detail) => {
                tracing::warn!(
                    detail,
                    "Alipay could not be asked; answering from the store"
                );
                Some("alipay_unavailable".to_owned())
            }
            AlipayView::Mismatch(_) => Some("alipay_mismatch".to_owned()),
            _ => None,
        };
        Ok(Some(Looked {
            order: converged.order,
            sync_error,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alipay::api::{
        CancelRequest, CancelResponse, CloseRequest, CloseResponse, PayRequest, PayResponse,
        PrecreateRequest, PrecreateResponse, QueryRequest, QueryResponse, RefundQueryRequest,
        RefundQueryResponse, RefundRequest, RefundResponse,
    };
    use alipay::notify::TradeStatus;
    use alipay::outcome::{Outcome, UnknownCause};
    use domain::anomaly::Anomaly;
    use domain::order::{NewOrder, OrderEvent, PaymentSource, Transition};
    use domain::ports::{Applied, Claim};
    use domain::{Fen, OrderAmount, Scene};
    use std::sync::Mutex;

    /// A store whose `apply` always loses the race to `winner`.
    struct RacingStore {
        stored: Order,
        winner: Order,
        applies: Mutex<u32>,
    }

    impl OrderStore for RacingStore {
        async fn claim(&self, _: &Order, _: &OrderEvent) -> Result<Claim, StoreError> {
            Ok(Claim::Exists(self.stored.clone()))
        }
        async fn get(&self, _: &OutTradeNo) -> Result<Option<Order>, StoreError> {
            Ok(Some(self.stored.clone()))
        }
        async fn apply(&self, _: &Transition) -> Result<Applied, StoreError> {
            *self.applies.lock().unwrap() += 1;
            Ok(Applied::Conflict(Some(self.winner.clone())))
        }
        async fn record_anomaly(&self, _: &Anomaly) -> Result<(), StoreError> {
            Ok(())
        }
    }

    struct Alipay(Outcome<QueryResponse>);

    impl PaymentGateway for Alipay {
        fn call_timeout(&self) -> Duration {
            Duration::from_secs(5)
        }
        async fn precreate(&self, _: &PrecreateRequest) -> Outcome<PrecreateResponse> {
            Outcome::Unknown(UnknownCause::Timeout)
        }
        async fn pay(&self, _: &PayRequest) -> Outcome<PayResponse> {
            Outcome::Unknown(UnknownCause::Timeout)
        }
        async fn query(&self, _: &QueryRequest) -> Outcome<QueryResponse> {
            self.0.clone()
        }
        async fn cancel(&self, _: &CancelRequest) -> Outcome<CancelResponse> {
            Outcome::Unknown(UnknownCause::Timeout)
        }
        async fn close(&self, _: &CloseRequest) -> Outcome<CloseResponse> {
            Outcome::Unknown(UnknownCause::Timeout)
        }
        async fn refund(&self, _: &RefundRequest) -> Outcome<RefundResponse> {
            Outcome::Unknown(UnknownCause::Timeout)
        }
        async fn refund_query(&self, _: &RefundQueryRequest) -> Outcome<RefundQueryResponse> {
            Outcome::Unknown(UnknownCause::Timeout)
        }
    }

    struct Fixed(DateTime<Utc>);
    impl Clock for Fixed {
        fn now(&self) -> DateTime<Utc> {
            self.0
        }
        async fn sleep(&self, _: Duration) {}
    }

    fn pending(now: DateTime<Utc>) -> Order {
        let new = NewOrder {
            out_trade_no: OutTradeNo::parse("Q1").unwrap(),
            amount: OrderAmount::from_fen(100).unwrap(),
            subject: "s".into(),
            scene: Scene::Qr,
            store_id: None,
            operator_id: None,
            terminal_id: None,
            request_hash: "h".into(),
            expires_at: now + chrono::Duration::minutes(15),
        };
        let (claim, _) = Order::claim(new, now, chrono::Duration::seconds(15));
        claim
            .created_at_alipay(Some("qr".into()), None, now)
            .unwrap()
            .next
    }

    fn paid_trade() -> Outcome<QueryResponse> {
        Outcome::Success(QueryResponse {
            trade_no: "2024".into(),
            out_trade_no: "Q1".into(),
            trade_status: TradeStatus::TradeSuccess,
            total_amount: Fen::new(100),
            receipt_amount: None,
            buyer_pay_amount: None,
            buyer_logon_id: None,
            buyer_user_id: None,
            buyer_open_id: None,
            send_pay_date: None,
            store_id: None,
            terminal_id: None,
        })
    }

    #[tokio::test]
    async fn a_lost_race_is_answered_with_the_winners_order() {
        let now = Utc::now();
        let stored = pending(now - chrono::Duration::seconds(60));
        let winner = stored
            .paid(
                "2024".into(),
                now,
                PaymentSource::Notification,
                domain::order::Buyer::default(),
                now,
            )
            .unwrap()
            .next;
        let orders = Orders {
            store: RacingStore {
                stored: stored.clone(),
                winner: winner.clone(),
                applies: Mutex::new(0),
            },
            gateway: Alipay(paid_trade()),
            clock: Fixed(now),
            sync_after: Duration::from_secs(5),
        };
        let looked = orders.lookup(stored.out_trade_no()).await.unwrap().unwrap();
        assert_eq!(looked.order, winner);
        assert_eq!(looked.sync_error, None);
        assert_eq!(*orders.store.applies.lock().unwrap(), 1);
    }

    #[test]
    fn a_leased_order_is_left_to_its_holder() {
        let now = Utc::now();
        let new = NewOrder {
            out_trade_no: OutTradeNo::parse("Q2").unwrap(),
            amount: OrderAmount::from_fen(100).unwrap(),
            subject: "s".into(),
            scene: Scene::Barcode,
            store_id: None,
            operator_id: None,
            terminal_id: None,
            request_hash: "h".into(),
            expires_at: now + chrono::Duration::minutes(15),
        };
        let (claim, _) = Order::claim(new, now, chrono::Duration::seconds(15));
        assert!(!needs_sync(
            &claim,
            now + chrono::Duration::seconds(14),
            Duration::ZERO
        ));
        assert!(needs_sync(
            &claim,
            now + chrono::Duration::seconds(15),
            Duration::ZERO
        ));
        let polling = claim
            .waiting_for_buyer(None, now, chrono::Duration::seconds(15))
            .unwrap()
            .next;
        assert!(!needs_sync(
            &polling,
            now + chrono::Duration::seconds(10),
            Duration::ZERO
        ));
    }

    #[test]
    fn only_open_orders_synced_long_enough_ago_are_synced() {
        let now = Utc::now();
        let order = pending(now - chrono::Duration::seconds(10));
        assert!(needs_sync(&order, now, Duration::from_secs(5)));
        assert!(!needs_sync(&order, now, Duration::from_secs(60)));
        let paid = order
            .paid(
                "t".into(),
                now,
                PaymentSource::Query,
                domain::order::Buyer::default(),
                now,
            )
            .unwrap()
            .next;
        assert!(!needs_sync(&paid, now, Duration::ZERO));
    }
}
