//! `DynamoOrderStore` against moto: claims, transitions, their audit events, the day index.

// Test code: a failing unwrap is a failing test. clippy.toml allows that in #[test] functions;
// this extends it to the helpers of this file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aws_adapters::DynamoOrderStore;
use aws_adapters::aws_sdk_dynamodb::types::AttributeValue;
use aws_adapters::dynamo::orders::{event_sk, order_pk};
use chrono::{NaiveDate, Utc};
use common::{at, claimed, dynamo};
use domain::OrderStatus;
use domain::OutTradeNo;
use domain::order::{Buyer, EventKind, OrderFailure, PaymentSource};
use domain::ports::{Applied, Claim, OrderStore, StoreError};

/// Every item of the table (a small test table: one scan page).
async fn all_items(
    client: &aws_adapters::aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let scan = client.scan().table_name(table).send().await.unwrap();
    assert!(scan.last_evaluated_key.is_none());
    scan.items.unwrap_or_default()
}

fn key_of(item: &std::collections::HashMap<String, AttributeValue>) -> (String, String) {
    let text = |name: &str| item[name].as_s().unwrap().clone();
    (text("pk"), text("sk"))
}

#[tokio::test]
async fn a_second_claim_of_a_number_gets_the_stored_order_from_the_failed_write_alone() {
    let db = dynamo().await;
    let store = DynamoOrderStore::new(db.client.clone(), &db.table);
    let no = OutTradeNo::generate();
    let (order, event) = claimed(&no, "first", Utc::now());

    assert_eq!(store.claim(&order, &event).await.unwrap(), Claim::Claimed);
    assert_eq!(db.calls.take(), ["TransactWriteItems"]);

    // A different request with the same number: the stored order comes back, field for field.
    let (other, other_event) = claimed(&no, "second", Utc::now());
    let Claim::Exists(stored) = store.claim(&other, &other_event).await.unwrap() else {
        panic!("the number is taken");
    };
    assert_eq!(stored, order);
    assert_eq!(stored.request_hash(), "first");
    assert_eq!(stored.amount(), order.amount());
    assert_eq!(stored.subject(), "咖啡 coffee");
    assert_eq!(stored.lease_until(), order.lease_until());
    assert_eq!(
        db.calls.take(),
        ["TransactWriteItems"],
        "no read besides the failed write"
    );

    assert_eq!(store.get(&no).await.unwrap(), Some(order));
    assert_eq!(store.events(&no).await.unwrap(), [event]);
    assert_eq!(store.get(&OutTradeNo::generate()).await.unwrap(), None);
}

#[tokio::test]
async fn writing_the_very_same_claim_or_transition_again_is_answered_as_done() {
    // What a retry finds when its first attempt committed but the answer was lost.
    let db = dynamo().await;
    let store = DynamoOrderStore::new(db.client.clone(), &db.table);
    let no = OutTradeNo::generate();
    let (order, event) = claimed(&no, "h", Utc::now());
    assert_eq!(store.claim(&order, &event).await.unwrap(), Claim::Claimed);
    assert_eq!(store.claim(&order, &event).await.unwrap(), Claim::Claimed);

    let pending = order.created_at_alipay(None, None, Utc::now()).unwrap();
    let applied = Applied::Applied(pending.next.clone());
    assert_eq!(store.apply(&pending).await.unwrap(), applied);
    assert_eq!(store.apply(&pending).await.unwrap(), applied);
    assert_eq!(store.events(&no).await.unwrap(), [event, pending.event]);
}

#[tokio::test]
async fn the_order_item_has_its_keys_day_index_and_condition_attributes() {
    let db = dynamo().await;
    let store = DynamoOrderStore::new(db.client.clone(), &db.table);
    let no = OutTradeNo::parse("T20240101_0001").unwrap();
    let (order, event) = claimed(&no, "h", at("2024-01-01T17:00:00.123Z"));
    store.claim(&order, &event).await.unwrap();

    let mut items = all_items(&db.client, &db.table).await;
    items.sort_by_key(key_of);
    assert_eq!(items.len(), 2);
    let (event_item, order_item) = (&items[0], &items[1]);
    let s = |v: &str| AttributeValue::S(v.into());
    let n = |v: &str| AttributeValue::N(v.into());
    assert_eq!(order_item["pk"], s("ORDER#T20240101_0001"));
    assert_eq!(order_item["sk"], s("ORDER"));
    assert_eq!(order_item["status"], s("CREATING"));
    assert_eq!(order_item["version"], n("1"));
    assert_eq!(order_item["amount"], n("12345"));
    assert_eq!(order_item["gsi1pk"], s("DAY#2024-01-02"));
    assert_eq!(
        order_item["gsi1sk"],
        s("2024-01-01T17:00:00.123000Z#T20240101_0001")
    );
    assert_eq!(event_item["pk"], s("ORDER#T20240101_0001"));
    assert_eq!(event_item["sk"], s("EVENT#00000000000000000001"));
    assert_eq!(event_item["to"], s("CREATING"));
    assert_eq!(event_item["version"], n("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_twenty_concurrent_claims_of_one_number_exactly_one_wins() {
    let db = dynamo().await;
    let store = DynamoOrderStore::new(db.client.clone(), &db.table);
    let no = OutTradeNo::generate();
    let now = Utc::now();

    let claims: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            let (order, event) = claimed(&no, &format!("request-{i}"), now);
            tokio::spawn(async move { (order.clone(), store.claim(&order, &event).await) })
        })
        .collect();
    let mut winners = Vec::new();
    let mut stored_seen = Vec::new();
    for claim in claims {
        let (order, claim) = claim.await.unwrap();
        match claim.unwrap() {
            Claim::Claimed => winners.push(order),
            Claim::Exists(stored) => stored_seen.push(stored),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins");
    assert_eq!(stored_seen.len(), 19);
    assert!(stored_seen.iter().all(|stored| *stored == winners[0]));

    let items = all_items(&db.client, &db.table).await;
    let mut keys: Vec<_> = items.iter().map(key_of).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            (order_pk(&no), event_sk(1)),
            (order_pk(&no), "ORDER".to_owned())
        ]
    );
    assert_eq!(store.get(&no).await.unwrap(), Some(winners[0].clone()));
}

#[tokio::test]
async fn a_valid_transition_is_applied_with_its_event() {
    let db = dynamo().await;
    let store = DynamoOrderStore::new(db.client.clone(), &db.table);
    let no = OutTradeNo::generate();
    let (order, claim_event) = claimed(&no, "h", Utc::now());
    store.claim(&order, &claim_event).await.unwrap();
    db.calls.take();

    let pending = order
        .created_at_alipay(Some("https://qr.alipay.com/bax1".into()), None, Utc::now())
        .unwrap();
    assert_eq!(
        store.apply(&pending).await.unwrap(),
        Applied::Applied(pending.next.clone())
    );
    assert_eq!(db.calls.take(), ["TransactWriteItems"]);
    let paid = pending
        .next
        .paid(
            "2024010122001".into(),
            Utc::now(),
            PaymentSource::Notification,
            Buyer::default(),
            Utc::now(),
        )
        .unwrap();
    assert_eq!(
        store.apply(&paid).await.unwrap(),
        Applied::Applied(paid.next.clone())
    );

    let stored = store.get(&no).await.unwrap().unwrap();
    assert_eq!(stored, paid.next);
    assert_eq!(stored.status(), OrderStatus::Paid);
    assert_eq!(stored.version(), 3);
    assert_eq!(stored.qr_code(), Some("https://qr.alipay.com/bax1"));
    assert_eq!(
        store.events(&no).await.unwrap(),
        [claim_event, pending.event, paid.event]
    );
}

#[tokio::test]
async fn a_stale_transition_conflicts_with_the_current_order() {
    let db = dynamo().await;
    let store = DynamoOrderStore::new(db.client.clone(), &db.table);
    let no = OutTradeNo::generate();
    let (order, event) = claimed(&no, "h", Utc::now());
    store.claim(&order, &event).await.unwrap();
    let pending = order.created_at_alipay(None, None, Utc::now()).unwrap();
    store.apply(&pending).await.unwrap();
    db.calls.take();

    // Computed from version 1, which is gone.
    let stale = order.closed("expired", Utc::now()).unwrap();
    assert_eq!(
        store.apply(&stale).await.unwrap(),
        Applied::Conflict(Some(pending.next.clone()))
    );
    assert_eq!(db.calls.take(), ["TransactWriteItems"], "no extra read");
    assert_eq!(store.get(&no).await.unwrap(), Some(pending.next));
    assert_eq!(
        store.events(&no).await.unwrap().len(),
        2,
        "no event for the stale one"
    );
}

#[tokio::test]
async fn a_transition_of_a_missing_order_conflicts_with_nothing() {
    let db = dynamo().await;
    let store = DynamoOrderStore::new(db.client.clone(), &db.table);
    let no = OutTradeNo::generate();
    let (order, _) = claimed(&no, "h", Utc::now());
    let closed = order.closed("expired", Utc::now()).unwrap();
    assert_eq!(store.apply(&closed).await.unwrap(), Applied::Conflict(None));
    assert!(all_items(&db.client, &db.table).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_concurrent_transitions_from_one_version_exactly_one_wins() {
    let db = dynamo().await;
    let store = DynamoOrderStore::new(db.client.clone(), &db.table);
    for _round in 0..5 {
        let no = OutTradeNo::generate();
        let (order, event) = claimed(&no, "h", Utc::now());
        store.claim(&order, &event).await.unwrap();
        let pending = order.created_at_alipay(None, None, Utc::now()).unwrap();
        store.apply(&pending).await.unwrap();

        let paid = pending
            .next
            .paid(
                "2024".into(),
                Utc::now(),
                PaymentSource::Query,
                Buyer::default(),
                Utc::now(),
            )
            .unwrap();
        let closed = pending.next.closed("expired", Utc::now()).unwrap();
        let (a, b) = {
            let (s1, s2) = (store.clone(), store.clone());
            let (p, c) = (paid.clone(), closed.clone());
            let a = tokio::spawn(async move { s1.apply(&p).await });
            let b = tokio::spawn(async move { s2.apply(&c).await });
            (a.await.unwrap().unwrap(), b.await.unwrap().unwrap())
        };
        let winner = match (a, b) {
            (Applied::Applied(won), Applied::Conflict(Some(current)))
            | (Applied::Conflict(Some(current)), Applied::Applied(won)) => {
                assert_eq!(won, current, "the loser sees the winner's order");
                won
            }
            other => panic!("expected one winner and one conflict, got {other:?}"),
        };
        assert_eq!(store.get(&no).await.unwrap(), Some(winner.clone()));
        let events = store.events(&no).await.unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[2].to, winner.status());
        let winning_event = if winner.status() == OrderStatus::Paid {
            &paid.event
        } else {
            &closed.event
        };
        assert_eq!(&events[2], winning_event);
    }
}

#[tokio::test]
async fn a_claim_whose_event_cannot_be_written_leaves_no_order() {
    let db = dynamo().await;
    let store = DynamoOrderStore::new(db.client.clone(), &db.table);
    let no = OutTradeNo::generate();
    // A stray event item where the claim's event goes.
    db.client
        .put_item()
        .table_name(&db.table)
        .item("pk", AttributeValue::S(order_pk(&no)))
        .item("sk", AttributeValue::S(event_sk(1)))
        .send()
        .await
        .unwrap();

    let (order, event) = claimed(&no, "h", Utc::now());
    let failed = store.claim(&order, &event).await;
    assert!(matches!(failed, Err(StoreError::Corrupt(_))), "{failed:?}");
    assert_eq!(
        store.get(&no).await.unwrap(),
        None,
        "no order without its event"
    );
    assert_eq!(all_items(&db.client, &db.table).await.len(), 1);
}

#[tokio::test]
async fn a_transition_whose_event_cannot_be_written_leaves_the_order_unchanged() {
    let db = dynamo().await;
    let store = DynamoOrderStore::new(db.client.clone(), &db.table);
    let no = OutTradeNo::generate();
    let (order, event) = claimed(&no, "h", Utc::now());
    store.claim(&order, &event).await.unwrap();
    db.client
        .put_item()
        .table_name(&db.table)
        .item("pk", AttributeValue::S(order_pk(&no)))
        .item("sk", AttributeValue::S(event_sk(2)))
        .send()
        .await
        .unwrap();

    let failed = store
        .apply(
            &order
                .failed(
                    OrderFailure {
                        code: "ACQ.TRADE_HAS_CLOSE".into(),
                        message: "closed".into(),
                    },
                    Utc::now(),
                )
                .unwrap(),
        )
        .await;
    assert!(matches!(failed, Err(StoreError::Corrupt(_))), "{failed:?}");
    assert_eq!(store.get(&no).await.unwrap(), Some(order));
}

#[tokio::test]
async fn orders_of_day_finds_orders_by_their_beijing_day() {
    let db = dynamo().await;
    let store = DynamoOrderStore::new(db.client.clone(), &db.table);
    let claim = |rfc3339: &str| {
        let (order, event) = claimed(&OutTradeNo::generate(), "h", at(rfc3339));
        (order, event)
    };
    // 17:00 UTC on Jan 1 is 01:00 on Jan 2 in Beijing.
    let late_evening_utc = claim("2024-01-01T17:00:00Z");
    let before_midnight_beijing = claim("2024-01-01T15:59:59Z");
    let next_morning = claim("2024-01-02T01:30:00Z");
    let next_day_last_second = claim("2024-01-02T15:59:59.999Z");
    for (order, event) in [
        &next_morning,
        &late_evening_utc,
        &before_midnight_beijing,
        &next_day_last_second,
    ] {
        store.claim(order, event).await.unwrap();
    }
    // A transition keeps the order in its day.
    let closed = late_evening_utc.0.closed("expired", Utc::now()).unwrap();
    store.apply(&closed).await.unwrap();

    let day = |d| NaiveDate::from_ymd_opt(2024, 1, d).unwrap();
    assert_eq!(
        store.orders_of_day(day(2)).await.unwrap(),
        [closed.next, next_morning.0, next_day_last_second.0],
        "by creation time"
    );
    assert_eq!(
        store.orders_of_day(day(1)).await.unwrap(),
        [before_midnight_beijing.0]
    );
    assert!(store.orders_of_day(day(3)).await.unwrap().is_empty());
}

#[tokio::test]
async fn events_of_an_order_follow_every_kind_of_transition() {
    let db = dynamo().await;
    let store = DynamoOrderStore::new(db.client.clone(), &db.table);
    let no = OutTradeNo::generate();
    let (order, event) = claimed(&no, "h", Utc::now());
    store.claim(&order, &event).await.unwrap();
    // Once the claim's lease has run out.
    let taken = order
        .take_over_lease(
            Utc::now() + chrono::Duration::hours(1),
            chrono::Duration::seconds(30),
        )
        .unwrap();
    store.apply(&taken).await.unwrap();
    let failed = taken
        .next
        .failed(
            OrderFailure {
                code: "ACQ.INVALID_PARAMETER".into(),
                message: "参数无效".into(),
            },
            Utc::now(),
        )
        .unwrap();
    store.apply(&failed).await.unwrap();

    let events = store.events(&no).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.clone()).collect();
    assert!(matches!(
        kinds.as_slice(),
        [
            EventKind::Claimed,
            EventKind::LeaseTakenOver,
            EventKind::Failed { .. }
        ]
    ));
    assert_eq!(events[2], failed.event);
    assert_eq!(store.get(&no).await.unwrap(), Some(failed.next));
}

/// Orders by number, more than one BatchGetItem's worth: every existing one exactly once,
/// the absent ones skipped, as they are now (strongly consistent).
#[tokio::test]
async fn orders_are_found_by_number_a_hundred_at_a_time() {
    let db = dynamo().await;
    let store = DynamoOrderStore::new(db.client.clone(), &db.table);
    let mut stored = std::collections::BTreeMap::new();
    for _ in 0..130 {
        let no = OutTradeNo::generate();
        let (order, event) = claimed(&no, "h", Utc::now());
        store.claim(&order, &event).await.unwrap();
        stored.insert(no.as_str().to_owned(), order);
    }
    // One of them changed since it was claimed: the lookup sees the change.
    let first = stored.values().next().cloned().unwrap();
    let closed = first.closed("expired", Utc::now()).unwrap();
    store.apply(&closed).await.unwrap();
    stored.insert(first.out_trade_no().as_str().to_owned(), closed.next);
    db.calls.take();

    let mut numbers: Vec<OutTradeNo> = stored
        .keys()
        .map(|no| OutTradeNo::parse(no).unwrap())
        .collect();
    numbers.extend((0..20).map(|_| OutTradeNo::generate()));
    let mut found = std::collections::BTreeMap::new();
    let count = store
        .each_order_numbered(&numbers, &mut |order| {
            let previous = found.insert(order.out_trade_no().as_str().to_owned(), order);
            assert!(previous.is_none(), "an order handed over twice");
        })
        .await
        .unwrap();
    assert_eq!(count, 130);
    assert_eq!(found, stored);
    assert_eq!(db.calls.take(), ["BatchGetItem", "BatchGetItem"]);
    assert_eq!(
        store.each_order_numbered(&[], &mut |_| {}).await.unwrap(),
        0
    );
    assert!(db.calls.take().is_empty());
}
