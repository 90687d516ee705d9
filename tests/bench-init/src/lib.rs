//! A local Lambda Runtime API for cold-start measurements: HTTP/1.1 on a free port of
//! 127.0.0.1, the paths of the `2018-06-01` API that a function's runtime client calls.
//!
//! One [`RuntimeApi`] serves one sandbox: it hands out one event, then holds every later
//! `GET .../invocation/next` open until it is dropped, as Lambda does between invocations. It
//! records when the first `next` arrived (the end of init), when the event was handed out and
//! when its response or error came back, on the caller's clock ([`Instant`]), so the caller
//! can time init from the moment it started the process.
//!
//! ```no_run
//! # async fn demo() -> Result<(), bench_init::RuntimeApiError> {
//! let api = bench_init::RuntimeApi::start(serde_json::json!({"hello": "world"})).await?;
//! // exec the function with AWS_LAMBDA_RUNTIME_API = api.address(), then:
//! let record = api.wait(std::time::Duration::from_secs(10)).await?;
//! # let _ = record; Ok(()) }
//! ```

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

const PREFIX: &str = "/2018-06-01/runtime";
/// The request id of the one event handed out.
pub const REQUEST_ID: &str = "8f507cfc-0000-4000-8000-000000000001";
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:bench";
const TRACE_ID: &str = "Root=1-00000000-000000000000000000000001;Parent=0000000000000001;Sampled=0";
/// The deadline handed out with the event, from the moment it is handed out.
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RuntimeApiError {
    #[error("the runtime API could not listen: {0}")]
    Listen(#[from] std::io::Error),
    #[error("the function reported an init error: {0}")]
    InitError(String),
    #[error("no answer to the event within {0:?} (first next: {1})")]
    Timeout(Duration, &'static str),
    #[error("the runtime API stopped")]
    Stopped,
}

/// What happened to the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `POST .../invocation/{id}/response`.
    Response(String),
    /// `POST .../invocation/{id}/error`.
    Error(String),
}

/// The times of one sandbox's init and first invocation.
#[derive(Debug, Clone)]
pub struct Record {
    /// The first `GET .../invocation/next`: init is over.
    pub first_next: Instant,
    /// The event left in the answer to that `next`.
    pub handed_out: Instant,
    /// Its response or error arrived.
    pub answered: Instant,
    pub answer: Answer,
}

impl Record {
    /// From the event handed out to its answer.
    pub fn invocation(&self) -> Duration {
        self.answered.saturating_duration_since(self.handed_out)
    }
}

#[derive(Debug, Clone, Default)]
struct Progress {
    first_next: Option<Instant>,
    handed_out: Option<Instant>,
    answered: Option<(Instant, Answer)>,
    init_error: Option<String>,
}

struct Shared {
    event: Bytes,
    progress: watch::Sender<Progress>,
    /// Flips to `true` when the [`RuntimeApi`] is dropped: held `next` calls end.
    stopping: watch::Sender<bool>,
}

/// A running Runtime API for one sandbox; stops when dropped.
pub struct RuntimeApi {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeApi")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl RuntimeApi {
    /// Listens on a free port of 127.0.0.1, with `event` as the one event to hand out.
    pub async fn start(event: serde_json::Value) -> Result<RuntimeApi, RuntimeApiError> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            event: Bytes::from(event.to_string()),
            progress: watch::Sender::new(Progress::default()),
            stopping: watch::Sender::new(false),
        });
        let app = Router::new()
            .route(&format!("{PREFIX}/invocation/next"), get(next))
            .route(
                &format!("{PREFIX}/invocation/{{id}}/response"),
                post(response),
            )
            .route(&format!("{PREFIX}/invocation/{{id}}/error"), post(error))
            .route(&format!("{PREFIX}/init/error"), post(init_error))
            .with_state(shared.clone());
        let mut stopping = shared.stopping.subscribe();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopping.wait_for(|stop| *stop).await;
                })
                .await;
        });
        Ok(RuntimeApi {
            address,
            shared,
            server,
        })
    }

    /// `127.0.0.1:<port>`: the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// The time of the first `next`, if it came.
    pub fn first_next(&self) -> Option<Instant> {
        self.shared.progress.borrow().first_next
    }

    /// Waits until the event is answered (or the function reports an init error).
    pub async fn wait(&self, timeout: Duration) -> Result<Record, RuntimeApiError> {
        let mut progress = self.shared.progress.subscribe();
        let done = tokio::time::timeout(
            timeout,
            progress.wait_for(|p| p.answered.is_some() || p.init_error.is_some()),
        )
        .await;
        let snapshot = match done {
            Ok(Ok(snapshot)) => snapshot.clone(),
            Ok(Err(_)) => return Err(RuntimeApiError::Stopped),
            Err(_) => {
                let reached = if self.first_next().is_some() {
                    "received"
                } else {
                    "never received"
                };
                return Err(RuntimeApiError::Timeout(timeout, reached));
            }
        };
        if let Some(error) = snapshot.init_error {
            return Err(RuntimeApiError::InitError(error));
        }
        match (snapshot.first_next, snapshot.handed_out, snapshot.answered) {
            (Some(first_next), Some(handed_out), Some((answered, answer))) => Ok(Record {
                first_next,
                handed_out,
                answered,
                answer,
            }),
            _ => Err(RuntimeApiError::Stopped),
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.shared.stopping.send_replace(true);
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let now = Instant::now();
    let mut first = false;
    shared.progress.send_modify(|p| {
        if p.first_next.is_none() {
            p.first_next = Some(now);
            p.handed_out = Some(Instant::now());
            first = true;
        }
    });
    if !first {
        // The sandbox waits for its next event until it is frozen or, here, stopped.
        let mut stopping = shared.stopping.subscribe();
        let _ = stopping.wait_for(|stop| *stop).await;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let deadline = SystemTime::now()
        .checked_add(DEADLINE)
        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_millis());
    let mut headers = HeaderMap::new();
    headers.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_static(REQUEST_ID),
    );
    if let Ok(value) = HeaderValue::from_str(&deadline.to_string()) {
        headers.insert("lambda-runtime-deadline-ms", value);
    }
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static(FUNCTION_ARN),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static(TRACE_ID),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (StatusCode::OK, headers, shared.event.clone()).into_response()
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    answered(&shared, &id, Answer::Response(text(&body)))
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    answered(&shared, &id, Answer::Error(text(&body)))
}

fn answered(shared: &Shared, id: &str, answer: Answer) -> StatusCode {
    let now = Instant::now();
    if id != REQUEST_ID {
        return StatusCode::BAD_REQUEST;
    }
    shared.progress.send_modify(|p| {
        if p.answered.is_none() {
            p.answered = Some((now, answer));
        }
    });
    StatusCode::ACCEPTED
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    let body = text(&body);
    shared.progress.send_modify(|p| {
        p.init_error.get_or_insert(body);
    });
    StatusCode::ACCEPTED
}

fn text(body: &Bytes) -> String {
    String::from_utf8_lossy(body).into_owned()
}
