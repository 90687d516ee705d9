//! Reconciling a day's bill against its ledger on one core, without DynamoDB: the work of
//! `Reconciler::reconcile` between the day's query and the first write.
//!
//! For days of 10,000, 100,000 and 1,000,000 bill rows, synthesised by
//! `alipay_sandbox::bill::synth` (payments and about 5 % refunds, with the orders behind them;
//! not timed), each in a process of its own so that its peak memory is its own:
//!
//! - **ledger build**: every order of the day, made into a domain `Order` from the orders file
//!   by production's transitions (see `synth_ledger`; timed apart and not counted: production
//!   decodes them from DynamoDB items instead), added to a `Matcher` (`add_order`), 1,024
//!   orders at a time (production's `orders_of_day` hands over the whole day at once: the
//!   memory of that is measured by the local stack's `reconcile_stack` benchmark), in the
//!   orders file's order (payment time; production adds them in the day index's order,
//!   creation time, seconds to minutes earlier: either way the bill's rows find their
//!   entries near one another);
//! - **parse+match**: `reconcile::bill::read` of the bill ZIP into that matcher (every detail
//!   row classified, then the whole-bill check), `aside_numbers`, `classify_aside`, `finish`;
//! - **baseline**, in the same run: the parser alone, `BillArchive` over every detail row (the
//!   borrowed rows of `DetailReader::next_row`, as `reconcile::bill::read` reads them) and
//!   `check_bill`, nothing matched;
//!
//! and prints per size the rows per second of both and their ratio (parse+match time over
//! parse time), `add_order`'s rate, the process's resident memory (VmRSS before the ledger,
//! peak VmHWM once the ledger is built and once the bill is matched), the ledger's resident
//! bytes per order (VmRSS growth while building it), and the classes found. Every row of a
//! synthetic day must be `matched`: any discrepancy fails the run. Then the goals: at least
//! 1,000,000 rows/s at 1,000,000 rows, a peak of at most 256 MB there (after the first round,
//! that is one reconciliation; the peak after every round is printed too), and a cost per row
//! that does not grow with the rows (per-row time at the largest size over the smallest's,
//! next to the parser's own).
//!
//! `cargo bench -p reconcile --bench reconcile_match` (or `make bench`). `BENCH_SECONDS` sets
//! the measuring time per size (default 3, fractions allowed; at least three rounds of each
//! are run, interleaved, and the best is reported: these machines are noisy).
//! `RECONCILE_BENCH_ROWS=10000,50000` picks other sizes. Without `--bench` on the command line
//! (`cargo test --all-targets` runs bench targets that way) a day of 1,000 rows is matched
//! once, as a smoke test. The process exits non-zero only when a result is wrong; a missed
//! goal is reported, never fatal.

#[allow(dead_code)] // Some of it is for the local stack's benchmark.
mod synth_ledger;

use alipay::bill::BillArchive;
use alipay_sandbox::bill::synth::{SynthOptions, synth_bill};
use chrono::NaiveDate;
use domain::bills::BillKey;
use reconcile::matching::{Class, Matched, Matcher};
use std::error::Error;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};
use synth_ledger::Orders;

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const DEFAULT_SECONDS: f64 = 3.0;
const MIN_ROUNDS: u32 = 3;
const MAX_ROUNDS: u32 = 50;
const SIZES: [u64; 3] = [10_000, 100_000, 1_000_000];
/// Orders made at a time while the ledger is built (so that they never all live at once).
const CHUNK: usize = 1024;
const GOAL_ROWS_PER_SECOND: f64 = 1e6;
const GOAL_PEAK_MB: f64 = 256.0;
/// Per-row time at the largest size over the smallest's, above the parser's own ratio by
/// more than this factor: not linear.
const LINEAR_SLACK: f64 = 1.25;
/// Set in the environment of the process that measures one day: the bill, then the orders.
const CHILD_BILL: &str = "RECONCILE_BENCH_BILL";
const CHILD_ORDERS: &str = "RECONCILE_BENCH_ORDERS";
/// The line a measuring process ends with, for the goals.
const RESULT_TAG: &str = "result:";

fn day() -> BenchResult<NaiveDate> {
    NaiveDate::from_ymd_opt(2026, 11, 25).ok_or_else(|| "bad day".into())
}

fn main() -> BenchResult<()> {
    let full = std::env::args().any(|arg| arg == "--bench");
    if let (Some(bill), Some(orders)) =
        (std::env::var_os(CHILD_BILL), std::env::var_os(CHILD_ORDERS))
    {
        return measure_one(Path::new(&bill), Path::new(&orders));
    }
    if !full {
        return smoke();
    }
    println!(
        "one core, no DynamoDB; parse+match = reconcile::bill::read into a Matcher holding the \
         day's orders + classify_aside + finish; baseline = BillArchive over every detail row + \
         check_bill; ratio = parse+match time / baseline time; each size in a process of its \
         own; load average {}",
        load_average()
    );
    let sizes: Vec<u64> = match std::env::var("RECONCILE_BENCH_ROWS") {
        Ok(text) => text
            .split(',')
            .map(|n| n.trim().replace('_', "").parse())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("RECONCILE_BENCH_ROWS={text:?}: {e}"))?,
        Err(_) => SIZES.to_vec(),
    };
    let exe = std::env::current_exe()?;
    let mut results = Vec::new();
    for rows in sizes {
        let dir = tempfile::tempdir()?;
        let synth = synth_bill(&SynthOptions::new(day()?, rows, dir.path()))?;
        let output = std::process::Command::new(&exe)
            .arg("--bench")
            .env(CHILD_BILL, &synth.zip_path)
            .env(CHILD_ORDERS, &synth.orders_path)
            .stderr(std::process::Stdio::inherit())
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        for line in stdout.lines() {
            match line.strip_prefix(RESULT_TAG) {
                Some(result) => results.push(Result1::parse(result)?),
                None => println!("{line}"),
            }
        }
        if !output.status.success() {
            return Err(format!("the day of {rows} rows failed ({})", output.status).into());
        }
    }
    goals(&results);
    Ok(())
}

/// What one measuring process hands back for the goals.
struct Result1 {
    rows: u64,
    match_ns_per_row: f64,
    baseline_ns_per_row: f64,
    rows_per_second: f64,
    with_ledger_rows_per_second: f64,
    /// Peak resident memory after the first ledger and match (one reconciliation).
    peak_mb: f64,
    /// The same after every round.
    end_mb: f64,
}

impl Result1 {
    fn line(&self) -> String {
        format!(
            "{RESULT_TAG}{} {} {} {} {} {} {}",
            self.rows,
            self.match_ns_per_row,
            self.baseline_ns_per_row,
            self.rows_per_second,
            self.with_ledger_rows_per_second,
            self.peak_mb,
            self.end_mb
        )
    }

    fn parse(text: &str) -> BenchResult<Result1> {
        let fields: Vec<f64> = text
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("a result line {text:?}: {e}"))?;
        let [rows, match_ns, base_ns, rate, with_ledger, peak, end] = fields.as_slice() else {
            return Err(format!("a result line {text:?}").into());
        };
        Ok(Result1 {
            rows: *rows as u64,
            match_ns_per_row: *match_ns,
            baseline_ns_per_row: *base_ns,
            rows_per_second: *rate,
            with_ledger_rows_per_second: *with_ledger,
            peak_mb: *peak,
            end_mb: *end,
        })
    }
}

fn goals(results: &[Result1]) {
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    if let Some(largest) = results.iter().max_by_key(|r| r.rows) {
        println!(
            "goal at {} rows: parse+match ≥ {:.1} M rows/s on one core: {:.2} M rows/s, {} \
             ({:.2} M rows/s counting add_order too); peak RSS ≤ {GOAL_PEAK_MB:.0} MB: {:.1} MB \
             for one reconciliation, {} ({:.1} MB after every round in one process)",
            largest.rows,
            GOAL_ROWS_PER_SECOND / 1e6,
            largest.rows_per_second / 1e6,
            met(largest.rows_per_second >= GOAL_ROWS_PER_SECOND),
            largest.with_ledger_rows_per_second / 1e6,
            largest.peak_mb,
            met(largest.peak_mb <= GOAL_PEAK_MB),
            largest.end_mb,
        );
    }
    if let (Some(small), Some(large)) = (
        results.iter().min_by_key(|r| r.rows),
        results.iter().max_by_key(|r| r.rows),
    ) && large.rows > small.rows
    {
        let growth = large.match_ns_per_row / small.match_ns_per_row;
        let parser = large.baseline_ns_per_row / small.baseline_ns_per_row;
        println!(
            "goal, cost linear in rows: per-row time at {} rows ÷ at {} rows: parse+match \
             {growth:.2}, parser alone {parser:.2}: {}",
            large.rows,
            small.rows,
            met(growth <= parser * LINEAR_SLACK),
        );
    }
}

/// A day of 1,000 rows matched once.
fn smoke() -> BenchResult<()> {
    let dir = tempfile::tempdir()?;
    let synth = synth_bill(&SynthOptions::new(day()?, 1_000, dir.path()))?;
    let (matcher, _, _) = ledger(&synth.orders_path)?;
    let (matched, rows, _) = parse_and_match(&synth.zip_path, matcher)?;
    check(&matched, rows)?;
    parse_only(&synth.zip_path)?;
    println!(
        "smoke test: a day of {rows} rows matched against {} orders without a discrepancy (pass \
         --bench to measure)",
        synth.payments
    );
    Ok(())
}

/// The day's orders in a matcher; how long making them and adding them took.
fn ledger(orders_path: &Path) -> BenchResult<(Matcher, Duration, Duration)> {
    let mut matcher = Matcher::new(day()?);
    let mut source = Orders::open(orders_path, CHUNK)?;
    let mut chunk = Vec::with_capacity(CHUNK);
    let (mut made, mut added) = (Duration::ZERO, Duration::ZERO);
    loop {
        let t = Instant::now();
        source.next_chunk(&mut chunk)?;
        made += t.elapsed();
        if chunk.is_empty() {
            return Ok((matcher, made, added));
        }
        let t = Instant::now();
        for order in &chunk {
            matcher.add_order(order);
        }
        added += t.elapsed();
    }
}

/// The bill read into the matcher, as `Reconciler::reconcile` does it (no row of this day has
/// its order on another day, so nothing is looked up); the outcome, the rows, the rows put
/// aside.
fn parse_and_match(zip: &Path, mut matcher: Matcher) -> BenchResult<(Matched, u64, usize)> {
    let key = BillKey::parse(&BillKey::trade(matcher.day())).ok_or("not a bill key")?;
    let read = reconcile::bill::read(&key, zip, &mut matcher, None)?;
    let aside = matcher.aside_numbers().len();
    matcher.classify_aside();
    Ok((matcher.finish(), read.rows, aside))
}

/// The parser alone: every detail row (borrowed, as the matcher reads them), then the
/// whole-bill check.
fn parse_only(zip: &Path) -> BenchResult<u64> {
    let file = std::io::BufReader::new(std::fs::File::open(zip)?);
    let mut archive = BillArchive::new(file)?;
    let summary = archive.summary()?;
    let mut detail = archive.detail()?;
    let mut rows = 0;
    while let Some(row) = detail.next_row() {
        black_box(row?);
        rows += 1;
    }
    detail.check_bill(summary.as_ref())?;
    Ok(rows)
}

/// Every row matched, and the ledger's totals are the bill's.
fn check(matched: &Matched, rows: u64) -> BenchResult<()> {
    let count = |class: Class| matched.classes.get(&class).map_or(0, |t| t.count);
    if matched.discrepancies() != 0
        || count(Class::Matched) != rows
        || matched.bill != matched.ledger
    {
        let classes: Vec<String> = matched
            .classes
            .iter()
            .filter(|(_, tally)| tally.count > 0)
            .map(|(class, tally)| format!("{} {}", class.as_str(), tally.count))
            .collect();
        let first: Vec<String> = matched
            .findings
            .iter()
            .take(5)
            .map(|f| format!("{:?}", f))
            .collect();
        return Err(format!(
            "a synthetic day must match row for row: {rows} rows, classes {}; bill {:?}, ledger \
             {:?}; first findings {}",
            classes.join(", "),
            matched.bill,
            matched.ledger,
            first.join("; ")
        )
        .into());
    }
    Ok(())
}

/// The best of each measure, and memory.
#[derive(Default)]
struct Measured {
    rows: u64,
    orders: u64,
    made: Option<Duration>,
    added: Option<Duration>,
    matching: Option<Duration>,
    baseline: Option<Duration>,
    rounds: u32,
    rss_before_kb: u64,
    rss_ledger_kb: u64,
    hwm_ledger_kb: u64,
    hwm_matched_kb: u64,
    hwm_end_kb: u64,
    aside: usize,
    matched_rows: u64,
    discrepancies: u64,
}

fn best(slot: &mut Option<Duration>, time: Duration) {
    *slot = Some(slot.map_or(time, |b| b.min(time)));
}

/// One day, in this process: rounds of ledger, parse+match and baseline, interleaved.
fn measure_one(zip: &Path, orders: &Path) -> BenchResult<()> {
    let budget = budget(DEFAULT_SECONDS)?;
    let mut m = Measured {
        rss_before_kb: status_kb("VmRSS:").ok_or("no VmRSS in /proc/self/status")?,
        ..Measured::default()
    };
    let started = Instant::now();
    while m.rounds < MIN_ROUNDS || (started.elapsed() < budget && m.rounds < MAX_ROUNDS) {
        let (matcher, made, added) = ledger(orders)?;
        if m.rounds == 0 {
            m.orders = matcher.orders() as u64;
            m.rss_ledger_kb = status_kb("VmRSS:").unwrap_or(0);
            m.hwm_ledger_kb = status_kb("VmHWM:").unwrap_or(0);
        }
        best(&mut m.made, made);
        best(&mut m.added, added);
        let t = Instant::now();
        let (matched, rows, aside) = parse_and_match(zip, matcher)?;
        best(&mut m.matching, t.elapsed());
        check(&matched, rows)?;
        if m.rounds == 0 {
            m.rows = rows;
            m.aside = aside;
            m.matched_rows = matched.classes.get(&Class::Matched).map_or(0, |t| t.count);
            m.discrepancies = matched.discrepancies();
            m.hwm_matched_kb = status_kb("VmHWM:").unwrap_or(0);
        }
        drop(matched);
        let t = Instant::now();
        if parse_only(zip)? != rows {
            return Err("the parser alone counted other rows".into());
        }
        best(&mut m.baseline, t.elapsed());
        m.rounds += 1;
    }
    m.hwm_end_kb = status_kb("VmHWM:").unwrap_or(0);
    report(&m, std::fs::metadata(zip)?.len());
    Ok(())
}

fn report(m: &Measured, zip_bytes: u64) {
    let seconds = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64().max(1e-9));
    let (matching, baseline, added, made) = (
        seconds(m.matching),
        seconds(m.baseline),
        seconds(m.added),
        seconds(m.made),
    );
    let rows = m.rows as f64;
    let mb = |kb: u64| kb as f64 * 1024.0 / 1e6;
    let ledger_bytes =
        m.rss_ledger_kb.saturating_sub(m.rss_before_kb) as f64 * 1024.0 / (m.orders.max(1) as f64);
    println!(
        "{:>9} rows ({} orders, {:.1} MB ZIP): parse+match {:.2} M rows/s ({matching:.3} s); \
         parser alone {:.2} M rows/s ({baseline:.3} s); ratio {:.2}x (+{:.0} ns/row); ledger \
         build: add_order {:.2} M orders/s ({added:.3} s; making the orders from the file, not \
         counted: {made:.2} s); RSS {:.1} MB before the ledger, peak {:.1} MB with it, {:.1} MB \
         after matching ({:.1} MB at the end); ledger {ledger_bytes:.0} B/order; {} rows \
         matched, {} discrepancies, {} rows put aside; best of {}",
        m.rows,
        m.orders,
        zip_bytes as f64 / 1e6,
        rows / matching / 1e6,
        rows / baseline / 1e6,
        matching / baseline,
        (matching - baseline) / rows * 1e9,
        m.orders as f64 / added / 1e6,
        mb(m.rss_before_kb),
        mb(m.hwm_ledger_kb),
        mb(m.hwm_matched_kb),
        mb(m.hwm_end_kb),
        m.matched_rows,
        m.discrepancies,
        m.aside,
        m.rounds,
    );
    let result = Result1 {
        rows: m.rows,
        match_ns_per_row: matching / rows * 1e9,
        baseline_ns_per_row: baseline / rows * 1e9,
        rows_per_second: rows / matching,
        with_ledger_rows_per_second: rows / (matching + added),
        peak_mb: mb(m.hwm_matched_kb),
        end_mb: mb(m.hwm_end_kb),
    };
    println!("{}", result.line());
}

/// How long each size is measured: `BENCH_SECONDS`, or `default_seconds`.
fn budget(default_seconds: f64) -> BenchResult<Duration> {
    let seconds = match std::env::var("BENCH_SECONDS") {
        Ok(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
            .ok_or_else(|| {
                format!("BENCH_SECONDS={text:?} is not a number of seconds in (0, 3600]")
            })?,
        Err(std::env::VarError::NotPresent) => default_seconds,
        Err(e) => return Err(format!("BENCH_SECONDS: {e}").into()),
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// A field of `/proc/self/status`, in kB.
fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}
