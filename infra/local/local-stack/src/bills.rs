//! What AWS does around the bill functions, done locally: the schedule runs bill-fetch (every
//! [`SCHEDULE_EVERY`], as EventBridge runs it hourly in the Beijing morning; and on demand at
//! `POST /_local/bill-fetch` with `{"date": "yyyy-MM-dd"}`), and the bucket's event
//! notification runs reconcile for every new object under `bills/` (S3 invokes it
//! asynchronously: a failed delivery is tried again, three times in all, as Lambda does).

use aws_adapters::{DynamoOrderStore, S3Objects};
use aws_lambda_events::event::s3::{S3Entity, S3Event, S3EventRecord, S3Object};
use bill_fetch::BillFetcher;
use domain::bills::BILLS_PREFIX;
use f2f_runtime::SystemClock;
use reconcile::Reconciler;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The bill bucket's name in the emulator.
pub const BILL_BUCKET: &str = "alipay-f2f-bills";
/// How often the schedule runs bill-fetch for yesterday.
pub const SCHEDULE_EVERY: Duration = Duration::from_secs(3600);
/// How often the bucket is looked at for new bills.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Deliveries of one object's event before it is given up (Lambda's asynchronous retries).
const DELIVERIES: u32 = 3;

pub type Fetcher = BillFetcher<alipay::client::AlipayClient, S3Objects, SystemClock>;
pub type Reconcile = Reconciler<DynamoOrderStore, S3Objects, SystemClock>;

/// Runs bill-fetch for yesterday now and then every [`SCHEDULE_EVERY`] until `stop`.
pub async fn schedule(fetcher: Arc<Fetcher>, mut stop: watch::Receiver<bool>) {
    loop {
        match fetcher.handle(&serde_json::json!({})).await {
            Ok(fetched) => tracing::info!(?fetched, "scheduled bill-fetch"),
            Err(error) => tracing::warn!(%error, "scheduled bill-fetch failed"),
        }
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(SCHEDULE_EVERY) => {}
        }
    }
}

/// Delivers an `ObjectCreated` event to reconcile for every new (or rewritten) object under
/// `bills/`, until `stop`.
pub async fn deliver(
    objects: S3Objects,
    reconciler: Arc<Reconcile>,
    mut stop: watch::Receiver<bool>,
) {
    // Key → (ETag, deliveries so far) of every object seen.
    let mut seen: HashMap<String, (String, u32)> = HashMap::new();
    loop {
        match objects.list(BILLS_PREFIX).await {
            Err(error) => tracing::warn!(%error, "bill bucket: listing failed"),
            Ok(listed) => {
                for (key, etag) in listed {
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
