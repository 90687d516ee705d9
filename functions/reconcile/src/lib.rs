//! The `reconcile` function: a bill stored under `bills/<yyyy-MM-dd>/` (S3 object created)
//! is matched against that Beijing day's orders, what is safe is healed, every other
//! discrepancy becomes an anomaly record, and a report is written under
//! `reports/<yyyy-MM-dd>/`.
//!
//! - [`bill`]: where bills are stored, and reading one completely before anything is done.
//! - [`matching`]: classifying every row against the ledger, in bounded memory.
//! - [`heal`]: the transitions and anomaly records the discrepancies call for.
//! - [`report`]: the JSON summary and the CSV of discrepancies.
//!
//! A malformed bill (not a ZIP, no detail entry, a missing column, a truncated file, totals
//! that disagree) is rejected with a report saying why, and nothing is applied: the whole bill
//! is read and matched before the first write. Its rejection ends the invocation without an
//! error: the same bytes cannot pass on a retry. Reconciling the same bill again (same SHA-256)
//! finds its report and does nothing.

pub mod bill;
pub mod heal;
pub mod matching;
pub mod report;

use crate::bill::ReadBill;
use crate::matching::{Class, Matcher};
use crate::report::{BillIdentity, Summary, discrepancies_csv, discrepancies_key, summary_key};
use chrono::NaiveDate;
use domain::OutTradeNo;
use domain::bills::BillKey;
use domain::order::Order;
use domain::ports::{Clock, ObjectError, ObjectStore, OrderStore, StoreError};
use f2f_runtime::telemetry::{count, count_n};
use std::future::Future;
use std::path::PathBuf;

/// The day index: the orders created on one Beijing day, handed over one by one (a day may
/// hold a million orders: they are never all in memory as whole orders); and orders of other
/// days by number, many at a time.
pub trait DayIndex: Send + Sync {
    fn each_order_of_day(
        &self,
        day: NaiveDate,
        each: &mut (dyn FnMut(Order) + Send),
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The orders of these numbers that exist, handed over one by one; returns how many.
    fn each_order_numbered(
        &self,
        numbers: &[OutTradeNo],
        each: &mut (dyn FnMut(Order) + Send),
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

impl DayIndex for aws_adapters::DynamoOrderStore {
    async fn each_order_of_day(
        &self,
        day: NaiveDate,
        each: &mut (dyn FnMut(Order) + Send),
    ) -> Result<u64, StoreError> {
        aws_adapters::DynamoOrderStore::each_order_of_day(self, day, each).await
    }

    async fn each_order_numbered(
        &self,
        numbers: &[OutTradeNo],
        each: &mut (dyn FnMut(Order) + Send),
    ) -> Result<u64, StoreError> {
        aws_adapters::DynamoOrderStore::each_order_numbered(self, numbers, each).await
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{0} is not a bill key (bills/<yyyy-MM-dd>/trade.zip or empty.json)")]
    NotABill(String),
    #[error("malformed bill {key}: {reason}")]
    Malformed { key: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Objects(#[from] ObjectError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Lambda reports this as the invocation's error type, so alarms can tell causes apart.
impl From<ReconcileError> for lambda_runtime::Diagnostic {
    fn from(error: ReconcileError) -> Self {
        let error_type = match error {
            ReconcileError::NotABill(_) => "NotABill",
            ReconcileError::Malformed { .. } => "MalformedBill",
            ReconcileError::Store(_) => "StoreUnavailable",
            ReconcileError::Objects(_) => "ObjectStoreUnavailable",
            ReconcileError::Internal(_) => "Internal",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// The reconciliation over its ports.
pub struct Reconciler<S, O, C> {
    pub store: S,
    pub objects: O,
    pub clock: C,
    /// Where bills are copied to be read (Lambda's `/tmp`).
    pub scratch: PathBuf,
    /// Told the number of rows read so far, every [`bill::PROGRESS_EVERY`] rows (an operator's
    /// progress bar).
    pub progress: Option<Progress>,
}

/// A progress callback.
pub type Progress = std::sync::Arc<dyn Fn(u64) + Send + Sync>;

/// What became of one bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// Matched now; the report written.
    Done(Box<Summary>),
    /// This very bill was reconciled before: its report stands.
    AlreadyDone { day: NaiveDate },
}

impl<S, O, C> Reconciler<S, O, C>
where
    S: OrderStore + DayIndex,
    O: ObjectStore,
    C: Clock,
{
    /// Reconciles the bill stored under `key`.
    pub async fn reconcile(&self, key: &str) -> Result<Reconciled, ReconcileError> {
        let bill_key =
            BillKey::parse(key).ok_or_else(|| ReconcileError::NotABill(key.to_owned()))?;
        let day = bill_key.day;
        let file = tempfile::NamedTempFile::new_in(&self.scratch)
            .map_err(|e| ReconcileError::Internal(format!("scratch file: {e}")))?;
        let stored = self.objects.download(key, file.path()).await?;
        if self.already_reconciled(day, &stored.sha256).await? {
            tracing::info!(key, "this bill was reconciled before; its report stands");
            return Ok(Reconciled::AlreadyDone { day });
        }
        let identity = BillIdentity {
            key: key.to_owned(),
            sha256: stored.sha256,
            bytes: stored.bytes,
            has_file: bill_key.has_file,
        };
        let mut matcher = Matcher::new(day);
        self.store
            .each_order_of_day(day, &mut |order| matcher.add_order(&order))
            .await?;
        // The whole bill is read and checked before anything is written.
        let rows = match bill::read(
            &bill_key,
            file.path(),
            &mut matcher,
            self.progress.as_deref(),
        ) {
            Ok(ReadBill { rows }) => rows,
            Err(reason) => return Err(self.reject(key, day, &identity, reason).await),
        };
        // A number that is not a valid order number has no order here (unknown_out_trade_no).
        let numbers: Vec<OutTradeNo> = matcher
            .aside_numbers()
            .iter()
            .filter_map(|number| OutTradeNo::parse(number).ok())
            .collect();
        self.store
            .each_order_numbered(&numbers, &mut |order| matcher.add_order(&order))
            .await?;
        matcher.classify_aside();
        let orders = matcher.orders() as u64;
        let matched = matcher.finish();
        let actions = heal::act(&self.store, &self.clock, &matched.findings).await?;
        let summary = Summary::new(&matched, identity, rows, orders, actions, self.clock.now());
        let csv = discrepancies_csv(&matched.findings)
            .map_err(|e| ReconcileError::Internal(format!("discrepancies CSV: {e}")))?;
        self.objects
            .put(&discrepancies_key(day), csv, "text/csv; charset=utf-8", &[])
            .await?;
        // The summary last: its presence says the day was reconciled with this bill.
        let json = serde_json::to_vec_pretty(&summary)
            .map_err(|e| ReconcileError::Internal(format!("summary: {e}")))?;
        self.objects
            .put(&summary_key(day), json, "application/json", &[])
            .await?;
        for (class, tally) in &summary.classes {
            count_n(class_metric(*class), tally.count);
        }
        count_n("reconcile_discrepancies", summary.discrepancies);
        tracing::info!(
            day = %day,
            rows,
            orders,
            discrepancies = summary.discrepancies,
            healed = summary.actions.healed,
            anomalies = summary.actions.anomalies,
            "bill reconciled"
        );
        Ok(Reconciled::Done(Box::new(summary)))
    }

    async fn already_reconciled(&self, day: NaiveDate, sha256: &str) -> Result<bool, ObjectError> {
        let Some(existing) = self.objects.read(&summary_key(day)).await? else {
            return Ok(false);
        };
        let existing: serde_json::Value = serde_json::from_slice(&existing).unwrap_or_default();
        Ok(existing["bill"]["sha256"].as_str() == Some(sha256))
    }

    /// Writes why a bill was refused (`reports/<day>/rejected.json`), changing nothing else.
    async fn reject(
        &self,
        key: &str,
        day: NaiveDate,
        identity: &BillIdentity,
        reason: String,
    ) -> ReconcileError {
        let rejection = serde_json::json!({
            "day": day,
            "bill": identity,
            "rejected": reason,
            "at": self.clock.now().to_rfc3339(),
        });
        let body = serde_json::to_vec_pretty(&rejection).unwrap_or_default();
        if let Err(error) = self
            .objects
            .put(&report::rejected_key(day), body, "application/json", &[])
            .await
        {
            // Unrecorded, the rejection is an error Lambda retries (the bucket may answer then).
            tracing::error!(key, reason, %error, "malformed bill; the rejection could not be written");
            return ReconcileError::Objects(error);
        }
        count("reconcile_malformed_bill");
        tracing::error!(key, reason, "malformed bill rejected; nothing was applied");
        ReconcileError::Malformed {
            key: key.to_owned(),
            reason,
        }
    }
}

fn class_metric(class: Class) -> &'static str {
    match class {
        Class::Matched => "reconcile_matched",
        Class::PaidThereNotHere => "reconcile_paid_there_not_here",
        Class::StatusMismatch => "reconcile_status_mismatch",
        Class::AmountMismatch => "reconcile_amount_mismatch",
        Class::PaidHereMissingFromBill => "reconcile_paid_here_missing_from_bill",
        Class::RefundPendingHere => "reconcile_refund_pending_here",
        Class::RefundThereNoneHere => "reconcile_refund_there_none_here",
        Class::RefundAmountMismatch => "reconcile_refund_amount_mismatch",
        Class::RefundHereMissingFromBill => "reconcile_refund_here_missing_from_bill",
        Class::UnknownOutTradeNo => "reconcile_unknown_out_trade_no",
    }
}

/// An S3 event: every `bills/` object it names is reconciled; the first failure fails the
/// invocation (S3 invokes asynchronously: Lambda retries it, then the failure is alarmed).
pub async fn handle_event<S, O, C>(
    reconciler: &Reconciler<S, O, C>,
    event: &aws_lambda_events::event::s3::S3Event,
) -> Result<(), ReconcileError>
where
    S: OrderStore + DayIndex,
    O: ObjectStore,
    C: Clock,
{
    for record in &event.records {
        let Some(raw) = record.s3.object.key.as_deref() else {
            continue;
        };
        let key = object_key(raw);
        match reconciler.reconcile(&key).await {
            Ok(_) => {}
            Err(ReconcileError::NotABill(key)) => {
                tracing::warn!(key, "not a bill; ignored");
            }
            // Recorded (`rejected.json`, `reconcile_malformed_bill` and its alarm): a retry
            // would read the same bytes and refuse them again.
            Err(ReconcileError::Malformed { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// S3 event keys are URL-encoded (`+` for a space).
fn object_key(raw: &str) -> String {
    percent_encoding::percent_decode_str(&raw.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}
