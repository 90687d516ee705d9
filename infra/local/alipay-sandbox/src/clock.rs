//! The sandbox clock. Every sandbox deadline (order expiry, QR lifetime, 24 h cancel window,
//! delayed buyer confirmations, notification retries) is an instant on this clock, so one
//! `--time-scale N` (sandbox time runs N times faster than real time) and one
//! `advance` control compress all of them consistently. Times on the wire (`gmt_create`,
//! `notify_time`, …) are read off this clock too.

use chrono::{DateTime, TimeDelta, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// How far `advance` can move the clock in all (a thousand years): far enough for any test,
/// near enough that date arithmetic never overflows.
pub const MAX_ADVANCE_MS: i64 = 1000 * 366 * 86_400 * 1000;

#[derive(Debug)]
pub struct Clock {
    origin_real: Instant,
    origin: DateTime<Utc>,
    scale: f64,
    /// Milliseconds added by [`Clock::advance`].
    advanced_ms: AtomicI64,
}

impl Clock {
    /// A clock that reads `origin` now and runs `scale` times faster than real time.
    pub fn new(origin: DateTime<Utc>, scale: f64) -> Self {
        Clock {
            origin_real: Instant::now(),
            origin,
            scale,
            advanced_ms: AtomicI64::new(0),
        }
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    pub fn now(&self) -> DateTime<Utc> {
        let elapsed_ms = self.origin_real.elapsed().as_secs_f64() * 1000.0 * self.scale;
        let advanced = self.advanced_ms.load(Ordering::SeqCst);
        let offset = TimeDelta::milliseconds((elapsed_ms as i64).saturating_add(advanced));
        self.origin
            .checked_add_signed(offset)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Moves sandbox time forward (never backward) by `by`, up to [`MAX_ADVANCE_MS`] in all.
    pub fn advance(&self, by: TimeDelta) {
        let ms = by.num_milliseconds().max(0);
        let _ = self
            .advanced_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |advanced| {
                Some(advanced.saturating_add(ms).min(MAX_ADVANCE_MS))
            });
    }

    /// Real time until the sandbox clock reads `deadline` (zero if it already has).
    pub fn real_until(&self, deadline: DateTime<Utc>) -> Duration {
        let sandbox_ms = (deadline - self.now()).num_milliseconds();
        if sandbox_ms <= 0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(sandbox_ms as f64 / 1000.0 / self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_time_runs_faster_and_advance_adds() {
        let origin = DateTime::<Utc>::UNIX_EPOCH;
        let clock = Clock::new(origin, 1000.0);
        std::thread::sleep(Duration::from_millis(20));
        let elapsed = clock.now() - origin;
        assert!(elapsed >= TimeDelta::seconds(20), "{elapsed}");
        clock.advance(TimeDelta::hours(1));
        assert!(clock.now() - origin >= TimeDelta::seconds(3620));
        let wait = clock.real_until(clock.now() + TimeDelta::seconds(10));
        assert!(wait <= Duration::from_millis(10), "{wait:?}");
    }
}
