//! Wires the Alipay client and the bill bucket once, then fetches the bill each event asks
//! for (the daily schedule: yesterday; a manual run: `{"date": "yyyy-MM-dd"}`).

use aws_adapters::{S3Objects, aws_sdk_s3};
use bill_fetch::{BillFetcher, Schedule};
use f2f_runtime::{Config, Function, SystemClock, telemetry, wiring};
use lambda_runtime::{LambdaEvent, service_fn};
use std::sync::Arc;

// A sandbox handles one event at a time on a share of a vCPU: one thread spares the
// cross-thread wake-ups (a third of the pay function's CPU per create; `create_cpu` bench).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init_tracing();
    let config = Config::from_env(Function::BillFetch).inspect_err(|error| {
        tracing::error!(%error, "invalid configuration");
    })?;
    telemetry::init_metrics(Function::BillFetch)?;
    // One set of trusted roots for the S3 client, the clients the adapters build and the
    // Alipay client.
    let sdk = wiring::aws_config().await.inspect_err(|error| {
        tracing::error!(%error, "the AWS configuration could not be built");
    })?;
    let adapters = wiring::build_with(&config, &sdk)
        .await
        .inspect_err(|error| {
            tracing::error!(%error, "the adapters could not be built");
        })?;
    let bucket = config
        .bill_bucket
        .clone()
        .ok_or("BILL_BUCKET is required")?;
    let fetcher = Arc::new(BillFetcher {
        alipay: adapters.alipay,
        objects: S3Objects::new(aws_sdk_s3::Client::new(&sdk), bucket),
        clock: SystemClock,
        schedule: Schedule {
            deadline_hour: config.knobs.bill_deadline_hour,
        },
    });
    tracing::info!("bill-fetch function ready");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let fetcher = fetcher.clone();
        async move {
            let result = fetcher.handle(&event.payload).await;
            telemetry::flush_metrics();
            result
        }
    }))
    .await
}
