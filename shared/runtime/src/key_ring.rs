//! [`KeyRing`]: the merchant API keys requests are checked against.
//!
//! Keys kept in Secrets Manager are read again once the refresh interval
//! (`MERCHANT_API_KEYS_REFRESH_SECONDS`) has passed since the last read, so a key removed from
//! the secret (a leaked one) is refused, and a key added is accepted, within that interval and
//! without a redeploy. The read happens on the request path, by the first request that finds
//! the keys due; requests arriving meanwhile do not wait for it and use the keys at hand. A
//! failed read keeps the last good keys (a warning, without any secret, and the
//! `merchant_keys_refresh_failed` metric) and is tried again by a later request. Keys from a
//! file or given inline (local runs, tests) stay as read at start.
//!
//! Time is the `now` the handler passes (its clock), so tests can move it. Hand-written: a
//! locked snapshot and a try-lock for the one reader are all it takes, less code than setting
//! up a cache crate to keep a stale entry when a read fails.

use crate::telemetry;
use aws_adapters::{SecretError, SecretsLoader};
use chrono::{DateTime, TimeDelta, Utc};
use domain::auth::{KeysError, MerchantKeys};
use secrecy::ExposeSecret;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How soon a failed read is tried again (at most the refresh interval): soon enough to pick
/// up a repaired secret, without making request after request wait on a failing Secrets
/// Manager.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// Why the merchant API keys could not be read. Neither variant carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error(transparent)]
    Read(#[from] SecretError),
    #[error(transparent)]
    Invalid(#[from] KeysError),
}

/// The current merchant API keys; clones share them.
#[derive(Debug, Clone)]
pub struct KeyRing(Arc<Ring>);

#[derive(Debug)]
enum Ring {
    Fixed(Arc<MerchantKeys>),
    Refreshed(Refreshed),
}

#[derive(Debug)]
struct Refreshed {
    loader: SecretsLoader,
    arn: String,
    every: Duration,
    held: Mutex<Held>,
    /// Held by the one request that is reading the secret.
    reading: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Held {
    keys: Arc<MerchantKeys>,
    /// When the secret was last read (or a read last failed).
    read_at: DateTime<Utc>,
    /// When it is to be read again.
    due_at: DateTime<Utc>,
}

impl KeyRing {
    /// Keys that never change (read from a file or given inline).
    pub fn fixed(keys: MerchantKeys) -> KeyRing {
        KeyRing(Arc::new(Ring::Fixed(Arc::new(keys))))
    }

    /// Reads the keys from the secret `arn` now (so a cold start still fails on an unreadable
    /// secret), then again once `every` has passed since the last read.
    pub async fn from_secret(
        loader: SecretsLoader,
        arn: impl Into<String>,
        every: Duration,
        now: DateTime<Utc>,
    ) -> Result<KeyRing, KeyRingError> {
        let arn = arn.into();
        let keys = read(&loader, &arn).await?;
        Ok(KeyRing(Arc::new(Ring::Refreshed(Refreshed {
            loader,
            arn,
            every,
            held: Mutex::new(Held {
                keys: Arc::new(keys),
                read_at: now,
                due_at: after(now, every),
            }),
            reading: tokio::sync::Mutex::new(()),
        }))))
    }

    /// The keys to check a request received at `now` against.
    pub async fn current(&self, now: DateTime<Utc>) -> Arc<MerchantKeys> {
        match &*self.0 {
            Ring::Fixed(keys) => keys.clone(),
            Ring::Refreshed(ring) => ring.current(now).await,
        }
    }
}

impl Refreshed {
    async fn current(&self, now: DateTime<Utc>) -> Arc<MerchantKeys> {
        let (keys, due) = self.look(now);
        if !due {
            return keys;
        }
        let Ok(_reading) = self.reading.try_lock() else {
            return keys;
        };
        // Another request may have read the secret between the look and the lock.
        let (keys, due) = self.look(now);
        if !due {
            return keys;
        }
        match read(&self.loader, &self.arn).await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                *self.held() = Held {
                    keys: fresh.clone(),
                    read_at: now,
                    due_at: after(now, self.every),
                };
                fresh
            }
            Err(error) => {
                tracing::warn!(
                    arn = %self.arn,
                    %error,
                    "the merchant API keys could not be read again; the last good keys stay in use"
                );
                telemetry::count("merchant_keys_refresh_failed");
                *self.held() = Held {
                    keys: keys.clone(),
                    read_at: now,
                    due_at: after(now, self.every.min(RETRY_AFTER_FAILURE)),
                };
                keys
            }
        }
    }

    /// The keys held, and whether they are due to be read again (also when the clock went
    /// back past the last read).
    fn look(&self, now: DateTime<Utc>) -> (Arc<MerchantKeys>, bool) {
        let held = self.held();
        (held.keys.clone(), now >= held.due_at || now < held.read_at)
    }

    /// The state is replaced whole, so a panic elsewhere cannot leave it half-written: a
    /// poisoned lock is still good to use.
    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn read(loader: &SecretsLoader, arn: &str) -> Result<MerchantKeys, KeyRingError> {
    let text = loader.load(arn).await?;
    Ok(MerchantKeys::from_json(text.expose_secret())?)
}

/// `now + delay`, saturating (the configured interval is small; this only avoids a panic).
fn after(now: DateTime<Utc>, delay: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(delay)
        .ok()
        .and_then(|delay| now.checked_add_signed(delay))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
