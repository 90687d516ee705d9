//! Logs and metrics.
//!
//! Logs: `tracing`, as `lambda_runtime`'s default subscriber writes them (see [`init_tracing`]):
//! JSON when Lambda's `AWS_LAMBDA_LOG_FORMAT` is `JSON` and human-readable lines otherwise, at
//! `AWS_LAMBDA_LOG_LEVEL` / `RUST_LOG` (default INFO). Every request runs in a span carrying
//! the API Gateway request id and, once known, the `out_trade_no`.
//!
//! Metrics: CloudWatch Embedded Metric Format through the `metrics` facade and
//! `metrics_cloudwatch_embedded` (a maintained EMF backend, so no hand-written writer): after
//! each invocation one JSON line goes to stdout, namespace `AlipayF2F`, dimension `Function`.

use crate::config::Function;
use crate::error::ApiError;
use lambda_http::http::StatusCode;
use lambda_http::tracing::subscriber;
use lambda_http::tracing::subscriber::filter::{EnvFilter, LevelFilter};
use lambda_http::tracing::subscriber::fmt::MakeWriter;
use lambda_http::{Body, Request, Response};
use metrics_cloudwatch_embedded::Collector;
use std::future::Future;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The EMF namespace of every metric.
pub const NAMESPACE: &str = "AlipayF2F";

static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();

/// Installs the global tracing subscriber (call once, from `main`): Lambda's log settings,
/// to stdout.
pub fn init_tracing() {
    install_tracing(&LogSettings::from_lambda_env(), std::io::stdout);
}

/// How logs are written: what `lambda_runtime`'s default subscriber reads from Lambda's
/// environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// One JSON object a line (`AWS_LAMBDA_LOG_FORMAT=JSON`, as the template sets).
    pub json: bool,
    /// `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO.
    pub level: LevelFilter,
}

impl LogSettings {
    pub fn from_lambda_env() -> LogSettings {
        let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
            .or_else(|_| std::env::var("RUST_LOG"))
            .ok()
            .and_then(|level| LevelFilter::from_str(&level).ok())
            .unwrap_or(LevelFilter::INFO);
        let json = std::env::var("AWS_LAMBDA_LOG_FORMAT")
            .is_ok_and(|format| format.eq_ignore_ascii_case("json"));
        LogSettings { json, level }
    }
}

/// Installs the global tracing subscriber, writing to `writer` (benchmarks format their logs
/// and discard them); nothing if one is installed already.
///
/// As `lambda_runtime`'s default subscriber (no time: CloudWatch stamps each line; no target;
/// `RUST_LOG` directives honoured), except that a JSON line carries its request span once
/// (`span`), not again as the list of every open span: a request has one span, and the list
/// made every line half as long again.
pub fn install_tracing<W>(settings: &LogSettings, writer: W)
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let logs = subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(
            EnvFilter::builder()
                .with_default_directive(settings.level.into())
                .from_env_lossy(),
        )
        .with_writer(writer);
    // An error only says that a subscriber is installed already.
    let _ = if settings.json {
        logs.json().with_span_list(false).try_init()
    } else {
        logs.try_init()
    };
}

/// Installs the EMF metrics recorder for `function` (call once, from `main`). Without it
/// (unit and integration tests) metrics are discarded.
pub fn init_metrics(function: Function) -> Result<(), String> {
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension("Function", function.name())
        .init()
        .map_err(|e| e.to_string())?;
    COLLECTOR
        .set(collector)
        .map_err(|_| "metrics are already initialised".to_owned())
}

/// Writes the metrics of the invocation that just ended as one EMF line on stdout.
pub fn flush_metrics() {
    flush_metrics_to(std::io::stdout());
}

/// Writes the pending metrics as one EMF line to `writer`.
pub fn flush_metrics_to(writer: impl std::io::Write) {
    if let Some(collector) = COLLECTOR.get()
        && let Err(error) = collector.flush(writer)
    {
        tracing::warn!(%error, "metrics could not be written");
    }
}

/// Counts one occurrence of `name` (e.g. `payment_created`, `alipay_unknown_outcome`).
pub fn count(name: &'static str) {
    metrics::counter!(name).increment(1);
}

/// Counts `n` occurrences of `name` at once (e.g. the rows of one reconciliation class).
pub fn count_n(name: &'static str, n: u64) {
    metrics::counter!(name).increment(n);
}

/// Records a duration in milliseconds.
pub fn millis(name: &'static str, elapsed: Duration) {
    metrics::describe_histogram!(name, metrics::Unit::Milliseconds, "");
    metrics::histogram!(name).record(elapsed.as_secs_f64() * 1000.0);
}

/// The span of one request: the function, API Gateway's request id, and an `out_trade_no`
/// field that the handler records once it knows it.
pub fn request_span(function: Function, request: &Request) -> tracing::Span {
    tracing::info_span!(
        "request",
        function = function.name(),
        request_id = %crate::http::request_id(request),
        method = %request.method(),
        out_trade_no = tracing::field::Empty,
    )
}

/// Answers one request the same way in every function: `answer` runs inside the request's
/// span; an error becomes its JSON answer and is logged (a `5xx` as a warning, a refusal as
/// information); the status class and the latency are recorded as metrics.
pub async fn observe(
    function: Function,
    request: &Request,
    answer: impl Future<Output = Result<Response<Body>, ApiError>>,
) -> Response<Body> {
    let span = request_span(function, request);
    async {
        let started = Instant::now();
        let response = match answer.await {
            Ok(response) => response,
            Err(error) => {
                let status = error.status.as_u16();
                if error.status.is_server_error() {
                    tracing::warn!(code = error.code, status, "request failed");
                } else {
                    tracing::info!(code = error.code, status, "request refused");
                }
                error.into_response()
            }
        };
        count(status_metric(response.status()));
        millis("request_latency", started.elapsed());
        response
    }
    .instrument(span)
    .await
}

fn status_metric(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "response_2xx",
        400..=499 => "response_4xx",
        _ => "response_5xx",
    }
}

/// Records the order number on the current request span.
pub fn record_out_trade_no(out_trade_no: &str) {
    tracing::Span::current().record("out_trade_no", out_trade_no);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_one_emf_line_per_flush() {
        init_metrics(Function::Pay).unwrap();
        count("payment_created");
        count("payment_created");
        millis("request_latency", Duration::from_millis(12));
        let mut out = Vec::new();
        flush_metrics_to(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let emf: serde_json::Value = serde_json::from_str(&text).unwrap();
        let directive = &emf["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "AlipayF2F");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Function"]]));
        assert!(emf["_aws"]["Timestamp"].is_u64());
        assert_eq!(emf["Function"], "pay");
        assert_eq!(emf["payment_created"], 2);
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["Name"].as_str())
            .collect();
        assert!(names.contains(&"payment_created") && names.contains(&"request_latency"));
        assert!(init_metrics(Function::Pay).is_err(), "only once");
    }
}
