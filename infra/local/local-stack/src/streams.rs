//! Business events in the local stack: the events queue (FIFO, as in `template.yaml`) in
//! moto, and the orders table's stream polled the way Lambda's event source mapping polls it
//! (`test_support::streams`), each batch handed to the real publisher
//! (`functions/publish-events`), which logs every event it publishes (type, `event_id`,
//! `out_trade_no`) at info level. A batch with a failed record is read again from that
//! record after a pause, as Lambda retries it.

use crate::Error;
use aws_adapters::aws_sdk_sqs::types::QueueAttributeName;
use aws_adapters::{SqsEventSink, aws_sdk_sqs};
use aws_config::SdkConfig;
use publish_events::Publisher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use test_support::streams::StreamReader;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The events queue's name (a FIFO queue's ends in `.fifo`; in AWS the stack's name comes
/// first).
pub const EVENTS_QUEUE: &str = "business-events.fifo";
/// Where stream records that could not be published would go (`EventsFailureQueue`; see
/// [`MAXIMUM_RETRY_ATTEMPTS`] for how the local poller differs).
pub const EVENTS_FAILURE_QUEUE: &str = "business-events-failures";
/// `MessageRetentionPeriod` of both queues (14 days).
pub const MESSAGE_RETENTION_SECONDS: i32 = 1_209_600;
/// Both queues are encrypted with SQS-managed keys (`SqsManagedSseEnabled`).
pub const SQS_MANAGED_SSE: bool = true;
/// Records per stream batch (the event source mapping's `BatchSize`).
pub const BATCH_SIZE: i32 = 100;
/// Where a new poller starts reading the stream (`StartingPosition`).
pub const STARTING_POSITION: &str = "TRIM_HORIZON";
/// The publisher names the first record it could not publish and the batch is read again
/// from it (`FunctionResponseTypes: [ReportBatchItemFailures]`).
pub const REPORT_BATCH_ITEM_FAILURES: bool = true;
/// Lambda retries a failing record this many times (`MaximumRetryAttempts`), then sends it to
/// the failure queue and moves on. The local poller retries it until it is published (every
/// [`RETRY_PAUSE`]) and logs each failure: nothing is skipped, the failure queue stays empty.
pub const MAXIMUM_RETRY_ATTEMPTS: u32 = 10;
/// How long the poller waits when the stream has nothing new (Lambda gathers records for up to
/// `MaximumBatchingWindowInSeconds`, 1 s; the local poller hands them over at once).
const IDLE_PAUSE: Duration = Duration::from_millis(100);
/// How long it waits before reading a failed batch again.
pub const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The events queue's attributes (`EventsQueue`): FIFO, deduplicated by the `event_id` the
/// publisher gives (not by content), per message group (high-throughput FIFO).
pub fn events_queue_attributes() -> Vec<(QueueAttributeName, String)> {
    vec![
        (QueueAttributeName::FifoQueue, true.to_string()),
        (
            QueueAttributeName::ContentBasedDeduplication,
            false.to_string(),
        ),
        (
            QueueAttributeName::DeduplicationScope,
            "messageGroup".to_owned(),
        ),
        (
            QueueAttributeName::FifoThroughputLimit,
            "perMessageGroupId".to_owned(),
        ),
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

/// The failure queue's attributes (`EventsFailureQueue`).
pub fn events_failure_queue_attributes() -> Vec<(QueueAttributeName, String)> {
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

/// The running poller; [`EventsPublisher::shutdown`] stops it.
pub struct EventsPublisher {
    queue_url: String,
    failure_queue_url: String,
    published: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl EventsPublisher {
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// The failure queue's URL (see [`MAXIMUM_RETRY_ATTEMPTS`]).
    pub fn failure_queue_url(&self) -> &str {
        &self.failure_queue_url
    }

    /// Events published since the start.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Creates the events queue and its failure queue and starts polling `table`'s stream from
/// its trim horizon.
pub async fn start(sdk: &SdkConfig, table: &str) -> Result<EventsPublisher, Error> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name(EVENTS_QUEUE)
        .set_attributes(Some(events_queue_attributes().into_iter().collect()))
        .send()
        .await
        .map_err(|e| format!("moto: creating the events queue: {e}"))?
        .queue_url
        .ok_or("moto: the events queue has no URL")?;
    let failure_queue_url = sqs
        .create_queue()
        .queue_name(EVENTS_FAILURE_QUEUE)
        .set_attributes(Some(
            events_failure_queue_attributes().into_iter().collect(),
        ))
        .send()
        .await
        .map_err(|e| format!("moto: creating the events failure queue: {e}"))?
        .queue_url
        .ok_or("moto: the events failure queue has no URL")?;
    let reader = StreamReader::open(sdk, table)
        .await?
        .with_batch_size(BATCH_SIZE);
    let publisher = Publisher {
        sink: SqsEventSink::new(sqs, &queue_url),
    };
    let published = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(poll(reader, publisher, stopped, published.clone()));
    tracing::info!(%queue_url, stream = %table, "business events publisher polling the table's stream");
    Ok(EventsPublisher {
        queue_url,
        failure_queue_url,
        published,
        stop,
        task,
    })
}

/// Waits `pause`; false if the stack is stopping.
async fn wait(stopped: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        _ = stopped.wait_for(|stop| *stop) => false,
        _ = tokio::time::sleep(pause) => true,
    }
}

async fn poll(
    mut reader: StreamReader,
    publisher: Publisher<SqsEventSink>,
    mut stopped: watch::Receiver<bool>,
    published: Arc<AtomicU64>,
) {
    while !*stopped.borrow() {
        let batch = match reader.next_batch().await {
            Ok(Some(batch)) => batch,
            Ok(None) => {
                if !wait(&mut stopped, IDLE_PAUSE).await {
                    break;
                }
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "the table's stream could not be read");
                if !wait(&mut stopped, RETRY_PAUSE).await {
                    break;
                }
                continue;
            }
        };
        let first_record = batch
            .event
            .records
            .first()
            .and_then(|record| record.change.sequence_number.clone());
        // Lambda retries the batch from the failed record, or whole when the answer is an error.
        let retry_from = match publisher.publish(batch.event).await {
            Ok(outcome) => {
                published.fetch_add(outcome.published as u64, Ordering::Relaxed);
                outcome.retry_from
            }
            Err(error) => {
                tracing::warn!(%error, "a stream batch failed");
                first_record
            }
        };
        let Some(sequence_number) = retry_from else {
            continue;
        };
        if !wait(&mut stopped, RETRY_PAUSE).await {
            break;
        }
        if let Err(error) = reader.retry_from(&batch.shard_id, &sequence_number).await {
            tracing::warn!(%error, %sequence_number, "the failed stream batch could not be read again");
        }
    }
}
