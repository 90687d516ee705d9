//! The `publish-events` function: reads the orders table's stream and publishes business
//! events ([`domain::business_event`]) through an [`EventSink`] (the SQS FIFO events queue).
//!
//! The audit event items are the outbox: each is committed in the transaction that changes
//! its order, and carries the order after the change (`order`), so a change that committed
//! is published even if its writer crashed right after, and this function never reads the
//! table. Records become events as follows; everything else (order items, notification
//! records, nonces, removals) is skipped:
//!
//! | record | event |
//! | --- | --- |
//! | INSERT of an `EVENT#` item of a public kind | its order event (`order.*`) |
//! | INSERT or MODIFY of an `ANOMALY#` item whose `occurrences` grew | `anomaly.recorded` |
//!
//! A batch is answered with partial batch failures (`ReportBatchItemFailures`): the events
//! of the records before the first failure are sent in order; the first record that could
//! not be decoded or whose event could not be sent is reported, and Lambda retries from it
//! (records after it are not reported done, so an order's events never overtake one
//! another). With `BisectBatchOnFunctionError`, a record that keeps failing ends up alone and
//! then in the failure destination, logged with its keys.

use aws_adapters::dynamo::anomalies::ANOMALY_SK_PREFIX;
use aws_adapters::dynamo::orders::{EVENT_SK_PREFIX, ORDER_SNAPSHOT};
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use domain::anomaly::AnomalyRecord;
use domain::business_event::{BusinessEvent, EventMessage, EventSink};
use domain::order::{Order, OrderEvent};
use f2f_runtime::view::OrderView;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_dynamo::Item;

/// A business event as published: the order rendered as the merchant API's `GET` shows it.
pub type Published = BusinessEvent<OrderView>;

/// Metrics (EMF, see `main.rs`).
pub const PUBLISHED_METRIC: &str = "business_events_published";
pub const FAILED_METRIC: &str = "business_event_records_failed";

/// Why a record could not become its event.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record {keys}: {reason}")]
    Undecodable { keys: String, reason: String },
}

/// Why a batch could not be answered with a partial failure.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("the failed record {event_id} has no sequence number")]
    NoSequenceNumber { event_id: String },
}

#[derive(Deserialize)]
struct Keys {
    pk: String,
    sk: String,
}

/// The order after the transition, carried by the audit event item (its [`ORDER_SNAPSHOT`]).
#[derive(Deserialize)]
struct Snapshot {
    order: Option<Order>,
}

#[derive(Deserialize)]
struct Occurrences {
    #[serde(default)]
    occurrences: u64,
}

fn decode<T: DeserializeOwned>(image: &Item, keys: &str, what: &str) -> Result<T, RecordError> {
    serde_dynamo::from_item(image.clone()).map_err(|e| RecordError::Undecodable {
        keys: keys.to_owned(),
        reason: format!("{what}: {e}"),
    })
}

/// The `pk`/`sk` of a record, for logs.
pub fn describe_keys(record: &EventRecord) -> String {
    match serde_dynamo::from_item::<_, Keys>(record.change.keys.clone()) {
        Ok(keys) => format!("{} {}", keys.pk, keys.sk),
        Err(_) => format!("(keys {:?})", record.change.keys),
    }
}

/// The business event a stream record stands for, if any.
pub fn business_event(record: &EventRecord) -> Result<Option<Published>, RecordError> {
    let keys_text = describe_keys(record);
    let keys: Keys = decode(&record.change.keys, &keys_text, "keys")?;
    let image = &record.change.new_image;
    match record.event_name.as_str() {
        "INSERT" if keys.sk.starts_with(EVENT_SK_PREFIX) => {
            let event: OrderEvent = decode(image, &keys_text, "audit event")?;
            if domain::business_event::EventType::of(&event.kind).is_none() {
                return Ok(None);
            }
            let snapshot: Snapshot = decode(image, &keys_text, "order snapshot")?;
            let order = snapshot.order.ok_or_else(|| RecordError::Undecodable {
                keys: keys_text.clone(),
                reason: format!("the audit event carries no `{ORDER_SNAPSHOT}`"),
            })?;
            Ok(BusinessEvent::of_order_event(&event, OrderView::of(&order)))
        }
        "INSERT" | "MODIFY" if keys.sk.starts_with(ANOMALY_SK_PREFIX) => {
            let record_now: AnomalyRecord = decode(image, &keys_text, "anomaly record")?;
            let before: Occurrences = decode(
                &record.change.old_image,
                &keys_text,
                "previous anomaly record",
            )?;
            if record_now.occurrences <= before.occurrences {
                // Resolved, or another change that is not a sighting.
                return Ok(None);
            }
            BusinessEvent::of_anomaly(&record_now)
                .map(Some)
                .map_err(|e| RecordError::Undecodable {
                    keys: keys_text,
                    reason: format!("anomaly sighting: {e}"),
                })
        }
        _ => Ok(None),
    }
}

/// Publishes the business events of stream batches.
pub struct Publisher<S> {
    pub sink: S,
}

/// One event to send, and the record it came from.
struct Outgoing<'a> {
    record: &'a EventRecord,
    message: EventMessage,
}

/// What became of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Events sent.
    pub published: usize,
    /// The sequence number of the first record that failed: the batch is to be retried from it.
    pub retry_from: Option<String>,
}

impl Outcome {
    /// Lambda's partial batch failure answer.
    pub fn response(&self) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        if let Some(sequence_number) = &self.retry_from {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence_number.clone());
            response.batch_item_failures.push(failure);
        }
        response
    }
}

impl<S: EventSink> Publisher<S> {
    /// Lambda's handler: [`Publisher::publish`], answered as a partial batch failure.
    pub async fn handle(&self, batch: Event) -> Result<DynamoDbEventResponse, BatchError> {
        Ok(self.publish(batch).await?.response())
    }

    /// Sends the events of `batch` in order and names the first record that failed, if any.
    pub async fn publish(&self, batch: Event) -> Result<Outcome, BatchError> {
        let mut outgoing = Vec::new();
        let mut undecodable = None;
        for record in &batch.records {
            let message = business_event(record).and_then(|published| {
                published
                    .map(|event| {
                        event.to_message().map_err(|e| RecordError::Undecodable {
                            keys: describe_keys(record),
                            reason: format!("event JSON: {e}"),
                        })
                    })
                    .transpose()
            });
            match message {
                Ok(Some(message)) => outgoing.push(Outgoing { record, message }),
                Ok(None) => {
                    tracing::debug!(keys = %describe_keys(record), event_name = %record.event_name, "record skipped");
                }
                Err(error) => {
                    tracing::error!(
                        record_id = %record.event_id,
                        sequence_number = record.change.sequence_number.as_deref(),
                        %error,
                        "stream record cannot be published; retried, then sent to the failure destination"
                    );
                    undecodable = Some(record);
                    // What follows waits: an order's events must not overtake this one.
                    break;
                }
            }
        }

        let messages: Vec<EventMessage> = outgoing.iter().map(|o| o.message.clone()).collect();
        let sent = if messages.is_empty() {
            Ok(())
        } else {
            self.sink.send(&messages).await
        };
        let (delivered, unsent) = match sent {
            Ok(()) => (outgoing.len(), None),
            Err(error) => {
                let first = error.first_unsent.min(outgoing.len().saturating_sub(1));
                tracing::warn!(
                    event_id = messages.get(first).map(|m| m.event_id.as_str()),
                    %error,
                    "business events not sent; the batch is retried from the first unsent one"
                );
                (first, outgoing.get(first).map(|o| o.record))
            }
        };
        for sent in outgoing.iter().take(delivered) {
            let message = &sent.message;
            tracing::info!(
                event_type = message.event_type.as_str(),
                event_id = %message.event_id,
                out_trade_no = message.out_trade_no.as_deref(),
                sequence_number = sent.record.change.sequence_number.as_deref(),
                "business event published"
            );
        }
        metrics::counter!(PUBLISHED_METRIC).increment(delivered as u64);

        let retry_from = match unsent.or(undecodable) {
            None => None,
            Some(failed) => {
                metrics::counter!(FAILED_METRIC).increment(1);
                let sequence_number = failed.change.sequence_number.clone().ok_or_else(|| {
                    BatchError::NoSequenceNumber {
                        event_id: failed.event_id.clone(),
                    }
                })?;
                Some(sequence_number)
            }
        };
        Ok(Outcome {
            published: delivered,
            retry_from,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_adapters::dynamo::orders::{event_sk, order_pk};
    use chrono::{DateTime, Duration, TimeZone, Utc};
    use domain::anomaly::{AlipayFacts, Anomaly, AnomalyKind, AnomalyStatus, FactSource};
    use domain::business_event::SinkError;
    use domain::order::{NewOrder, PaymentSource, Transition};
    use domain::{OrderAmount, OutTradeNo, Scene};
    use serde_dynamo::AttributeValue;
    use serde_json::{Value, json};
    use std::sync::Mutex;

    /// Accepts the first `accept` events of each call (all when `None`), refuses the rest.
    #[derive(Default)]
    struct FakeSink {
        accept: Option<usize>,
        sent: Mutex<Vec<EventMessage>>,
    }

    impl FakeSink {
        fn ids(&self) -> Vec<String> {
            let sent = self.sent.lock().unwrap();
            sent.iter().map(|m| m.event_id.clone()).collect()
        }
    }

    impl EventSink for FakeSink {
        async fn send(&self, events: &[EventMessage]) -> Result<(), SinkError> {
            let accepted = self.accept.map_or(events.len(), |n| n.min(events.len()));
            let mut sent = self.sent.lock().unwrap();
            sent.extend(events.iter().take(accepted).cloned());
            if accepted < events.len() {
                return Err(SinkError {
                    first_unsent: accepted,
                    reason: "refused".into(),
                });
            }
            Ok(())
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_704_067_200 + seconds, 0).unwrap()
    }

    fn claimed(no: &str) -> (Order, OrderEvent) {
        let new = NewOrder {
            out_trade_no: OutTradeNo::parse(no).unwrap(),
            amount: OrderAmount::from_fen(1500).unwrap(),
            subject: "Latte".into(),
            scene: Scene::Qr,
            store_id: None,
            operator_id: None,
            terminal_id: None,
            request_hash: "h".into(),
            expires_at: at(900),
        };
        Order::claim(new, at(0), Duration::seconds(30))
    }

    fn item<T: serde::Serialize>(value: &T) -> Item {
        serde_dynamo::to_item(value).unwrap()
    }

    fn keyed(mut image: Item, pk: &str, sk: &str) -> Item {
        image.insert("pk".into(), AttributeValue::S(pk.into()));
        image.insert("sk".into(), AttributeValue::S(sk.into()));
        image
    }

    /// The audit event item as `DynamoOrderStore` writes it: the event, and the order after it.
    fn event_image(event: &OrderEvent, order: Option<&Order>) -> Item {
        let mut image = keyed(
            item(event),
            &order_pk(&event.out_trade_no),
            &event_sk(event.version),
        );
        if let Some(order) = order {
            image.insert(ORDER_SNAPSHOT.into(), AttributeValue::M(item(order).into()));
        }
        image
    }

    fn anomaly_image(no: &str, occurrences: u64, status: AnomalyStatus) -> Item {
        let latest = Anomaly {
            kind: AnomalyKind::PaidAfterClose,
            out_trade_no: Some(OutTradeNo::parse(no).unwrap()),
            order_status: Some(domain::OrderStatus::Closed),
            order_amount_fen: Some(1500),
            facts: AlipayFacts::from(FactSource::Notification),
            detail: "paid after close".into(),
            seen_at: at(60),
        };
        let record = AnomalyRecord {
            id: latest.id(),
            latest,
            status,
            first_seen: at(0),
            last_seen: at(60),
            occurrences,
            resolution: None,
        };
        keyed(
            item(&record),
            &format!("ORDER#{no}"),
            "ANOMALY#paid_after_close",
        )
    }

    fn record(sequence: u64, name: &str, new: Option<Item>, old: Option<Item>) -> Value {
        let image = new.as_ref().or(old.as_ref()).unwrap();
        let keys: Item = ["pk", "sk"]
            .into_iter()
            .map(|k| (k.to_owned(), image.get(k).unwrap().clone()))
            .collect::<std::collections::HashMap<_, _>>()
            .into();
        let mut change = json!({
            "ApproximateCreationDateTime": 1_704_067_200,
            "Keys": keys,
            "SequenceNumber": sequence.to_string(),
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        });
        if let Some(new) = new {
            change["NewImage"] = serde_json::to_value(new).unwrap();
        }
        if let Some(old) = old {
            change["OldImage"] = serde_json::to_value(old).unwrap();
        }
        json!({
            "eventID": format!("e{sequence}"),
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": change,
        })
    }

    fn batch(records: Vec<Value>) -> Event {
        serde_json::from_value(json!({ "Records": records })).unwrap()
    }

    fn failures(response: &DynamoDbEventResponse) -> Vec<String> {
        response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.clone())
            .collect()
    }

    /// A QR order's life: claimed, lease extended, created at Alipay, synced, paid.
    fn transitions(no: &str) -> Vec<(Order, OrderEvent)> {
        let (order, claim) = claimed(no);
        let extended = order.extend_lease(at(1), Duration::seconds(30)).unwrap();
        let pending = extended
            .next
            .created_at_alipay(Some("https://qr.alipay.com/x".into()), None, at(2))
            .unwrap();
        let synced = pending.next.synced(at(3)).unwrap();
        let paid = synced
            .next
            .paid(
                "2024010122001".into(),
                at(4),
                PaymentSource::Notification,
                domain::order::Buyer::default(),
                at(4),
            )
            .unwrap();
        let mut all = vec![(order, claim)];
        all.extend(
            [extended, pending, synced, paid]
                .into_iter()
                .map(|t: Transition| (t.next, t.event)),
        );
        all
    }

    #[tokio::test]
    async fn public_events_are_sent_in_order_and_the_rest_is_skipped() {
        let life = transitions("T1");
        let mut records = Vec::new();
        for (sequence, (order, event)) in (1..).zip(&life) {
            let order_item = keyed(item(order), "ORDER#T1", "ORDER");
            records.push(record(
                sequence * 10,
                "MODIFY",
                Some(order_item.clone()),
                Some(order_item),
            ));
            records.push(record(
                sequence * 10 + 1,
                "INSERT",
                Some(event_image(event, Some(order))),
                None,
            ));
        }
        let notification = keyed(item(&json!({"raw": "x"})), "ORDER#T1", "NOTIFICATION#1");
        records.push(record(100, "INSERT", Some(notification), None));
        let publisher = Publisher {
            sink: FakeSink::default(),
        };

        let response = publisher.handle(batch(records)).await.unwrap();
        assert_eq!(failures(&response), Vec::<String>::new());
        assert_eq!(publisher.sink.ids(), ["T1/v1", "T1/v3", "T1/v5"]);
        let sent = publisher.sink.sent.lock().unwrap();
        let paid: Value = serde_json::from_str(&sent[2].body).unwrap();
        assert_eq!(paid["type"], "order.paid");
        assert_eq!(paid["version"], 5);
        assert_eq!(
            paid["order"],
            serde_json::to_value(OrderView::of(&life[4].0)).unwrap(),
            "the order as the merchant API's GET shows it"
        );
        assert_eq!(paid["order"]["status"], "PAID");
        assert_eq!(
            paid["cause"],
            json!({"source": "notification", "alipay_trade_no": "2024010122001"})
        );
        let awaiting: Value = serde_json::from_str(&sent[1].body).unwrap();
        assert_eq!(awaiting["type"], "order.awaiting_payment");
        assert_eq!(awaiting["order"]["qr_code"], "https://qr.alipay.com/x");
    }

    #[tokio::test]
    async fn an_anomaly_is_published_for_each_sighting_only() {
        let first = anomaly_image("T2", 1, AnomalyStatus::Open);
        let second = anomaly_image("T2", 2, AnomalyStatus::Open);
        let resolved = anomaly_image("T2", 2, AnomalyStatus::Resolved);
        let publisher = Publisher {
            sink: FakeSink::default(),
        };
        let response = publisher
            .handle(batch(vec![
                record(1, "INSERT", Some(first.clone()), None),
                record(2, "MODIFY", Some(second.clone()), Some(first)),
                record(3, "MODIFY", Some(resolved.clone()), Some(second)),
                record(4, "REMOVE", None, Some(resolved)),
            ]))
            .await
            .unwrap();
        assert!(failures(&response).is_empty());
        assert_eq!(
            publisher.sink.ids(),
            ["T2/paid_after_close/1", "T2/paid_after_close/2"]
        );
        let sent = publisher.sink.sent.lock().unwrap();
        assert_eq!(sent[1].group, "T2", "with the order's events");
        let body: Value = serde_json::from_str(&sent[1].body).unwrap();
        assert_eq!(body["anomaly"]["occurrences"], 2);
        assert_eq!(body["anomaly"]["latest"]["facts"]["source"], "notification");
    }

    #[tokio::test]
    async fn an_undecodable_record_is_reported_and_holds_back_what_follows() {
        let life = transitions("T3");
        let (claimed_order, claim) = &life[0];
        let (pending, created) = &life[2];
        let mut broken = event_image(created, Some(pending));
        broken.insert("kind".into(), AttributeValue::S("not a kind".into()));
        let (paid, paid_event) = &life[4];
        let publisher = Publisher {
            sink: FakeSink::default(),
        };
        let response = publisher
            .handle(batch(vec![
                record(
                    1,
                    "INSERT",
                    Some(event_image(claim, Some(claimed_order))),
                    None,
                ),
                record(2, "INSERT", Some(broken), None),
                record(3, "INSERT", Some(event_image(paid_event, Some(paid))), None),
            ]))
            .await
            .unwrap();
        assert_eq!(failures(&response), ["2"]);
        assert_eq!(publisher.sink.ids(), ["T3/v1"]);
    }

    #[tokio::test]
    async fn an_audit_event_without_its_order_is_a_failure() {
        let (_, claim) = claimed("T4");
        let publisher = Publisher {
            sink: FakeSink::default(),
        };
        let response = publisher
            .handle(batch(vec![record(
                7,
                "INSERT",
                Some(event_image(&claim, None)),
                None,
            )]))
            .await
            .unwrap();
        assert_eq!(failures(&response), ["7"]);
        assert!(publisher.sink.ids().is_empty());
    }

    #[tokio::test]
    async fn a_sink_failure_reports_the_record_of_the_first_unsent_event() {
        let life = transitions("T5");
        let records: Vec<Value> = (1..)
            .zip(&life)
            .map(|(sequence, (order, event))| {
                record(
                    sequence,
                    "INSERT",
                    Some(event_image(event, Some(order))),
                    None,
                )
            })
            .collect();
        let publisher = Publisher {
            sink: FakeSink {
                accept: Some(1),
                ..FakeSink::default()
            },
        };
        let response = publisher.handle(batch(records)).await.unwrap();
        // v1 went; v3 (record 3: record 2 is the internal lease extension) did not.
        assert_eq!(failures(&response), ["3"]);
        assert_eq!(publisher.sink.ids(), ["T5/v1"]);
    }

    #[tokio::test]
    async fn a_batch_of_internal_records_sends_nothing() {
        let life = transitions("T6");
        let (order, extended) = &life[1];
        let publisher = Publisher {
            sink: FakeSink {
                accept: Some(0),
                ..FakeSink::default()
            },
        };
        let response = publisher
            .handle(batch(vec![record(
                1,
                "INSERT",
                Some(event_image(extended, Some(order))),
                None,
            )]))
            .await
            .unwrap();
        assert!(failures(&response).is_empty());
        assert!(publisher.sink.ids().is_empty());
    }
}
