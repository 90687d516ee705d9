//! Business events in the local stack: the events queue (FIFO, as in `template.yaml`) in
//! moto, and the orders table's stream polled the way Lambda's event source mapping polls it
//! (`test_support::streams`), each batch handed to the real publisher
//! (`functions/publish-events`), which logs every event it publishes (type, `event_id`,
//! `out_trade_no`) at info level. A batch with a failed record is read again from that
//! record after a pause, as Lambda retries it.

use crate::Error;
use aws_adapters::{SqsEventSink, aws_sdk_sqs};
use aws_config::SdkConfig;
use publish_events::Publisher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use test_support::streams::StreamReader;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The events queue's name (a FIFO queue's ends in `.fifo`).
pub const EVENTS_QUEUE: &str = "business-events.fifo";
/// How long the poller waits when the stream has nothing new.
const IDLE_PAUSE: Duration = Duration::from_millis(100);
/// How long it waits before reading a failed batch again.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The running poller; [`EventsPublisher::shutdown`] stops it.
pub struct EventsPublisher {
    queue_url: String,
    published: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl EventsPublisher {
    pub fn queue_url(&self) -> &str {
        &self.queue_url
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

/// Creates the events queue and starts polling `table`'s stream from its trim horizon.
pub async fn start(sdk: &SdkConfig, table: &str) -> Result<EventsPublisher, Error> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name(EVENTS_QUEUE)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .map_err(|e| format!("moto: creating the events queue: {e}"))?
        .queue_url
        .ok_or("moto: the events queue has no URL")?;
    let reader = StreamReader::open(sdk, table).await?;
    let publisher = Publisher {
        sink: SqsEventSink::new(sqs, &queue_url),
    };
    let published = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(poll(reader, publisher, stopped, published.clone()));
    tracing::info!(%queue_url, stream = %table, "business events publisher polling the table's stream");
    Ok(EventsPublisher {
        queue_url,
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
