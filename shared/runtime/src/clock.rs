//! The real clock.

use chrono::{DateTime, Utc};
use std::time::Duration;

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl domain::ports::Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}
