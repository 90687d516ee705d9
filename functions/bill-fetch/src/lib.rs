//! The `bill-fetch` function: stores Alipay's trade bill of one Beijing day (by default
//! yesterday) in the bill bucket, where its arrival starts `reconcile`.
//!
//! Bills exist only from about 09:00 Beijing of the next day, so the schedule runs hourly in
//! the morning and every run is idempotent (a day already stored is not fetched again):
//!
//! | Alipay answers | before the deadline | after it |
//! | --- | --- | --- |
//! | a download URL | download it (within its ~30 s life: on a failure a fresh URL is asked for, never the same one reused) and store the ZIP unchanged, with its size, SHA-256, day and source as metadata | same |
//! | `isp.bill_not_exist` | not yet: the next run asks again | the day had no trades: an empty-day marker is stored (reconciled as a day without rows) and `bill_missing_after_deadline` is counted (alarmed) |
//! | anything else | an error: the run fails and the next one asks again | same |
//!
//! An empty day that Alipay answers with `bill_file_code=EMPTY_DATA_WITH_BILL_FILE` comes with
//! a file; it is stored like any bill.

use alipay::api::{BillDownloadUrlRequest, BillDownloadUrlResponse};
use alipay::client::{AlipayClient, BillDownloadError};
use alipay::outcome::Outcome;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use domain::bills::BillKey;
use domain::converge::{describe_rejection, describe_unknown};
use domain::ports::{Clock, ObjectError, ObjectStore};
use f2f_runtime::telemetry::count;
use sha2::{Digest, Sha256};
use std::future::Future;

/// Alipay's code for a day whose bill file is empty (no trades).
pub const EMPTY_DATA_WITH_BILL_FILE: &str = "EMPTY_DATA_WITH_BILL_FILE";
/// Download URLs asked for per run (each one is used once).
const URL_ATTEMPTS: usize = 2;

/// Alipay's bill endpoints, as this function uses them.
pub trait BillSource: Send + Sync {
    fn download_url(
        &self,
        day: NaiveDate,
    ) -> impl Future<Output = Outcome<BillDownloadUrlResponse>> + Send;
    fn download(
        &self,
        url: &str,
    ) -> impl Future<Output = Result<Vec<u8>, BillDownloadError>> + Send;
}

impl BillSource for AlipayClient {
    async fn download_url(&self, day: NaiveDate) -> Outcome<BillDownloadUrlResponse> {
        Box::pin(self.bill_download_url(&BillDownloadUrlRequest::trade_day(day))).await
    }

    async fn download(&self, url: &str) -> Result<Vec<u8>, BillDownloadError> {
        Box::pin(self.download_bill(url)).await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Beijing hour of the day after the bill's day from which a missing bill means an empty
    /// day (and is alarmed).
    pub deadline_hour: u32,
}

/// What one run did (also the invocation's result, for a manual run).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Fetched {
    /// The bill was stored now.
    Stored { key: String, bytes: u64 },
    /// The day was stored before (a bill or an empty-day marker): nothing to do.
    AlreadyStored { key: String },
    /// Alipay has no bill yet; the next run asks again.
    NotYet,
    /// Past the deadline without a bill: stored as an empty day.
    EmptyDay { key: String },
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("Alipay did not give a bill URL: {0}")]
    Alipay(String),
    #[error("the bill could not be downloaded: {0}")]
    Download(#[from] BillDownloadError),
    #[error(transparent)]
    Objects(#[from] ObjectError),
    #[error("the event names no valid day: {0}")]
    BadDay(String),
}

/// Lambda reports this as the invocation's error type, so alarms can tell causes apart.
impl From<FetchError> for lambda_runtime::Diagnostic {
    fn from(error: FetchError) -> Self {
        let error_type = match error {
            FetchError::Alipay(_) => "AlipayUnavailable",
            FetchError::Download(_) => "DownloadFailed",
            FetchError::Objects(_) => "ObjectStoreUnavailable",
            FetchError::BadDay(_) => "BadDay",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

pub struct BillFetcher<B, O, C> {
    pub alipay: B,
    pub objects: O,
    pub clock: C,
    pub schedule: Schedule,
}

impl<B: BillSource, O: ObjectStore, C: Clock> BillFetcher<B, O, C> {
    /// The day an event asks for: `{"date": "yyyy-MM-dd"}` (a manual run, at the top level or
    /// in a scheduled event's `detail`), or else yesterday in Beijing.
    pub fn day_of(&self, event: &serde_json::Value) -> Result<NaiveDate, FetchError> {
        let given = event
            .get("date")
            .or_else(|| event.get("detail").and_then(|d| d.get("date")))
            .and_then(serde_json::Value::as_str);
        match given {
            Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| FetchError::BadDay(text.chars().take(32).collect())),
            None => Ok(domain::beijing_day(self.clock.now()) - Duration::days(1)),
        }
    }

    /// One invocation: the day the event names (or yesterday), fetched.
    pub async fn handle(&self, event: &serde_json::Value) -> Result<Fetched, FetchError> {
        let day = self.day_of(event)?;
        let fetched = self.fetch(day).await?;
        tracing::info!(day = %day, outcome = ?fetched, "bill fetch");
        Ok(fetched)
    }

    /// Stores the bill of `day` unless it is stored already.
    pub async fn fetch(&self, day: NaiveDate) -> Result<Fetched, FetchError> {
        let key = BillKey::trade(day);
        let empty = BillKey::empty(day);
        for stored in [&key, &empty] {
            if self.objects.exists(stored).await? {
                return Ok(Fetched::AlreadyStored {
                    key: stored.clone(),
                });
            }
        }
        let mut last_error = None;
        for _ in 0..URL_ATTEMPTS {
            let answer = match self.alipay.download_url(day).await {
                Outcome::Success(answer) => answer,
                Outcome::Failed(failure) if failure.sub_code_is("isp.bill_not_exist") => {
                    return self.not_there(day, empty).await;
                }
                Outcome::Failed(failure) => {
                    return Err(FetchError::Alipay(failure.sub_code.unwrap_or(failure.code)));
                }
                Outcome::WaitingForBuyer(_) => return Err(FetchError::Alipay("unexpected".into())),
                Outcome::Unknown(cause) => {
                    return Err(FetchError::Alipay(describe_unknown(&cause)));
                }
                Outcome::Rejected(rejection) => {
                    return Err(FetchError::Alipay(describe_rejection(&rejection)));
                }
            };
            // Each URL is used once: a failed download asks for a fresh one.
            match self.alipay.download(&answer.bill_download_url).await {
                Ok(zip) => return self.store(day, key, zip, &answer).await,
                Err(error) => {
                    tracing::warn!(%error, "bill download failed; asking for a fresh URL");
                    last_error = Some(error);
                }
            }
        }
        Err(FetchError::Download(last_error.unwrap_or(
            BillDownloadError::Connection("no attempt".into()),
        )))
    }

    async fn store(
        &self,
        day: NaiveDate,
        key: String,
        zip: Vec<u8>,
        answer: &BillDownloadUrlResponse,
    ) -> Result<Fetched, FetchError> {
        let bytes = zip.len() as u64;
        let sha256: String = Sha256::digest(&zip)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let metadata = [
            ("bill-date", day.format("%Y-%m-%d").to_string()),
            ("bill-type", "trade".to_owned()),
            ("size", bytes.to_string()),
            ("sha256", sha256),
            (
                "source",
                "alipay.data.dataservice.bill.downloadurl.query".to_owned(),
            ),
            (
                "bill-file-code",
                answer.bill_file_code.clone().unwrap_or_default(),
            ),
        ];
        self.objects
            .put(&key, zip, "application/zip", &metadata)
            .await?;
        count("bill_stored");
        tracing::info!(key, bytes, "bill stored");
        Ok(Fetched::Stored { key, bytes })
    }

    /// `isp.bill_not_exist`: not yet, or (past the deadline) an empty day.
    async fn not_there(&self, day: NaiveDate, empty: String) -> Result<Fetched, FetchError> {
        let now = self.clock.now();
        if now < self.deadline(day) {
            count("bill_not_ready");
            tracing::info!(day = %day, "the bill is not ready yet");
            return Ok(Fetched::NotYet);
        }
        count("bill_missing_after_deadline");
        tracing::warn!(day = %day, "no bill after the deadline: recorded as a day without trades");
        let marker = serde_json::json!({
            "day": day,
            "reason": "isp.bill_not_exist after the deadline",
            "recorded_at": now.to_rfc3339(),
        });
        self.objects
            .put(
                &empty,
                serde_json::to_vec_pretty(&marker).unwrap_or_default(),
                "application/json",
                &[("bill-date", day.format("%Y-%m-%d").to_string())],
            )
            .await?;
        Ok(Fetched::EmptyDay { key: empty })
    }

    /// `deadline_hour`:00 Beijing time on the day after `day`.
    pub fn deadline(&self, day: NaiveDate) -> DateTime<Utc> {
        let next = day + Duration::days(1);
        let time = NaiveTime::from_hms_opt(self.schedule.deadline_hour.min(23), 0, 0)
            .unwrap_or(NaiveTime::MIN);
        let beijing = chrono::FixedOffset::east_opt(8 * 3600);
        beijing
            .and_then(|tz| tz.from_local_datetime(&next.and_time(time)).single())
            .map_or_else(
                || Utc.from_utc_datetime(&next.and_time(time)),
                |t| t.with_timezone(&Utc),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Hands out numbered URLs; the downloads of the first `expired` URLs fail with 410.
    #[derive(Default)]
    struct Alipay {
        urls: Mutex<Vec<String>>,
        expired: usize,
    }

    impl BillSource for Alipay {
        async fn download_url(&self, _day: NaiveDate) -> Outcome<BillDownloadUrlResponse> {
            let mut urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
            let url = format!("https://bills.example/{}", urls.len());
            urls.push(url.clone());
            Outcome::Success(BillDownloadUrlResponse {
                bill_download_url: url,
                bill_file_code: None,
            })
        }
        async fn download(&self, url: &str) -> Result<Vec<u8>, BillDownloadError> {
            let index: usize = url
                .rsplit('/')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if index < self.expired {
                Err(BillDownloadError::HttpStatus(410))
            } else {
                Ok(b"PK zip".to_vec())
            }
        }
    }

    /// An object's body and metadata.
    type Stored = (Vec<u8>, Vec<(String, String)>);

    #[derive(Default)]
    struct Objects(Mutex<BTreeMap<String, Stored>>);

    impl ObjectStore for Objects {
        async fn exists(&self, key: &str) -> Result<bool, ObjectError> {
            Ok(self.0.lock().map(|m| m.contains_key(key)).unwrap_or(false))
        }
        async fn put(
            &self,
            key: &str,
            body: Vec<u8>,
            _content_type: &str,
            metadata: &[(&str, String)],
        ) -> Result<(), ObjectError> {
            let metadata = metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            if let Ok(mut m) = self.0.lock() {
                m.insert(key.to_owned(), (body, metadata));
            }
            Ok(())
        }
        async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError> {
            Ok(self
                .0
                .lock()
                .ok()
                .and_then(|m| m.get(key).map(|(b, _)| b.clone())))
        }
        async fn download(
            &self,
            _key: &str,
            _into: &std::path::Path,
        ) -> Result<domain::ports::StoredObject, ObjectError> {
            Err(ObjectError("not used".into()))
        }
    }

    struct Fixed(DateTime<Utc>);
    impl Clock for Fixed {
        fn now(&self) -> DateTime<Utc> {
            self.0
        }
        async fn sleep(&self, _: std::time::Duration) {}
    }

    fn fetcher(expired: usize, now: DateTime<Utc>) -> BillFetcher<Alipay, Objects, Fixed> {
        BillFetcher {
            alipay: Alipay {
                expired,
                ..Alipay::default()
            },
            objects: Objects::default(),
            clock: Fixed(now),
            schedule: Schedule { deadline_hour: 12 },
        }
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, 5).unwrap_or_default()
    }

    #[tokio::test]
    async fn an_expired_url_is_never_reused_and_the_zip_is_stored_with_its_metadata() {
        let f = fetcher(1, Utc::now());
        let fetched = f.fetch(day()).await;
        assert!(
            matches!(fetched, Ok(Fetched::Stored { bytes: 6, .. })),
            "{fetched:?}"
        );
        let urls = f.alipay.urls.lock().map(|u| u.clone()).unwrap_or_default();
        assert_eq!(urls, ["https://bills.example/0", "https://bills.example/1"]);
        let stored = f.objects.0.lock().map(|m| m.clone()).unwrap_or_default();
        let (body, metadata) = stored
            .get("bills/2024-03-05/trade.zip")
            .cloned()
            .unwrap_or_default();
        assert_eq!(body, b"PK zip");
        let names: Vec<&str> = metadata.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "bill-date",
                "bill-type",
                "size",
                "sha256",
                "source",
                "bill-file-code"
            ]
        );
        // Two expired URLs in a row: the run fails (the next one tries again).
        let f = fetcher(2, Utc::now());
        assert!(matches!(f.fetch(day()).await, Err(FetchError::Download(_))));
    }

    #[test]
    fn the_day_is_the_event_s_or_yesterday_in_beijing_and_the_deadline_is_beijing_noon() {
        // 2024-03-05 23:30 UTC is already the 6th in Beijing: yesterday is the 5th.
        let now = Utc
            .with_ymd_and_hms(2024, 3, 5, 23, 30, 0)
            .single()
            .unwrap_or_default();
        let f = fetcher(0, now);
        assert_eq!(f.day_of(&serde_json::json!({})).ok(), Some(day()));
        assert_eq!(
            f.day_of(&serde_json::json!({"detail": {"date": "2024-01-02"}}))
                .ok(),
            NaiveDate::from_ymd_opt(2024, 1, 2)
        );
        assert!(matches!(
            f.day_of(&serde_json::json!({"date": "yesterday"})),
            Err(FetchError::BadDay(_))
        ));
        assert_eq!(
            f.deadline(day()),
            Utc.with_ymd_and_hms(2024, 3, 6, 4, 0, 0)
                .single()
                .unwrap_or_default()
        );
    }
}
