//! `TransactWriteItems` on the wrapped moto server (`moto_server.py`), over HTTP with the AWS
//! SDK: a transaction that is cancelled or refused leaves every item, index entry and stream
//! record as it was; a committed one is visible; the cancellation reasons are DynamoDB's (one
//! code per item, `None` for those that passed, the stored item for a failed condition asked
//! with `ALL_OLD`). The server rolls a transaction back item by item, not by copying tables.

// Test code: a failing unwrap is a failing test. clippy.toml allows that in #[test] functions;
// this extends it to the helpers of this file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, StreamSpecification, StreamViewType,
    TransactWriteItem, Update,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use test_support::{MotoServer, unique_name};

type Item = HashMap<String, AttributeValue>;

const INDEX: &str = "gsi1";

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

fn n(number: i64) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

fn item(attributes: &[(&str, AttributeValue)]) -> Item {
    attributes
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect()
}

/// `pk`/`sk` of a table with a range key.
fn key(pk: &str, sk: &str) -> Item {
    item(&[("pk", s(pk)), ("sk", s(sk))])
}

struct Db {
    _server: Arc<MotoServer>,
    client: Client,
    /// `pk` HASH, `sk` RANGE, index `gsi1` on (`gsi1pk`, `gsi1sk`), like the orders table.
    table: String,
    /// `id` HASH only.
    flat: String,
}

async fn db() -> Db {
    let server = MotoServer::shared().await.unwrap();
    let client = Client::new(&server.sdk_config());
    let table = unique_name("tx");
    let flat = unique_name("tx-flat");
    create_table(&client, &table, None).await;
    client
        .create_table()
        .table_name(&flat)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("id"))
        .key_schema(key_element("id", KeyType::Hash))
        .send()
        .await
        .unwrap();
    Db {
        _server: server,
        client,
        table,
        flat,
    }
}

fn attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .unwrap()
}

fn key_element(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .unwrap()
}

async fn create_table(client: &Client, name: &str, stream: Option<StreamSpecification>) {
    let index = GlobalSecondaryIndex::builder()
        .index_name(INDEX)
        .key_schema(key_element("gsi1pk", KeyType::Hash))
        .key_schema(key_element("gsi1sk", KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .unwrap();
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .attribute_definitions(attribute("gsi1pk"))
        .attribute_definitions(attribute("gsi1sk"))
        .key_schema(key_element("pk", KeyType::Hash))
        .key_schema(key_element("sk", KeyType::Range))
        .global_secondary_indexes(index)
        .set_stream_specification(stream)
        .send()
        .await
        .unwrap();
}

async fn put(client: &Client, table: &str, item: Item) {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

/// Every item of a (small, one page) table, in a stable order.
async fn scan(client: &Client, table: &str) -> Vec<Item> {
    let page = client.scan().table_name(table).send().await.unwrap();
    assert!(page.last_evaluated_key.is_none());
    let mut items = page.items.unwrap_or_default();
    items.sort_by_key(|item| format!("{:?}", sorted(item)));
    items
}

fn sorted(item: &Item) -> Vec<(&String, &AttributeValue)> {
    let mut attributes: Vec<_> = item.iter().collect();
    attributes.sort_by(|a, b| a.0.cmp(b.0));
    attributes
}

/// The index entries under one `gsi1pk`, in index order.
async fn index_entries(client: &Client, table: &str, gsi1pk: &str) -> Vec<Item> {
    client
        .query()
        .table_name(table)
        .index_name(INDEX)
        .key_condition_expression("gsi1pk = :day")
        .expression_attribute_values(":day", s(gsi1pk))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

fn put_item(table: &str, item: Item) -> Put {
    Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .unwrap()
}

fn transact_put(put: Put) -> TransactWriteItem {
    TransactWriteItem::builder().put(put).build()
}

/// Seeds the tables of `db` and returns the operations of a transaction that writes in both
/// of them: puts of new items (one indexed), an update that moves an item to another index
/// partition, a delete, a put that replaces an item, a passing condition check, and, if
/// `failing`, two failed conditions asked with `ALL_OLD` (first and last).
async fn seed_and_transaction(db: &Db, failing: bool) -> Vec<TransactWriteItem> {
    let (table, flat) = (db.table.as_str(), db.flat.as_str());
    let indexed = |pk: &str, day: &str| {
        item(&[
            ("pk", s(pk)),
            ("sk", s("ORDER")),
            ("gsi1pk", s(day)),
            ("gsi1sk", s(pk)),
            ("version", n(1)),
        ])
    };
    put(&db.client, table, indexed("A", "DAY1")).await;
    put(&db.client, table, indexed("B", "DAY1")).await;
    put(&db.client, table, indexed("C", "DAY1")).await;
    put(
        &db.client,
        table,
        item(&[("pk", s("D")), ("sk", s("ORDER")), ("status", s("PAID"))]),
    )
    .await;
    put(
        &db.client,
        table,
        item(&[("pk", s("E")), ("sk", s("ORDER")), ("status", s("PENDING"))]),
    )
    .await;
    put(&db.client, table, key("R", "ORDER")).await;
    put(&db.client, flat, item(&[("id", s("h1")), ("count", n(1))])).await;
    put(&db.client, flat, item(&[("id", s("h2")), ("count", n(5))])).await;

    let status_check = |pk: &str, expected: &str| {
        ConditionCheck::builder()
            .table_name(table)
            .set_key(Some(key(pk, "ORDER")))
            .condition_expression("#status = :expected")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":expected", s(expected))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .unwrap()
    };
    let mut operations = Vec::new();
    if failing {
        // D is PAID.
        operations.push(
            TransactWriteItem::builder()
                .condition_check(status_check("D", "PENDING"))
                .build(),
        );
    }
    operations.extend([
        transact_put(put_item(table, indexed("N", "DAY2"))),
        transact_put(put_item(table, key("N", "EVENT#1"))),
        TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(table)
                    .set_key(Some(key("A", "ORDER")))
                    .update_expression("SET gsi1pk = :day, version = version + :one")
                    .expression_attribute_values(":day", s("DAY2"))
                    .expression_attribute_values(":one", n(1))
                    .build()
                    .unwrap(),
            )
            .build(),
        TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(table)
                    .set_key(Some(key("B", "ORDER")))
                    .condition_expression("attribute_exists(pk)")
                    .build()
                    .unwrap(),
            )
            .build(),
        transact_put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item(&[
                    ("pk", s("R")),
                    ("sk", s("ORDER")),
                    ("replaced", s("yes")),
                ])))
                .build()
                .unwrap(),
        ),
        TransactWriteItem::builder()
            .condition_check(
                ConditionCheck::builder()
                    .table_name(table)
                    .set_key(Some(key("C", "ORDER")))
                    .condition_expression("attribute_exists(pk)")
                    .build()
                    .unwrap(),
            )
            .build(),
        transact_put(
            Put::builder()
                .table_name(flat)
                .set_item(Some(item(&[("id", s("h3"))])))
                .build()
                .unwrap(),
        ),
        TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(flat)
                    .key("id", s("h1"))
                    .update_expression("SET #count = #count + :one")
                    .expression_attribute_names("#count", "count")
                    .expression_attribute_values(":one", n(1))
                    .build()
                    .unwrap(),
            )
            .build(),
    ]);
    if failing {
        // E exists.
        operations.push(transact_put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item(&[
                    ("pk", s("E")),
                    ("sk", s("ORDER")),
                    ("status", s("CLOSED")),
                ])))
                .condition_expression("attribute_not_exists(pk)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .unwrap(),
        ));
    }
    operations
}

async fn get(client: &Client, table: &str, key: Item) -> Option<Item> {
    client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

#[tokio::test]
async fn a_cancelled_transaction_leaves_every_item_as_it_was() {
    let db = db().await;
    let operations = seed_and_transaction(&db, true).await;
    let (table_before, flat_before) = (
        scan(&db.client, &db.table).await,
        scan(&db.client, &db.flat).await,
    );
    let (day1_before, day2_before) = (
        index_entries(&db.client, &db.table, "DAY1").await,
        index_entries(&db.client, &db.table, "DAY2").await,
    );

    let error = db
        .client
        .transact_write_items()
        .set_transact_items(Some(operations))
        .send()
        .await
        .unwrap_err();

    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        error.as_service_error()
    else {
        panic!("not a cancellation: {error:?}");
    };
    let reasons = cancelled.cancellation_reasons();
    let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("")).collect();
    let mut expected = vec!["None"; 10];
    expected[0] = "ConditionalCheckFailed";
    expected[9] = "ConditionalCheckFailed";
    assert_eq!(codes, expected);
    // The stored items of the failed conditions (ALL_OLD), nothing for the others.
    let stored = |pk: &str| table_before.iter().find(|i| i["pk"] == s(pk)).cloned();
    assert_eq!(reasons[0].item().cloned(), stored("D"));
    assert_eq!(reasons[9].item().cloned(), stored("E"));
    assert!(reasons[1..9].iter().all(|r| r.item().is_none()));

    // Every touched item (updated, deleted, replaced, created) and every other one as before.
    assert_eq!(scan(&db.client, &db.table).await, table_before);
    assert_eq!(scan(&db.client, &db.flat).await, flat_before);
    assert_eq!(get(&db.client, &db.table, key("N", "ORDER")).await, None);
    assert_eq!(get(&db.client, &db.table, key("N", "EVENT#1")).await, None);
    // The index shows no trace: A is back under DAY1, N never appeared under DAY2.
    assert_eq!(
        index_entries(&db.client, &db.table, "DAY1").await,
        day1_before
    );
    assert_eq!(day1_before.len(), 3);
    assert_eq!(
        index_entries(&db.client, &db.table, "DAY2").await,
        day2_before
    );
    assert!(day2_before.is_empty());

    // The rolled-back items still take writes as usual.
    db.client
        .transact_write_items()
        .set_transact_items(Some(vec![transact_put(put_item(
            &db.table,
            key("N", "ORDER"),
        ))]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        get(&db.client, &db.table, key("N", "ORDER")).await,
        Some(key("N", "ORDER"))
    );
}

#[tokio::test]
async fn a_committed_transaction_is_visible() {
    let db = db().await;
    let operations = seed_and_transaction(&db, false).await;

    db.client
        .transact_write_items()
        .set_transact_items(Some(operations))
        .send()
        .await
        .unwrap();

    let table = &db.table;
    let updated = get(&db.client, table, key("A", "ORDER")).await.unwrap();
    assert_eq!(
        (&updated["gsi1pk"], &updated["version"]),
        (&s("DAY2"), &n(2))
    );
    assert_eq!(get(&db.client, table, key("B", "ORDER")).await, None);
    assert!(get(&db.client, table, key("N", "ORDER")).await.is_some());
    assert_eq!(
        get(&db.client, table, key("N", "EVENT#1")).await,
        Some(key("N", "EVENT#1"))
    );
    let replaced = get(&db.client, table, key("R", "ORDER")).await.unwrap();
    assert_eq!(replaced.get("replaced"), Some(&s("yes")));
    let counted = get(&db.client, &db.flat, item(&[("id", s("h1"))])).await;
    assert_eq!(counted.unwrap()["count"], n(2));
    assert!(
        get(&db.client, &db.flat, item(&[("id", s("h3"))]))
            .await
            .is_some()
    );
    let pks = |entries: Vec<Item>| -> Vec<AttributeValue> {
        entries.into_iter().map(|e| e["pk"].clone()).collect()
    };
    assert_eq!(
        pks(index_entries(&db.client, table, "DAY1").await),
        [s("C")]
    );
    assert_eq!(
        pks(index_entries(&db.client, table, "DAY2").await),
        [s("A"), s("N")]
    );
}

#[tokio::test]
async fn a_refused_transaction_changes_nothing() {
    let db = db().await;
    put(&db.client, &db.table, key("A", "ORDER")).await;
    let before = scan(&db.client, &db.table).await;

    // Two operations on one item: refused after the first put was applied.
    let error = db
        .client
        .transact_write_items()
        .transact_items(transact_put(put_item(&db.table, key("N", "ORDER"))))
        .transact_items(transact_put(
            Put::builder()
                .table_name(&db.table)
                .set_item(Some(item(&[
                    ("pk", s("A")),
                    ("sk", s("ORDER")),
                    ("replaced", s("yes")),
                ])))
                .build()
                .unwrap(),
        ))
        .transact_items(transact_put(put_item(&db.table, key("N", "ORDER"))))
        .send()
        .await
        .unwrap_err();

    let code = error.as_service_error().and_then(|e| e.meta().code());
    assert_eq!(code, Some("ValidationException"), "{error:?}");
    assert_eq!(scan(&db.client, &db.table).await, before);
}

/// A DynamoDB Streams call (this workspace has no Streams SDK): moto routes it by the signing
/// scope and the target, and does not check the signature.
async fn streams(server: &MotoServer, operation: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(server.endpoint_url())
        .header(
            "x-amz-target",
            format!("DynamoDBStreams_20120810.{operation}"),
        )
        .header("content-type", "application/x-amz-json-1.0")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{operation}: {response:?}");
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}

async fn stream_events(server: &MotoServer, stream_arn: &str) -> Vec<Value> {
    let stream = streams(server, "DescribeStream", json!({ "StreamArn": stream_arn })).await;
    let shard = stream["StreamDescription"]["Shards"][0]["ShardId"].clone();
    let iterator = streams(
        server,
        "GetShardIterator",
        json!({ "StreamArn": stream_arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON" }),
    )
    .await;
    let records = streams(
        server,
        "GetRecords",
        json!({ "ShardIterator": iterator["ShardIterator"] }),
    )
    .await;
    records["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!([r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]]))
        .collect()
}

#[tokio::test]
async fn a_cancelled_transaction_leaves_no_stream_records() {
    let server = MotoServer::shared().await.unwrap();
    let client = Client::new(&server.sdk_config());
    let table = unique_name("tx-stream");
    let stream = StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewAndOldImages)
        .build()
        .unwrap();
    create_table(&client, &table, Some(stream)).await;
    let stream_arn = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .table
        .and_then(|t| t.latest_stream_arn)
        .unwrap();
    put(&client, &table, key("A", "ORDER")).await;

    let cancelled = client
        .transact_write_items()
        .transact_items(transact_put(put_item(&table, key("N", "ORDER"))))
        .transact_items(transact_put(put_item(&table, key("A", "ORDER"))))
        .send()
        .await;
    assert!(cancelled.is_err());
    client
        .transact_write_items()
        .transact_items(transact_put(put_item(&table, key("M", "ORDER"))))
        .send()
        .await
        .unwrap();

    assert_eq!(
        stream_events(&server, &stream_arn).await,
        [json!(["INSERT", "A"]), json!(["INSERT", "M"])]
    );
}

#[tokio::test]
async fn the_server_rolls_transactions_back_item_by_item() {
    // A server of its own: its start-up lines are still in its log tail.
    let server = MotoServer::start().await.unwrap();
    let log = server.log_tail();
    assert!(
        log.contains(
            "DynamoDB transactions roll back item by item, queue counts read the clock once"
        ),
        "moto_server.py kept moto's own code (another moto version?):\n{log}"
    );
}
