//! [`SqsEventSink`]: business events ([`domain::business_event`]) onto an SQS queue, a FIFO
//! queue in AWS (`template.yaml`, `EventsQueue`).
//!
//! `SendMessageBatch` of up to 10 events, in order, one batch after the other. Each message's
//! body is the event's JSON, with the message attributes `event_type`, `event_id` and
//! `out_trade_no` (absent when the event names no order), so that subscribers can filter
//! without parsing. On a FIFO queue (its name ends in `.fifo`):
//! - `MessageGroupId` is the order number: an order's events are delivered in order, orders
//!   in parallel;
//! - `MessageDeduplicationId` is the `event_id`: an event sent again within SQS's 5-minute
//!   deduplication window (a stream batch retried after a partial failure) is accepted but
//!   not delivered twice. Past that window, subscribers deduplicate by `event_id` themselves.
//!
//! A batch with failed entries stops the sending: the first failed entry is reported
//! ([`SinkError::first_unsent`]) and everything from it on is to be sent again, so an order's
//! events never overtake one another.

use crate::error::describe;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use domain::business_event::{EventMessage, EventSink, SinkError};

/// SQS's limit of entries per `SendMessageBatch`.
pub const MAX_BATCH: usize = 10;

#[derive(Debug, Clone)]
pub struct SqsEventSink {
    client: Client,
    queue_url: String,
    fifo: bool,
}

impl SqsEventSink {
    pub fn new(client: Client, queue_url: impl Into<String>) -> SqsEventSink {
        let queue_url = queue_url.into();
        SqsEventSink {
            client,
            fifo: queue_url.ends_with(".fifo"),
            queue_url,
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    fn entry(
        &self,
        index: usize,
        event: &EventMessage,
    ) -> Result<SendMessageBatchRequestEntry, String> {
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| e.to_string())
        };
        let mut entry = SendMessageBatchRequestEntry::builder()
            .id(index.to_string())
            .message_body(&event.body)
            .message_attributes("event_type", attribute(event.event_type.as_str())?)
            .message_attributes("event_id", attribute(&event.event_id)?);
        if let Some(no) = &event.out_trade_no {
            entry = entry.message_attributes("out_trade_no", attribute(no)?);
        }
        if self.fifo {
            entry = entry
                .message_group_id(&event.group)
                .message_deduplication_id(&event.event_id);
        }
        entry.build().map_err(|e| e.to_string())
    }

    /// Sends `chunk` (events `offset..`) as one batch.
    async fn send_batch(&self, offset: usize, chunk: &[EventMessage]) -> Result<(), SinkError> {
        let unsent = |first_unsent: usize, reason: String| SinkError {
            first_unsent,
            reason,
        };
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(index, event)| self.entry(index, event))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| unsent(offset, reason))?;
        let sent = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                let reason = describe(&e);
                tracing::warn!(operation = "send_events", outcome = "error", events = chunk.len(), error = %reason);
                unsent(offset, reason)
            })?;
        // The entries SQS refused, by position in the chunk; the earliest one counts.
        let first_failed = sent
            .failed()
            .iter()
            .filter_map(|entry| {
                let index = entry.id().parse::<usize>().ok()?;
                Some((index, entry, chunk.get(index)?))
            })
            .min_by_key(|(index, _, _)| *index);
        match first_failed {
            None if sent.failed().is_empty() => Ok(()),
            // A failure SQS did not tie to one of our entries: resend the whole chunk.
            None => Err(unsent(
                offset,
                format!("{} entries failed", sent.failed().len()),
            )),
            Some((index, entry, event)) => {
                let reason = format!(
                    "{}: {}",
                    entry.code(),
                    entry.message().unwrap_or("no message")
                );
                tracing::warn!(
                    operation = "send_events", outcome = "partial_failure",
                    event_id = %event.event_id, out_trade_no = event.out_trade_no.as_deref(),
                    failed = sent.failed().len(), error = %reason
                );
                Err(unsent(offset + index, reason))
            }
        }
    }
}

impl EventSink for SqsEventSink {
    async fn send(&self, events: &[EventMessage]) -> Result<(), SinkError> {
        for (batch, chunk) in events.chunks(MAX_BATCH).enumerate() {
            // Boxed like the store's requests: the SDK's futures are large.
            Box::pin(self.send_batch(batch * MAX_BATCH, chunk)).await?;
        }
        tracing::debug!(
            operation = "send_events",
            outcome = "sent",
            events = events.len()
        );
        Ok(())
    }
}
