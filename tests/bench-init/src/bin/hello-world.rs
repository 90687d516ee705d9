//! The cold-start baseline: a bare `lambda_runtime` function (a Tokio runtime and the runtime
//! client, nothing else) that answers every event with the event itself.

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move { Ok::<_, Error>(event.payload) },
    ))
    .await
}
