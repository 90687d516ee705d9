//! A stream record the publisher cannot publish, handled as the event source mapping of
//! `template.yaml` has Lambda handle it: retried `MaximumRetryAttempts` times, then named in
//! an on-failure record on the failure queue and skipped, the records after it published.

use aws_adapters::aws_sdk_dynamodb::types::AttributeValue;
use aws_adapters::dynamo::orders::{event_sk, order_pk};
use aws_adapters::dynamo::schema::create_table;
use aws_adapters::{DynamoOrderStore, aws_sdk_dynamodb, aws_sdk_sqs};
use domain::OutTradeNo;
use local_stack::ORDERS_TABLE;
use local_stack::streams::{self, MAXIMUM_RETRY_ATTEMPTS, PollOptions};
use publish_events::describe_keys;
use serde_json::Value;
use std::time::{Duration, Instant};
use test_support::MotoServer;
use test_support::streams::StreamReader;

mod common;

use common::write_order;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Every message on `queue_url` now, each deleted once received.
async fn drain(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let mut bodies = Vec::new();
    loop {
        let messages = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            return Ok(bodies);
        }
        for message in messages {
            bodies.push(message.body().unwrap_or_default().to_owned());
            if let Some(handle) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await?;
            }
        }
    }
}

#[tokio::test]
async fn a_record_that_keeps_failing_is_retried_then_sent_to_the_failure_queue() -> TestResult {
    let moto = MotoServer::start().await?;
    let sdk = moto.sdk_config();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    create_table(&dynamo, ORDERS_TABLE).await?;
    let store = DynamoOrderStore::new(dynamo.clone(), ORDERS_TABLE);

    // An order, an audit event item the publisher cannot decode (a real, lasting failure: it
    // is reported as the batch's failed record every time), another order.
    let before = write_order(&store).await?;
    let broken = OutTradeNo::generate();
    let broken_sk = event_sk(1);
    dynamo
        .put_item()
        .table_name(ORDERS_TABLE)
        .item("pk", AttributeValue::S(order_pk(&broken)))
        .item("sk", AttributeValue::S(broken_sk.clone()))
        .item("kind", AttributeValue::S("not an event".into()))
        .send()
        .await?;
    let after = write_order(&store).await?;

    // Where the broken record is, read independently of the poller.
    let mut reader = StreamReader::open(&sdk, ORDERS_TABLE).await?;
    let mut broken_record = None;
    while let Some(batch) = reader.next_batch().await? {
        for record in &batch.event.records {
            if describe_keys(record) == format!("{} {broken_sk}", order_pk(&broken)) {
                broken_record = Some((
                    batch.shard_id.clone(),
                    record.change.sequence_number.clone(),
                ));
            }
        }
    }
    let (shard_id, sequence_number) =
        broken_record.ok_or("the broken record is not in the stream")?;
    let sequence_number = sequence_number.ok_or("the broken record has no sequence number")?;

    let events = streams::start_with(
        &sdk,
        ORDERS_TABLE,
        PollOptions {
            retry_pause: Duration::from_millis(50),
        },
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while events.sent_to_failure_queue() < 1 || events.published() < 4 {
        assert!(
            Instant::now() < deadline,
            "{} published, {} failed attempts, {} sent to the failure queue (the poller logs why)",
            events.published(),
            events.failed_attempts(),
            events.sent_to_failure_queue()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nothing more happens: the record is not retried again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Its first attempt, then MAXIMUM_RETRY_ATTEMPTS retries.
    assert_eq!(
        events.failed_attempts(),
        u64::from(MAXIMUM_RETRY_ATTEMPTS) + 1
    );
    assert_eq!(events.sent_to_failure_queue(), 1);
    assert_eq!(events.published(), 4);

    let failures = drain(&sqs, events.failure_queue_url()).await?;
    assert_eq!(failures.len(), 1, "{failures:?}");
    let failure: Value = serde_json::from_str(&failures[0])?;
    let context = &failure["requestContext"];
    assert_eq!(context["condition"], "RetryAttemptsExhausted");
    assert_eq!(
        context["approximateInvokeCount"],
        u64::from(MAXIMUM_RETRY_ATTEMPTS) + 1
    );
    assert!(
        context["functionArn"]
            .as_str()
            .is_some_and(|arn| arn.starts_with("arn:aws:lambda:")
                && arn.ends_with(":function:publish-events")),
        "{failure}"
    );
    assert_eq!(failure["version"], "1.0");
    assert_eq!(failure["responseContext"]["statusCode"], 200);
    assert!(
        failure["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let info = &failure["DDBStreamBatchInfo"];
    assert_eq!(info["shardId"], shard_id.as_str());
    assert_eq!(info["startSequenceNumber"], sequence_number.as_str());
    assert_eq!(info["endSequenceNumber"], sequence_number.as_str());
    assert_eq!(info["batchSize"], 1);
    assert_eq!(info["streamArn"], reader.stream_arn());
    assert!(info["approximateArrivalOfFirstRecord"].is_string());
    // It names the record; the record itself is not in it.
    assert!(!failures[0].contains(&broken.to_string()), "{failure}");

    // The events of the orders before and after it, each once.
    let mut published: Vec<String> = drain(&sqs, events.queue_url())
        .await?
        .iter()
        .map(|body| {
            serde_json::from_str::<Value>(body)
                .map(|event| event["event_id"].as_str().unwrap_or_default().to_owned())
        })
        .collect::<Result<_, _>>()?;
    published.sort();
    let mut expected = vec![
        format!("{before}/v1"),
        format!("{before}/v2"),
        format!("{after}/v1"),
        format!("{after}/v2"),
    ];
    expected.sort();
    assert_eq!(published, expected);
    events.shutdown().await;
    Ok(())
}
