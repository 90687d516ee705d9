//! One notification (one `notify_id`) and the log of its delivery attempts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Sandbox-internal id (control API, ordering).
    pub id: u64,
    /// Stable across every retry of this notification.
    pub notify_id: String,
    pub out_trade_no: String,
    pub trade_status: String,
    pub url: String,
    /// What is sent, in order, except `notify_time` (set per attempt) and `sign`/`sign_type`.
    pub fields: Vec<(String, String)>,
    pub gbk: bool,
    pub bad_signature: bool,
    pub duplicates: bool,
    /// An older notification delivered after a newer one (switch `out_of_order`).
    pub stale: bool,
    /// The stale notification to deliver right after this one's first attempt.
    pub follow_up: Option<u64>,
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due (sandbox time); `None` when none is planned.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub in_flight: bool,
    /// Acknowledged with `success`.
    pub delivered: bool,
    /// Every attempt of the schedule failed.
    pub gave_up: bool,
    /// Attempt rounds made so far (with `duplicates`, one round sends two requests).
    pub rounds: usize,
    pub attempts: Vec<Attempt>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first attempt, 2 for the first retry, …
    pub round: usize,
    /// 1, or 2 for the duplicate copy.
    pub copy: u8,
    /// Sandbox time of the attempt.
    pub at: DateTime<Utc>,
    /// The `notify_time` that was sent.
    pub notify_time: String,
    pub url: String,
    pub http_status: Option<u16>,
    /// The receiver's answer, truncated.
    pub response_body: String,
    /// Transport error, if the request failed before an HTTP answer.
    pub error: Option<String>,
    /// HTTP 200 with a body of exactly `success`.
    pub success: bool,
}

impl Notification {
    /// Whether the scheduler should send an attempt now.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        !self.in_flight
            && !self.delivered
            && !self.gave_up
            && self.next_attempt_at.is_some_and(|at| at <= now)
    }

    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}
