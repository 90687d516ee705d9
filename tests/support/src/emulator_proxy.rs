//! A fault-injecting HTTP/1.1 proxy in front of the AWS emulator, on a free port of 127.0.0.1.
//!
//! ```no_run
//! # async fn demo(moto: &test_support::MotoServer) -> Result<(), test_support::emulator_proxy::ProxyError> {
//! use test_support::emulator_proxy::{EmulatorProxy, FaultPlan, FaultRates};
//! let proxy = EmulatorProxy::start(&moto.endpoint_url(), FaultPlan::seeded(7, FaultRates {
//!     throttle: 0.05,
//!     ..FaultRates::NONE
//! }))
//! .await?;
//! let endpoint = proxy.endpoint(); // the endpoint override of the clients under test
//! # let _ = endpoint; Ok(()) }
//! ```
//!
//! With [`FaultPlan::none`] it is a pass-through: the request goes upstream with its method,
//! path, headers (SigV4's signed ones included, `Host` as the client sent it) and body
//! unchanged, and the answer comes back as moto gave it, streamed. Only the hop-by-hop headers
//! are dropped: moto (werkzeug) answers every request with `Connection: close`, AWS endpoints
//! keep their connections open, and so does this proxy towards its clients (one new upstream
//! connection per request), so that a client's connection reuse costs what it costs in AWS.
//!
//! Faults are drawn per request, from a seeded generator, for the requests of the AWS JSON
//! protocols (DynamoDB, DynamoDB Streams, SQS, Secrets Manager), whose operation is in the
//! `X-Amz-Target` header; others (S3, moto's own API) always pass. Each fault answers as the
//! service does (status, `__type` in the body, `x-amzn-ErrorType`, and SQS's
//! `x-amzn-query-error`), which is what the AWS SDK reads the error code from:
//!
//! - [`FaultKind::Throttled`]: 400, DynamoDB `ProvisionedThroughputExceededException` or
//!   `ThrottlingException`, SQS `RequestThrottled`; not forwarded;
//! - [`FaultKind::Unavailable`]: 503 `ServiceUnavailable`; not forwarded;
//! - [`FaultKind::LostAnswer`]: forwarded (the effect happens), then answered 500
//!   `InternalServerError` (SQS `InternalFailure`) instead of moto's answer;
//! - [`FaultKind::ConditionFailed`]: only DynamoDB writes that carry a condition (`PutItem`,
//!   `UpdateItem`, `DeleteItem`, `TransactWriteItems`); not forwarded, answered as if another
//!   writer had got there first: `ConditionalCheckFailedException`, or for a transaction
//!   `TransactionCanceledException` with `ConditionalCheckFailed` for its first conditioned
//!   item and `None` for the others. When the request asked for
//!   `ReturnValuesOnConditionCheckFailure: ALL_OLD`, the answer carries the item as moto
//!   holds it (read with a consistent `GetItem`), as DynamoDB's does.
//!
//! [`EmulatorProxy::counts`] tells how many requests went through and how many faults of
//! each kind were injected, per operation.

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the upstream endpoint {0} is not http://host:port")]
    Upstream(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The probability of each fault for one request (each in `0.0..=1.0`; their sum at most 1).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultRates {
    pub throttle: f64,
    pub unavailable: f64,
    pub lost_answer: f64,
    /// Drawn for every request, injected only into conditional DynamoDB writes.
    pub condition_failed: f64,
}

impl FaultRates {
    pub const NONE: FaultRates = FaultRates {
        throttle: 0.0,
        unavailable: 0.0,
        lost_answer: 0.0,
        condition_failed: 0.0,
    };
}

/// Which faults to inject: default rates, rates of their own for some operations (named as in
/// `X-Amz-Target` after the dot, e.g. `PutItem`), the generator's seed, and at most how many.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultPlan {
    pub seed: u64,
    pub rates: FaultRates,
    pub per_operation: BTreeMap<String, FaultRates>,
    /// Once this many faults were injected under this plan, every request passes (e.g. `1`:
    /// the first attempt fails, the SDK's retry goes through).
    pub max_faults: Option<u64>,
}

impl FaultPlan {
    /// No faults: a pass-through.
    pub fn none() -> FaultPlan {
        FaultPlan::default()
    }

    pub fn seeded(seed: u64, rates: FaultRates) -> FaultPlan {
        FaultPlan {
            seed,
            rates,
            per_operation: BTreeMap::new(),
            max_faults: None,
        }
    }

    /// At most `n` faults, then a pass-through.
    pub fn at_most(mut self, n: u64) -> FaultPlan {
        self.max_faults = Some(n);
        self
    }

    /// `operation` (e.g. `PutItem`) gets `rates` instead of the default ones.
    pub fn with_operation(mut self, operation: &str, rates: FaultRates) -> FaultPlan {
        self.per_operation.insert(operation.to_owned(), rates);
        self
    }

    fn rates_for(&self, operation: &str) -> FaultRates {
        self.per_operation
            .get(operation)
            .copied()
            .unwrap_or(self.rates)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    Throttled,
    Unavailable,
    LostAnswer,
    ConditionFailed,
}

impl FaultKind {
    pub const ALL: [FaultKind; 4] = [
        FaultKind::Throttled,
        FaultKind::Unavailable,
        FaultKind::LostAnswer,
        FaultKind::ConditionFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Throttled => "throttled",
            FaultKind::Unavailable => "unavailable",
            FaultKind::LostAnswer => "lost_answer",
            FaultKind::ConditionFailed => "condition_failed",
        }
    }
}

/// What went through the proxy since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Requests answered by the upstream as is.
    pub passed: u64,
    /// Faults injected, by operation (`DynamoDB_20120810.PutItem`) and kind.
    pub injected: BTreeMap<(String, FaultKind), u64>,
}

impl FaultCounts {
    /// Faults of `kind` injected into any operation.
    pub fn total(&self, kind: FaultKind) -> u64 {
        self.injected
            .iter()
            .filter(|((_, k), _)| *k == kind)
            .map(|(_, n)| n)
            .sum()
    }

    /// Faults of every kind.
    pub fn faults(&self) -> u64 {
        self.injected.values().sum()
    }
}

/// A running proxy; stopped (its listener and connections closed) on drop.
#[derive(Debug)]
pub struct EmulatorProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl EmulatorProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream_endpoint`
    /// (`http://host:port`, e.g. [`crate::MotoServer::endpoint_url`]).
    pub async fn start(
        upstream_endpoint: &str,
        faults: FaultPlan,
    ) -> Result<EmulatorProxy, ProxyError> {
        let upstream = upstream_endpoint
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|authority| !authority.is_empty() && !authority.contains('/'))
            .ok_or_else(|| ProxyError::Upstream(upstream_endpoint.to_owned()))?
            .to_owned();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            state: Mutex::new(State::new(faults)),
            key_names: Mutex::new(HashMap::new()),
            connections: AtomicU64::new(0),
        });
        let task = tokio::spawn(accept(listener, shared.clone()));
        Ok(EmulatorProxy {
            address,
            shared,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`, for an SDK endpoint override or `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Requests passed and faults injected so far.
    pub fn counts(&self) -> FaultCounts {
        self.shared.lock_state().counts.clone()
    }

    /// Client connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Replaces the plan (the generator restarts from its seed); the counts go on.
    pub fn set_plan(&self, faults: FaultPlan) {
        let mut state = self.shared.lock_state();
        state.rng = SplitMix64::new(faults.seed);
        state.injected = 0;
        state.plan = faults;
    }
}

impl Drop for EmulatorProxy {
    fn drop(&mut self) {
        // The accept task owns the connections' tasks: aborting it drops them all.
        self.task.abort();
    }
}

#[derive(Debug)]
struct Shared {
    /// `host:port` of the emulator.
    upstream: String,
    state: Mutex<State>,
    /// DynamoDB tables' key attribute names (read once per table, for `ALL_OLD` answers).
    key_names: Mutex<HashMap<String, Vec<String>>>,
    connections: AtomicU64,
}

impl Shared {
    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fault drawn for one request of `operation` (`None`: pass it on).
    fn draw(&self, target: &Target) -> Option<FaultKind> {
        let mut state = self.lock_state();
        let rates = state.plan.rates_for(&target.operation);
        if rates == FaultRates::NONE
            || state
                .plan
                .max_faults
                .is_some_and(|max| state.injected >= max)
        {
            return None;
        }
        let draw = state.rng.unit();
        let mut bound = 0.0;
        for (kind, rate) in [
            (FaultKind::Throttled, rates.throttle),
            (FaultKind::Unavailable, rates.unavailable),
            (FaultKind::LostAnswer, rates.lost_answer),
            (FaultKind::ConditionFailed, rates.condition_failed),
        ] {
            bound += rate;
            if draw < bound {
                return Some(kind);
            }
        }
        None
    }

    fn count(&self, target: Option<&Target>, fault: Option<FaultKind>) {
        let mut state = self.lock_state();
        match (target, fault) {
            (Some(target), Some(kind)) => {
                state.injected += 1;
                *state
                    .counts
                    .injected
                    .entry((target.full.clone(), kind))
                    .or_default() += 1;
            }
            _ => state.counts.passed += 1,
        }
    }
}

#[derive(Debug)]
struct State {
    plan: FaultPlan,
    rng: SplitMix64,
    /// Faults injected under this plan.
    injected: u64,
    counts: FaultCounts,
}

impl State {
    fn new(plan: FaultPlan) -> State {
        State {
            rng: SplitMix64::new(plan.seed),
            injected: 0,
            plan,
            counts: FaultCounts::default(),
        }
    }
}

/// SplitMix64: a small seeded generator (plenty for fault draws and test choices; not for
/// anything secret). The same seed gives the same sequence.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
            // Reap finished connections as they end, so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let _ = stream.set_nodelay(true);
        shared.connections.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, request).await) }
            });
            // A client that goes away mid-request is not the proxy's concern.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A request's AWS JSON protocol operation.
#[derive(Debug)]
struct Target {
    /// `DynamoDB_20120810.PutItem`
    full: String,
    /// `PutItem`
    operation: String,
    service: Service,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    DynamoDb,
    Sqs,
    Other,
}

impl Target {
    fn of(headers: &HeaderMap) -> Option<Target> {
        let full = headers.get("x-amz-target")?.to_str().ok()?;
        let (prefix, operation) = full.split_once('.')?;
        let service = if prefix.starts_with("DynamoDB_") {
            Service::DynamoDb
        } else if prefix == "AmazonSQS" {
            Service::Sqs
        } else {
            Service::Other
        };
        Some(Target {
            full: full.to_owned(),
            operation: operation.to_owned(),
            service,
        })
    }
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<ProxyBody> {
    let target = Target::of(request.headers());
    let (parts, body) = request.into_parts();
    let body = match collect(body).await {
        Ok(body) => body,
        Err(error) => return plain(StatusCode::BAD_REQUEST, format!("request body: {error}")),
    };
    let fault = target.as_ref().and_then(|target| shared.draw(target));
    let answer = match (fault, &target) {
        (Some(kind), Some(target)) => inject(shared, kind, target, &parts, &body).await,
        _ => None,
    };
    if let Some(answer) = answer {
        shared.count(target.as_ref(), fault);
        return answer;
    }
    shared.count(target.as_ref(), None);
    match forward(shared, upstream_request(&parts, body)).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, ProxyBody::Upstream(body))
        }
        Err(error) => plain(StatusCode::BAD_GATEWAY, format!("upstream: {error}")),
    }
}

/// The answer of a fault of `kind`, or `None` if it does not apply to the request (it then
/// passes).
async fn inject(
    shared: &Shared,
    kind: FaultKind,
    target: &Target,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
) -> Option<Response<ProxyBody>> {
    Some(match kind {
        FaultKind::ConditionFailed => {
            return condition_failed(shared, target, &parts.headers, body).await;
        }
        FaultKind::Throttled => {
            let code = match target.service {
                // DynamoDB answers either, depending on the table's capacity mode.
                Service::DynamoDb if shared.lock_state().rng.next_u64().is_multiple_of(2) => {
                    "ProvisionedThroughputExceededException"
                }
                Service::Sqs => "RequestThrottled",
                _ => "ThrottlingException",
            };
            aws_error(target, StatusCode::BAD_REQUEST, code, "Rate exceeded", None)
        }
        FaultKind::Unavailable => aws_error(
            target,
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The service is unavailable",
            None,
        ),
        FaultKind::LostAnswer => {
            // The effect happens; only the answer is lost.
            if let Ok(response) = forward(shared, upstream_request(parts, body.clone())).await {
                let _ = collect(response.into_body()).await;
            }
            let code = match target.service {
                Service::Sqs => "InternalFailure",
                _ => "InternalServerError",
            };
            aws_error(
                target,
                StatusCode::INTERNAL_SERVER_ERROR,
                code,
                "Internal server error",
                None,
            )
        }
    })
}

/// The answer of a conditional write that failed its condition, or `None` if the request is
/// not a conditional DynamoDB write (it then passes).
async fn condition_failed(
    shared: &Shared,
    target: &Target,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<Response<ProxyBody>> {
    if target.service != Service::DynamoDb {
        return None;
    }
    let request: Value = serde_json::from_slice(body).ok()?;
    let conditioned = |write: &Value| write.get("ConditionExpression").is_some();
    let all_old = |write: &Value| write["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD";
    const FAILED: &str = "The conditional request failed";
    match target.operation.as_str() {
        "PutItem" | "UpdateItem" | "DeleteItem" if conditioned(&request) => {
            let item = if all_old(&request) {
                current_item(shared, headers, &request).await
            } else {
                None
            };
            Some(aws_error(
                target,
                StatusCode::BAD_REQUEST,
                "ConditionalCheckFailedException",
                FAILED,
                item.map(|item| ("Item", item)),
            ))
        }
        "TransactWriteItems" => {
            let items = request["TransactItems"].as_array()?;
            let writes: Vec<&Value> = items
                .iter()
                .filter_map(|item| item.as_object()?.values().next())
                .collect();
            let first = writes.iter().position(|write| conditioned(write))?;
            let mut reasons = Vec::with_capacity(writes.len());
            let mut codes = Vec::with_capacity(writes.len());
            for (index, write) in writes.iter().enumerate() {
                if index == first {
                    let mut reason = json!({"Code": "ConditionalCheckFailed", "Message": FAILED});
                    if all_old(write)
                        && let Some(item) = current_item(shared, headers, write).await
                    {
                        reason["Item"] = item;
                    }
                    reasons.push(reason);
                    codes.push("ConditionalCheckFailed");
                } else {
                    reasons.push(json!({"Code": "None"}));
                    codes.push("None");
                }
            }
            let message = format!(
                "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                codes.join(", ")
            );
            Some(aws_error(
                target,
                StatusCode::BAD_REQUEST,
                "TransactionCanceledException",
                &message,
                Some(("CancellationReasons", Value::from(reasons))),
            ))
        }
        _ => None,
    }
}

/// The item a DynamoDB write names, as the emulator holds it now (`None` if there is none or
/// it could not be read).
async fn current_item(shared: &Shared, headers: &HeaderMap, write: &Value) -> Option<Value> {
    let table = write["TableName"].as_str()?;
    let key = match write.get("Key") {
        Some(key) => key.clone(),
        None => {
            let names = key_names(shared, headers, table).await?;
            let item = &write["Item"];
            Value::from(
                names
                    .iter()
                    .map(|name| Some((name.clone(), item.get(name)?.clone())))
                    .collect::<Option<serde_json::Map<String, Value>>>()?,
            )
        }
    };
    let got = dynamodb_call(
        shared,
        headers,
        "GetItem",
        &json!({"TableName": table, "Key": key, "ConsistentRead": true}),
    )
    .await?;
    got.get("Item").cloned()
}

/// A table's key attribute names, read once.
async fn key_names(shared: &Shared, headers: &HeaderMap, table: &str) -> Option<Vec<String>> {
    if let Some(names) = shared
        .key_names
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(table)
    {
        return Some(names.clone());
    }
    let described = dynamodb_call(
        shared,
        headers,
        "DescribeTable",
        &json!({"TableName": table}),
    )
    .await?;
    let names: Vec<String> = described["Table"]["KeySchema"]
        .as_array()?
        .iter()
        .filter_map(|key| Some(key["AttributeName"].as_str()?.to_owned()))
        .collect();
    shared
        .key_names
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(table.to_owned(), names.clone());
    Some(names)
}

/// A DynamoDB call of the proxy's own, sent upstream with the client's `Host` and
/// `Authorization` (moto takes the account and region from them and checks no signature).
async fn dynamodb_call(
    shared: &Shared,
    headers: &HeaderMap,
    operation: &str,
    body: &Value,
) -> Option<Value> {
    let mut request = Request::builder()
        .method("POST")
        .uri("/")
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", format!("DynamoDB_20120810.{operation}"));
    for name in ["host", "authorization", "x-amz-date"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value);
        }
    }
    let request = request
        .body(ProxyBody::Full(Some(Bytes::from(body.to_string()))))
        .ok()?;
    let response = forward(shared, request).await.ok()?;
    let ok = response.status().is_success();
    let bytes = collect(response.into_body()).await.ok()?;
    if !ok {
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}

/// The client's request as it goes upstream: unchanged but for the hop-by-hop headers.
fn upstream_request(parts: &hyper::http::request::Parts, body: Bytes) -> Request<ProxyBody> {
    let mut request = Request::new(ProxyBody::Full(Some(body)));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.headers_mut() = parts.headers.clone();
    strip_hop_by_hop(request.headers_mut());
    request
}

/// Sends one request on a new connection to the emulator (which closes it after answering).
async fn forward(
    shared: &Shared,
    request: Request<ProxyBody>,
) -> Result<Response<Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(&shared.upstream).await?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // Drives the connection until the answer's body is read (the task ends with it).
    tokio::spawn(connection);
    Ok(sender.send_request(request).await?)
}

/// `Connection` and the headers it names, and the other hop-by-hop headers (RFC 9110 7.6.1);
/// hyper frames each side's body itself.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

/// An error answer in the shape of the AWS JSON protocols: `__type` (with the service's
/// namespace), the message, `x-amzn-ErrorType`, and for SQS `x-amzn-query-error`.
fn aws_error(
    target: &Target,
    status: StatusCode,
    code: &str,
    message: &str,
    extra: Option<(&str, Value)>,
) -> Response<ProxyBody> {
    let namespace = match target.service {
        Service::DynamoDb => "com.amazonaws.dynamodb.v20120810#",
        Service::Sqs => "com.amazonaws.sqs#",
        Service::Other => "",
    };
    let mut body = json!({"__type": format!("{namespace}{code}"), "message": message});
    if let Some((name, value)) = extra {
        body[name] = value;
    }
    let mut response = Response::new(ProxyBody::Full(Some(Bytes::from(body.to_string()))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let content_type = if target.service == Service::DynamoDb {
        "application/x-amz-json-1.0"
    } else {
        "application/x-amz-json-1.1"
    };
    headers.insert("content-type", HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(code) {
        headers.insert("x-amzn-errortype", value);
    }
    if target.service == Service::Sqs {
        let fault = if status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        if let Ok(value) = HeaderValue::from_str(&format!("{code};{fault}")) {
            headers.insert("x-amzn-query-error", value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&format!("proxy-fault-{code}")) {
        headers.insert("x-amzn-requestid", value);
    }
    response
}

fn plain(status: StatusCode, text: String) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::Full(Some(Bytes::from(text))));
    *response.status_mut() = status;
    response
}

/// Reads a whole body.
async fn collect(mut body: Incoming) -> Result<Bytes, hyper::Error> {
    let mut chunks: Vec<Bytes> = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            chunks.push(data);
        }
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => Bytes::from(chunks.concat()),
    })
}

/// A body the proxy answers with or sends: the upstream's, streamed, or one of its own.
#[derive(Debug)]
enum ProxyBody {
    Upstream(Incoming),
    Full(Option<Bytes>),
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Upstream(body) => Pin::new(body).poll_frame(cx),
            ProxyBody::Full(data) => Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream(body) => body.is_end_stream(),
            ProxyBody::Full(data) => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream(body) => body.size_hint(),
            ProxyBody::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
        }
    }
}
