//! Reads the configuration, builds the store and the verifier once, then serves.

use f2f_runtime::{Function, NotifyConfig, SystemClock, telemetry, wiring};
use notify::Notifications;
use std::sync::Arc;

// A sandbox handles one event at a time on a share of a vCPU: one thread spares the
// cross-thread wake-ups (a third of the pay function's CPU per create; `create_cpu` bench).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init_tracing();
    let config = NotifyConfig::from_env().inspect_err(|error| {
        tracing::error!(%error, "invalid configuration");
    })?;
    telemetry::init_metrics(Function::Notify)?;
    let sdk = wiring::aws_config().await.inspect_err(|error| {
        tracing::error!(%error, "the AWS configuration could not be built");
    })?;
    let adapters = wiring::build_notify(&config, &sdk)
        .await
        .inspect_err(|error| {
            tracing::error!(%error, "the adapters could not be built");
        })?;
    let notifications = Arc::new(Notifications {
        store: adapters.orders,
        clock: SystemClock,
        verifier: adapters.verifier,
        app_id: config.app_id,
        seller_id: config.seller_id,
    });
    tracing::info!("notify function ready");
    f2f_runtime::serve(notifications, |notifications, request| {
        Box::pin(async move { notifications.handle(request).await })
    })
    .await
}
