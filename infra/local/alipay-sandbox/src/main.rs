//! `alipay-sandbox` command line: parse arguments, set up logging, run. Without a subcommand it
//! serves (the flags below); `synth-bill` writes a large synthetic bill and exits.

use alipay_sandbox::Config;
use alipay_sandbox::bill::synth::{self, SynthOptions};
use alipay_sandbox::config::{ALIPAY_RETRY_SCHEDULE, parse_duration, parse_schedule};
use alipay_sandbox::rules::Rules;
use clap::Parser;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// A list of gaps; an alias so that clap parses it as one value, not as repeated values.
type Schedule = Vec<Duration>;

/// A local, signed, stateful Alipay OpenAPI 2.0 gateway (face-to-face payments).
#[derive(Debug, Parser)]
#[command(name = "alipay-sandbox", version, subcommand_negates_reqs = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on (loopback only unless --allow-remote).
    #[arg(long, default_value = "127.0.0.1:8639")]
    listen: SocketAddr,
    /// Directory for the key files and sandbox.json (created if missing).
    #[arg(long, required = true)]
    keys_dir: Option<PathBuf>,
    /// Sandbox time runs N times faster than real time (expiry, retries, delays, windows).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Persist all state to this JSON file after each change, and load it at start.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Gaps between notification attempts, in sandbox time (comma-separated).
    #[arg(long, default_value = ALIPAY_RETRY_SCHEDULE, value_parser = parse_schedule)]
    notify_retry_schedule: Schedule,
    /// Real-time timeout of one notification request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    notify_timeout: Duration,
    /// Allow a non-loopback --listen address (the sandbox has no authentication).
    #[arg(long)]
    allow_remote: bool,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long)]
    log_json: bool,
    /// How long (real seconds) a bill download URL works.
    #[arg(long, default_value_t = 30)]
    bill_url_ttl_seconds: u64,
    /// Rules a new state starts with, as a JSON object of the fields to change, e.g.
    /// '{"buyer_id":"user_id"}' (see README, "Rules").
    #[arg(long, default_value = "{}", value_parser = parse_rules)]
    rules: Rules,
}

fn parse_rules(text: &str) -> Result<Rules, String> {
    let patch: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Rules::default().patched(&patch)
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Write a large synthetic daily trade bill (ZIP in Alipay's format) and the matching
    /// orders file (JSON lines) for reconciliation benchmarks, then exit.
    SynthBill(SynthArgs),
}

#[derive(Debug, clap::Args)]
struct SynthArgs {
    /// The (Beijing) day of the bill, yyyy-MM-dd.
    #[arg(long)]
    date: chrono::NaiveDate,
    /// Detail rows in all (payments and refunds).
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Seed of the deterministic generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Merchant PID (2088 + 12 digits) in file names and the bill's account line.
    #[arg(long, default_value = "2088000000000001")]
    pid: String,
    /// Percentage of rows that are refunds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=100))]
    refund_percent: u64,
    /// Deflate level (1 fast .. 9 small).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(i64).range(1..=9))]
    level: i64,
}

fn synth_bill(args: SynthArgs) -> ExitCode {
    let options = SynthOptions {
        seed: args.seed,
        seller_id: args.pid,
        refund_percent: args.refund_percent,
        level: args.level,
        ..SynthOptions::new(args.date, args.rows, args.out)
    };
    match synth::synth_bill(&options) {
        Ok(report) => {
            println!(
                "synth-bill: {} rows ({} payments, {} refunds) in {:.2} s = {:.0} rows/s",
                report.rows,
                report.payments,
                report.refunds,
                report.elapsed.as_secs_f64(),
                report.rows_per_second()
            );
            println!(
                "bill:   {} ({:.1} MiB)",
                report.zip_path.display(),
                report.zip_bytes as f64 / (1024.0 * 1024.0)
            );
            println!("orders: {}", report.orders_path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("alipay-sandbox synth-bill: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::SynthBill(synth)) = args.command {
        return synth_bill(synth);
    }
    let Some(keys_dir) = args.keys_dir else {
        eprintln!("alipay-sandbox: --keys-dir is required");
        return ExitCode::FAILURE;
    };
    init_logging(args.log_json);
    let config = Config {
        listen: args.listen,
        keys_dir,
        time_scale: args.time_scale,
        state_file: args.state_file,
        notify_retry_schedule: args.notify_retry_schedule,
        notify_timeout: args.notify_timeout,
        allow_remote: args.allow_remote,
        bill_url_ttl: Duration::from_secs(args.bill_url_ttl_seconds),
        rules: args.rules,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("alipay-sandbox: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(alipay_sandbox::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("alipay-sandbox: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
