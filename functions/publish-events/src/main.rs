//! Wires the SQS sink once, then publishes the business events of the table stream's batches.
//!
//! | variable | meaning |
//! | --- | --- |
//! | `EVENTS_QUEUE_URL` | the SQS queue business events go to (FIFO in AWS: `.fifo`) |

use aws_adapters::{SqsEventSink, aws_sdk_sqs};
use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{LambdaEvent, service_fn};
use publish_events::Publisher;
use std::sync::Arc;
use tracing::Instrument;

const EVENTS_QUEUE_URL: &str = "EVENTS_QUEUE_URL";

// A sandbox handles one event at a time on a share of a vCPU: one thread spares the
// cross-thread wake-ups (a third of the pay function's CPU per create; `create_cpu` bench).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    f2f_runtime::telemetry::init_tracing();
    let queue_url = std::env::var(EVENTS_QUEUE_URL)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .ok_or_else(|| format!("environment variable {EVENTS_QUEUE_URL} is required"))
        .inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    // The same EMF namespace as the other functions, one line per invocation.
    let metrics = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(f2f_runtime::telemetry::NAMESPACE)
        .with_dimension("Function", "publish-events")
        .init()?;
    let config = f2f_runtime::wiring::aws_config()
        .await
        .inspect_err(|error| {
            tracing::error!(%error, "the AWS configuration could not be built");
        })?;
    let publisher = Arc::new(Publisher {
        sink: SqsEventSink::new(aws_sdk_sqs::Client::new(&config), queue_url),
    });
    tracing::info!("publish-events function ready");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        let publisher = publisher.clone();
        async move {
            let span = tracing::info_span!(
                "stream_batch",
                request_id = %event.context.request_id,
                records = event.payload.records.len()
            );
            let answer = publisher.handle(event.payload).instrument(span).await;
            if let Err(error) = metrics.flush(std::io::stdout()) {
                tracing::warn!(%error, "metrics could not be written");
            }
            // An error makes Lambda retry the whole batch (bisecting it).
            answer.map_err(|error| {
                tracing::error!(%error, "the batch cannot be answered");
                lambda_runtime::Error::from(error)
            })
        }
    }))
    .await
}
