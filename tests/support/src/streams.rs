//! A DynamoDB table's stream, read the way Lambda's event source mapping reads it: shard by
//! shard (a child shard once its parent is read to its end), from the trim horizon, each
//! `GetRecords` page handed over as the JSON event Lambda would invoke a function with,
//! deserialized into `aws_lambda_events`' type. So the business event publisher runs on real
//! stream records in the tests and in the local stack.
//!
//! ```no_run
//! # async fn demo(moto: &test_support::MotoServer) -> Result<(), test_support::streams::StreamError> {
//! let mut stream = test_support::streams::StreamReader::open(&moto.sdk_config(), "orders").await?;
//! while let Some(batch) = stream.next_batch().await? {
//!     // Invoke the function with `batch.event`; on a partial batch failure, Lambda reads
//!     // the shard again from the failed record:
//!     // stream.retry_from(&batch.shard_id, &sequence_number).await?;
//!     // once it gives up on a record, it reads on from the record after it:
//!     // stream.skip_past(&batch.shard_id, &sequence_number).await?;
//!     // and a batch split in two is read again half by half:
//!     // stream.limit_next_batch(&batch.shard_id, half);
//! }
//! # Ok(()) }
//! ```

use aws_config::SdkConfig;
use aws_lambda_events::event::dynamodb::Event;
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Lambda's default batch size for DynamoDB streams.
pub const DEFAULT_BATCH_SIZE: i32 = 100;

#[derive(Debug, thiserror::Error)]
#[error("stream of table {table}: {what}: {reason}")]
pub struct StreamError {
    pub table: String,
    pub what: &'static str,
    pub reason: String,
}

/// Creates `name`: a pay-per-request table keyed by `pk` and `sk` (strings) with a stream of
/// new and old images, for tests of what reads streams.
pub async fn create_stream_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), StreamError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        StreamSpecification, StreamViewType,
    };
    let failed = |what: &'static str| {
        move |reason: String| StreamError {
            table: name.to_owned(),
            what,
            reason,
        }
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| e.to_string())
    };
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(|e| e.to_string())
    };
    let stream = StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewAndOldImages)
        .build()
        .map_err(|e| e.to_string());
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk").map_err(failed("defining it"))?)
        .attribute_definitions(attribute("sk").map_err(failed("defining it"))?)
        .key_schema(key("pk", KeyType::Hash).map_err(failed("defining it"))?)
        .key_schema(key("sk", KeyType::Range).map_err(failed("defining it"))?)
        .stream_specification(stream.map_err(failed("defining it"))?)
        .send()
        .await
        .map_err(|e| failed("creating it")(describe(&e)))?;
    Ok(())
}

/// One `GetRecords` page of one shard, as Lambda's event.
#[derive(Debug, Clone)]
pub struct StreamBatch {
    pub shard_id: String,
    pub event: Event,
}

/// Reads a table's stream; see the module documentation.
#[derive(Debug)]
pub struct StreamReader {
    client: Client,
    table: String,
    stream_arn: String,
    batch_size: i32,
    /// Open shards, each with the iterator of its next page (`None` before the first read).
    shards: BTreeMap<String, Option<String>>,
    /// Shards read to their end.
    finished: HashSet<String>,
    /// The most records of a shard's next batch ([`StreamReader::limit_next_batch`]).
    next_limits: HashMap<String, i32>,
}

fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) => format!(
            "{}: {}",
            service.err().code().unwrap_or("unknown service error"),
            service.err().message().unwrap_or("no message")
        ),
        other => DisplayErrorContext(other).to_string(),
    }
}

impl StreamReader {
    /// The latest stream of `table`, read from its trim horizon.
    pub async fn open(config: &SdkConfig, table: &str) -> Result<StreamReader, StreamError> {
        let client = Client::new(config);
        let listed = client
            .list_streams()
            .table_name(table)
            .send()
            .await
            .map_err(|e| StreamError {
                table: table.to_owned(),
                what: "ListStreams",
                reason: describe(&e),
            })?;
        let stream_arn = listed
            .streams()
            .iter()
            .filter_map(|stream| stream.stream_arn())
            .next_back()
            .ok_or_else(|| StreamError {
                table: table.to_owned(),
                what: "ListStreams",
                reason: "the table has no stream".to_owned(),
            })?
            .to_owned();
        Ok(StreamReader {
            client,
            table: table.to_owned(),
            stream_arn,
            batch_size: DEFAULT_BATCH_SIZE,
            shards: BTreeMap::new(),
            finished: HashSet::new(),
            next_limits: HashMap::new(),
        })
    }

    /// At most `size` records per batch (1–1000).
    pub fn with_batch_size(mut self, size: i32) -> StreamReader {
        self.batch_size = size.clamp(1, 1000);
        self
    }

    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    fn failed(&self, what: &'static str, reason: String) -> StreamError {
        StreamError {
            table: self.table.clone(),
            what,
            reason,
        }
    }

    /// Starts reading the shards that appeared, a child only once its parent is finished.
    async fn discover_shards(&mut self) -> Result<(), StreamError> {
        let mut start: Option<String> = None;
        let mut listed = Vec::new();
        loop {
            let page = self
                .client
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| self.failed("DescribeStream", describe(&e)))?;
            let Some(description) = page.stream_description() else {
                break;
            };
            listed.extend(description.shards().iter().filter_map(|shard| {
                Some((
                    shard.shard_id()?.to_owned(),
                    shard.parent_shard_id().map(str::to_owned),
                ))
            }));
            match description.last_evaluated_shard_id() {
                Some(last) => start = Some(last.to_owned()),
                None => break,
            }
        }
        let known: HashSet<&String> = listed.iter().map(|(id, _)| id).collect();
        let ready: Vec<String> = listed
            .iter()
            .filter(|(id, parent)| {
                !self.shards.contains_key(id)
                    && !self.finished.contains(id)
                    && parent
                        .as_ref()
                        .is_none_or(|p| self.finished.contains(p) || !known.contains(p))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ready {
            self.shards.insert(id, None);
        }
        Ok(())
    }

    async fn iterator(
        &self,
        shard_id: &str,
        kind: ShardIteratorType,
        sequence_number: Option<&str>,
    ) -> Result<String, StreamError> {
        self.client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard_id)
            .shard_iterator_type(kind)
            .set_sequence_number(sequence_number.map(str::to_owned))
            .send()
            .await
            .map_err(|e| self.failed("GetShardIterator", describe(&e)))?
            .shard_iterator
            .ok_or_else(|| self.failed("GetShardIterator", "no iterator".to_owned()))
    }

    /// The next page of records of the first open shard that has any; `None` when no shard
    /// has new records now.
    pub async fn next_batch(&mut self) -> Result<Option<StreamBatch>, StreamError> {
        self.discover_shards().await?;
        let open: Vec<(String, Option<String>)> = self
            .shards
            .iter()
            .map(|(id, iterator)| (id.clone(), iterator.clone()))
            .collect();
        for (shard_id, iterator) in open {
            let iterator = match iterator {
                Some(iterator) => iterator,
                None => {
                    self.iterator(&shard_id, ShardIteratorType::TrimHorizon, None)
                        .await?
                }
            };
            let limit = self
                .next_limits
                .get(&shard_id)
                .map_or(self.batch_size, |limit| (*limit).min(self.batch_size));
            let page = self
                .client
                .get_records()
                .shard_iterator(iterator)
                .limit(limit)
                .send()
                .await
                .map_err(|e| self.failed("GetRecords", describe(&e)))?;
            match page.next_shard_iterator() {
                Some(next) => {
                    self.shards.insert(shard_id.clone(), Some(next.to_owned()));
                }
                None => {
                    // Closed and read to its end: its children may start.
                    self.shards.remove(&shard_id);
                    self.finished.insert(shard_id.clone());
                    self.next_limits.remove(&shard_id);
                }
            }
            if page.records().is_empty() {
                continue;
            }
            self.next_limits.remove(&shard_id);
            let records: Vec<Value> = page
                .records()
                .iter()
                .map(|record| lambda_record(record, &self.stream_arn))
                .collect();
            let event: Event = serde_json::from_value(json!({ "Records": records }))
                .map_err(|e| self.failed("GetRecords", format!("not a Lambda event: {e}")))?;
            return Ok(Some(StreamBatch { shard_id, event }));
        }
        Ok(None)
    }

    /// What Lambda does after a partial batch failure: the shard is read again from the
    /// record `sequence_number` on.
    pub async fn retry_from(
        &mut self,
        shard_id: &str,
        sequence_number: &str,
    ) -> Result<(), StreamError> {
        self.reposition(
            shard_id,
            ShardIteratorType::AtSequenceNumber,
            sequence_number,
        )
        .await
    }

    /// What Lambda does once it gives up on a record (its retries exhausted, the record sent
    /// to the on-failure destination): the shard is read on from the record after
    /// `sequence_number` (`AFTER_SEQUENCE_NUMBER`).
    pub async fn skip_past(
        &mut self,
        shard_id: &str,
        sequence_number: &str,
    ) -> Result<(), StreamError> {
        self.reposition(
            shard_id,
            ShardIteratorType::AfterSequenceNumber,
            sequence_number,
        )
        .await
    }

    /// The shard's next read starts at or after `sequence_number`, as `kind` says, even if the
    /// shard was read to its end.
    async fn reposition(
        &mut self,
        shard_id: &str,
        kind: ShardIteratorType,
        sequence_number: &str,
    ) -> Result<(), StreamError> {
        let iterator = self.iterator(shard_id, kind, Some(sequence_number)).await?;
        self.finished.remove(shard_id);
        self.shards.insert(shard_id.to_owned(), Some(iterator));
        Ok(())
    }

    /// At most `size` records (at least 1, and no more than the batch size) in the next batch
    /// read from `shard_id`; the batches after it are full again. So a batch is read again in
    /// halves, as Lambda splits a batch that failed (`BisectBatchOnFunctionError`). The limit
    /// holds until a batch of that shard has records; [`StreamReader::retry_from`] and
    /// [`StreamReader::skip_past`] keep it.
    pub fn limit_next_batch(&mut self, shard_id: &str, size: usize) {
        let size = i32::try_from(size).unwrap_or(i32::MAX).max(1);
        self.next_limits.insert(shard_id.to_owned(), size);
    }
}

/// A stream record as Lambda's DynamoDB event carries it (images absent when the stream view
/// or the operation has none).
pub fn lambda_record(record: &Record, stream_arn: &str) -> Value {
    let mut change = Map::new();
    if let Some(stream) = record.dynamodb() {
        if let Some(at) = stream.approximate_creation_date_time() {
            change.insert(
                "ApproximateCreationDateTime".into(),
                json!(at.as_secs_f64().floor()),
            );
        }
        for (name, image) in [
            ("Keys", stream.keys()),
            ("NewImage", stream.new_image()),
            ("OldImage", stream.old_image()),
        ] {
            if let Some(image) = image {
                change.insert(name.into(), item_json(image));
            }
        }
        change.insert("SequenceNumber".into(), json!(stream.sequence_number()));
        change.insert("SizeBytes".into(), json!(stream.size_bytes().unwrap_or(0)));
        if let Some(view) = stream.stream_view_type() {
            change.insert("StreamViewType".into(), json!(view.as_str()));
        }
    }
    let mut lambda = json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|name| name.as_str()),
        "eventVersion": record.event_version(),
        "eventSource": record.event_source(),
        "awsRegion": record.aws_region(),
        "eventSourceARN": stream_arn,
        "dynamodb": change,
    });
    if let (Some(identity), Some(object)) = (record.user_identity(), lambda.as_object_mut()) {
        object.insert(
            "userIdentity".into(),
            json!({"type": identity.r#type(), "principalId": identity.principal_id()}),
        );
    }
    lambda
}

fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(name, value)| (name.clone(), attribute_json(value)))
            .collect(),
    )
}

/// DynamoDB's JSON of one attribute value (binary as Base64), as Lambda writes it.
pub fn attribute_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(text) => json!({ "S": text }),
        AttributeValue::N(number) => json!({ "N": number }),
        AttributeValue::B(bytes) => json!({ "B": STANDARD.encode(bytes.as_ref()) }),
        AttributeValue::Bool(flag) => json!({ "BOOL": flag }),
        AttributeValue::Null(null) => json!({ "NULL": Value::Bool(*null) }),
        AttributeValue::Ss(texts) => json!({ "SS": texts }),
        AttributeValue::Ns(numbers) => json!({ "NS": numbers }),
        AttributeValue::Bs(blobs) => {
            let encoded: Vec<String> = blobs.iter().map(|b| STANDARD.encode(b.as_ref())).collect();
            json!({ "BS": encoded })
        }
        AttributeValue::L(values) => {
            json!({ "L": values.iter().map(attribute_json).collect::<Vec<_>>() })
        }
        AttributeValue::M(map) => json!({ "M": item_json(map) }),
        // A type newer than this SDK: kept visible rather than silently dropped.
        _ => json!({ "UNKNOWN": format!("{value:?}") }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MotoServer, unique_name};
    use aws_sdk_dynamodb::types::AttributeValue as DynamoValue;
    use aws_sdk_dynamodbstreams::primitives::Blob;

    /// A `pk`/`sk` table with a stream, its items `sks` put in that order under one `pk`.
    async fn table_with(server: &MotoServer, sks: &[&str]) -> String {
        let client = aws_sdk_dynamodb::Client::new(&server.sdk_config());
        let name = unique_name("reader");
        create_stream_table(&client, &name).await.unwrap();
        for sk in sks {
            client
                .put_item()
                .table_name(&name)
                .item("pk", DynamoValue::S("P".into()))
                .item("sk", DynamoValue::S((*sk).into()))
                .send()
                .await
                .unwrap();
        }
        name
    }

    /// The `sk`s of the next batch (empty when there is none) and its shard.
    async fn next_sks(reader: &mut StreamReader) -> (Vec<String>, String) {
        let Some(batch) = reader.next_batch().await.unwrap() else {
            return (Vec::new(), String::new());
        };
        let sks = batch
            .event
            .records
            .iter()
            .map(|record| match record.change.keys.get("sk") {
                Some(serde_dynamo::AttributeValue::S(sk)) => sk.clone(),
                other => panic!("no sk: {other:?}"),
            })
            .collect();
        (sks, batch.shard_id)
    }

    fn sequence_of(batch: &StreamBatch, index: usize) -> String {
        batch.event.records[index]
            .change
            .sequence_number
            .clone()
            .unwrap()
    }

    #[tokio::test]
    async fn skip_past_reads_on_from_the_record_after() {
        let server = MotoServer::shared().await.unwrap();
        let table = table_with(&server, &["A", "B", "C", "D", "E"]).await;
        let mut reader = StreamReader::open(&server.sdk_config(), &table)
            .await
            .unwrap()
            .with_batch_size(3);
        let first = reader.next_batch().await.unwrap().unwrap();
        assert_eq!(first.event.records.len(), 3);
        // B is given up: what follows it is read, A and B are not read again.
        reader
            .skip_past(&first.shard_id, &sequence_of(&first, 1))
            .await
            .unwrap();
        let (sks, _) = next_sks(&mut reader).await;
        assert_eq!(sks, ["C", "D", "E"]);
        assert!(reader.next_batch().await.unwrap().is_none());
        // Past the last record: nothing until the table changes.
        let last = StreamReader::open(&server.sdk_config(), &table)
            .await
            .unwrap()
            .next_batch()
            .await
            .unwrap()
            .unwrap();
        let mut reader = StreamReader::open(&server.sdk_config(), &table)
            .await
            .unwrap();
        reader
            .skip_past(&last.shard_id, &sequence_of(&last, 4))
            .await
            .unwrap();
        assert!(reader.next_batch().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_limit_holds_for_the_next_batch_of_its_shard_only() {
        let server = MotoServer::shared().await.unwrap();
        let table = table_with(&server, &["A", "B", "C", "D", "E"]).await;
        let mut reader = StreamReader::open(&server.sdk_config(), &table)
            .await
            .unwrap()
            .with_batch_size(4);
        let first = reader.next_batch().await.unwrap().unwrap();
        let shard = first.shard_id.clone();
        // The batch read again in halves: two records, then two, then on at full size.
        reader
            .retry_from(&shard, &sequence_of(&first, 0))
            .await
            .unwrap();
        reader.limit_next_batch(&shard, 2);
        assert_eq!(next_sks(&mut reader).await.0, ["A", "B"]);
        reader.limit_next_batch(&shard, 2);
        assert_eq!(next_sks(&mut reader).await.0, ["C", "D"]);
        assert_eq!(next_sks(&mut reader).await.0, ["E"]);
        // A limit of 0 reads one record; one above the batch size reads a batch.
        reader
            .retry_from(&shard, &sequence_of(&first, 0))
            .await
            .unwrap();
        reader.limit_next_batch(&shard, 0);
        assert_eq!(next_sks(&mut reader).await.0, ["A"]);
        reader.limit_next_batch(&shard, 100);
        assert_eq!(next_sks(&mut reader).await.0, ["B", "C", "D", "E"]);
        assert!(reader.next_batch().await.unwrap().is_none());
    }

    #[test]
    fn attribute_values_are_dynamodb_json() {
        let mut map = HashMap::new();
        map.insert("n".to_owned(), AttributeValue::N("12".into()));
        let value = AttributeValue::L(vec![
            AttributeValue::S("a".into()),
            AttributeValue::B(Blob::new(vec![0, 1, 42])),
            AttributeValue::Null(true),
            AttributeValue::Bool(false),
            AttributeValue::M(map),
            AttributeValue::Ss(vec!["x".into()]),
        ]);
        assert_eq!(
            attribute_json(&value),
            json!({"L": [
                {"S": "a"}, {"B": "AAEq"}, {"NULL": true}, {"BOOL": false},
                {"M": {"n": {"N": "12"}}}, {"SS": ["x"]},
            ]})
        );
    }
}
