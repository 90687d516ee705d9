//! Test harness: starts the local services that integration and end-to-end tests drive, each
//! on a free port of 127.0.0.1, and stops it when the handle is dropped.
//!
//! - [`moto`]: the AWS emulator (`moto_server` from the project venv, installed by
//!   `make test-deps`).
//! - [`emulator_proxy`]: an HTTP/1.1 proxy in front of it that keeps client connections open
//!   as AWS endpoints do, and injects AWS faults (throttling, unavailability, lost answers,
//!   failed conditions) at seeded random.
//! - [`streams`]: a table's DynamoDB stream, read as Lambda's event source mapping reads it
//!   and handed over as Lambda's DynamoDB events.
//! - [`browser`]: headless Chromium driven over the DevTools Protocol, for the page tests
//!   (the Alipay sandbox's trade page, the operator console).
//!
//! The tools come from `make test-deps` (`infra/scripts/test-deps.sh`), which installs them
//! into `<workspace>/.local/`.

// Slot for the Alipay sandbox simulator's starter (infra/local/alipay-sandbox), which will
// follow the same pattern as `moto`: `pub mod alipay_sandbox;`.
pub mod browser;
pub mod emulator_proxy;
pub mod moto;
pub mod streams;

pub use aws_config::SdkConfig;
pub use emulator_proxy::{EmulatorProxy, FaultPlan};
pub use moto::{MotoError, MotoServer};

use std::path::PathBuf;

/// The workspace root (this crate lives in `<root>/tests/support`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .and_then(|tests| tests.parent())
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// A name no other test of this run uses: `<prefix>-<pid>-<counter>-<nanos>` (letters, digits
/// and `-`, valid for DynamoDB tables, SQS queues and secrets).
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}
