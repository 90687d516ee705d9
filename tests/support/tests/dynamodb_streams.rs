//! The stream records of the wrapped moto server (`moto_server.py`), read with
//! [`StreamReader`] as Lambda would deliver them: exactly one record per item a committed
//! write changed (`TransactWriteItems` puts and updates, `UpdateItem` creating or changing
//! an item), with DynamoDB's event names and images, and none for a cancelled transaction.

// Test code: a failing unwrap is a failing test. clippy.toml allows that in #[test] functions;
// this extends it to the helpers of this file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use std::sync::Arc;
use test_support::streams::{StreamReader, create_stream_table};
use test_support::{MotoServer, unique_name};

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

struct Table {
    server: Arc<MotoServer>,
    client: Client,
    name: String,
}

/// A `pk`/`sk` table with a stream of new and old images.
async fn table() -> Table {
    let server = MotoServer::shared().await.unwrap();
    let client = Client::new(&server.sdk_config());
    let name = unique_name("streams");
    create_stream_table(&client, &name).await.unwrap();
    Table {
        server,
        client,
        name,
    }
}

impl Table {
    fn put(&self, pk: &str, sk: &str, condition: Option<&str>) -> TransactWriteItem {
        let put = Put::builder()
            .table_name(&self.name)
            .item("pk", s(pk))
            .item("sk", s(sk))
            .item("note", s("put"))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .unwrap();
        TransactWriteItem::builder().put(put).build()
    }

    /// An upsert like the anomaly records': `SET` a field, `ADD` a counter.
    fn upsert(&self, pk: &str, sk: &str) -> TransactWriteItem {
        let update = Update::builder()
            .table_name(&self.name)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression("SET note = :note ADD occurrences :one")
            .expression_attribute_values(":note", s("upserted"))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .build()
            .unwrap();
        TransactWriteItem::builder().update(update).build()
    }

    async fn update_item(&self, pk: &str, sk: &str) {
        self.client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression("SET note = :note ADD occurrences :one")
            .expression_attribute_values(":note", s("updated"))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await
            .unwrap();
    }

    /// Every record of the stream so far, in order.
    async fn records(&self) -> Vec<EventRecord> {
        let mut reader = StreamReader::open(&self.server.sdk_config(), &self.name)
            .await
            .unwrap();
        let mut records = Vec::new();
        while let Some(batch) = reader.next_batch().await.unwrap() {
            records.extend(batch.event.records);
        }
        records
    }
}

fn text(item: &serde_dynamo::Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(serde_dynamo::AttributeValue::S(text)) => Some(text.clone()),
        Some(serde_dynamo::AttributeValue::N(number)) => Some(number.clone()),
        _ => None,
    }
}

/// `(event name, sk, new image's note, new image's occurrences, old image's occurrences)`.
fn summary(
    record: &EventRecord,
) -> (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
) {
    let change = &record.change;
    (
        record.event_name.clone(),
        text(&change.keys, "sk").unwrap_or_default(),
        text(&change.new_image, "note"),
        text(&change.new_image, "occurrences"),
        text(&change.old_image, "occurrences"),
    )
}

fn expected(
    event: &str,
    sk: &str,
    note: &str,
    occurrences: Option<&str>,
    before: Option<&str>,
) -> (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
) {
    (
        event.to_owned(),
        sk.to_owned(),
        Some(note.to_owned()),
        occurrences.map(str::to_owned),
        before.map(str::to_owned),
    )
}

#[tokio::test]
async fn a_committed_transaction_yields_one_record_per_item() {
    let table = table().await;
    table
        .client
        .transact_write_items()
        .transact_items(table.put("O#1", "ORDER", Some("attribute_not_exists(pk)")))
        .transact_items(table.put("O#1", "EVENT#1", Some("attribute_not_exists(pk)")))
        .transact_items(table.upsert("O#1", "ANOMALY#x"))
        .send()
        .await
        .unwrap();
    table
        .client
        .transact_write_items()
        .transact_items(table.put("O#1", "ORDER", None))
        .transact_items(table.upsert("O#1", "ANOMALY#x"))
        .send()
        .await
        .unwrap();

    let records = table.records().await;
    assert_eq!(
        records.iter().map(summary).collect::<Vec<_>>(),
        [
            expected("INSERT", "ORDER", "put", None, None),
            expected("INSERT", "EVENT#1", "put", None, None),
            // One INSERT with the whole item (moto itself also records the bare key first).
            expected("INSERT", "ANOMALY#x", "upserted", Some("1"), None),
            expected("MODIFY", "ORDER", "put", None, None),
            expected("MODIFY", "ANOMALY#x", "upserted", Some("2"), Some("1")),
        ]
    );
    let sequence_numbers: Vec<u128> = records
        .iter()
        .map(|r| {
            r.change
                .sequence_number
                .as_deref()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        sequence_numbers.windows(2).all(|w| w[0] < w[1]),
        "{sequence_numbers:?}"
    );
}

#[tokio::test]
async fn a_cancelled_transaction_with_an_upsert_leaves_no_record() {
    let table = table().await;
    table
        .client
        .transact_write_items()
        .transact_items(table.put("O#2", "ORDER", None))
        .send()
        .await
        .unwrap();
    let cancelled = table
        .client
        .transact_write_items()
        .transact_items(table.upsert("O#2", "ANOMALY#x"))
        .transact_items(table.put("O#2", "EVENT#2", None))
        .transact_items(table.put("O#2", "ORDER", Some("attribute_not_exists(pk)")))
        .send()
        .await;
    assert!(cancelled.is_err());
    table.update_item("O#2", "ANOMALY#y").await;

    assert_eq!(
        table
            .records()
            .await
            .iter()
            .map(summary)
            .collect::<Vec<_>>(),
        [
            expected("INSERT", "ORDER", "put", None, None),
            expected("INSERT", "ANOMALY#y", "updated", Some("1"), None),
        ]
    );
}

#[tokio::test]
async fn update_item_yields_one_insert_then_modifies() {
    let table = table().await;
    table.update_item("O#3", "ANOMALY#x").await;
    table.update_item("O#3", "ANOMALY#x").await;
    assert_eq!(
        table
            .records()
            .await
            .iter()
            .map(summary)
            .collect::<Vec<_>>(),
        [
            expected("INSERT", "ANOMALY#x", "updated", Some("1"), None),
            expected("MODIFY", "ANOMALY#x", "updated", Some("2"), Some("1")),
        ]
    );
}

#[tokio::test]
async fn a_partial_failure_reads_the_shard_again_from_the_failed_record() {
    let table = table().await;
    for sk in ["A", "B", "C"] {
        table.update_item("O#4", sk).await;
    }
    let mut reader = StreamReader::open(&table.server.sdk_config(), &table.name)
        .await
        .unwrap()
        .with_batch_size(2);
    let first = reader.next_batch().await.unwrap().unwrap();
    assert_eq!(first.event.records.len(), 2);
    let failed = first.event.records[1]
        .change
        .sequence_number
        .clone()
        .unwrap();
    reader.retry_from(&first.shard_id, &failed).await.unwrap();
    let again = reader.next_batch().await.unwrap().unwrap();
    let sks: Vec<String> = again
        .event
        .records
        .iter()
        .map(|r| text(&r.change.keys, "sk").unwrap())
        .collect();
    assert_eq!(sks, ["B", "C"]);
    assert!(reader.next_batch().await.unwrap().is_none());
}
