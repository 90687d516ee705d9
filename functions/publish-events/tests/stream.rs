//! The publisher on the real path, against moto: transitions written by `DynamoOrderStore`,
//! the table's stream read as Lambda delivers it (`test_support::streams`), the events sent
//! to an SQS FIFO queue by `SqsEventSink` and received from it.

// Test code: a failing unwrap is a failing test. clippy.toml allows that in #[test] functions;
// this extends it to the helpers of this file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_adapters::aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use aws_adapters::dynamo::schema::create_table;
use aws_adapters::{DynamoOrderStore, SqsEventSink, aws_sdk_dynamodb, aws_sdk_sqs};
use chrono::{DateTime, Duration, Utc};
use domain::anomaly::{AlipayFacts, Anomaly, AnomalyKind, FactSource};
use domain::business_event::{EventMessage, EventSink, SinkError};
use domain::order::{NewOrder, Order, PaymentSource, Transition};
use domain::ports::{Applied, Claim, OrderStore};
use domain::{OrderAmount, OutTradeNo, Scene};
use f2f_runtime::view::OrderView;
use publish_events::Publisher;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use test_support::streams::StreamReader;
use test_support::{MotoServer, unique_name};

struct Setup {
    moto: Arc<MotoServer>,
    table: String,
    store: DynamoOrderStore,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

/// A fresh orders table (with its stream) and FIFO events queue in the shared moto server.
async fn setup() -> Setup {
    let moto = MotoServer::shared().await.unwrap();
    let config = moto.sdk_config();
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name("orders");
    create_table(&dynamo, &table).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("{}.fifo", unique_name("events")))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    Setup {
        store: DynamoOrderStore::new(dynamo, &table),
        moto,
        table,
        sqs,
        queue_url,
    }
}

impl Setup {
    fn sink(&self) -> SqsEventSink {
        SqsEventSink::new(self.sqs.clone(), &self.queue_url)
    }

    async fn reader(&self) -> StreamReader {
        StreamReader::open(&self.moto.sdk_config(), &self.table)
            .await
            .unwrap()
    }

    /// Every message of the queue, receiving and deleting until it is empty:
    /// `(message group, body)`.
    async fn received(&self) -> Vec<(String, Value)> {
        let mut all = Vec::new();
        loop {
            let messages = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if messages.is_empty() {
                return all;
            }
            for message in messages {
                let group = message
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                    .cloned()
                    .unwrap();
                let body = serde_json::from_str(message.body.as_deref().unwrap()).unwrap();
                all.push((group, body));
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle.unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

/// What Lambda's event source mapping does: every batch of the stream to the publisher; on a
/// partial failure, the shard again from the failed record. The failed sequence numbers.
async fn run<S: EventSink>(reader: &mut StreamReader, publisher: &Publisher<S>) -> Vec<String> {
    let mut failed = Vec::new();
    while let Some(batch) = reader.next_batch().await.unwrap() {
        let response = publisher.handle(batch.event).await.unwrap();
        if let Some(sequence_number) = response
            .batch_item_failures
            .first()
            .and_then(|f| f.item_identifier.clone())
        {
            reader
                .retry_from(&batch.shard_id, &sequence_number)
                .await
                .unwrap();
            failed.push(sequence_number);
        }
    }
    failed
}

fn new_order(no: &OutTradeNo, now: DateTime<Utc>) -> NewOrder {
    NewOrder {
        out_trade_no: no.clone(),
        amount: OrderAmount::from_fen(1500).unwrap(),
        subject: "Latte".into(),
        scene: Scene::Qr,
        store_id: Some("S01".into()),
        operator_id: None,
        terminal_id: None,
        request_hash: "h".into(),
        expires_at: now + Duration::minutes(15),
    }
}

fn paid(order: &Order, now: DateTime<Utc>) -> Transition {
    order
        .paid(
            "2024010122001400001".into(),
            now,
            PaymentSource::Notification,
            domain::order::Buyer::default(),
            now,
        )
        .unwrap()
}

fn sighting(order: &Order, kind: AnomalyKind, now: DateTime<Utc>) -> Anomaly {
    let mut facts = AlipayFacts::from(FactSource::Notification);
    facts.trade_no = Some("2024010122001400001".into());
    facts.total_amount_fen = Some(order.amount().fen().get());
    Anomaly {
        kind,
        out_trade_no: Some(order.out_trade_no().clone()),
        order_status: Some(order.status()),
        order_amount_fen: Some(order.amount().fen().get()),
        facts,
        detail: "seen in a test".into(),
        seen_at: now,
    }
}

/// Applies `transition` and returns the order after it.
async fn apply(store: &DynamoOrderStore, transition: &Transition) -> Order {
    match store.apply(transition).await.unwrap() {
        Applied::Applied(order) => order,
        other => panic!("not applied: {other:?}"),
    }
}

/// One order's life written through the store: claimed, lease extended, created at Alipay,
/// synced, paid. Returns each public event's id and the order after it.
async fn qr_order_paid(store: &DynamoOrderStore) -> (OutTradeNo, Vec<(String, Order)>) {
    let no = OutTradeNo::generate();
    let now = Utc::now();
    let (order, claim) = Order::claim(new_order(&no, now), now, Duration::seconds(30));
    assert_eq!(store.claim(&order, &claim).await.unwrap(), Claim::Claimed);
    let extended = apply(
        store,
        &order.extend_lease(now, Duration::seconds(30)).unwrap(),
    )
    .await;
    let pending = apply(
        store,
        &extended
            .created_at_alipay(Some("https://qr.alipay.com/bax1".into()), None, now)
            .unwrap(),
    )
    .await;
    let synced = apply(store, &pending.synced(now).unwrap()).await;
    let done = apply(store, &paid(&synced, now)).await;
    let public = vec![
        (format!("{no}/v1"), order),
        (format!("{no}/v3"), pending),
        (format!("{no}/v5"), done),
    ];
    (no, public)
}

#[tokio::test]
async fn each_public_transition_is_received_once_with_its_order() {
    let setup = setup().await;
    let store = &setup.store;
    let (paid_no, paid_events) = qr_order_paid(store).await;

    // Closed, then paid at Alipay all the same: an anomaly seen twice, outside transitions.
    let closed_no = OutTradeNo::generate();
    let now = Utc::now();
    let (order, claim) = Order::claim(new_order(&closed_no, now), now, Duration::seconds(30));
    store.claim(&order, &claim).await.unwrap();
    let closed = apply(store, &order.closed("expired", now).unwrap()).await;
    let late_payment = sighting(&closed, AnomalyKind::PaidAfterClose, now);
    store.record_anomaly(&late_payment).await.unwrap();
    store.record_anomaly(&late_payment).await.unwrap();

    // Refunded by a cancel: the anomaly commits with the transition.
    let refunded_no = OutTradeNo::generate();
    let (order, claim) = Order::claim(new_order(&refunded_no, now), now, Duration::seconds(30));
    store.claim(&order, &claim).await.unwrap();
    let refund = order.refunded_by_cancel(None, now).unwrap();
    let anomaly = sighting(&refund.next, AnomalyKind::RefundedByCancel, now);
    let refunded = apply(store, &refund.with_anomaly(Some(anomaly))).await;

    let publisher = Publisher { sink: setup.sink() };
    let mut reader = setup.reader().await;
    assert!(run(&mut reader, &publisher).await.is_empty());
    let received = setup.received().await;

    let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (group, body) in &received {
        by_group
            .entry(group.clone())
            .or_default()
            .push(body["event_id"].as_str().unwrap().to_owned());
    }
    let ids = |events: &[(String, Order)]| -> Vec<String> {
        events.iter().map(|(id, _)| id.clone()).collect()
    };
    assert_eq!(by_group[paid_no.as_str()], ids(&paid_events));
    assert_eq!(
        by_group[closed_no.as_str()],
        [
            format!("{closed_no}/v1"),
            format!("{closed_no}/v2"),
            format!("{closed_no}/paid_after_close/1"),
            format!("{closed_no}/paid_after_close/2"),
        ]
    );
    // The transaction's items: the order, the event, then the anomaly.
    assert_eq!(
        by_group[refunded_no.as_str()],
        [
            format!("{refunded_no}/v1"),
            format!("{refunded_no}/v2"),
            format!("{refunded_no}/refunded_by_cancel/1"),
        ]
    );
    assert_eq!(by_group.len(), 3);
    assert_eq!(received.len(), 10, "one message per public change, no more");

    // Each order event carries the order as the merchant API shows it after the change.
    let body_of = |id: &str| -> &Value {
        &received
            .iter()
            .find(|(_, body)| body["event_id"] == id)
            .unwrap()
            .1
    };
    for (id, order) in &paid_events {
        let body = body_of(id);
        assert_eq!(
            body["order"],
            serde_json::to_value(OrderView::of(order)).unwrap()
        );
        assert_eq!(body["version"], order.version());
    }
    let paid_body = body_of(&paid_events[2].0);
    assert_eq!(paid_body["type"], "order.paid");
    assert_eq!(paid_body["cause"]["source"], "notification");
    let refund_body = body_of(&format!("{refunded_no}/v2"));
    assert_eq!(refund_body["type"], "order.refunded");
    assert_eq!(refund_body["cause"]["refund_fen"], 1500);
    assert_eq!(
        refund_body["order"],
        serde_json::to_value(OrderView::of(&refunded)).unwrap()
    );
    let anomaly_body = body_of(&format!("{closed_no}/paid_after_close/2"));
    assert_eq!(anomaly_body["type"], "anomaly.recorded");
    assert_eq!(anomaly_body["out_trade_no"], closed_no.as_str());
    assert_eq!(anomaly_body["anomaly"]["occurrences"], 2);
    assert_eq!(anomaly_body["anomaly"]["latest"]["order_status"], "CLOSED");

    // Read again from the start (a replay): SQS delivers nothing twice within its window.
    let mut replay = setup.reader().await;
    assert!(run(&mut replay, &publisher).await.is_empty());
    assert!(setup.received().await.is_empty());
}

#[tokio::test]
async fn a_crash_after_the_state_write_still_yields_its_event() {
    let setup = setup().await;
    let no = OutTradeNo::generate();
    let now = Utc::now();
    let (order, claim) = Order::claim(new_order(&no, now), now, Duration::seconds(30));
    {
        // The writer: its transaction commits, then it is gone (nothing else is called).
        let writer = DynamoOrderStore::new(
            aws_sdk_dynamodb::Client::new(&setup.moto.sdk_config()),
            &setup.table,
        );
        writer.claim(&order, &claim).await.unwrap();
        let pending = order.created_at_alipay(None, None, now).unwrap();
        writer.apply(&pending).await.unwrap();
    }

    let publisher = Publisher { sink: setup.sink() };
    assert!(run(&mut setup.reader().await, &publisher).await.is_empty());
    let types: Vec<(String, String)> = setup
        .received()
        .await
        .into_iter()
        .map(|(_, body)| {
            (
                body["event_id"].as_str().unwrap().to_owned(),
                body["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            (format!("{no}/v1"), "order.created".to_owned()),
            (format!("{no}/v2"), "order.awaiting_payment".to_owned()),
        ]
    );
}

/// The events queue, failing once at one event: it either sends nothing from that event on,
/// or (as SQS may after a partial batch failure) sends everything and still reports it.
struct FailingOnce {
    queue: SqsEventSink,
    at_event: Mutex<Option<String>>,
    sends_the_rest: bool,
}

impl EventSink for FailingOnce {
    async fn send(&self, events: &[EventMessage]) -> Result<(), SinkError> {
        let failing = self.at_event.lock().unwrap().clone();
        let position = failing.and_then(|id| events.iter().position(|e| e.event_id == id));
        let Some(position) = position else {
            return self.queue.send(events).await;
        };
        *self.at_event.lock().unwrap() = None;
        let sent = if self.sends_the_rest {
            events
        } else {
            &events[..position]
        };
        self.queue.send(sent).await?;
        Err(SinkError {
            first_unsent: position,
            reason: "refused once".into(),
        })
    }
}

async fn sink_failure_mid_batch(sends_the_rest: bool) {
    let setup = setup().await;
    let (no, events) = qr_order_paid(&setup.store).await;
    let (second_no, second_events) = qr_order_paid(&setup.store).await;
    let failing_id = format!("{no}/v3");
    let publisher = Publisher {
        sink: FailingOnce {
            queue: setup.sink(),
            at_event: Mutex::new(Some(failing_id.clone())),
            sends_the_rest,
        },
    };
    let mut reader = setup.reader().await;
    let first = reader.next_batch().await.unwrap().unwrap();
    let failed_record = first
        .event
        .records
        .iter()
        .find(|r| {
            r.event_name == "INSERT"
                && r.change.new_image.get("version")
                    == Some(&serde_dynamo::AttributeValue::N("3".into()))
                && r.change.keys.get("pk")
                    == Some(&serde_dynamo::AttributeValue::S(format!("ORDER#{no}")))
        })
        .unwrap()
        .change
        .sequence_number
        .clone()
        .unwrap();
    let response = publisher.handle(first.event).await.unwrap();
    let reported: Vec<String> = response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(reported, std::slice::from_ref(&failed_record));

    // Lambda reads the shard again from the failed record; the rest follows.
    reader
        .retry_from(&first.shard_id, &failed_record)
        .await
        .unwrap();
    assert!(run(&mut reader, &publisher).await.is_empty());

    let mut received: Vec<String> = setup
        .received()
        .await
        .into_iter()
        .map(|(_, body)| body["event_id"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = events
        .iter()
        .chain(&second_events)
        .map(|(id, _)| id.clone())
        .collect();
    // Per order in order (the queue's groups); across orders in any order.
    let of = |ids: &[String], order: &OutTradeNo| -> Vec<String> {
        ids.iter()
            .filter(|id| id.starts_with(&format!("{order}/")))
            .cloned()
            .collect()
    };
    assert_eq!(of(&received, &no), of(&expected, &no));
    assert_eq!(of(&received, &second_no), of(&expected, &second_no));
    received.sort();
    expected.sort();
    assert_eq!(received, expected, "each event exactly once");
}

#[tokio::test]
async fn a_sink_failure_mid_batch_is_reported_and_a_rerun_sends_the_rest() {
    sink_failure_mid_batch(false).await;
}

#[tokio::test]
async fn events_sent_after_a_reported_failure_are_not_delivered_twice() {
    sink_failure_mid_batch(true).await;
}
