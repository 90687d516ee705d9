//! The stack's business events: orders written to its table come out of its events queue,
//! published by the stream poller alone.

use aws_adapters::{DynamoOrderStore, aws_sdk_dynamodb, aws_sdk_sqs};
use local_stack::{LocalStack, ORDERS_TABLE, Options, streams};
use serde_json::Value;
use std::time::{Duration, Instant};

mod common;

use common::write_order;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test]
async fn orders_written_to_the_table_come_out_of_the_events_queue() -> TestResult {
    let dir = tempfile::tempdir()?;
    let stack = LocalStack::start(Options::on_free_ports(dir.path())).await?;
    assert!(stack.banner().contains(streams::EVENTS_QUEUE));
    let sdk = stack.aws_sdk_config();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);

    let store = DynamoOrderStore::new(dynamo, ORDERS_TABLE);
    let no = write_order(&store).await?;

    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while received.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "only {received:?} published (the poller logs why)"
        );
        let messages = sqs
            .receive_message()
            .queue_url(stack.events().queue_url())
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        for message in messages {
            let body: Value = serde_json::from_str(message.body().unwrap_or_default())?;
            received.push((body["event_id"].clone(), body["type"].clone()));
            if let Some(handle) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(stack.events().queue_url())
                    .receipt_handle(handle)
                    .send()
                    .await?;
            }
        }
    }
    assert_eq!(
        received,
        [
            (format!("{no}/v1").into(), "order.created".into()),
            (format!("{no}/v2").into(), "order.awaiting_payment".into()),
        ]
    );
    assert_eq!(stack.events().published(), 2);
    stack.shutdown().await;
    Ok(())
}
