//! Wires the real adapters (DynamoDB, SQS, Secrets Manager, Alipay) once, then serves the
//! expiry queue's batches.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use domain::fence::LeasePolicy;
use f2f_runtime::{Config, Function, SystemClock, telemetry, wiring};
use lambda_runtime::{LambdaEvent, service_fn};
use std::sync::Arc;
use timeout_close::Expiries;

// A sandbox handles one event at a time on a share of a vCPU: one thread spares the
// cross-thread wake-ups (a third of the pay function's CPU per create; `create_cpu` bench).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init_tracing();
    let config = Config::from_env(Function::TimeoutClose).inspect_err(|error| {
        tracing::error!(%error, "invalid configuration");
    })?;
    telemetry::init_metrics(Function::TimeoutClose)?;
    let adapters = wiring::build(&config).await.inspect_err(|error| {
        tracing::error!(%error, "the adapters could not be built");
    })?;
    let expiries = Arc::new(Expiries {
        store: adapters.orders,
        scheduler: adapters.expiry.ok_or("EXPIRY_QUEUE_URL is required")?,
        gateway: adapters.alipay,
        clock: SystemClock,
        policy: LeasePolicy {
            lease: config.knobs.claim_lease,
            margin: LeasePolicy::DEFAULT_MARGIN,
        },
        refunds: config.refund_policy(),
    });
    tracing::info!("timeout-close function ready");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let expiries = expiries.clone();
        async move {
            let response: SqsBatchResponse = expiries.handle_batch(event.payload).await;
            telemetry::flush_metrics();
            Ok::<_, std::convert::Infallible>(response)
        }
    }))
    .await
}
