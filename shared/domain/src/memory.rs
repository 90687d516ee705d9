//! In-memory ports (the `memory` feature, for tests only) with the semantics of the AWS
//! adapters (`aws_adapters::dynamo`, `aws_adapters::sqs`), used by unit tests and the model
//! check (`tests/model`):
//!
//! - a claim or a transition is one atomic write of the order (conditional on its absence, or
//!   on its expected status, version and amount), its audit event (the outbox item, with the
//!   order it leaves behind; an event number written twice is `Corrupt`, as the transaction's
//!   `attribute_not_exists` makes it), its anomaly upsert and its kept notification;
//! - a write whose condition fails but finds exactly the order it was writing answers as if
//!   it had succeeded (an earlier attempt committed it), otherwise it returns the stored order;
//! - an anomaly is one record per order and kind: a repeat updates the latest sighting and the
//!   count, and reopens it.
//!
//! Clones share their contents, as clients of one table do.

use crate::OutTradeNo;
use crate::anomaly::{Anomaly, AnomalyRecord, AnomalyStatus};
use crate::notification::ReceivedNotification;
use crate::order::{Order, OrderEvent, Transition};
use crate::ports::{
    Applied, Claim, ClaimRef, ExpiryScheduler, NotificationLog, OrderStore, ScheduleError,
    StoreError,
};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Another writer's change, made just before one of our writes lands.
pub type Interference = Box<dyn FnOnce(&Order) -> Option<Transition> + Send>;

/// An audit event as the outbox holds it: the event and the order it left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub event: OrderEvent,
    pub order: Order,
}

#[derive(Default)]
struct Tables {
    orders: HashMap<OutTradeNo, Order>,
    /// Every audit event, in commit order.
    events: Vec<StoredEvent>,
    anomalies: BTreeMap<String, AnomalyRecord>,
    notifications: Vec<ReceivedNotification>,
}

impl Tables {
    fn upsert_anomaly(&mut self, anomaly: &Anomaly) {
        let id = anomaly.id();
        match self.anomalies.get_mut(&id) {
            Some(record) => {
                record.latest = anomaly.clone();
                record.status = AnomalyStatus::Open;
                record.last_seen = anomaly.seen_at;
                record.occurrences += 1;
            }
            None => {
                let record = AnomalyRecord {
                    id: id.clone(),
                    latest: anomaly.clone(),
                    status: AnomalyStatus::Open,
                    first_seen: anomaly.seen_at,
                    last_seen: anomaly.seen_at,
                    occurrences: 1,
                    resolution: None,
                };
                self.anomalies.insert(id, record);
            }
        }
    }

    /// An event number already written fails the whole write.
    fn check_event_is_new(&self, event: &OrderEvent) -> Result<(), StoreError> {
        let taken = self.events.iter().any(|stored| {
            stored.event.out_trade_no == event.out_trade_no && stored.event.version == event.version
        });
        if taken {
            return Err(StoreError::Corrupt(format!(
                "order {}: its audit event {} already exists",
                event.out_trade_no, event.version
            )));
        }
        Ok(())
    }
}

#[derive(Default)]
struct Faults {
    /// One entry per `apply`, in order: `Some` makes another writer win the race first.
    interference: VecDeque<Option<Interference>>,
    /// Every `apply` from this one on (counted from 1) fails as if DynamoDB were down.
    unavailable_from_apply: Option<usize>,
    applies: usize,
}

/// The orders table: orders, their audit events, anomalies and kept notifications.
#[derive(Clone, Default)]
pub struct MemoryStore {
    tables: Arc<Mutex<Tables>>,
    faults: Arc<Mutex<Faults>>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock has failed already; its data is still good.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryStore {
    /// The stored order numbered `no` (a valid order number).
    pub fn order(&self, no: &str) -> Option<Order> {
        let no = OutTradeNo::parse(no).ok()?;
        locked(&self.tables).orders.get(&no).cloned()
    }

    /// Every stored order, by number.
    pub fn orders(&self) -> Vec<Order> {
        let mut orders: Vec<Order> = locked(&self.tables).orders.values().cloned().collect();
        orders.sort_by(|a, b| a.out_trade_no().as_str().cmp(b.out_trade_no().as_str()));
        orders
    }

    /// Stores `order` as it is, without an event (a test's starting state).
    pub fn put(&self, order: Order) {
        locked(&self.tables)
            .orders
            .insert(order.out_trade_no().clone(), order);
    }

    /// Every audit event with the order it left behind, in commit order.
    pub fn events(&self) -> Vec<StoredEvent> {
        locked(&self.tables).events.clone()
    }

    /// The anomaly records, by id.
    pub fn anomalies(&self) -> Vec<AnomalyRecord> {
        locked(&self.tables).anomalies.values().cloned().collect()
    }

    /// The kept notifications, in the order they were written.
    pub fn notifications(&self) -> Vec<ReceivedNotification> {
        locked(&self.tables).notifications.clone()
    }

    /// The next `apply` first lets another writer's change (if any) land.
    pub fn interfere_next(&self, interference: Option<Interference>) {
        locked(&self.faults).interference.push_back(interference);
    }

    /// Every `apply` from the `nth` on (counted from 1) fails as if DynamoDB were down.
    pub fn fail_applies_from(&self, nth: usize) {
        locked(&self.faults).unavailable_from_apply = Some(nth);
    }

    /// The conditional write of a transition, its event, anomaly and notification.
    fn write(&self, transition: &Transition) -> Result<Applied, StoreError> {
        let mut tables = locked(&self.tables);
        let next = &transition.next;
        let stored = tables.orders.get(next.out_trade_no()).cloned();
        let holds = stored.as_ref().is_some_and(|order| {
            order.status() == transition.expected_status
                && order.version() == transition.expected_version
                && order.amount() == next.amount()
        });
        if !holds {
            if stored.as_ref() == Some(next) {
                return Ok(Applied::Applied(next.clone()));
            }
            return Ok(Applied::Conflict(stored));
        }
        tables.check_event_is_new(&transition.event)?;
        tables
            .orders
            .insert(next.out_trade_no().clone(), next.clone());
        tables.events.push(StoredEvent {
            event: transition.event.clone(),
            order: next.clone(),
        });
        if let Some(notification) = &transition.notification {
            tables.notifications.push(notification.clone());
        }
        if let Some(anomaly) = &transition.anomaly {
            tables.upsert_anomaly(anomaly);
        }
        Ok(Applied::Applied(next.clone()))
    }
}

impl OrderStore for MemoryStore {
    async fn claim(&self, order: &Order, event: &OrderEvent) -> Result<Claim, StoreError> {
        let mut tables = locked(&self.tables);
        if let Some(existing) = tables.orders.get(order.out_trade_no()) {
            if existing == order {
                return Ok(Claim::Claimed);
            }
            return Ok(Claim::Exists(existing.clone()));
        }
        tables.check_event_is_new(event)?;
        tables
            .orders
            .insert(order.out_trade_no().clone(), order.clone());
        tables.events.push(StoredEvent {
            event: event.clone(),
            order: order.clone(),
        });
        Ok(Claim::Claimed)
    }

    async fn get(&self, out_trade_no: &OutTradeNo) -> Result<Option<Order>, StoreError> {
        Ok(locked(&self.tables).orders.get(out_trade_no).cloned())
    }

    async fn apply(&self, transition: &Transition) -> Result<Applied, StoreError> {
        let interference = {
            let mut faults = locked(&self.faults);
            faults.applies += 1;
            if faults
                .unavailable_from_apply
                .is_some_and(|from| faults.applies >= from)
            {
                return Err(StoreError::Unavailable("throttled".into()));
            }
            faults.interference.pop_front().flatten()
        };
        if let Some(other) = interference {
            let current = locked(&self.tables)
                .orders
                .get(transition.next.out_trade_no())
                .cloned();
            if let Some(theirs) = current.as_ref().and_then(other) {
                self.write(&theirs)?;
            }
        }
        self.write(transition)
    }

    async fn record_anomaly(&self, anomaly: &Anomaly) -> Result<(), StoreError> {
        locked(&self.tables).upsert_anomaly(anomaly);
        Ok(())
    }
}

impl NotificationLog for MemoryStore {
    async fn keep(&self, notification: &ReceivedNotification) -> Result<(), StoreError> {
        locked(&self.tables)
            .notifications
            .push(notification.clone());
        Ok(())
    }
}

/// An expiry message: the order, when it is due, and the claim it was scheduled for (if it
/// was scheduled before its claim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    pub out_trade_no: OutTradeNo,
    pub due_at: DateTime<Utc>,
    pub claim: Option<ClaimRef>,
}

/// The expiry queue: every message scheduled, in order, until taken.
#[derive(Clone, Default)]
pub struct MemoryScheduler {
    messages: Arc<Mutex<Vec<Expiry>>>,
    failing: Arc<AtomicBool>,
}

impl MemoryScheduler {
    /// The messages waiting in the queue, oldest first.
    pub fn scheduled(&self) -> Vec<Expiry> {
        locked(&self.messages).clone()
    }

    /// Takes the message at `index` out of the queue (as a consumer receives and deletes it).
    pub fn take(&self, index: usize) -> Option<Expiry> {
        let mut messages = locked(&self.messages);
        (index < messages.len()).then(|| messages.remove(index))
    }

    /// Puts a received message back as it was (SQS delivering it again).
    pub fn redeliver(&self, message: Expiry) {
        locked(&self.messages).push(message);
    }

    /// From now on, scheduling fails (or works again).
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

impl ExpiryScheduler for MemoryScheduler {
    async fn enqueue(
        &self,
        out_trade_no: &OutTradeNo,
        due_at: DateTime<Utc>,
        claim: Option<&ClaimRef>,
    ) -> Result<(), ScheduleError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(ScheduleError("queue unavailable".into()));
        }
        locked(&self.messages).push(Expiry {
            out_trade_no: out_trade_no.clone(),
            due_at,
            claim: claim.cloned(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scene;
    use crate::anomaly::{AlipayFacts, AnomalyKind};
    use crate::order::{Buyer, PaymentSource};

    use crate::test_orders::at;

    fn claimed(no: &str, fen: i64) -> (Order, OrderEvent) {
        crate::test_orders::claimed(no, fen, Scene::Qr)
    }

    #[tokio::test]
    async fn a_claim_is_idempotent_for_the_same_order_only() {
        let store = MemoryStore::default();
        let (order, event) = claimed("M1", 100);
        assert_eq!(store.claim(&order, &event).await.unwrap(), Claim::Claimed);
        assert_eq!(
            store.claim(&order, &event).await.unwrap(),
            Claim::Claimed,
            "our own write, retried"
        );
        let (other, other_event) = claimed("M1", 100);
        assert_eq!(
            store.claim(&other, &other_event).await.unwrap(),
            Claim::Exists(order)
        );
        assert_eq!(store.events().len(), 1);
    }

    #[tokio::test]
    async fn a_transition_is_conditional_on_status_version_and_amount() {
        let store = MemoryStore::default();
        let (order, event) = claimed("M2", 100);
        store.claim(&order, &event).await.unwrap();
        let synced = order.synced(at(1)).unwrap();
        let paid = order
            .paid(
                "T".into(),
                at(1),
                PaymentSource::Query,
                Buyer::default(),
                at(1),
            )
            .unwrap();
        assert_eq!(
            store.apply(&synced).await.unwrap(),
            Applied::Applied(synced.next.clone())
        );
        assert_eq!(
            store.apply(&synced).await.unwrap(),
            Applied::Applied(synced.next.clone()),
            "the same write again finds itself"
        );
        assert_eq!(
            store.apply(&paid).await.unwrap(),
            Applied::Conflict(Some(synced.next.clone())),
            "planned from version 1, the order is at 2"
        );
        let (other_amount, _) = claimed("M2", 200);
        let mut planned = other_amount.synced(at(2)).unwrap();
        planned.expected_version = 2;
        assert!(matches!(
            store.apply(&planned).await.unwrap(),
            Applied::Conflict(_)
        ));
        let versions: Vec<u64> = store.events().iter().map(|e| e.event.version).collect();
        assert_eq!(versions, [1, 2]);
    }

    #[tokio::test]
    async fn an_event_number_is_never_written_twice() {
        let store = MemoryStore::default();
        let (order, event) = claimed("M3", 100);
        store.claim(&order, &event).await.unwrap();
        let synced = order.synced(at(1)).unwrap();
        store.apply(&synced).await.unwrap();
        // Someone puts the order back at version 1 without its events (a broken restore).
        store.put(order.clone());
        let again = order.synced(at(2)).unwrap();
        assert!(matches!(
            store.apply(&again).await,
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(
            store.order("M3"),
            Some(order),
            "nothing of the write landed"
        );
    }

    #[tokio::test]
    async fn an_anomaly_is_one_record_per_order_and_kind() {
        let store = MemoryStore::default();
        let sighting = |seconds| Anomaly {
            kind: AnomalyKind::PaidAfterClose,
            out_trade_no: OutTradeNo::parse("M4").ok(),
            order_status: None,
            order_amount_fen: None,
            facts: AlipayFacts::default(),
            detail: "paid".into(),
            seen_at: at(seconds),
        };
        store.record_anomaly(&sighting(1)).await.unwrap();
        store.record_anomaly(&sighting(5)).await.unwrap();
        let records = store.anomalies();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].occurrences, 2);
        assert_eq!(records[0].first_seen, at(1));
        assert_eq!(records[0].last_seen, at(5));
    }
}
