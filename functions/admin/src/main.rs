//! Wires the table, the reports bucket and the expiry queue once, then serves the console's API.

use f2f_runtime::{AdminConfig, Function, telemetry, wiring};
use std::sync::Arc;

// A sandbox handles one event at a time on a share of a vCPU: one thread spares the
// cross-thread wake-ups (see the pay function).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init_tracing();
    let config = AdminConfig::from_env().inspect_err(|error| {
        tracing::error!(%error, "invalid configuration");
    })?;
    telemetry::init_metrics(Function::Admin)?;
    let sdk = wiring::aws_config().await.inspect_err(|error| {
        tracing::error!(%error, "the AWS configuration could not be built");
    })?;
    let api = Arc::new(admin::wired(&sdk, &config));
    tracing::info!("admin function ready");
    f2f_runtime::serve(api, |api, request| {
        Box::pin(async move { api.handle(request).await })
    })
    .await
}
