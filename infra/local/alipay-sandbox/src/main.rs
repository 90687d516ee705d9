//! `alipay-sandbox` command line: parse arguments, set up logging, run.

use alipay_sandbox::Config;
use alipay_sandbox::config::{ALIPAY_RETRY_SCHEDULE, parse_duration, parse_schedule};
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
#[command(name = "alipay-sandbox", version)]
struct Args {
    /// Address to listen on (loopback only unless --allow-remote).
    #[arg(long, default_value = "127.0.0.1:8639")]
    listen: SocketAddr,
    /// Directory for the key files and sandbox.json (created if missing).
    #[arg(long)]
    keys_dir: PathBuf,
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
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_json);
    let config = Config {
        listen: args.listen,
        keys_dir: args.keys_dir,
        time_scale: args.time_scale,
        state_file: args.state_file,
        notify_retry_schedule: args.notify_retry_schedule,
        notify_timeout: args.notify_timeout,
        allow_remote: args.allow_remote,
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
