//! What AWS does around the bill functions, done locally: the schedule runs bill-fetch at the
//! template's times (`cron(5 9-12 * * ? *)`, Asia/Shanghai: [`SCHEDULE_MINUTE`] past each of
//! [`SCHEDULE_HOURS`] Beijing time; and on demand at `POST /_local/bill-fetch` with
//! `{"date": "yyyy-MM-dd"}`), and the bucket's event notification runs reconcile for every
//! new object under [`NOTIFICATION_PREFIX`] (S3 invokes it asynchronously: a failed delivery
//! is tried again, three times in all, as Lambda does). The bucket is listed every
//! [`POLL_EVERY`] where S3 would notify at once.
//!
//! The constants here are the local side of the drift test (`tests/drift.rs`), which compares
//! them with the template.

use aws_adapters::{DynamoOrderStore, S3Objects};
use aws_lambda_events::event::s3::{S3Entity, S3Event, S3EventRecord, S3Object};
use bill_fetch::BillFetcher;
use chrono::{DateTime, Duration as Span, FixedOffset, Utc};
use f2f_runtime::SystemClock;
use reconcile::Reconciler;
use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The bill bucket's name in the emulator.
pub const BILL_BUCKET: &str = "alipay-f2f-bills";
/// The minute of each scheduled run.
pub const SCHEDULE_MINUTE: u32 = 5;
/// The hours (in [`SCHEDULE_TIMEZONE`]) of the scheduled runs.
pub const SCHEDULE_HOURS: RangeInclusive<u32> = 9..=12;
/// The schedule's time zone (no daylight saving time: always UTC+8).
pub const SCHEDULE_TIMEZONE: &str = "Asia/Shanghai";
const SCHEDULE_UTC_OFFSET_SECONDS: i32 = 8 * 3600;
/// The events of the bucket's notification that run reconcile.
pub const NOTIFICATION_EVENTS: &str = "s3:ObjectCreated:*";
/// The key prefix of the bucket's notification.
pub const NOTIFICATION_PREFIX: &str = domain::bills::BILLS_PREFIX;
/// The key suffix of the bucket's notification (none: `trade.zip` and `empty.json` both).
pub const NOTIFICATION_SUFFIX: Option<&str> = None;
/// How often the bucket is looked at for new bills.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// Deliveries of one object's event before it is given up (Lambda's asynchronous retries).
const DELIVERIES: u32 = 3;

/// The first scheduled run strictly after `after`.
pub fn next_run(after: DateTime<Utc>) -> DateTime<Utc> {
    let Some(zone) = FixedOffset::east_opt(SCHEDULE_UTC_OFFSET_SECONDS) else {
        return after + Span::hours(1);
    };
    let local = after.with_timezone(&zone);
    let mut day = local.date_naive();
    // Today's runs, then tomorrow's: the first one after `after`.
    for _ in 0..2 {
        for hour in SCHEDULE_HOURS {
            let run = day
                .and_hms_opt(hour, SCHEDULE_MINUTE, 0)
                .and_then(|run| run.and_local_timezone(zone).single());
            if let Some(run) = run.filter(|run| *run > local) {
                return run.with_timezone(&Utc);
            }
        }
        day = day.succ_opt().unwrap_or(day);
    }
    after + Span::hours(1)
}

pub type Fetcher = BillFetcher<alipay::client::AlipayClient, S3Objects, SystemClock>;
pub type Reconcile = Reconciler<DynamoOrderStore, S3Objects, SystemClock>;

/// Runs bill-fetch for yesterday at every scheduled time ([`next_run`]) until `stop`.
pub async fn schedule(fetcher: Arc<Fetcher>, mut stop: watch::Receiver<bool>) {
    loop {
        let now = Utc::now();
        let next = next_run(now);
        tracing::debug!(next = %next, "next scheduled bill-fetch");
        let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(wait) => {}
        }
        match fetcher.handle(&serde_json::json!({})).await {
            Ok(fetched) => tracing::info!(?fetched, "scheduled bill-fetch"),
            Err(error) => tracing::warn!(%error, "scheduled bill-fetch failed"),
        }
    }
}

/// Whether an object's creation runs reconcile (the notification's filter).
pub fn notifies(key: &str) -> bool {
    key.starts_with(NOTIFICATION_PREFIX)
        && NOTIFICATION_SUFFIX.is_none_or(|suffix| key.ends_with(suffix))
}

/// Delivers an `ObjectCreated` event to reconcile for every new (or rewritten) object the
/// notification's filter takes ([`notifies`]), until `stop`.
pub async fn deliver(
    objects: S3Objects,
    reconciler: Arc<Reconcile>,
    mut stop: watch::Receiver<bool>,
) {
    // Key → (ETag, deliveries so far) of every object seen.
    let mut seen: HashMap<String, (String, u32)> = HashMap::new();
    loop {
        match objects.list(NOTIFICATION_PREFIX).await {
            Err(error) => tracing::warn!(%error, "bill bucket: listing failed"),
            Ok(listed) => {
                for (key, etag) in listed.into_iter().filter(|(key, _)| notifies(key)) {
                    let deliveries = match seen.get(&key) {
                        Some((known, n)) if *known == etag => *n,
                        _ => 0,
                    };
                    if deliveries == u32::MAX || deliveries >= DELIVERIES {
                        continue;
                    }
                    let event = created(objects.bucket(), &key);
                    let next = match reconcile::handle_event(&reconciler, &event).await {
                        Ok(()) => u32::MAX,
                        Err(error) => {
                            tracing::error!(%error, key, attempt = deliveries + 1, "reconcile failed");
                            deliveries + 1
                        }
                    };
                    seen.insert(key, (etag, next));
                }
            }
        }
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
}

/// The S3 notification for one created object.
fn created(bucket: &str, key: &str) -> S3Event {
    let mut object = S3Object::default();
    object.key = Some(key.to_owned());
    let mut entity = S3Entity::default();
    entity.bucket.name = Some(bucket.to_owned());
    entity.object = object;
    let mut record = S3EventRecord::default();
    record.event_source = Some("aws:s3".to_owned());
    record.event_name = Some("ObjectCreated:Put".to_owned());
    record.s3 = entity;
    let mut event = S3Event::default();
    event.records.push(record);
    event
}
