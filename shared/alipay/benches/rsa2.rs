//! RSA2 throughput of every compiled-in backend, next to `openssl speed rsa2048` on the same
//! machine in the same run.
//!
//! `cargo bench -p alipay --all-features --bench rsa2` measures both backends. `BENCH_SECONDS`
//! sets the measuring time per operation (default 2, fractions allowed). Without `--bench` on
//! the command line (`cargo test --all-targets` runs bench targets that way) every operation
//! runs once, as a smoke test, and OpenSSL is not run.
//!
//! The process exits non-zero only when it cannot run at all or when the backends disagree on
//! a signature (PKCS#1 v1.5 is deterministic, so that is a correctness bug). Missing the speed
//! target is reported, never fatal: these machines are noisy.

mod common;

use alipay::{AlipayVerifier, Backend, PrivateKey, PublicKey, canonical, notify, response};
use common::{budget, notification_params};
use secrecy::zeroize::Zeroizing;
use std::error::Error;
use std::hint::black_box;
use std::io::ErrorKind;
use std::process::Command;
use std::time::{Duration, Instant};

type BenchResult<T> = Result<T, Box<dyn Error>>;

/// The default backend must reach at least OpenSSL's rate divided by this, for sign and verify.
const TARGET_SLOWDOWN: f64 = 1.3;
const DEFAULT_SECONDS: f64 = 2.0;
/// Each operation's budget is split into this many rounds, interleaved with every other
/// operation's; the best round is reported, as the least disturbed by other work.
const ROUNDS: u32 = 5;
const QUERY_METHOD: &str = "alipay.trade.query";

fn main() -> BenchResult<()> {
    let full = std::env::args().any(|arg| arg == "--bench");
    let budget = if full {
        budget(DEFAULT_SECONDS)?
    } else {
        Duration::ZERO
    };

    let names: Vec<&str> = Backend::ALL.iter().map(|b| b.name()).collect();
    println!(
        "backends compiled in: {} (default: {})",
        names.join(", "),
        Backend::default().name()
    );
    if Backend::ALL.len() < 2 {
        println!("  note: run with --all-features to measure every backend");
    }

    let Some((generated, private_pem)) = generate_key()? else {
        println!("skipped: this bench generates its key with AWS-LC; enable the `aws-lc` feature");
        return Ok(());
    };
    let public_pem = generated.public_key()?.to_pem();
    let keys = Backend::ALL
        .iter()
        .map(|&backend| {
            Ok(Keys {
                backend,
                private: PrivateKey::parse_with(&private_pem, backend)?,
                public: PublicKey::parse_with(&public_pem, backend)?,
            })
        })
        .collect::<BenchResult<Vec<Keys>>>()?;

    let fixtures = Fixtures::build(&generated)?;
    check_identical_signatures(&keys, &fixtures)?;

    if !full {
        check_parser()?;
        for key in &keys {
            for op in Op::ALL {
                op.prepare(key, &fixtures)()?;
            }
        }
        println!("smoke test: every operation ran once on every backend (pass --bench to measure)");
        return Ok(());
    }

    println!(
        "machine: {} ({} logical CPUs, load average {})",
        cpu_model().unwrap_or_else(|| "unknown CPU".into()),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average().unwrap_or_else(|| "unknown".into()),
    );
    println!(
        "each operation: {:.2} s warm-up, then {ROUNDS} interleaved rounds of {:.2} s; best round \
         reported",
        warm_up(budget).as_secs_f64(),
        (budget / ROUNDS).as_secs_f64(),
    );

    let mut openssl = OpenSsl::detect(budget);
    let rows = measure_all(budget, &keys, &fixtures, &mut openssl)?;

    print_table(&rows, &fixtures, openssl.as_ref());
    print_verdict(&rows, openssl.as_ref());
    Ok(())
}

/// `PrivateKey::generate` exists only with AWS-LC.
#[cfg(feature = "aws-lc")]
fn generate_key() -> BenchResult<Option<(PrivateKey, Zeroizing<String>)>> {
    let started = Instant::now();
    let pair = PrivateKey::generate()?;
    println!(
        "generated one RSA-2048 key pair in {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(Some(pair))
}

#[cfg(not(feature = "aws-lc"))]
fn generate_key() -> BenchResult<Option<(PrivateKey, Zeroizing<String>)>> {
    Ok(None)
}

/// One backend's view of the generated key pair.
struct Keys {
    backend: Backend,
    private: PrivateKey,
    public: PublicKey,
}

/// Realistic inputs, signed once with the generated key. PKCS#1 v1.5 signatures do not depend
/// on the backend (checked before measuring), so every backend can verify these.
struct Fixtures {
    /// A request's string to sign (`alipay.trade.precreate`).
    request_content: String,
    request_signature: String,
    /// A signed `trade_status_sync` notification form body, UTF-8.
    notify_body: String,
    notify_params: usize,
    /// A signed `alipay.trade.query` response, signed over its exact node text.
    response_body: String,
    /// The same node signed before `\/` was escaped: verification takes the SDK's retry path.
    response_fallback_body: String,
}

impl Fixtures {
    fn build(key: &PrivateKey) -> BenchResult<Fixtures> {
        let biz_content = r#"{"out_trade_no":"20240101120000000123","total_amount":"88.88","subject":"Coffee 静安寺店 #0123","store_id":"SH_JA_001","timeout_express":"15m"}"#;
        let request_content = canonical::request_content([
            ("app_id", "2021004123456789"),
            ("method", "alipay.trade.precreate"),
            ("format", "JSON"),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("timestamp", "2024-01-01 12:00:00"),
            ("version", "1.0"),
            ("notify_url", "https://pay.example.com/alipay/notify"),
            ("biz_content", biz_content),
        ]);
        let request_signature = key.sign_base64(request_content.as_bytes())?;

        let notify_params = notification_params();
        let notify_body = notify::sign_form(&notify_params, encoding_rs::UTF_8, key)?;

        let node = QUERY_RESPONSE_NODE;
        let signed = key.sign_base64(node.as_bytes())?;
        let response_body = signed_query_response(node, &signed);
        let unescaped = key.sign_base64(node.replace("\\/", "/").as_bytes())?;
        let response_fallback_body = signed_query_response(node, &unescaped);

        Ok(Fixtures {
            request_content,
            request_signature,
            notify_body,
            // Plus `sign` and `sign_type`, which `sign_form` appends.
            notify_params: notify_params.len() + 2,
            response_body,
            response_fallback_body,
        })
    }
}

/// An `alipay.trade.query` node as the gateway sends it, `/` escaped as `\/` in one field.
const QUERY_RESPONSE_NODE: &str = r#"{"code":"10000","msg":"Success","buyer_logon_id":"159****5620","buyer_pay_amount":"88.88","buyer_user_id":"2088102177846875","buyer_user_type":"PRIVATE","fund_bill_list":[{"amount":"88.88","fund_channel":"ALIPAYACCOUNT"}],"invoice_amount":"88.88","out_trade_no":"20240101120000000123","point_amount":"0.00","receipt_amount":"88.88","send_pay_date":"2024-01-01 12:00:05","store_name":"静安寺店 \/ Jing'an Temple","subject":"Coffee order 静安寺店 #0123","total_amount":"88.88","trade_no":"2024010122001446871234567890","trade_status":"TRADE_SUCCESS"}"#;

fn signed_query_response(node: &str, sign: &str) -> String {
    format!(r#"{{"alipay_trade_query_response":{node},"sign":"{sign}"}}"#)
}

/// PKCS#1 v1.5 is deterministic: every backend must produce the same bytes for the same key
/// and message. A difference is a correctness bug and aborts the run.
fn check_identical_signatures(keys: &[Keys], fixtures: &Fixtures) -> BenchResult<()> {
    let params = notification_params();
    let mut mismatches = Vec::new();
    for key in keys {
        let request = key
            .private
            .sign_base64(fixtures.request_content.as_bytes())?;
        if request != fixtures.request_signature {
            mismatches.push(format!("{}: request signature", key.backend.name()));
        }
        let form = notify::sign_form(&params, encoding_rs::UTF_8, &key.private)?;
        if form != fixtures.notify_body {
            mismatches.push(format!("{}: notification form", key.backend.name()));
        }
        // Each backend must also accept the reference signature with its own public key.
        key.public.verify_base64(
            fixtures.request_content.as_bytes(),
            &fixtures.request_signature,
        )?;
    }
    if !mismatches.is_empty() {
        return Err(format!(
            "backends disagree on RSA2 signatures (a correctness bug): {}",
            mismatches.join("; ")
        )
        .into());
    }
    if keys.len() > 1 {
        println!(
            "signatures: identical across {} (request and notification)",
            keys.iter()
                .map(|k| k.backend.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
    } else {
        println!("signatures: only one backend compiled in, nothing to compare");
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Sign,
    Verify,
    Notify,
    Response,
    ResponseFallback,
}

/// Which OpenSSL rate an operation is compared with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Baseline {
    Sign,
    Verify,
}

type Operation<'a> = Box<dyn FnMut() -> BenchResult<()> + 'a>;

impl Op {
    const ALL: [Op; 5] = [
        Op::Sign,
        Op::Verify,
        Op::Notify,
        Op::Response,
        Op::ResponseFallback,
    ];

    fn label(self, fixtures: &Fixtures) -> String {
        match self {
            Op::Sign => format!("sign_base64 ({} B request)", fixtures.request_content.len()),
            Op::Verify => "verify_base64".into(),
            Op::Notify => format!(
                "notify::verify ({} params, {} B)",
                fixtures.notify_params,
                fixtures.notify_body.len()
            ),
            Op::Response => format!("response::verify ({} B)", fixtures.response_body.len()),
            Op::ResponseFallback => "response::verify, \\/ retry".into(),
        }
    }

    fn baseline(self) -> Baseline {
        match self {
            Op::Sign => Baseline::Sign,
            _ => Baseline::Verify,
        }
    }

    /// Full verifications are also compared with the same backend's bare `verify_base64`.
    fn is_full_verification(self) -> bool {
        matches!(self, Op::Notify | Op::Response | Op::ResponseFallback)
    }

    /// One call of the operation on one backend; every result is checked.
    fn prepare<'a>(self, key: &'a Keys, fixtures: &'a Fixtures) -> Operation<'a> {
        let verifier = AlipayVerifier::PublicKey(key.public.clone());
        match self {
            Op::Sign => Box::new(move || {
                let signature = key
                    .private
                    .sign_base64(black_box(fixtures.request_content.as_bytes()))?;
                black_box(signature);
                Ok(())
            }),
            Op::Verify => Box::new(move || {
                key.public.verify_base64(
                    black_box(fixtures.request_content.as_bytes()),
                    black_box(&fixtures.request_signature),
                )?;
                Ok(())
            }),
            Op::Notify => Box::new(move || {
                let verified =
                    notify::verify(black_box(fixtures.notify_body.as_bytes()), &verifier)?;
                black_box(verified);
                Ok(())
            }),
            Op::Response => Box::new(move || {
                let verified =
                    response::verify(black_box(&fixtures.response_body), QUERY_METHOD, &verifier)?;
                black_box(verified);
                Ok(())
            }),
            Op::ResponseFallback => Box::new(move || {
                let verified = response::verify(
                    black_box(&fixtures.response_fallback_body),
                    QUERY_METHOD,
                    &verifier,
                )?;
                black_box(verified);
                Ok(())
            }),
        }
    }
}

struct Row {
    op: Op,
    backend: Backend,
    /// Operations per second in the best round.
    ops_per_sec: f64,
    /// Operations per second over all rounds.
    mean_ops_per_sec: f64,
}

fn warm_up(budget: Duration) -> Duration {
    (budget / 5).min(Duration::from_millis(500))
}

/// Every operation on every backend for `budget` of wall-clock time each, after a warm-up,
/// in [`ROUNDS`] rounds that visit every operation in turn, so that a burst of other work on the
/// machine spoils one round of many operations rather than all of one.
/// OpenSSL, when present, runs once per round too.
fn measure_all(
    budget: Duration,
    keys: &[Keys],
    fixtures: &Fixtures,
    openssl: &mut Option<OpenSsl>,
) -> BenchResult<Vec<Row>> {
    struct Tally<'a> {
        op: Op,
        backend: Backend,
        run: Operation<'a>,
        count: u64,
        elapsed: Duration,
        best: f64,
    }
    let mut tallies = Vec::new();
    for key in keys {
        for op in Op::ALL {
            let mut run = op.prepare(key, fixtures);
            run_for(warm_up(budget), &mut run)?;
            tallies.push(Tally {
                op,
                backend: key.backend,
                run,
                count: 0,
                elapsed: Duration::ZERO,
                best: 0.0,
            });
        }
    }
    for _ in 0..ROUNDS {
        for tally in &mut tallies {
            let (count, elapsed) = run_for(budget / ROUNDS, &mut tally.run)?;
            tally.count += count;
            tally.elapsed += elapsed;
            tally.best = tally.best.max(count as f64 / elapsed.as_secs_f64());
        }
        if let Some(ssl) = openssl.as_mut()
            && let Err(note) = ssl.run()
        {
            println!("note: {note}; ratios to OpenSSL skipped");
            *openssl = None;
        }
    }
    Ok(tallies
        .into_iter()
        .map(|t| Row {
            op: t.op,
            backend: t.backend,
            ops_per_sec: t.best,
            mean_ops_per_sec: t.count as f64 / t.elapsed.as_secs_f64(),
        })
        .collect())
}

fn run_for(budget: Duration, op: &mut Operation<'_>) -> BenchResult<(u64, Duration)> {
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

/// `openssl speed rsa2048`, run once per round between our operations, like them.
struct OpenSsl {
    version: String,
    /// `-seconds` per run (whole seconds; OpenSSL signs that long, then verifies that long).
    seconds: u64,
    runs: u32,
    best: [f64; 2],
    sum: [f64; 2],
}

impl OpenSsl {
    /// Finds `openssl` on PATH. Any problem is reported and the ratios skipped.
    fn detect(budget: Duration) -> Option<OpenSsl> {
        let version = match Command::new("openssl").arg("version").output() {
            Ok(out) if out.status.success() => {
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            }
            Ok(out) => {
                println!(
                    "note: `openssl version` failed ({}); ratios to OpenSSL skipped",
                    out.status
                );
                return None;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                println!("note: `openssl` is not on PATH; ratios to OpenSSL skipped");
                return None;
            }
            Err(e) => {
                println!("note: cannot run `openssl` ({e}); ratios to OpenSSL skipped");
                return None;
            }
        };
        let seconds = (budget / ROUNDS).as_secs_f64().ceil().max(1.0) as u64;
        println!("baseline: `openssl speed -seconds {seconds} rsa2048` once per round ({version})");
        Some(OpenSsl {
            version,
            seconds,
            runs: 0,
            best: [0.0; 2],
            sum: [0.0; 2],
        })
    }

    /// One run; a failure is described for the caller to report.
    fn run(&mut self) -> Result<(), String> {
        let out = Command::new("openssl")
            .args(["speed", "-seconds", &self.seconds.to_string(), "rsa2048"])
            .output()
            .map_err(|e| format!("`openssl speed` could not run ({e})"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let rates = parse_speed_rsa2048(&stdout)
            .filter(|_| out.status.success())
            .ok_or_else(|| {
                format!(
                    "no `rsa 2048 bits` result in `openssl speed` output ({}); output was:\n\
                     {stdout}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            })?;
        for (i, rate) in [rates.0, rates.1].into_iter().enumerate() {
            self.best[i] = self.best[i].max(rate);
            self.sum[i] += rate;
        }
        self.runs += 1;
        Ok(())
    }

    fn index(baseline: Baseline) -> usize {
        match baseline {
            Baseline::Sign => 0,
            Baseline::Verify => 1,
        }
    }

    /// The best run's rate, comparable with our best round.
    fn rate(&self, baseline: Baseline) -> f64 {
        self.best[Self::index(baseline)]
    }

    fn mean_rate(&self, baseline: Baseline) -> f64 {
        self.sum[Self::index(baseline)] / f64::from(self.runs.max(1))
    }
}

/// Sign/s and verify/s from the human-readable result line:
///
/// ```text
///                   sign    verify    sign/s verify/s
/// rsa 2048 bits 0.000429s 0.000023s   2331.9  43949.5
/// ```
///
/// OpenSSL 3.2+ adds encrypt/decrypt columns (`... 4 times ... sign/s verify/s encr./s
/// decr./s`), so times are told from rates by their `s` suffix and the first two rates are
/// taken. The `-mr` format is avoided: its `+F2` fields are seconds per operation in 1.1 but
/// operations per second in 3.x.
fn parse_speed_rsa2048(stdout: &str) -> Option<(f64, f64)> {
    stdout.lines().find_map(|line| {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let rest = match tokens.as_slice() {
            ["rsa", "2048", "bits", rest @ ..] | ["rsa2048", rest @ ..] => rest,
            _ => return None,
        };
        let rates: Vec<f64> = rest
            .iter()
            .filter(|t| !t.ends_with('s'))
            .map(|t| t.parse::<f64>().ok().filter(|r| r.is_finite() && *r > 0.0))
            .collect::<Option<Vec<f64>>>()?;
        match rates.as_slice() {
            [sign, verify, ..] => Some((*sign, *verify)),
            _ => None,
        }
    })
}

/// The parser against the formats of OpenSSL 1.1, 3.0 and 3.2+ (run in smoke-test mode).
fn check_parser() -> BenchResult<()> {
    let samples = [
        "                  sign    verify    sign/s verify/s\n\
         rsa 2048 bits 0.000587s 0.000027s   1703.2  37037.0\n",
        "                  sign    verify    sign/s verify/s\n\
         rsa 2048 bits 0.000429s 0.000023s   2331.9  43949.5\n",
        "                   sign    verify    encrypt   decrypt   sign/s verify/s  encr./s  decr./s\n\
         rsa  2048 bits 0.000429s 0.000023s 0.000024s 0.000431s   2331.9  43949.5  41666.7   2320.2\n",
    ];
    let expected = [(1703.2, 37037.0), (2331.9, 43949.5), (2331.9, 43949.5)];
    for (sample, want) in samples.iter().zip(expected) {
        if parse_speed_rsa2048(sample) != Some(want) {
            return Err(format!("`openssl speed` parser failed on:\n{sample}").into());
        }
    }
    Ok(())
}

fn print_table(rows: &[Row], fixtures: &Fixtures, openssl: Option<&OpenSsl>) {
    let width = Op::ALL
        .iter()
        .map(|op| op.label(fixtures).chars().count())
        .chain(["openssl speed rsa2048 verify".len()])
        .max()
        .unwrap_or_default();
    let line = |operation: &str, backend: &str, best: &str, mean: &str, ssl: &str, own: &str| {
        println!(
            "{operation:<width$}  {backend:<16}  {best:>10}  {mean:>10}  {ssl:>13}  {own:>13}"
        );
    };
    println!();
    line(
        "operation",
        "backend",
        "best ops/s",
        "mean ops/s",
        "vs OpenSSL",
        "vs own verify",
    );
    println!(
        "{}",
        "-".repeat(width + 2 + 16 + 2 + 10 + 2 + 10 + 2 + 13 + 2 + 13)
    );
    if let Some(ssl) = openssl {
        let name: Vec<&str> = ssl.version.split_whitespace().take(2).collect();
        for (label, baseline) in [
            ("openssl speed rsa2048 sign", Baseline::Sign),
            ("openssl speed rsa2048 verify", Baseline::Verify),
        ] {
            line(
                label,
                &name.join(" "),
                &format!("{:.1}", ssl.rate(baseline)),
                &format!("{:.1}", ssl.mean_rate(baseline)),
                "1.00x",
                "",
            );
        }
    }
    for row in rows {
        let versus_openssl = openssl.map_or_else(
            || "n/a".to_owned(),
            |ssl| {
                let which = match row.op.baseline() {
                    Baseline::Sign => "sign",
                    Baseline::Verify => "verify",
                };
                format!(
                    "{:.2}x {which}",
                    row.ops_per_sec / ssl.rate(row.op.baseline())
                )
            },
        );
        let versus_own = rows
            .iter()
            .find(|r| r.backend == row.backend && r.op == Op::Verify)
            .filter(|_| row.op.is_full_verification())
            .map_or_else(String::new, |raw| {
                format!("{:.2}x", row.ops_per_sec / raw.ops_per_sec)
            });
        line(
            &row.op.label(fixtures),
            row.backend.name(),
            &format!("{:.1}", row.ops_per_sec),
            &format!("{:.1}", row.mean_ops_per_sec),
            &versus_openssl,
            &versus_own,
        );
    }
    println!();
}

fn print_verdict(rows: &[Row], openssl: Option<&OpenSsl>) {
    let default = Backend::default();
    let Some(ssl) = openssl else {
        println!("verdict: skipped (no OpenSSL baseline)");
        return;
    };
    let floor = 1.0 / TARGET_SLOWDOWN;
    for (op, baseline, name) in [
        (Op::Sign, Baseline::Sign, "sign"),
        (Op::Verify, Baseline::Verify, "verify"),
    ] {
        let Some(row) = rows.iter().find(|r| r.backend == default && r.op == op) else {
            continue;
        };
        let ratio = row.ops_per_sec / ssl.rate(baseline);
        println!(
            "verdict {name:<6}: {} {:.1}/s vs OpenSSL {:.1}/s = {ratio:.2}x (target >= {floor:.2}x, \
             i.e. within {TARGET_SLOWDOWN}x): {}",
            default.name(),
            row.ops_per_sec,
            ssl.rate(baseline),
            if ratio >= floor { "PASS" } else { "MISS" },
        );
    }
}

/// The 1, 5 and 15 minute load averages: other work on the machine skews every number here.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    (fields.len() == 3).then(|| fields.join(" "))
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
}
