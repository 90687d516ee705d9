//! `local-stack`: parse arguments, set up logging, run (the logic is in the library).

use clap::Parser;
use local_stack::{DEFAULT_MOTO_PORT, DEFAULT_PORT, DEFAULT_SANDBOX_PORT, Options};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// The whole local stack on 127.0.0.1: the AWS emulator (moto), the Alipay sandbox simulator,
/// the merchant API functions on their API Gateway routes, and the operator console (its API
/// behind the JWT authorizer, its page at /console/). Once ready it writes
/// `<local dir>/stack.json` (URLs, names, the merchant key id and its secret file, the console's
/// local users); SIGINT (Ctrl-C) or SIGTERM stops everything, moto included, and removes that
/// file.
///
/// The optional function variables (SYNC_AFTER_SECONDS, BARCODE_POLL_INTERVAL_MS, ...) are
/// read from the environment. Unlike in Lambda (5 s), SYNC_AFTER_SECONDS defaults to 0: every
/// GET of a pending order asks the sandbox, so a payment made a second ago shows at once.
#[derive(Debug, Parser)]
#[command(name = "local-stack", version)]
struct Args {
    /// Port of the merchant API.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Port of the Alipay sandbox simulator.
    #[arg(long, default_value_t = DEFAULT_SANDBOX_PORT)]
    sandbox_port: u16,
    /// Port of the AWS emulator (moto).
    #[arg(long, default_value_t = DEFAULT_MOTO_PORT)]
    moto_port: u16,
    /// Directory of the sandbox keys, the merchant API key files and stack.json.
    #[arg(long, default_value = ".local")]
    local_dir: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let mut knobs = Options::knobs_from_env();
    knobs
        .entry("SYNC_AFTER_SECONDS".to_owned())
        .or_insert_with(|| "0".to_owned());
    let options = Options {
        port: args.port,
        sandbox_port: args.sandbox_port,
        moto_port: args.moto_port,
        local_dir: args.local_dir,
        knobs,
        emulator_faults: None,
        console_dir: local_stack::console::default_dir(),
    };
    match local_stack::run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "the local stack could not start");
            eprintln!("local-stack: {error}");
            ExitCode::FAILURE
        }
    }
}
