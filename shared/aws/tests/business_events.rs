//! `SqsEventSink` against moto: a FIFO queue receives each order's events in order, with
//! their attributes, once even when sent again; a batch SQS refuses is reported with the
//! position of its first event.

// Test code: a failing unwrap is a failing test. clippy.toml allows that in #[test] functions;
// this extends it to the helpers of this file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_adapters::SqsEventSink;
use aws_adapters::aws_sdk_sqs;
use aws_adapters::aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use domain::business_event::{EventMessage, EventSink, EventType};
use std::collections::BTreeMap;
use std::sync::Arc;
use test_support::{MotoServer, unique_name};

struct Queue {
    _moto: Arc<MotoServer>,
    client: aws_sdk_sqs::Client,
    url: String,
}

async fn queue(fifo: bool, max_message_bytes: Option<u32>) -> Queue {
    let moto = MotoServer::shared().await.unwrap();
    let client = aws_sdk_sqs::Client::new(&moto.sdk_config());
    let mut create = client.create_queue();
    if fifo {
        create = create
            .queue_name(format!("{}.fifo", unique_name("events")))
            .attributes(QueueAttributeName::FifoQueue, "true");
    } else {
        create = create.queue_name(unique_name("events"));
    }
    if let Some(bytes) = max_message_bytes {
        create = create.attributes(QueueAttributeName::MaximumMessageSize, bytes.to_string());
    }
    let url = create.send().await.unwrap().queue_url.unwrap();
    Queue {
        _moto: moto,
        client,
        url,
    }
}

/// Event `version` of order `no`.
fn event(no: &str, version: u64) -> EventMessage {
    let event_id = format!("{no}/v{version}");
    EventMessage {
        body: serde_json::json!({"event_id": event_id, "type": "order.created"}).to_string(),
        event_id,
        event_type: EventType::OrderCreated,
        out_trade_no: Some(no.to_owned()),
        group: no.to_owned(),
    }
}

/// A received message: its body's event id, its attributes, its group and deduplication id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Received {
    event_id: String,
    attributes: BTreeMap<String, String>,
    group: Option<String>,
    deduplication_id: Option<String>,
}

/// Everything in the queue, receiving and deleting until it is empty (a FIFO queue hands out
/// a group's next message only once the previous one is deleted).
async fn drain(queue: &Queue) -> Vec<Received> {
    let mut all = Vec::new();
    loop {
        let received = queue
            .client
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return all;
        }
        for message in messages {
            let body: serde_json::Value =
                serde_json::from_str(message.body.as_deref().unwrap()).unwrap();
            let system = message.attributes.clone().unwrap_or_default();
            all.push(Received {
                event_id: body["event_id"].as_str().unwrap().to_owned(),
                attributes: message
                    .message_attributes
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, value)| (name, value.string_value.unwrap_or_default()))
                    .collect(),
                group: system
                    .get(&MessageSystemAttributeName::MessageGroupId)
                    .cloned(),
                deduplication_id: system
                    .get(&MessageSystemAttributeName::MessageDeduplicationId)
                    .cloned(),
            });
            queue
                .client
                .delete_message()
                .queue_url(&queue.url)
                .receipt_handle(message.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

fn ids_of_group<'a>(received: &'a [Received], no: &str) -> Vec<&'a str> {
    received
        .iter()
        .filter(|r| r.group.as_deref() == Some(no))
        .map(|r| r.event_id.as_str())
        .collect()
}

#[tokio::test]
async fn a_fifo_queue_gets_each_orders_events_in_order_with_their_attributes() {
    let queue = queue(true, None).await;
    let sink = SqsEventSink::new(queue.client.clone(), &queue.url);
    // 23 events of two orders, interleaved: three batches.
    let events: Vec<EventMessage> = (1..=23)
        .map(|i| event(if i % 2 == 0 { "A" } else { "B" }, i))
        .collect();
    sink.send(&events).await.unwrap();

    let received = drain(&queue).await;
    assert_eq!(received.len(), 23);
    let expected = |no: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e.group == no)
            .map(|e| e.event_id.clone())
            .collect()
    };
    assert_eq!(ids_of_group(&received, "A"), expected("A"));
    assert_eq!(ids_of_group(&received, "B"), expected("B"));
    let first = received.iter().find(|r| r.event_id == "B/v1").unwrap();
    assert_eq!(
        first.attributes,
        BTreeMap::from([
            ("event_id".to_owned(), "B/v1".to_owned()),
            ("event_type".to_owned(), "order.created".to_owned()),
            ("out_trade_no".to_owned(), "B".to_owned()),
        ])
    );
    assert_eq!(first.deduplication_id.as_deref(), Some("B/v1"));
}

#[tokio::test]
async fn an_event_sent_again_is_delivered_once() {
    let queue = queue(true, None).await;
    let sink = SqsEventSink::new(queue.client.clone(), &queue.url);
    let events: Vec<EventMessage> = (1..=5).map(|v| event("C", v)).collect();
    sink.send(&events[..3]).await.unwrap();
    // A retried stream batch sends the last two again, with what follows.
    sink.send(&events[1..]).await.unwrap();

    let received = drain(&queue).await;
    assert_eq!(
        ids_of_group(&received, "C"),
        ["C/v1", "C/v2", "C/v3", "C/v4", "C/v5"]
    );
}

#[tokio::test]
async fn a_refused_batch_is_reported_from_its_first_event_and_stops_the_sending() {
    let queue = queue(true, Some(1024)).await;
    let sink = SqsEventSink::new(queue.client.clone(), &queue.url);
    let mut events: Vec<EventMessage> = (1..=25).map(|v| event("D", v)).collect();
    // In the second batch: SQS refuses it.
    events[13].body = "x".repeat(2048);

    let error = sink.send(&events).await.unwrap_err();
    assert_eq!(error.first_unsent, 10, "{error}");
    let received = drain(&queue).await;
    let delivered: Vec<String> = (1..=10).map(|v| format!("D/v{v}")).collect();
    assert_eq!(
        ids_of_group(&received, "D"),
        delivered,
        "the third batch waits too"
    );
}

#[tokio::test]
async fn a_standard_queue_gets_the_events_without_fifo_ids() {
    let queue = queue(false, None).await;
    let sink = SqsEventSink::new(queue.client.clone(), &queue.url);
    let mut anomaly = event("E", 1);
    anomaly.event_id = "E/paid_after_close/1".into();
    anomaly.event_type = EventType::AnomalyRecorded;
    anomaly.out_trade_no = None;
    anomaly.body = serde_json::json!({"event_id": anomaly.event_id}).to_string();
    sink.send(&[event("E", 2), anomaly]).await.unwrap();

    let mut received = drain(&queue).await;
    received.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].event_id, "E/paid_after_close/1");
    assert_eq!(
        received[0].attributes.get("event_type").map(String::as_str),
        Some("anomaly.recorded")
    );
    assert!(!received[0].attributes.contains_key("out_trade_no"));
    assert_eq!(received[1].event_id, "E/v2");
    assert!(received.iter().all(|r| r.group.is_none()));
}
