//! Refusing hostile notification bodies next to verifying a normal notification, in the same
//! run, on one core: time per call, the ratio to the normal verification, and the heap
//! allocations of one call (counted by the global allocator of this bench binary).
//!
//! The notification route is unauthenticated until the signature checks out, so a body of
//! 300,000 distinct pairs (the shape that once took seconds to refuse) must be refused at
//! least as fast as a normal notification is verified, and without allocating per pair.
//!
//! `cargo bench -p alipay --bench notify_flood`. `BENCH_SECONDS` sets the measuring time per
//! operation (default 2, fractions allowed). Without `--bench` on the command line
//! (`cargo test --all-targets` runs bench targets that way) every operation runs once, as a
//! smoke test. The process exits non-zero only when an operation's result is wrong; missing
//! the speed goal is reported, never fatal: these machines are noisy.

mod common;

use alipay::notify::{self, MAX_BODY_BYTES, MAX_PARAMETERS, NotifyError};
use alipay::{AlipayVerifier, PrivateKey};
use common::{budget, notification_params};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type BenchResult<T> = Result<T, Box<dyn Error>>;

const FLOOD_PAIRS: usize = 300_000;
/// Lambda's largest synchronous request payload: the biggest body the handler can be given.
const OVERSIZED_BYTES: usize = 6 * 1024 * 1024;
const DEFAULT_SECONDS: f64 = 2.0;
/// Each operation's budget is split into this many rounds, interleaved with the others';
/// the best round is reported, as the least disturbed by other work.
const ROUNDS: u32 = 5;

fn main() -> BenchResult<()> {
    let full = std::env::args().any(|arg| arg == "--bench");
    let Some(key) = generate_key()? else {
        println!("skipped: this bench generates its key with AWS-LC; enable the `aws-lc` feature");
        return Ok(());
    };
    let verifier = AlipayVerifier::PublicKey(key.public_key()?);
    let cases = Case::build(&key)?;

    let mut rows = Vec::new();
    for case in &cases {
        // One call first: its result is checked (the error variants name which cap refused
        // the body), and its allocations counted.
        let region = Region::new(GLOBAL);
        let outcome = notify::verify(&case.body, &verifier).map(|_| ());
        let allocated = region.change();
        if outcome != case.expected {
            return Err(
                format!("{}: got {outcome:?}, want {:?}", case.label, case.expected).into(),
            );
        }
        rows.push(Row {
            allocations: allocated.allocations + allocated.reallocations,
            bytes: allocated.bytes_allocated + allocated.bytes_reallocated.max(0).unsigned_abs(),
            best: Duration::ZERO,
        });
    }
    if !full {
        println!(
            "smoke test: every case ran once with the expected result (pass --bench to measure)"
        );
        return Ok(());
    }

    let budget = budget(DEFAULT_SECONDS)?;
    println!(
        "caps: {MAX_BODY_BYTES} bytes, {MAX_PARAMETERS} parameters; each case: {:.2} s warm-up, \
         then {ROUNDS} interleaved rounds of {:.2} s; best round reported; load average {}",
        (budget / 5).as_secs_f64(),
        (budget / ROUNDS).as_secs_f64(),
        load_average().unwrap_or_else(|| "unknown".into()),
    );
    for case in &cases {
        run_for(budget / 5, || verify(case, &verifier))?;
    }
    for _ in 0..ROUNDS {
        for (case, row) in cases.iter().zip(rows.iter_mut()) {
            let (count, elapsed) = run_for(budget / ROUNDS, || verify(case, &verifier))?;
            let per_call = elapsed / u32::try_from(count).unwrap_or(u32::MAX);
            if row.best.is_zero() || per_call < row.best {
                row.best = per_call;
            }
        }
    }
    print_table(&cases, &rows);
    Ok(())
}

#[cfg(feature = "aws-lc")]
fn generate_key() -> BenchResult<Option<PrivateKey>> {
    Ok(Some(PrivateKey::generate()?.0))
}

#[cfg(not(feature = "aws-lc"))]
fn generate_key() -> BenchResult<Option<PrivateKey>> {
    Ok(None)
}

/// One body and the result its verification must give.
struct Case {
    label: String,
    body: Vec<u8>,
    expected: Result<(), NotifyError>,
}

impl Case {
    fn build(key: &PrivateKey) -> BenchResult<Vec<Case>> {
        let normal = notify::sign_form(&notification_params(), encoding_rs::UTF_8, key)?;
        let params = normal.split('&').count();

        // Distinct keys, so no repeat can cut the work short; signed parameters last.
        let mut flood: Vec<String> = (0..FLOOD_PAIRS).map(|i| format!("k{i}=v")).collect();
        flood.push(normal.clone());
        let flood = flood.join("&");

        let mut oversized = normal.clone();
        oversized.push_str("&padding=");
        oversized.extend(std::iter::repeat_n('x', OVERSIZED_BYTES));

        Ok(vec![
            Case {
                label: format!(
                    "verify a notification ({params} params, {} B)",
                    normal.len()
                ),
                body: normal.into_bytes(),
                expected: Ok(()),
            },
            Case {
                label: format!(
                    "refuse {} distinct pairs ({} B)",
                    FLOOD_PAIRS + params,
                    flood.len()
                ),
                body: flood.into_bytes(),
                expected: Err(NotifyError::TooManyParameters {
                    limit: MAX_PARAMETERS,
                }),
            },
            Case {
                label: format!(
                    "refuse an oversized body ({params} params, {} B)",
                    oversized.len()
                ),
                body: oversized.into_bytes(),
                expected: Err(NotifyError::TooLarge {
                    limit: MAX_BODY_BYTES,
                }),
            },
        ])
    }
}

fn verify(case: &Case, verifier: &AlipayVerifier) -> BenchResult<()> {
    let outcome = notify::verify(black_box(&case.body), verifier).map(|_| ());
    if outcome == case.expected {
        Ok(())
    } else {
        Err(format!("{}: got {outcome:?}", case.label).into())
    }
}

struct Row {
    allocations: usize,
    bytes: usize,
    best: Duration,
}

fn run_for(
    budget: Duration,
    mut op: impl FnMut() -> BenchResult<()>,
) -> BenchResult<(u64, Duration)> {
    let started = Instant::now();
    let mut count = 0u64;
    loop {
        op()?;
        count += 1;
        let elapsed = started.elapsed();
        if elapsed >= budget {
            return Ok((count, elapsed));
        }
    }
}

fn print_table(cases: &[Case], rows: &[Row]) {
    let width = cases
        .iter()
        .map(|c| c.label.chars().count())
        .max()
        .unwrap_or_default();
    let baseline = rows.first().map_or(Duration::ZERO, |r| r.best);
    println!();
    println!(
        "{:<width$}  {:>12}  {:>12}  {:>11}  {:>14}",
        "case", "best µs/call", "vs verify", "allocations", "bytes allocated"
    );
    for (case, row) in cases.iter().zip(rows) {
        println!(
            "{:<width$}  {:>12.2}  {:>11.4}x  {:>11}  {:>14}",
            case.label,
            row.best.as_secs_f64() * 1e6,
            row.best.as_secs_f64() / baseline.as_secs_f64(),
            row.allocations,
            row.bytes,
        );
    }
    let slowest_refusal = rows
        .iter()
        .skip(1)
        .map(|r| r.best)
        .max()
        .unwrap_or_default();
    println!();
    println!(
        "verdict: the slowest refusal takes {:.4}x a normal verification (goal <= 1x): {}",
        slowest_refusal.as_secs_f64() / baseline.as_secs_f64(),
        if slowest_refusal <= baseline {
            "PASS"
        } else {
            "MISS"
        },
    );
}

/// The 1, 5 and 15 minute load averages: other work on the machine skews every number here.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    (fields.len() == 3).then(|| fields.join(" "))
}
