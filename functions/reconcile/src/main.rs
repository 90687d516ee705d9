//! Wires the real adapters (DynamoDB, S3) once, then reconciles every stored bill an S3 event
//! names.

use aws_adapters::{DynamoOrderStore, S3Objects, aws_sdk_dynamodb, aws_sdk_s3};
use aws_lambda_events::event::s3::S3Event;
use f2f_runtime::{Function, ReconcileConfig, SystemClock, telemetry, wiring};
use lambda_runtime::{LambdaEvent, service_fn};
use reconcile::{Reconciler, handle_event};
use std::sync::Arc;

// A sandbox handles one event at a time on a share of a vCPU: one thread spares the
// cross-thread wake-ups (a third of the pay function's CPU per create; `create_cpu` bench).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init_tracing();
    let config = ReconcileConfig::from_env().inspect_err(|error| {
        tracing::error!(%error, "invalid configuration");
    })?;
    telemetry::init_metrics(Function::Reconcile)?;
    let sdk = wiring::aws_config().await.inspect_err(|error| {
        tracing::error!(%error, "the AWS configuration could not be built");
    })?;
    let reconciler = Arc::new(Reconciler {
        store: DynamoOrderStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.orders_table)
            .acting_as(Function::Reconcile.name()),
        objects: S3Objects::new(aws_sdk_s3::Client::new(&sdk), config.bill_bucket),
        clock: SystemClock,
        scratch: config.scratch_dir,
        progress: None,
    });
    tracing::info!("reconcile function ready");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<S3Event>| {
        let reconciler = reconciler.clone();
        async move {
            let result = handle_event(&reconciler, &event.payload).await;
            telemetry::flush_metrics();
            result
        }
    }))
    .await
}
