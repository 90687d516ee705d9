//! The expiry queue and its dead-letter queue as `template.yaml` declares them
//! (`ExpiryQueue`, `ExpiryDeadLetterQueue`), and what the SQS event source mapping does for
//! the timeout-close function in AWS: receive the expiry queue's due messages in batches of up
//! to [`BATCH_SIZE`], hand them to the function as an `SqsEvent`, delete the ones it did not
//! name as failures (`ReportBatchItemFailures`), and leave the failures to come back after
//! the queue's visibility timeout (the redrive policy moves a message to the dead-letter queue
//! after its [`MAX_RECEIVE_COUNT`]th receive).
//!
//! The constants here are the local side of the drift test (`tests/drift.rs`), which compares
//! them with the template.

use aws_adapters::aws_sdk_sqs;
use aws_adapters::aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// Messages per batch (the event source mapping's `BatchSize`).
pub const BATCH_SIZE: i32 = 10;
/// The poller answers only the failed messages (`FunctionResponseTypes:
/// [ReportBatchItemFailures]`): the others are deleted.
pub const REPORT_BATCH_ITEM_FAILURES: bool = true;
/// How long a received message stays invisible (the queue's `VisibilityTimeout`). The
/// poller sets no visibility of its own on receive, as Lambda's does not: the queue's applies.
pub const VISIBILITY_TIMEOUT_SECONDS: i32 = 180;
/// The queue's `DelaySeconds` (each message sets its own delay, up to 900 s).
pub const DELAY_SECONDS: i32 = 0;
/// `MessageRetentionPeriod` of the queue and of its dead-letter queue (14 days).
pub const MESSAGE_RETENTION_SECONDS: i32 = 1_209_600;
/// Receives of a message before the redrive policy moves it to the dead-letter queue.
pub const MAX_RECEIVE_COUNT: u32 = 5;
/// Both queues are encrypted with SQS-managed keys (`SqsManagedSseEnabled`).
pub const SQS_MANAGED_SSE: bool = true;
/// Long polling: an idle queue costs one request per this many seconds.
const WAIT_SECONDS: i32 = 1;

/// The expiry queue's attributes, its redrive policy naming `dead_letter_arn`.
pub fn queue_attributes(dead_letter_arn: &str) -> Vec<(QueueAttributeName, String)> {
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dead_letter_arn,
        "maxReceiveCount": MAX_RECEIVE_COUNT,
    });
    vec![
        (
            QueueAttributeName::VisibilityTimeout,
            VISIBILITY_TIMEOUT_SECONDS.to_string(),
        ),
        (QueueAttributeName::DelaySeconds, DELAY_SECONDS.to_string()),
        (
            QueueAttributeName::MessageRetentionPeriod,
            MESSAGE_RETENTION_SECONDS.to_string(),
        ),
        (
            QueueAttributeName::SqsManagedSseEnabled,
            SQS_MANAGED_SSE.to_string(),
        ),
        (QueueAttributeName::RedrivePolicy, redrive.to_string()),
    ]
}

/// The dead-letter queue's attributes.
pub fn dead_letter_queue_attributes() -> Vec<(QueueAttributeName, String)> {
    vec![
        (
            QueueAttributeName::MessageRetentionPeriod,
            MESSAGE_RETENTION_SECONDS.to_string(),
        ),
        (
            QueueAttributeName::SqsManagedSseEnabled,
            SQS_MANAGED_SSE.to_string(),
        ),
    ]
}

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
        // Without ReportBatchItemFailures, Lambda ignores the answer of a function that
        // returned: the whole batch is done.
        let failed = if REPORT_BATCH_ITEM_FAILURES {
            failed
        } else {
            Vec::new()
        };
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
