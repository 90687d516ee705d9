//! `payments-cli reconcile`: a bill ZIP on disk reconciled against the orders table the
//! environment points at, by the `reconcile` function's own [`Reconciler`], with the report
//! written to a local directory instead of the bill bucket.
//!
//! - [`LocalObjects`] is the [`ObjectStore`]: the bill is the local file, the report keys
//!   (`reports/<day>/<name>`) are files `<report dir>/<name>`.
//! - [`CliStore`] wraps the DynamoDB order store: it reads through, and it counts the writes
//!   for the progress line; in a dry run it writes nothing and answers every write as applied.
//! - [`bill_day`] tells the bill's day from its entry names or its file name.

use chrono::NaiveDate;
use domain::OutTradeNo;
use domain::anomaly::Anomaly;
use domain::order::{Order, OrderEvent, Transition};
use domain::ports::{
    Applied, Claim, ObjectError, ObjectStore, OrderStore, StoreError, StoredObject,
};
use indicatif::ProgressBar;
use reconcile::DayIndex;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Report files of a dry run are named `dry-run-<name>`, so that a later real run in the same
/// directory is not taken for one that already happened.
pub const DRY_RUN_PREFIX: &str = "dry-run-";

/// The bill bucket, on the local disk.
#[derive(Debug, Clone)]
pub struct LocalObjects {
    /// The key the reconciler downloads (`bills/<day>/trade.zip`).
    pub bill_key: String,
    /// The local bill file.
    pub bill: PathBuf,
    /// Where `reports/<day>/<name>` is written, as `<name>`.
    pub report_dir: PathBuf,
    pub dry_run: bool,
}

impl LocalObjects {
    /// The local file of a report key; any other key is refused.
    pub fn report_path(&self, key: &str) -> Result<PathBuf, ObjectError> {
        let name = key
            .strip_prefix(reconcile::report::REPORTS_PREFIX)
            .and_then(|rest| rest.split_once('/'))
            .map(|(_, name)| name)
            .filter(|name| {
                !name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.')
            })
            .ok_or_else(|| ObjectError(format!("{key} is not a report key")))?;
        let prefix = if self.dry_run { DRY_RUN_PREFIX } else { "" };
        Ok(self.report_dir.join(format!("{prefix}{name}")))
    }
}

impl ObjectStore for LocalObjects {
    async fn exists(&self, key: &str) -> Result<bool, ObjectError> {
        if key == self.bill_key {
            return Ok(self.bill.is_file());
        }
        Ok(self.report_path(key)?.is_file())
    }

    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        _content_type: &str,
        _metadata: &[(&str, String)],
    ) -> Result<(), ObjectError> {
        let path = self.report_path(key)?;
        let failed = |e: std::io::Error| ObjectError(format!("{}: {e}", path.display()));
        std::fs::create_dir_all(&self.report_dir)
            .map_err(|e| ObjectError(format!("{}: {e}", self.report_dir.display())))?;
        // Written whole or not at all: a summary is the proof that a day was reconciled.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, body).map_err(failed)?;
        std::fs::rename(&partial, &path).map_err(failed)
    }

    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError> {
        if self.dry_run {
            // A dry run always matches the bill, whatever an earlier run left.
            return Ok(None);
        }
        let path = self.report_path(key)?;
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ObjectError(format!("{}: {e}", path.display()))),
        }
    }

    async fn download(&self, key: &str, into: &Path) -> Result<StoredObject, ObjectError> {
        if key != self.bill_key {
            return Err(ObjectError(format!("{key} is not the bill being reconciled")));
        }
        copy_hashing(&self.bill, into)
            .map_err(|e| ObjectError(format!("copying {}: {e}", self.bill.display())))
    }
}

/// Copies `from` to `into` in chunks, hashing as it goes (as the S3 adapter does).
pub fn copy_hashing(from: &Path, into: &Path) -> std::io::Result<StoredObject> {
    let mut source = std::fs::File::open(from)?;
    let mut target = std::fs::File::create(into)?;
    let mut hasher = Sha256::new();
    let mut chunk = vec![0_u8; 256 * 1024];
    let mut bytes = 0_u64;
    loop {
        let read = source.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        let data = &chunk[..read];
        hasher.update(data);
        target.write_all(data)?;
        bytes += read as u64;
    }
    target.flush()?;
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(StoredObject { bytes, sha256 })
}

/// The order store as the command uses it: reads go through; writes are counted (and shown
/// on the progress line), or, in a dry run, not sent at all.
pub struct CliStore<S> {
    pub inner: S,
    pub dry_run: bool,
    pub bar: Option<ProgressBar>,
    writes: AtomicU64,
}

impl<S> CliStore<S> {
    pub fn new(inner: S, dry_run: bool, bar: Option<ProgressBar>) -> CliStore<S> {
        CliStore {
            inner,
            dry_run,
            bar,
            writes: AtomicU64::new(0),
        }
    }

    /// Writes sent (or, in a dry run, that would have been sent).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn wrote(&self) {
        let writes = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = &self.bar {
            let verb = if self.dry_run { "would write" } else { "written" };
            bar.set_message(format!("bill read; {writes} healing and anomaly writes {verb}"));
        }
    }
}

impl<S: OrderStore> OrderStore for CliStore<S> {
    async fn claim(&self, order: &Order, _event: &OrderEvent) -> Result<Claim, StoreError> {
        // A reconciliation never creates an order.
        Err(StoreError::Unavailable(format!(
            "reconcile does not create orders (asked to claim {})",
            order.out_trade_no()
        )))
    }

    async fn get(&self, out_trade_no: &OutTradeNo) -> Result<Option<Order>, StoreError> {
        self.inner.get(out_trade_no).await
    }

    async fn apply(&self, transition: &Transition) -> Result<Applied, StoreError> {
        self.wrote();
        if self.dry_run {
            return Ok(Applied::Applied(transition.next.clone()));
        }
        self.inner.apply(transition).await
    }

    async fn record_anomaly(&self, anomaly: &Anomaly) -> Result<(), StoreError> {
        self.wrote();
        if self.dry_run {
            return Ok(());
        }
        self.inner.record_anomaly(anomaly).await
    }
}

impl<S: DayIndex> DayIndex for CliStore<S> {
    async fn orders_of_day(&self, day: NaiveDate) -> Result<Vec<Order>, StoreError> {
        self.inner.orders_of_day(day).await
    }
}

/// What a bill file says about its day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillDay {
    /// The detail entry's name (`<PID>0156_<yyyyMMdd>_业务明细.csv`) names this day.
    Entry(NaiveDate),
    /// The entries name no day (or the file is not a readable ZIP); the file name (or its
    /// folder, as in `bills/<yyyy-MM-dd>/trade.zip`) does.
    FileName(NaiveDate),
    /// A month's bill (`<PID>0156_<yyyyMM>_业务明细.csv`): not something a day can be
    /// reconciled with.
    Month(String),
    Unknown,
}

/// Reads the bill's entry names (not its rows) to tell its day.
pub fn bill_day(path: &Path) -> BillDay {
    let entry = std::fs::File::open(path)
        .ok()
        .and_then(|file| alipay::bill::BillArchive::new(std::io::BufReader::new(file)).ok())
        .map(|archive| archive.detail_name().to_owned());
    if let Some(name) = entry {
        let base = name.rsplit('/').next().unwrap_or(&name);
        for label in base.split('_') {
            if label.len() == 8
                && label.bytes().all(|b| b.is_ascii_digit())
                && let Ok(day) = NaiveDate::parse_from_str(label, "%Y%m%d")
            {
                return BillDay::Entry(day);
            }
            if label.len() == 6 && label.bytes().all(|b| b.is_ascii_digit()) {
                return BillDay::Month(label.to_owned());
            }
        }
    }
    let names = [
        path.file_name(),
        path.parent().and_then(Path::file_name),
    ];
    for name in names.into_iter().flatten() {
        if let Some(day) = day_in(&name.to_string_lossy()) {
            return BillDay::FileName(day);
        }
    }
    BillDay::Unknown
}

/// A `yyyy-MM-dd` or a separate 8-digit `yyyyMMdd` in a file name.
fn day_in(name: &str) -> Option<NaiveDate> {
    let chars: Vec<char> = name.chars().collect();
    for start in 0..chars.len() {
        let dashed: String = chars.iter().skip(start).take(10).collect();
        if dashed.len() == 10
            && (start == 0 || !chars[start - 1].is_ascii_digit())
            && let Ok(day) = NaiveDate::parse_from_str(&dashed, "%Y-%m-%d")
        {
            return Some(day);
        }
    }
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|run| run.len() == 8)
        .find_map(|run| NaiveDate::parse_from_str(run, "%Y%m%d").ok())
}

/// The day to reconcile: `--date` when given (refused if the bill's entries name another
/// day), else the bill's own.
pub fn choose_day(given: Option<NaiveDate>, found: &BillDay) -> Result<NaiveDate, String> {
    match (given, found) {
        (_, BillDay::Month(label)) => Err(format!(
            "this is a monthly bill ({label}); reconcile takes the trade bill of one day"
        )),
        (Some(given), BillDay::Entry(day)) if given != *day => Err(format!(
            "the bill is for {day} (its entry names say so), not {given}: reconciling it against another day would report every order of both days as a discrepancy"
        )),
        (Some(given), _) => Ok(given),
        (None, BillDay::Entry(day) | BillDay::FileName(day)) => Ok(*day),
        (None, BillDay::Unknown) => Err(
            "the bill's day cannot be told from its entry names or its file name: pass --date yyyy-MM-dd"
                .to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn days_are_found_in_file_names() {
        assert_eq!(
            day_in("20881234567890120156_20190916.csv.zip"),
            Some(day("2019-09-16"))
        );
        assert_eq!(day_in("trade-2024-03-05.zip"), Some(day("2024-03-05")));
        assert_eq!(day_in("2024-03-05"), Some(day("2024-03-05")));
        assert_eq!(day_in("trade.zip"), None);
        assert_eq!(day_in("20241305.zip"), None);
        assert_eq!(
            bill_day(Path::new("/nowhere/bills/2024-03-05/trade.zip")),
            BillDay::FileName(day("2024-03-05"))
        );
        assert_eq!(bill_day(Path::new("/nowhere/trade.zip")), BillDay::Unknown);
    }

    #[test]
    fn the_given_date_must_agree_with_the_entries() {
        let entry = BillDay::Entry(day("2024-03-05"));
        assert_eq!(choose_day(None, &entry), Ok(day("2024-03-05")));
        assert_eq!(
            choose_day(Some(day("2024-03-05")), &entry),
            Ok(day("2024-03-05"))
        );
        assert!(choose_day(Some(day("2024-03-06")), &entry).is_err());
        // A file name is only a hint: --date wins.
        let named = BillDay::FileName(day("2024-03-05"));
        assert_eq!(
            choose_day(Some(day("2024-03-06")), &named),
            Ok(day("2024-03-06"))
        );
        assert!(choose_day(None, &BillDay::Unknown).is_err());
        assert!(choose_day(Some(day("2024-03-06")), &BillDay::Month("202403".into())).is_err());
    }

    #[test]
    fn only_report_keys_map_to_files() {
        let objects = LocalObjects {
            bill_key: "bills/2024-03-05/trade.zip".into(),
            bill: PathBuf::from("/b/trade.zip"),
            report_dir: PathBuf::from("/r"),
            dry_run: false,
        };
        assert_eq!(
            objects.report_path("reports/2024-03-05/summary.json").unwrap(),
            PathBuf::from("/r/summary.json")
        );
        for bad in [
            "bills/2024-03-05/trade.zip",
            "reports/2024-03-05/../x",
            "reports/2024-03-05/a/b",
            "reports/2024-03-05/",
            "reports/x",
        ] {
            assert!(objects.report_path(bad).is_err(), "{bad}");
        }
        let dry = LocalObjects {
            dry_run: true,
            ..objects
        };
        assert_eq!(
            dry.report_path("reports/2024-03-05/summary.json").unwrap(),
            PathBuf::from("/r/dry-run-summary.json")
        );
    }
}
