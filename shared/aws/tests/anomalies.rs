//! Anomaly records against moto: written with the transition they accompany (or not at all),
//! one record per order and kind, listable by day and by open status.

// Test code: a failing unwrap is a failing test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aws_adapters::DynamoOrderStore;
use aws_adapters::dynamo::orders::beijing_day;
use chrono::{Duration, Utc};
use common::{claimed, dynamo};
use domain::OrderStatus;
use domain::OutTradeNo;
use domain::anomaly::{AlipayFacts, Anomaly, AnomalyKind, AnomalyStatus, FactSource};
use domain::order::{Buyer, Order, PaymentSource};
use domain::ports::{Applied, OrderStore};

fn sighting(order: &Order, kind: AnomalyKind, at: chrono::DateTime<Utc>) -> Anomaly {
    let mut facts = AlipayFacts::from(FactSource::Cancel);
    facts.trade_no = Some("2024010122001400001".into());
    facts.refund_fen = Some(order.amount().fen().get());
    Anomaly {
        kind,
        out_trade_no: Some(order.out_trade_no().clone()),
        order_status: Some(order.status()),
        order_amount_fen: Some(order.amount().fen().get()),
        facts,
        detail: "seen in a test".into(),
        seen_at: at,
    }
}

#[tokio::test]
async fn an_anomaly_commits_with_its_transition_or_not_at_all() {
    let db = dynamo().await;
    let store = DynamoOrderStore::new(db.client.clone(), &db.table);
    let no = OutTradeNo::generate();
    let (order, event) = claimed(&no, "h", Utc::now());
    store.claim(&order, &event).await.unwrap();
    let paid = order
        .paid(
            "2024".into(),
            Utc::now(),
            PaymentSource::PayResponse,
            Buyer::default(),
            Utc::now(),
        )
        .unwrap();
    store.apply(&paid).await.unwrap();

    // A stale transition (expects the claim's version) carrying an anomaly: neither lands.
    let stale = order
        .refunded_by_cancel(None, Utc::now())
        .unwrap()
        .with_anomaly(Some(sighting(
            &order,
            AnomalyKind::RefundedByCancel,
            Utc::now(),
        )));
    assert!(matches!(
        store.apply(&stale).await.unwrap(),
        Applied::Conflict(Some(_))
    ));
    assert!(store.anomalies_of_order(&no).await.unwrap().is_empty());

    let refunded = paid
        .next
        .refunded_by_cancel(None, Utc::now())
        .unwrap()
        .with_anomaly(Some(sighting(
            &paid.next,
            AnomalyKind::RefundedByCancel,
            Utc::now(),
        )));
    assert!(matches!(
        store.apply(&refunded).await.unwrap(),
        Applied::Applied(_)
    ));
    let stored = store.get(&no).await.unwrap().unwrap();
    assert_eq!(stored.status(), OrderStatus::Refunded);
    assert_eq!(stored.refunded_fen(), order.amount().fen().get());
    let records = store.anomalies_of_order(&no).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].latest.kind, AnomalyKind::RefundedByCancel);
    assert_eq!(records[0].status, AnomalyStatus::Open);
    assert_eq!(records[0].occurrences, 1);
    assert_eq!(records[0].id, format!("{no}/refunded_by_cancel"));
}

#[tokio::test]
async fn a_repeat_updates_one_record_and_listings_find_it() {
    let db = dynamo().await;
    let store = DynamoOrderStore::new(db.client.clone(), &db.table);
    let no = OutTradeNo::generate();
    let first_seen = Utc::now() - Duration::minutes(5);
    let (order, event) = claimed(&no, "h", first_seen);
    store.claim(&order, &event).await.unwrap();
    let closed = order.closed("expired", first_seen).unwrap();
    store.apply(&closed).await.unwrap();

    store
        .record_anomaly(&sighting(
            &closed.next,
            AnomalyKind::PaidAfterClose,
            first_seen,
        ))
        .await
        .unwrap();
    let again = Utc::now();
    let mut repeat = sighting(&closed.next, AnomalyKind::PaidAfterClose, again);
    repeat.detail = "seen again".into();
    store.record_anomaly(&repeat).await.unwrap();
    store
        .record_anomaly(&sighting(&closed.next, AnomalyKind::AmountMismatch, again))
        .await
        .unwrap();

    let records = store.anomalies_of_order(&no).await.unwrap();
    assert_eq!(records.len(), 2, "one record per kind");
    let paid_after_close = records
        .iter()
        .find(|r| r.latest.kind == AnomalyKind::PaidAfterClose)
        .unwrap();
    assert_eq!(paid_after_close.occurrences, 2);
    assert_eq!(paid_after_close.first_seen, first_seen);
    assert_eq!(paid_after_close.last_seen, again);
    assert_eq!(paid_after_close.latest.detail, "seen again");
    assert_eq!(
        paid_after_close.latest.order_status,
        Some(OrderStatus::Closed)
    );

    let of_day = store
        .anomalies_of_day(beijing_day(first_seen))
        .await
        .unwrap();
    assert!(
        of_day
            .iter()
            .any(|r| r.id == paid_after_close.id && r.occurrences == 2)
    );
    let open = store.open_anomalies().await.unwrap();
    let mine: Vec<_> = open
        .iter()
        .filter(|r| r.latest.out_trade_no.as_ref() == Some(&no))
        .collect();
    assert_eq!(mine.len(), 2);
    assert!(
        mine.windows(2).all(|w| w[0].first_seen <= w[1].first_seen),
        "oldest first"
    );
}
