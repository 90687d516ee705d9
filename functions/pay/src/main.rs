//! Wires the real adapters (DynamoDB, SQS, Secrets Manager, Alipay) once, then serves.

use f2f_runtime::{Config, Function, telemetry, wiring};
use pay::WiredPayApi;
use std::sync::Arc;

// A sandbox handles one event at a time on a share of a vCPU: one thread spares the
// cross-thread wake-ups (a third of the pay function's CPU per create; `create_cpu` bench).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init_tracing();
    let config = Config::from_env(Function::Pay).inspect_err(|error| {
        tracing::error!(%error, "invalid configuration");
    })?;
    telemetry::init_metrics(Function::Pay)?;
    let adapters = wiring::build(&config).await.inspect_err(|error| {
        tracing::error!(%error, "the adapters could not be built");
    })?;
    let api = Arc::new(WiredPayApi::wired(&config, adapters)?);
    tracing::info!("pay function ready");
    f2f_runtime::serve(api, |api, request| {
        Box::pin(async move { api.handle(request).await })
    })
    .await
}
