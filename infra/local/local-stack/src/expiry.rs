//! What the SQS event source mapping does for the timeout-close function in AWS: receive the
//! expiry queue's due messages in batches of up to 10, hand them to the function as an
//! `SqsEvent`, delete the ones it did not name as failures, and leave the failures to come
//! back after the visibility timeout (the queue's redrive policy moves a message to the DLQ
//! after its fifth receive, as in `template.yaml`).

use aws_adapters::aws_sdk_sqs;
use aws_adapters::aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName,
};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// Messages per batch (the template's `BatchSize`).
const BATCH_SIZE: i32 = 10;
/// Long polling: an idle queue costs one request per this many seconds.
const WAIT_SECONDS: i32 = 1;
/// How long a received message stays invisible (the template's queue setting).
pub const VISIBILITY_TIMEOUT_SECONDS: i32 = 30;
const PAUSE_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Polls `queue_url` until `stop` turns true, giving each batch to `handle` (which answers
/// the message ids that failed).
pub async fn poll<H, F>(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    handle: H,
    mut stop: watch::Receiver<bool>,
) where
    H: Fn(SqsEvent) -> F,
    F: Future<Output = Vec<String>>,
{
    loop {
        let received = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            received = sqs
                .receive_message()
                .queue_url(&queue_url)
                .max_number_of_messages(BATCH_SIZE)
                .wait_time_seconds(WAIT_SECONDS)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send() => received,
        };
        let messages = match received {
            Ok(output) => output.messages.unwrap_or_default(),
            Err(error) => {
                tracing::warn!(error = %aws_adapters::describe(&error), "expiry queue: receive failed");
                tokio::time::sleep(PAUSE_AFTER_ERROR).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let mut event = SqsEvent::default();
        let mut receipts = HashMap::new();
        for message in messages {
            let mut record = SqsMessage::default();
            record.message_id = message.message_id.clone();
            record.receipt_handle = message.receipt_handle.clone();
            record.body = message.body.clone();
            record.attributes = message
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(name, value)| (name.as_str().to_owned(), value))
                .collect();
            record.event_source = Some("aws:sqs".to_owned());
            if let (Some(id), Some(receipt)) = (message.message_id, message.receipt_handle) {
                receipts.insert(id, receipt);
            }
            event.records.push(record);
        }
        let failed = handle(event).await;
        let done: Vec<DeleteMessageBatchRequestEntry> = receipts
            .into_iter()
            .filter(|(id, _)| !failed.contains(id))
            .enumerate()
            .filter_map(|(index, (_, receipt))| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(format!("m{index}"))
                    .receipt_handle(receipt)
                    .build()
                    .ok()
            })
            .collect();
        if done.is_empty() {
            continue;
        }
        if let Err(error) = sqs
            .delete_message_batch()
            .queue_url(&queue_url)
            .set_entries(Some(done))
            .send()
            .await
        {
            // The messages come back after the visibility timeout; handling them again is
            // harmless (the function is idempotent).
            tracing::warn!(error = %aws_adapters::describe(&error), "expiry queue: delete failed");
        }
    }
}
