//! `payments-cli reconcile`: a bill ZIP on disk reconciled against the orders table the
//! environment points at, by the `reconcile` function's own [`Reconciler`], with the report
//! written to a local directory instead of the bill bucket.
//!
//! - [`LocalObjects`] is the [`ObjectStore`]: the bill is the local file, the report keys
//!   (`reports/<day>/<name>`) are files `<report dir>/<name>`.
//! - [`CliStore`] wraps the DynamoDB order store: it reads through, and it counts the writes
//!   for the progress line; in a dry run it writes nothing and answers every write as applied.
//! - [`bill_day`] tells the bill's day from its entry names or its file name.

use crate::Failure;
use aws_adapters::{DynamoOrderStore, aws_sdk_dynamodb};
use chrono::NaiveDate;
use domain::OutTradeNo;
use domain::anomaly::Anomaly;
use domain::bills::BillKey;
use domain::order::{Order, OrderEvent, Transition};
use domain::ports::{
    Applied, Claim, ObjectError, ObjectStore, OrderStore, StoreError, StoredObject,
};
use f2f_runtime::SystemClock;
use indicatif::{ProgressBar, ProgressStyle};
use reconcile::{DayIndex, ReconcileError, Reconciled, Reconciler};
use sha2::{Digest, Sha256};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bills from this size on get a progress line (smaller ones are read in a blink).
const PROGRESS_FROM_BYTES: u64 = 1 << 20;

/// What `payments-cli reconcile` was asked.
#[derive(Debug, Clone)]
pub struct Args {
    pub bill: PathBuf,
    pub date: Option<NaiveDate>,
    pub report_dir: Option<PathBuf>,
    pub table: String,
    pub dry_run: bool,
}

/// Runs the command: 0 reconciled, 1 malformed bill, `Err` (2) anything else.
pub async fn run(args: Args) -> Result<ExitCode, Failure> {
    let size = std::fs::metadata(&args.bill)
        .map_err(|e| format!("cannot read {}: {e}", args.bill.display()))?
        .len();
    let day = choose_day(args.date, &bill_day(&args.bill))?;
    // An empty-day marker as bill-fetch stores it (`bills/<day>/empty.json`): a day without
    // a bill file, reconciled as a day without rows.
    let empty_day = args.bill.file_name().is_some_and(|n| n == "empty.json");
    let bill_key = if empty_day {
        BillKey::empty(day)
    } else {
        BillKey::trade(day)
    };
    let report_dir = args
        .report_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("reconcile-{}", day.format("%Y-%m-%d"))));
    eprintln!(
        "reconciling {} as the bill of {day} against table {}{}",
        args.bill.display(),
        args.table,
        if args.dry_run {
            " (dry run: nothing is written to the table)"
        } else {
            ""
        }
    );
    let bar = (size >= PROGRESS_FROM_BYTES).then(progress_bar);
    init_logs(bar.clone());

    let sdk = aws_adapters::aws_config().await;
    let orders = DynamoOrderStore::new(aws_sdk_dynamodb::Client::new(&sdk), &args.table);
    let reconciler = Reconciler {
        store: CliStore::new(orders, args.dry_run, bar.clone()),
        objects: LocalObjects {
            bill_key: bill_key.clone(),
            bill: args.bill.clone(),
            report_dir: report_dir.clone(),
            dry_run: args.dry_run,
        },
        clock: SystemClock,
        scratch: std::env::temp_dir(),
        progress: bar.clone().map(|bar| {
            let progress: reconcile::Progress = Arc::new(move |rows| bar.set_position(rows));
            progress
        }),
    };
    let result = reconciler.reconcile(&bill_key).await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let dir = report_dir.display();
    match result {
        Ok(Reconciled::Done(summary)) => {
            println!("{}", serde_json::to_string_pretty(&*summary)?);
            let (healed, anomalies) = (summary.actions.healed, summary.actions.anomalies);
            if args.dry_run {
                eprintln!(
                    "dry run of {day}: {} rows, {} orders, {} discrepancies; would heal {healed} and record {anomalies} anomalies ({} writes); nothing was written to the table; report in {dir} ({DRY_RUN_PREFIX}*)",
                    summary.rows,
                    summary.orders,
                    summary.discrepancies,
                    reconciler.store.writes(),
                );
            } else {
                eprintln!(
                    "reconciled {day}: {} rows, {} orders, {} discrepancies ({healed} healed, {anomalies} anomalies); report in {dir}",
                    summary.rows, summary.orders, summary.discrepancies,
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(Reconciled::AlreadyDone { day }) => {
            let path = report_dir.join("summary.json");
            eprintln!(
                "this bill of {day} was reconciled before: {} names its SHA-256; nothing was done (another --report-dir runs it again)",
                path.display()
            );
            let existing = std::fs::read(&path).unwrap_or_default();
            println!("{}", String::from_utf8_lossy(&existing).trim_end());
            Ok(ExitCode::SUCCESS)
        }
        Err(ReconcileError::Malformed { reason, .. }) => {
            let rejected = if args.dry_run {
                format!("{DRY_RUN_PREFIX}rejected.json")
            } else {
                "rejected.json".to_owned()
            };
            eprintln!(
                "payments-cli: malformed bill {}: {reason}\nnothing was applied; why is also in {}",
                args.bill.display(),
                report_dir.join(rejected).display()
            );
            Ok(ExitCode::from(1))
        }
        Err(ReconcileError::Store(error)) => Err(format!(
            "{error}\n(what was healed before this stays healed; running the command again is safe)"
        )
        .into()),
        Err(error) => Err(error.to_string().into()),
    }
}

/// A spinner with the rows read, on stderr (hidden when stderr is not a terminal).
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {elapsed} {human_pos} rows read{msg}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Warnings and errors of the reconciliation on stderr, printed around the progress line
/// (`RUST_LOG` for more). The anomaly records' own error lines are left out: every one of them
/// is a line of `discrepancies.csv`.
fn init_logs(bar: Option<ProgressBar>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,domain::anomaly=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(move || BarWriter(bar.clone()))
        .try_init();
}

/// Writes to stderr with the progress line out of the way.
struct BarWriter(Option<ProgressBar>);

impl Write for BarWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.0 {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

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
            return Err(ObjectError(format!(
                "{key} is not the bill being reconciled"
            )));
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

/// The order store as the command uses it: reads go through; writes are counted, or, in a
/// dry run, not sent at all. Once the bill is read, the progress line shows the orders looked
/// up (rows of other days, then each discrepancy's order) and the writes.
pub struct CliStore<S> {
    pub inner: S,
    pub dry_run: bool,
    pub bar: Option<ProgressBar>,
    lookups: AtomicU64,
    writes: AtomicU64,
}

impl<S> CliStore<S> {
    pub fn new(inner: S, dry_run: bool, bar: Option<ProgressBar>) -> CliStore<S> {
        CliStore {
            inner,
            dry_run,
            bar,
            lookups: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }

    /// Writes sent (or, in a dry run, that would have been sent).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn count(&self, write: bool) {
        let counter = if write { &self.writes } else { &self.lookups };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            let verb = if self.dry_run { "to write" } else { "written" };
            bar.set_message(format!(
                "; {} orders looked up, {} heals and anomalies {verb}",
                self.lookups.load(Ordering::Relaxed),
                self.writes.load(Ordering::Relaxed),
            ));
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
        self.count(false);
        self.inner.get(out_trade_no).await
    }

    async fn apply(&self, transition: &Transition) -> Result<Applied, StoreError> {
        self.count(true);
        if self.dry_run {
            return Ok(Applied::Applied(transition.next.clone()));
        }
        self.inner.apply(transition).await
    }

    async fn record_anomaly(&self, anomaly: &Anomaly) -> Result<(), StoreError> {
        self.count(true);
        if self.dry_run {
            return Ok(());
        }
        self.inner.record_anomaly(anomaly).await
    }
}

impl<S: DayIndex> DayIndex for CliStore<S> {
    async fn each_order_of_day(
        &self,
        day: NaiveDate,
        each: &mut (dyn FnMut(Order) + Send),
    ) -> Result<u64, StoreError> {
        self.inner.each_order_of_day(day, each).await
    }

    async fn each_order_numbered(
        &self,
        numbers: &[OutTradeNo],
        each: &mut (dyn FnMut(Order) + Send),
    ) -> Result<u64, StoreError> {
        for _ in numbers {
            self.count(false);
        }
        self.inner.each_order_numbered(numbers, each).await
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
    let names = [path.file_name(), path.parent().and_then(Path::file_name)];
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
            objects
                .report_path("reports/2024-03-05/summary.json")
                .unwrap(),
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
