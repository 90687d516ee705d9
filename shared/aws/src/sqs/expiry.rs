//! [`SqsExpiryScheduler`]: tells the timeout-close function when an order is due.
//!
//! One `SendMessage` per scheduling to the expiry queue (a standard queue), body
//! [`ExpiryMessage`] as JSON, `{"out_trade_no": "...", "due_at": "<RFC 3339>"}`, and
//! `DelaySeconds` = the seconds left until `due_at`, rounded up, clamped to 0..=900. A message
//! sent before its order's claim is written also names that claim: `"claim": {"claimed_at":
//! "<RFC 3339>", "request_hash": "..."}` ([`ExpiryScheduler::schedule_claim`]).
//!
//! # The chained contract
//! SQS delays a message by 900 s (15 min) at most, and orders may expire later than that. So
//! a message can arrive before its order is due. The timeout-close function, on receiving a
//! message:
//! - if [`ExpiryMessage::is_due`] is false, schedules the same `(out_trade_no, due_at)` again
//!   ([`ExpiryScheduler::schedule`] computes the remaining delay) and acknowledges the
//!   message: each link of the chain waits up to 900 s more, until the due time;
//! - otherwise closes the order if it is still open (a conditional transition).
//!
//! Duplicates are harmless by design: SQS delivers at least once, and a retried `schedule`
//! sends a second message; the order's conditional transitions make the second close a
//! no-op. So messages carry no deduplication id or attributes.

use crate::error::describe;
use aws_sdk_sqs::Client;
use chrono::{DateTime, Utc};
use domain::OutTradeNo;
use domain::ports::{ClaimRef, ExpiryScheduler, ScheduleError};
use serde::{Deserialize, Serialize};

/// SQS's maximum `DelaySeconds`.
pub const MAX_DELAY_SECONDS: i32 = 900;

/// The body of an expiry message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiryMessage {
    pub out_trade_no: OutTradeNo,
    /// When the order is due to be closed.
    pub due_at: DateTime<Utc>,
    /// Set when the message was sent before its order's claim was written: the claim it is
    /// for ([`ExpiryScheduler::schedule_claim`]). Absent from the JSON otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<ClaimRef>,
}

impl ExpiryMessage {
    pub fn parse(body: &str) -> Result<ExpiryMessage, serde_json::Error> {
        serde_json::from_str(body)
    }

    pub fn to_body(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Whether the order is due: if not, the message arrived early and is scheduled again.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.due_at <= now
    }

    /// The delay to send this message with at `now`.
    pub fn delay_seconds(&self, now: DateTime<Utc>) -> i32 {
        delay_seconds(self.due_at, now)
    }
}

/// Seconds from `now` until `due_at`, rounded up (so the message never arrives before its
/// time because of rounding), 0 if due, at most [`MAX_DELAY_SECONDS`].
pub fn delay_seconds(due_at: DateTime<Utc>, now: DateTime<Utc>) -> i32 {
    let millis = due_at.signed_duration_since(now).num_milliseconds();
    if millis <= 0 {
        return 0;
    }
    let seconds = millis.saturating_add(999) / 1000;
    i32::try_from(seconds.min(i64::from(MAX_DELAY_SECONDS))).unwrap_or(MAX_DELAY_SECONDS)
}

#[derive(Debug, Clone)]
pub struct SqsExpiryScheduler {
    client: Client,
    queue_url: String,
}

impl SqsExpiryScheduler {
    pub fn new(client: Client, queue_url: impl Into<String>) -> SqsExpiryScheduler {
        SqsExpiryScheduler {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

impl ExpiryScheduler for SqsExpiryScheduler {
    async fn enqueue(
        &self,
        out_trade_no: &OutTradeNo,
        due_at: DateTime<Utc>,
        claim: Option<&ClaimRef>,
    ) -> Result<(), ScheduleError> {
        let for_claim = claim.is_some();
        let message = ExpiryMessage {
            out_trade_no: out_trade_no.clone(),
            due_at,
            claim: claim.cloned(),
        };
        let body = message
            .to_body()
            .map_err(|e| ScheduleError(format!("expiry of order {out_trade_no}: {e}")))?;
        let delay = message.delay_seconds(Utc::now());
        let sent = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(delay)
            .send()
            .await;
        match sent {
            Ok(_) => {
                tracing::info!(%out_trade_no, operation = "schedule_expiry", outcome = "sent", %due_at, delay_seconds = delay, for_claim);
                Ok(())
            }
            Err(err) => {
                tracing::warn!(%out_trade_no, operation = "schedule_expiry", outcome = "error", error = %describe(&err));
                Err(ScheduleError(format!(
                    "expiry of order {out_trade_no}: {}",
                    describe(&err)
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000, 0).unwrap() + Duration::milliseconds(seconds)
    }

    #[test]
    fn delays_round_up_and_clamp_to_what_sqs_allows() {
        assert_eq!(delay_seconds(at(10_000), at(0)), 10);
        assert_eq!(delay_seconds(at(9_001), at(0)), 10);
        assert_eq!(delay_seconds(at(1), at(0)), 1);
        assert_eq!(delay_seconds(at(0), at(0)), 0);
        assert_eq!(delay_seconds(at(-5_000), at(0)), 0);
        assert_eq!(delay_seconds(at(900_000), at(0)), 900);
        assert_eq!(delay_seconds(at(7_200_000), at(0)), 900);
    }

    #[test]
    fn the_body_is_the_documented_json() {
        let mut message = ExpiryMessage {
            out_trade_no: OutTradeNo::parse("T1").unwrap(),
            due_at: Utc.with_ymd_and_hms(2024, 1, 1, 0, 15, 0).unwrap(),
            claim: None,
        };
        let body = message.to_body().unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"out_trade_no": "T1", "due_at": "2024-01-01T00:15:00Z"})
        );
        assert_eq!(ExpiryMessage::parse(&body).unwrap(), message);
        assert!(!message.is_due(message.due_at - Duration::seconds(1)));
        assert!(message.is_due(message.due_at));

        message.claim = Some(ClaimRef {
            claimed_at: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            request_hash: "ab12".into(),
        });
        let body = message.to_body().unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"out_trade_no": "T1", "due_at": "2024-01-01T00:15:00Z",
                "claim": {"claimed_at": "2024-01-01T00:00:00Z", "request_hash": "ab12"}})
        );
        assert_eq!(ExpiryMessage::parse(&body).unwrap(), message);
    }
}
