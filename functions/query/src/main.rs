//! Wires the real adapters (DynamoDB, Secrets Manager, Alipay) once, then serves.

use f2f_runtime::{Config, Function, SystemClock, telemetry, wiring};
use query::{Orders, QueryApi};
use std::sync::Arc;

// A sandbox handles one event at a time on a share of a vCPU: one thread spares the
// cross-thread wake-ups (a third of the pay function's CPU per create; `create_cpu` bench).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init_tracing();
    let config = Config::from_env(Function::Query).inspect_err(|error| {
        tracing::error!(%error, "invalid configuration");
    })?;
    telemetry::init_metrics(Function::Query)?;
    let adapters = wiring::build(&config).await.inspect_err(|error| {
        tracing::error!(%error, "the adapters could not be built");
    })?;
    let api = Arc::new(QueryApi {
        orders: Orders {
            store: adapters.orders,
            gateway: adapters.alipay,
            clock: SystemClock,
            sync_after: config.knobs.sync_after,
        },
        nonces: adapters.nonces,
        keys: adapters.merchant_keys,
    });
    tracing::info!("query function ready");
    f2f_runtime::serve(api, |api, request| {
        Box::pin(async move { api.handle(request).await })
    })
    .await
}
