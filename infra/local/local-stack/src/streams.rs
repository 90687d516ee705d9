//! Business events in the local stack: the events queue (FIFO, as in `template.yaml`) in
//! moto, and the orders table's stream polled the way Lambda's event source mapping polls it
//! (`test_support::streams`), each batch handed to the real publisher
//! (`functions/publish-events`), which logs every event it publishes (type, `event_id`,
//! `out_trade_no`) at info level.
//!
//! Failures are handled as `PublishEventsStream` has Lambda handle them
//! (`ReportBatchItemFailures`, `BisectBatchOnFunctionError`, `MaximumRetryAttempts: 10`,
//! `MaximumRecordAgeInSeconds: -1`, the failure queue as its `OnFailure` destination). After
//! each failed batch the poller waits [`PollOptions::retry_pause`], then:
//!
//! - a batch the publisher answers with a failed record is read again from that record (the
//!   records before it are done): the rest of that batch as one batch, then whole batches;
//! - a batch it answers with an error (no partial answer; also a failed record that is not in
//!   the batch) is split in two: the shard is read again from the batch's first record, its
//!   first half as one batch, then its second half, each half split again if it fails the same
//!   way, until the failing record is alone. The attempt counts for the batch's first record,
//!   but splitting does not use up retries (as AWS documents).
//!
//! Retries are counted per record: the shard and the sequence number of the first record that
//! failed (a record that goes through is forgotten). When a record's
//! [`MAXIMUM_RETRY_ATTEMPTS`]th retry fails too, the poller gives up on that one record: an
//! on-failure record naming it goes to the failure queue (the shape of Lambda's invocation
//! record for a DynamoDB stream: where the record is in the stream, `DDBStreamBatchInfo`,
//! with `batchSize` 1; not its contents), and the shard is read on from the record after it
//! (the rest of its batch first). Records never expire (`MaximumRecordAgeInSeconds: -1`; moto
//! keeps them while it runs).
//!
//! Each failed attempt is logged (warn), each record given up is logged with its shard and
//! sequence number (error), and both are counted ([`EventsPublisher::failed_attempts`],
//! [`EventsPublisher::sent_to_failure_queue`]).

use crate::Error;
use aws_adapters::aws_sdk_sqs::types::QueueAttributeName;
use aws_adapters::{SqsEventSink, aws_sdk_sqs};
use aws_config::SdkConfig;
use chrono::{DateTime, SecondsFormat, Utc};
use publish_events::Publisher;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use test_support::streams::StreamReader;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The events queue's name (a FIFO queue's ends in `.fifo`; in AWS the stack's name comes
/// first).
pub const EVENTS_QUEUE: &str = "business-events.fifo";
/// Where the poller sends an on-failure record for each stream record it gave up on
/// (`EventsFailureQueue`, the mapping's `OnFailure` destination; see
/// [`MAXIMUM_RETRY_ATTEMPTS`]).
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
/// A batch the publisher answers with an error is split in two and read again half by half
/// (`BisectBatchOnFunctionError`; see the module documentation).
pub const BISECT_BATCH_ON_FUNCTION_ERROR: bool = true;
/// A failing record is retried up to this many times (`MaximumRetryAttempts`), after
/// [`PollOptions::retry_pause`] each; when the last retry fails too, the poller sends an
/// on-failure record naming it to the failure queue ([`EVENTS_FAILURE_QUEUE`]) and reads on
/// from the record after it, as Lambda does (see the module documentation). Each failed
/// attempt is logged and counted.
pub const MAXIMUM_RETRY_ATTEMPTS: u32 = 10;
/// How long the poller waits when the stream has nothing new (Lambda gathers records for up to
/// `MaximumBatchingWindowInSeconds`, 1 s; the local poller hands them over at once).
const IDLE_PAUSE: Duration = Duration::from_millis(100);
/// How long the poller waits before reading a failed batch again, by default
/// ([`PollOptions::retry_pause`]).
pub const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// The function named in the on-failure records' `functionArn` (its crate's name; in AWS the
/// deployed function's).
pub const FUNCTION_NAME: &str = "publish-events";

/// How the poller runs; [`PollOptions::default`] is what the stack uses.
#[derive(Debug, Clone)]
pub struct PollOptions {
    /// The pause before a failed batch is read again, and after the stream could not be read
    /// ([`RETRY_PAUSE`] by default; tests shorten it).
    pub retry_pause: Duration,
}

impl Default for PollOptions {
    fn default() -> PollOptions {
        PollOptions {
            retry_pause: RETRY_PAUSE,
        }
    }
}

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

/// What the poller counts.
#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    failed_attempts: AtomicU64,
    sent_to_failure_queue: AtomicU64,
}

/// The running poller; [`EventsPublisher::shutdown`] stops it.
pub struct EventsPublisher {
    queue_url: String,
    failure_queue_url: String,
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl EventsPublisher {
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// What the events queue holds now (one receive, waiting up to 1 s, at most 10 messages),
    /// each message deleted so that its FIFO group delivers the next: for a test or tool that
    /// owns the stack and reads the business events as a subscriber would.
    pub async fn take_published(&self, sqs: &aws_sdk_sqs::Client) -> Result<Vec<Value>, Error> {
        let messages = sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| format!("moto: receiving business events: {e}"))?
            .messages
            .unwrap_or_default();
        let mut events = Vec::with_capacity(messages.len());
        for message in &messages {
            if let Some(handle) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| format!("moto: deleting a business event: {e}"))?;
            }
            events.push(serde_json::from_str(message.body().unwrap_or_default())?);
        }
        Ok(events)
    }

    /// The failure queue's URL: it receives one on-failure record (Lambda's invocation record
    /// for a DynamoDB stream, naming the record's shard and sequence number) per stream record
    /// the poller gave up on after [`MAXIMUM_RETRY_ATTEMPTS`] retries.
    pub fn failure_queue_url(&self) -> &str {
        &self.failure_queue_url
    }

    /// Events published since the start.
    pub fn published(&self) -> u64 {
        self.counters.published.load(Ordering::Relaxed)
    }

    /// Batches the publisher failed (answered with a failed record or with an error) since the
    /// start: a record's first failed attempt and each of its failed retries.
    pub fn failed_attempts(&self) -> u64 {
        self.counters.failed_attempts.load(Ordering::Relaxed)
    }

    /// Stream records given up since the start, each sent to the failure queue.
    pub fn sent_to_failure_queue(&self) -> u64 {
        self.counters.sent_to_failure_queue.load(Ordering::Relaxed)
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Creates the events queue and its failure queue and starts polling `table`'s stream from
/// its trim horizon, with the default [`PollOptions`].
pub async fn start(sdk: &SdkConfig, table: &str) -> Result<EventsPublisher, Error> {
    start_with(sdk, table, PollOptions::default()).await
}

/// [`start`] with `options`.
pub async fn start_with(
    sdk: &SdkConfig,
    table: &str,
    options: PollOptions,
) -> Result<EventsPublisher, Error> {
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
    let counters = Arc::new(Counters::default());
    let (stop, stopped) = watch::channel(false);
    let poller = Poller {
        reader,
        publisher: Publisher {
            sink: SqsEventSink::new(sqs.clone(), &queue_url),
        },
        sqs,
        failure_queue_url: failure_queue_url.clone(),
        retries: Retries::default(),
        counters: counters.clone(),
        stopped,
        retry_pause: options.retry_pause,
    };
    let task = tokio::spawn(poller.run());
    tracing::info!(
        %queue_url,
        %failure_queue_url,
        stream = %table,
        "business events publisher polling the table's stream"
    );
    Ok(EventsPublisher {
        queue_url,
        failure_queue_url,
        counters,
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

/// Where a record is in its shard.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    sequence_number: String,
    /// `ApproximateCreationDateTime`.
    arrival: DateTime<Utc>,
}

/// The publisher's answer to a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Done,
    /// The first record it could not publish (a partial batch failure).
    Failed(String),
    /// An error: no partial answer.
    Error,
}

/// A record that keeps failing: the first record that failed in its shard's batches.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failing {
    sequence_number: String,
    /// Failed invocations with this record first to fail (Lambda's `approximateInvokeCount`).
    invocations: u32,
    /// The retries among them that count towards [`MAXIMUM_RETRY_ATTEMPTS`].
    retries: u32,
}

/// A shard's failure handling under way.
#[derive(Debug, Default)]
struct ShardRetries {
    failing: Option<Failing>,
    /// How many records the next batches read from the shard's position are made of, front
    /// first: the rest of a failed batch, or the halves of a split one. Empty: whole batches.
    spans: VecDeque<usize>,
}

/// A failed attempt, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attempt {
    /// The record it counts for.
    sequence_number: String,
    invocations: u32,
    retries: u32,
    /// The batch is read again in two halves.
    split: bool,
    /// The publisher answered with an error (not a failed record).
    error: bool,
}

/// What the poller does next with a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Next {
    /// Reads on; the next batch is of at most `limit` records.
    ReadOn { limit: Option<usize> },
    /// After the retry pause, reads the shard again from the failed record.
    Retry {
        attempt: Attempt,
        limit: Option<usize>,
    },
    /// Gives up on the record (retries exhausted): an on-failure record to the failure queue,
    /// then the shard is read on from the record after it.
    GiveUp {
        attempt: Attempt,
        record: Position,
        limit: Option<usize>,
    },
}

/// The retry bookkeeping of Lambda's event source mapping, per shard.
#[derive(Debug, Default)]
struct Retries {
    shards: HashMap<String, ShardRetries>,
}

impl Retries {
    /// What follows `answer` to the batch `records` read from `shard`.
    fn after(&mut self, shard: &str, records: &[Position], answer: Answer) -> Next {
        let state = self.shards.entry(shard.to_owned()).or_default();
        let next = state.after(records, answer);
        if state.failing.is_none() && state.spans.is_empty() {
            self.shards.remove(shard);
        }
        next
    }
}

impl ShardRetries {
    fn after(&mut self, records: &[Position], answer: Answer) -> Next {
        let read = records.len();
        // The records this batch was read as; a short page leaves the rest of them unread.
        let span = self.spans.pop_front().unwrap_or(read).max(read);
        let failure = match answer {
            Answer::Done => None,
            Answer::Failed(sequence_number) => Some(
                match records
                    .iter()
                    .position(|r| r.sequence_number == sequence_number)
                {
                    Some(index) => (index, false),
                    // An identifier not in the batch: Lambda takes the batch as failed whole.
                    None => (0, true),
                },
            ),
            Answer::Error => Some((0, true)),
        };
        let Some((index, error, failed)) = failure
            .and_then(|(index, error)| records.get(index).map(|failed| (index, error, failed)))
        else {
            // Done: a record that kept failing has gone through.
            if self.failing.as_ref().is_some_and(|failing| {
                records
                    .iter()
                    .any(|r| r.sequence_number == failing.sequence_number)
            }) {
                self.failing = None;
            }
            if span > read {
                self.spans.push_front(span - read);
            }
            return Next::ReadOn {
                limit: self.spans.front().copied(),
            };
        };
        // The records before the failed one are done; the rest of the span is read again.
        let rest = span - index;
        let split = error && read - index > 1;
        let mut failing = match self.failing.take() {
            Some(failing) if failing.sequence_number == failed.sequence_number => failing,
            _ => Failing {
                sequence_number: failed.sequence_number.clone(),
                invocations: 0,
                retries: 0,
            },
        };
        let retry = failing.invocations > 0;
        failing.invocations = failing.invocations.saturating_add(1);
        // Splitting a batch does not count towards the retry quota.
        if retry && !split {
            failing.retries = failing.retries.saturating_add(1);
        }
        let attempt = Attempt {
            sequence_number: failing.sequence_number.clone(),
            invocations: failing.invocations,
            retries: failing.retries,
            split,
            error,
        };
        if split {
            // `index` is 0: the batch is read again as two halves, then the unread rest.
            let first = read / 2;
            for size in [span - read, read - first, first] {
                if size > 0 {
                    self.spans.push_front(size);
                }
            }
        } else if failing.retries >= MAXIMUM_RETRY_ATTEMPTS {
            if rest > 1 {
                self.spans.push_front(rest - 1);
            }
            return Next::GiveUp {
                attempt,
                record: failed.clone(),
                limit: self.spans.front().copied(),
            };
        } else {
            self.spans.push_front(rest);
        }
        self.failing = Some(failing);
        Next::Retry {
            attempt,
            limit: self.spans.front().copied(),
        }
    }
}

/// The identifier of Lambda's invocation in the on-failure record: a fresh one, shaped like
/// Lambda's (a UUID).
fn request_id() -> String {
    let n = ulid::Ulid::generate().0;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        n >> 96,
        (n >> 80) & 0xffff,
        (n >> 64) & 0xffff,
        (n >> 48) & 0xffff,
        n & 0xffff_ffff_ffff
    )
}

/// The publisher's ARN in the stream's region and account.
fn function_arn(stream_arn: &str) -> String {
    let mut parts = stream_arn.split(':').skip(3);
    let region = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or_default();
    format!("arn:aws:lambda:{region}:{account}:function:{FUNCTION_NAME}")
}

/// What Lambda sends to a DynamoDB stream mapping's on-failure destination when it gives up on
/// a batch (its "invocation record", documented in the Lambda developer guide's "Retain
/// discarded records for a DynamoDB event source"): where the records are in the stream
/// (`DDBStreamBatchInfo`), not the records, which are read from the stream while it still holds
/// them. The batch is the one record given up (`batchSize` 1, its sequence number as the start
/// and the end); `approximateInvokeCount` counts the failed invocations it was first to fail
/// in; `responseContext.functionError` (`Unhandled`) is there when the last one answered with
/// an error rather than a failed record.
fn on_failure_record(
    shard_id: &str,
    stream_arn: &str,
    record: &Position,
    attempt: &Attempt,
    request_id: &str,
    now: DateTime<Utc>,
) -> Value {
    let arrival = record.arrival.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut response_context = json!({ "statusCode": 200, "executedVersion": "$LATEST" });
    if attempt.error
        && let Some(context) = response_context.as_object_mut()
    {
        context.insert("functionError".into(), json!("Unhandled"));
    }
    json!({
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn(stream_arn),
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": attempt.invocations,
        },
        "responseContext": response_context,
        "version": "1.0",
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": record.sequence_number,
            "endSequenceNumber": record.sequence_number,
            "approximateArrivalOfFirstRecord": arrival,
            "approximateArrivalOfLastRecord": arrival,
            "batchSize": 1,
            "streamArn": stream_arn,
        },
    })
}

/// How the shard is read again.
#[derive(Debug, Clone, Copy)]
enum Reposition {
    /// From the record on (a retry).
    At,
    /// From the record after it (the record given up).
    After,
}

struct Poller {
    reader: StreamReader,
    publisher: Publisher<SqsEventSink>,
    sqs: aws_sdk_sqs::Client,
    failure_queue_url: String,
    retries: Retries,
    counters: Arc<Counters>,
    stopped: watch::Receiver<bool>,
    retry_pause: Duration,
}

impl Poller {
    async fn run(mut self) {
        while !*self.stopped.borrow() {
            let batch = match self.reader.next_batch().await {
                Ok(Some(batch)) => batch,
                Ok(None) => {
                    if !wait(&mut self.stopped, IDLE_PAUSE).await {
                        break;
                    }
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "the table's stream could not be read");
                    if !wait(&mut self.stopped, self.retry_pause).await {
                        break;
                    }
                    continue;
                }
            };
            let shard_id = batch.shard_id;
            let records: Vec<Position> = batch
                .event
                .records
                .iter()
                .map(|record| Position {
                    sequence_number: record.change.sequence_number.clone().unwrap_or_default(),
                    arrival: record.change.approximate_creation_date_time,
                })
                .collect();
            let answer = match self.publisher.publish(batch.event).await {
                Ok(outcome) => {
                    self.counters
                        .published
                        .fetch_add(outcome.published as u64, Ordering::Relaxed);
                    outcome.retry_from.map_or(Answer::Done, Answer::Failed)
                }
                Err(error) => {
                    tracing::warn!(%error, %shard_id, "the publisher failed a stream batch");
                    Answer::Error
                }
            };
            let going_on = match self.retries.after(&shard_id, &records, answer) {
                Next::ReadOn { limit } => {
                    if let Some(limit) = limit {
                        self.reader.limit_next_batch(&shard_id, limit);
                    }
                    true
                }
                Next::Retry { attempt, limit } => self.retry(&shard_id, &attempt, limit).await,
                Next::GiveUp {
                    attempt,
                    record,
                    limit,
                } => self.give_up(&shard_id, &attempt, &record, limit).await,
            };
            if !going_on {
                break;
            }
        }
    }

    fn count_failed(&self, shard_id: &str, attempt: &Attempt) {
        self.counters
            .failed_attempts
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            shard_id,
            sequence_number = %attempt.sequence_number,
            invocations = attempt.invocations,
            retries = attempt.retries,
            maximum_retries = MAXIMUM_RETRY_ATTEMPTS,
            split = attempt.split,
            function_error = attempt.error,
            "stream batch failed at this record"
        );
    }

    /// Reads the shard again from the failed record after the pause; false if stopping.
    async fn retry(&mut self, shard_id: &str, attempt: &Attempt, limit: Option<usize>) -> bool {
        self.count_failed(shard_id, attempt);
        if !wait(&mut self.stopped, self.retry_pause).await {
            return false;
        }
        self.reposition(shard_id, &attempt.sequence_number, Reposition::At, limit)
            .await
    }

    /// Sends the on-failure record of `record` to the failure queue, then reads the shard on
    /// from the record after it; false if stopping. The record is skipped only once the
    /// failure queue has its on-failure record.
    async fn give_up(
        &mut self,
        shard_id: &str,
        attempt: &Attempt,
        record: &Position,
        limit: Option<usize>,
    ) -> bool {
        self.count_failed(shard_id, attempt);
        let body = on_failure_record(
            shard_id,
            self.reader.stream_arn(),
            record,
            attempt,
            &request_id(),
            Utc::now(),
        )
        .to_string();
        loop {
            match self
                .sqs
                .send_message()
                .queue_url(&self.failure_queue_url)
                .message_body(&body)
                .send()
                .await
            {
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(
                        error = %aws_adapters::describe(&error),
                        shard_id,
                        sequence_number = %record.sequence_number,
                        "the on-failure record could not be sent to the failure queue; \
                         sent again after a pause"
                    );
                    if !wait(&mut self.stopped, self.retry_pause).await {
                        return false;
                    }
                }
            }
        }
        self.counters
            .sent_to_failure_queue
            .fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            shard_id,
            start_sequence_number = %record.sequence_number,
            end_sequence_number = %record.sequence_number,
            approximate_invoke_count = attempt.invocations,
            failure_queue_url = %self.failure_queue_url,
            "stream record given up after {MAXIMUM_RETRY_ATTEMPTS} retries: \
             sent to the failure queue, its events not published"
        );
        self.reposition(shard_id, &record.sequence_number, Reposition::After, limit)
            .await
    }

    /// Reads the shard again at or after `sequence_number`, the next batch of at most `limit`
    /// records; tries again after a pause until it can (no record is skipped); false if
    /// stopping.
    async fn reposition(
        &mut self,
        shard_id: &str,
        sequence_number: &str,
        how: Reposition,
        limit: Option<usize>,
    ) -> bool {
        loop {
            let repositioned = match how {
                Reposition::At => self.reader.retry_from(shard_id, sequence_number).await,
                Reposition::After => self.reader.skip_past(shard_id, sequence_number).await,
            };
            match repositioned {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(
                        %error,
                        shard_id,
                        sequence_number,
                        "the stream could not be read again from this record; \
                         tried again after a pause"
                    );
                    if !wait(&mut self.stopped, self.retry_pause).await {
                        return false;
                    }
                }
            }
        }
        if let Some(limit) = limit {
            self.reader.limit_next_batch(shard_id, limit);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(sequence_number: &str) -> Position {
        Position {
            sequence_number: sequence_number.to_owned(),
            arrival: Utc.timestamp_opt(1_704_067_200, 0).unwrap(),
        }
    }

    fn batch(sequence_numbers: &[&str]) -> Vec<Position> {
        sequence_numbers.iter().map(|s| at(s)).collect()
    }

    fn attempt(sequence_number: &str, invocations: u32, retries: u32) -> Attempt {
        Attempt {
            sequence_number: sequence_number.to_owned(),
            invocations,
            retries,
            split: false,
            error: false,
        }
    }

    #[test]
    fn a_failed_record_is_retried_then_given_up_and_what_follows_is_read() {
        let mut retries = Retries::default();
        assert_eq!(
            retries.after("s", &batch(&["1", "2", "3"]), Answer::Failed("2".into())),
            Next::Retry {
                attempt: attempt("2", 1, 0),
                limit: Some(2),
            }
        );
        for retry in 1..MAXIMUM_RETRY_ATTEMPTS {
            assert_eq!(
                retries.after("s", &batch(&["2", "3"]), Answer::Failed("2".into())),
                Next::Retry {
                    attempt: attempt("2", retry + 1, retry),
                    limit: Some(2),
                }
            );
        }
        assert_eq!(
            retries.after("s", &batch(&["2", "3"]), Answer::Failed("2".into())),
            Next::GiveUp {
                attempt: attempt("2", MAXIMUM_RETRY_ATTEMPTS + 1, MAXIMUM_RETRY_ATTEMPTS),
                record: at("2"),
                limit: Some(1),
            }
        );
        assert_eq!(
            retries.after("s", &batch(&["3"]), Answer::Done),
            Next::ReadOn { limit: None }
        );
        assert!(retries.shards.is_empty());
    }

    #[test]
    fn retries_are_counted_per_record_and_shard() {
        let mut retries = Retries::default();
        retries.after("s", &batch(&["1", "2"]), Answer::Failed("1".into()));
        retries.after("t", &batch(&["1"]), Answer::Failed("1".into()));
        // Another record of the shard fails: its count starts.
        assert_eq!(
            retries.after("s", &batch(&["1", "2"]), Answer::Failed("2".into())),
            Next::Retry {
                attempt: attempt("2", 1, 0),
                limit: Some(1),
            }
        );
        // A record that went through starts again if it fails later.
        retries.after("s", &batch(&["2"]), Answer::Done);
        assert_eq!(
            retries.after("s", &batch(&["2", "3"]), Answer::Failed("2".into())),
            Next::Retry {
                attempt: attempt("2", 1, 0),
                limit: Some(2),
            }
        );
        assert_eq!(
            retries.after("t", &batch(&["1"]), Answer::Failed("1".into())),
            Next::Retry {
                attempt: attempt("1", 2, 1),
                limit: Some(1),
            }
        );
    }

    #[test]
    fn an_error_splits_the_batch_until_the_failing_record_is_alone() {
        let mut retries = Retries::default();
        let split = |sequence_number: &str, invocations| Attempt {
            split: true,
            error: true,
            ..attempt(sequence_number, invocations, 0)
        };
        assert_eq!(
            retries.after("s", &batch(&["1", "2", "3", "4"]), Answer::Error),
            Next::Retry {
                attempt: split("1", 1),
                limit: Some(2),
            }
        );
        // The first half fails too: halved again, still no retry used.
        assert_eq!(
            retries.after("s", &batch(&["1", "2"]), Answer::Error),
            Next::Retry {
                attempt: split("1", 2),
                limit: Some(1),
            }
        );
        assert_eq!(
            retries.after("s", &batch(&["1"]), Answer::Done),
            Next::ReadOn { limit: Some(1) }
        );
        // "2" alone fails: its retries count now.
        for retry in 0..MAXIMUM_RETRY_ATTEMPTS {
            assert_eq!(
                retries.after("s", &batch(&["2"]), Answer::Error),
                Next::Retry {
                    attempt: Attempt {
                        error: true,
                        ..attempt("2", retry + 1, retry)
                    },
                    limit: Some(1),
                }
            );
        }
        assert_eq!(
            retries.after("s", &batch(&["2"]), Answer::Error),
            Next::GiveUp {
                attempt: Attempt {
                    error: true,
                    ..attempt("2", MAXIMUM_RETRY_ATTEMPTS + 1, MAXIMUM_RETRY_ATTEMPTS)
                },
                record: at("2"),
                limit: Some(2),
            }
        );
        // The second half of the first split, then whole batches.
        assert_eq!(
            retries.after("s", &batch(&["3", "4"]), Answer::Done),
            Next::ReadOn { limit: None }
        );
        assert!(retries.shards.is_empty());
    }

    #[test]
    fn a_failed_record_not_in_the_batch_fails_it_whole() {
        let mut retries = Retries::default();
        assert_eq!(
            retries.after("s", &batch(&["1", "2", "3"]), Answer::Failed("9".into())),
            Next::Retry {
                attempt: Attempt {
                    split: true,
                    error: true,
                    ..attempt("1", 1, 0)
                },
                limit: Some(1),
            }
        );
    }

    #[test]
    fn a_short_page_leaves_the_rest_of_its_span_for_the_next_batch() {
        let mut retries = Retries::default();
        retries.after(
            "s",
            &batch(&["1", "2", "3", "4"]),
            Answer::Failed("2".into()),
        );
        assert_eq!(
            retries.after("s", &batch(&["2"]), Answer::Done),
            Next::ReadOn { limit: Some(2) }
        );
        assert_eq!(
            retries.after("s", &batch(&["3", "4"]), Answer::Done),
            Next::ReadOn { limit: None }
        );
    }

    #[test]
    fn the_on_failure_record_is_lambdas_for_a_dynamodb_stream() {
        let stream_arn =
            "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2024-01-01T00:00:00.000";
        let now = Utc.timestamp_opt(1_704_067_230, 717_000_000).unwrap();
        let record = Position {
            sequence_number: "1100000000017454423012".into(),
            arrival: Utc.timestamp_opt(1_704_067_219, 0).unwrap(),
        };
        let partial = attempt("1100000000017454423012", 11, 10);
        assert_eq!(
            on_failure_record("shardId-1", stream_arn, &record, &partial, "id", now),
            json!({
                "requestContext": {
                    "requestId": "id",
                    "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:publish-events",
                    "condition": "RetryAttemptsExhausted",
                    "approximateInvokeCount": 11,
                },
                "responseContext": { "statusCode": 200, "executedVersion": "$LATEST" },
                "version": "1.0",
                "timestamp": "2024-01-01T00:00:30.717Z",
                "DDBStreamBatchInfo": {
                    "shardId": "shardId-1",
                    "startSequenceNumber": "1100000000017454423012",
                    "endSequenceNumber": "1100000000017454423012",
                    "approximateArrivalOfFirstRecord": "2024-01-01T00:00:19Z",
                    "approximateArrivalOfLastRecord": "2024-01-01T00:00:19Z",
                    "batchSize": 1,
                    "streamArn": stream_arn,
                },
            })
        );
        let error = Attempt {
            error: true,
            ..partial
        };
        let errored = on_failure_record("shardId-1", stream_arn, &record, &error, "id", now);
        assert_eq!(errored["responseContext"]["functionError"], "Unhandled");
    }

    #[test]
    fn request_ids_are_shaped_like_lambdas() {
        let id = request_id();
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_ne!(id, request_id());
    }
}
