//! What every HTTP function of the merchant API shares:
//!
//! - [`config`]: environment variables, validated at init, with clear errors.
//! - [`wiring`]: builds the real adapters (DynamoDB, SQS, Secrets Manager) and the Alipay
//!   client once per sandbox.
//! - [`auth`]: merchant request authentication of a `lambda_http::Request`.
//! - [`key_ring`]: the merchant API keys, read again from Secrets Manager on an interval.
//! - [`error`]: the JSON error body and its stable codes.
//! - [`event`]: API Gateway events made safe to convert (bytes a URI may not hold, encoded).
//! - [`http`]: request parts (raw path, raw query, request id) and JSON answers.
//! - [`telemetry`]: tracing and CloudWatch embedded metrics.
//! - [`tls`]: the trusted root certificates (bundled, or the store the environment names),
//!   shared by every client.
//! - [`clock`]: the system clock.

pub mod auth;
pub mod clock;
pub mod config;
pub mod error;
pub mod event;
pub mod http;
pub mod key_ring;
mod pem;
pub mod telemetry;
pub mod tls;
pub mod view;
pub mod wiring;

pub use clock::SystemClock;
pub use config::{AdminConfig, Config, ConfigError, Function, NotifyConfig, ReconcileConfig};
pub use error::{ApiError, codes};
pub use key_ring::KeyRing;
pub use view::{OrderView, RefundView};

use lambda_http::{Body, Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

/// Runs `handler` as the Lambda function, flushing the invocation's metrics after each
/// request. The handler answers every request itself (errors are JSON answers).
pub async fn serve<H, F>(handler: Arc<H>, answer: F) -> Result<(), lambda_http::Error>
where
    H: Send + Sync + 'static,
    F: for<'a> Fn(
            Arc<H>,
            Request,
        ) -> std::pin::Pin<Box<dyn Future<Output = Response<Body>> + Send>>
        + Send
        + Sync
        + 'static,
{
    let answer = Arc::new(answer);
    let adapter = lambda_http::Adapter::from(lambda_http::service_fn(move |request: Request| {
        let handler = handler.clone();
        let answer = answer.clone();
        async move {
            let response = answer(handler, request).await;
            telemetry::flush_metrics();
            Ok::<_, Infallible>(response)
        }
    }));
    // lambda_http's own `run`, with the event made safe to convert first (see `event`).
    let service = lambda_http::tower::ServiceBuilder::new()
        .map_request(event::uri_safe_event)
        .service(adapter);
    lambda_http::lambda_runtime::run(service).await
}
