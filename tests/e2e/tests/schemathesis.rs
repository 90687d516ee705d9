//! Schemathesis against the whole local stack, started as `make run` starts it on free ports of
//! 127.0.0.1 with a temporary local directory: requests generated from
//! `infra/api/openapi.yaml` (valid and invalid, each operation alone and in sequences), signed
//! with the stack's merchant key by `tests/e2e/schemathesis/hooks.py`, every answer checked as
//! `tests/e2e/schemathesis/schemathesis.toml` says: no 5xx; status code, content type, headers
//! and body as documented; schema-valid requests accepted and invalid ones refused; every error
//! a JSON body with `code` and `message`; every operation answering 2xx at least once.
//!
//! Fails on any finding, with schemathesis' report (each finding with a curl command that
//! reproduces it). Schemathesis is pinned in `.local/schemathesis-venv`
//! (`infra/scripts/test-deps.sh schemathesis`). `SCHEMATHESIS_MAX_EXAMPLES` sets the number of
//! cases per operation and phase (default 30); `make schemathesis` runs 1000.

use local_stack::{LocalStack, Options};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};
use tokio::process::Command;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const DEFAULT_MAX_EXAMPLES: u32 = 30;
/// Far more than the default run takes; a long run sets its own.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_merchant_api_conforms_to_its_openapi_schema() -> TestResult {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let schemathesis = root.join(".local/schemathesis-venv/bin/schemathesis");
    assert!(
        schemathesis.is_file(),
        "{} is missing: run infra/scripts/test-deps.sh schemathesis (make test does)",
        schemathesis.display()
    );
    let max_examples: u32 = match std::env::var("SCHEMATHESIS_MAX_EXAMPLES") {
        Ok(text) => text.parse()?,
        Err(_) => DEFAULT_MAX_EXAMPLES,
    };
    let dir = tempfile::tempdir()?;
    let stack = LocalStack::start(Options {
        // As `make run` (main.rs): every GET of a pending order asks the sandbox.
        knobs: BTreeMap::from([("SYNC_AFTER_SECONDS".to_owned(), "0".to_owned())]),
        ..Options::on_free_ports(dir.path())
    })
    .await?;
    let started = Instant::now();
    let outcome = run(&schemathesis, &root, &stack, dir.path(), max_examples).await;
    stack.shutdown().await;
    let output = outcome?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "{report}\nschemathesis: {max_examples} examples per operation and phase in {:.0?}",
        started.elapsed()
    );
    assert!(
        output.status.success(),
        "schemathesis found problems ({}):\n{report}",
        output.status
    );
    Ok(())
}

/// Schemathesis' CLI against the stack, in `work` (where it may leave files of its own).
async fn run(
    schemathesis: &Path,
    root: &Path,
    stack: &LocalStack,
    work: &Path,
    max_examples: u32,
) -> TestResult<Output> {
    let here = root.join("tests/e2e/schemathesis");
    let mut command = Command::new(schemathesis);
    command
        .arg("--config-file")
        .arg(here.join("schemathesis.toml"))
        .arg("run")
        .arg(root.join("infra/api/openapi.yaml"))
        .args(["--url", stack.api_url(), "--no-color"])
        .arg(format!("--max-examples={max_examples}"))
        .env("SCHEMATHESIS_HOOKS", here.join("hooks.py"))
        .env("SCHEMATHESIS_STACK_FILE", stack.write_stack_file()?)
        .current_dir(work)
        .kill_on_drop(true);
    // Grows with the examples; the default run takes 0.5-2.5 minutes.
    let timeout = DEFAULT_TIMEOUT.max(Duration::from_secs(u64::from(max_examples) * 3));
    Ok(tokio::time::timeout(timeout, command.output()).await??)
}
