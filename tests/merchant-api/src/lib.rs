//! Test harness of the merchant API functions (`pay`, `query`).
//!
//! Each [`Env`] is isolated: its own DynamoDB table and SQS queue in the AWS emulator (one
//! `moto_server` per test process, from `test-support`), its own Alipay sandbox (in-process on
//! port 0, or a separate process for measurements), its own keys directory and merchant keys.
//! The functions get their real adapters, built by `f2f_runtime::wiring` from a `Config` read
//! from variables exactly as in Lambda; only the DynamoDB and SQS clients are rebuilt with an
//! interceptor that counts every AWS operation sent.
//!
//! Requests are API Gateway HTTP API (payload v2) events, converted by `lambda_http` itself,
//! and signed with `domain::auth` like a merchant signs them.

use aws_adapters::{
    DynamoNonceStore, DynamoOrderStore, SqsExpiryScheduler, aws_sdk_dynamodb, aws_sdk_sqs,
};
use aws_config::SdkConfig;
use domain::auth::{RequestToSign, sign, string_to_sign};
use f2f_runtime::config::{Config, Function};
use f2f_runtime::wiring::{self, Adapters};
use lambda_http::{Body, Request, Response};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::error::Error;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use test_support::MotoServer;

pub type TestResult<T = ()> = Result<T, Box<dyn Error + Send + Sync>>;

pub fn err(message: impl Into<String>) -> Box<dyn Error + Send + Sync> {
    message.into().into()
}

/// The merchant's first active API key.
pub const KEY_ID: &str = "merchant-a";
pub const SECRET: &str = "merchant-a-secret-0123456789-abcdefghij";
/// A second active key (rotation: both work at once).
pub const KEY_ID_2: &str = "merchant-b-2025";
pub const SECRET_2: &str = "merchant-b-secret-9876543210-zyxwvutsrq";

/// A sandbox payment code: `28` + behaviour + 4-digit parameter + 10 random buyer digits (so
/// that a test can look for its own code in the logs).
pub fn auth_code(behaviour: &str, seconds: u32) -> String {
    let buyer = ulid::Ulid::generate().random() % 10_000_000_000;
    format!("28{behaviour}{seconds:04}{buyer:010}")
}

/// A fresh order number.
pub fn out_trade_no() -> String {
    format!("T{}", ulid::Ulid::generate())
}

/// Where the sandbox runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// Spawned in this process (tests).
    InProcess,
    /// A separate `alipay-sandbox` process (CPU measurements: its work is not ours).
    Process,
}

enum Sandbox {
    InProcess(alipay_sandbox::RunningSandbox),
    Process(Child),
}

/// AWS operations sent, by `Service.Operation`, as counted by an SDK interceptor just before
/// each HTTP request is transmitted (so retries count too).
#[derive(Debug, Clone, Default)]
pub struct AwsCalls(Arc<Mutex<BTreeMap<String, u64>>>);

impl AwsCalls {
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn reset(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }

    fn add(&self, operation: String) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(operation).or_default() += 1;
        }
    }
}

#[derive(Debug)]
struct CountingInterceptor(AwsCalls);

impl aws_sdk_dynamodb::config::Intercept for CountingInterceptor {
    fn name(&self) -> &'static str {
        "CountingInterceptor"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn Error + Send + Sync>> {
        // JSON protocols name the operation in X-Amz-Target: `DynamoDB_20120810.PutItem`,
        // `AmazonSQS.SendMessage`.
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("unknown.unknown");
        let (service, operation) = target.split_once('.').unwrap_or(("unknown", target));
        let service = if service.starts_with("DynamoDB") {
            "DynamoDB"
        } else if service.contains("SQS") {
            "SQS"
        } else {
            service
        };
        self.0.add(format!("{service}.{operation}"));
        Ok(())
    }
}

/// Keys are generated once per test process (RSA generation is slow).
fn test_keys() -> TestResult<&'static (String, String)> {
    static KEYS: OnceLock<(String, String)> = OnceLock::new();
    if let Some(keys) = KEYS.get() {
        return Ok(keys);
    }
    let (_, app) = alipay::PrivateKey::generate()?;
    let (_, alipay_key) = alipay::PrivateKey::generate()?;
    Ok(KEYS.get_or_init(|| (app.as_str().to_owned(), alipay_key.as_str().to_owned())))
}

/// Log lines of every test of this process, captured to check what is (never) logged.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct CaptureWriter;

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut logs) = LOGS.lock() {
            logs.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs a subscriber that captures every log line at DEBUG for the project's crates.
pub fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::new(
            "info,pay=debug,query=debug,f2f_runtime=debug,domain=debug,alipay=debug,aws_adapters=debug",
        );
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(|| CaptureWriter)
            .try_init();
    });
}

/// Everything captured so far.
pub fn captured_logs() -> String {
    LOGS.lock()
        .map(|l| String::from_utf8_lossy(&l).into_owned())
        .unwrap_or_default()
}

pub struct Env {
    pub moto: Arc<MotoServer>,
    sandbox: Option<Sandbox>,
    /// `http://127.0.0.1:PORT` of the sandbox.
    pub sandbox_url: String,
    pub app_id: String,
    pub table: String,
    pub queue_url: String,
    pub keys_dir: PathBuf,
    pub aws_calls: AwsCalls,
    /// Uncounted clients for the tests' own checks.
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub http: reqwest::Client,
    /// Where the functions' AWS clients send their requests instead of moto (e.g. a proxy
    /// in front of it).
    aws_endpoint: Option<String>,
    vars: BTreeMap<String, String>,
    _dir: tempfile::TempDir,
}

impl Env {
    /// Moto (shared), an in-process sandbox, a fresh table and queue, fast barcode polling.
    pub async fn start() -> TestResult<Env> {
        Env::start_with(SandboxMode::InProcess, &[]).await
    }

    /// `overrides` are extra environment variables of the functions (e.g. poll timings).
    pub async fn start_with(mode: SandboxMode, overrides: &[(&str, &str)]) -> TestResult<Env> {
        capture_logs();
        let moto = MotoServer::shared().await?;
        let dir = tempfile::tempdir()?;
        let keys_dir = dir.path().join("sandbox-keys");
        std::fs::create_dir_all(&keys_dir)?;
        let (app_key, alipay_key) = test_keys()?;
        std::fs::write(keys_dir.join("app_private_key.pem"), app_key)?;
        std::fs::write(keys_dir.join("alipay_private_key.pem"), alipay_key)?;
        let (sandbox, sandbox_url) = match mode {
            SandboxMode::InProcess => {
                let running = alipay_sandbox::spawn(alipay_sandbox::Config::new(&keys_dir)).await?;
                let url = running.base_url().to_owned();
                (Sandbox::InProcess(running), url)
            }
            SandboxMode::Process => {
                let (child, url) = spawn_sandbox_process(&keys_dir)?;
                (Sandbox::Process(child), url)
            }
        };
        let sandbox_json: Value =
            serde_json::from_str(&std::fs::read_to_string(keys_dir.join("sandbox.json"))?)?;
        let app_id = sandbox_json["app_id"]
            .as_str()
            .ok_or_else(|| err("sandbox.json has no app_id"))?
            .to_owned();

        let sdk = moto.sdk_config();
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let table = test_support::unique_name("orders");
        aws_adapters::dynamo::schema::create_table(&dynamo, &table).await?;
        let queue = test_support::unique_name("expiry");
        let queue_url = sqs
            .create_queue()
            .queue_name(&queue)
            .send()
            .await?
            .queue_url
            .ok_or_else(|| err("no queue url"))?;

        let merchant_keys = dir.path().join("merchant-keys.json");
        std::fs::write(
            &merchant_keys,
            json!({ KEY_ID: SECRET, KEY_ID_2: SECRET_2 }).to_string(),
        )?;
        let mut vars = BTreeMap::new();
        for (k, v) in [
            ("ORDERS_TABLE", table.clone()),
            ("EXPIRY_QUEUE_URL", queue_url.clone()),
            ("ALIPAY_APP_ID", app_id.clone()),
            ("ALIPAY_GATEWAY_URL", format!("{sandbox_url}/gateway.do")),
            // Nothing listens there: the sandbox's notifications fail quietly.
            (
                "ALIPAY_NOTIFY_URL",
                "http://127.0.0.1:9/alipay/notify".to_owned(),
            ),
            (
                "ALIPAY_APP_PRIVATE_KEY_FILE",
                keys_dir.join("app_private_key.pem").display().to_string(),
            ),
            (
                "ALIPAY_PUBLIC_KEY_FILE",
                keys_dir.join("alipay_public_key.pem").display().to_string(),
            ),
            (
                "MERCHANT_API_KEYS_FILE",
                merchant_keys.display().to_string(),
            ),
            ("ALIPAY_REQUEST_TIMEOUT_MS", "3000".to_owned()),
            ("BARCODE_POLL_INTERVAL_MS", "200".to_owned()),
            ("BARCODE_POLL_DURATION_MS", "2000".to_owned()),
            ("SYNC_AFTER_SECONDS", "0".to_owned()),
        ] {
            vars.insert(k.to_owned(), v);
        }
        for (k, v) in overrides {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        Ok(Env {
            moto,
            sandbox: Some(sandbox),
            sandbox_url,
            app_id,
            table,
            queue_url,
            keys_dir,
            aws_calls: AwsCalls::default(),
            dynamo,
            sqs,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()?,
            aws_endpoint: None,
            vars,
            _dir: dir,
        })
    }

    /// The in-process sandbox, when there is one.
    pub fn sandbox(&self) -> Option<&alipay_sandbox::Sandbox> {
        match &self.sandbox {
            Some(Sandbox::InProcess(running)) => Some(running.sandbox()),
            _ => None,
        }
    }

    /// Sets or replaces a function variable (before [`Env::adapters`]).
    pub fn set_var(&mut self, name: &str, value: &str) {
        self.vars.insert(name.to_owned(), value.to_owned());
    }

    /// The function's configuration, read from the variables as in Lambda.
    pub fn config(&self, function: Function) -> TestResult<Config> {
        Ok(Config::from_lookup(function, &|name| {
            self.vars.get(name).cloned()
        })?)
    }

    /// The SDK configuration of the functions: the emulator's, or
    /// [`Env::set_aws_endpoint`]'s.
    pub fn sdk(&self) -> SdkConfig {
        let sdk = self.moto.sdk_config();
        match &self.aws_endpoint {
            Some(endpoint) => sdk.to_builder().endpoint_url(endpoint).build(),
            None => sdk,
        }
    }

    /// Sends the functions' AWS requests to `endpoint` (before [`Env::adapters`]); the tests'
    /// own clients still go to moto.
    pub fn set_aws_endpoint(&mut self, endpoint: &str) {
        self.aws_endpoint = Some(endpoint.to_owned());
    }

    /// The function's real adapters (built by `f2f_runtime::wiring`), with DynamoDB and SQS
    /// clients that count every operation into [`Env::aws_calls`].
    pub async fn adapters(&self, function: Function) -> TestResult<Adapters> {
        let config = self.config(function)?;
        let sdk = self.sdk();
        let mut adapters = wiring::build_with(&config, &sdk).await?;
        let dynamo = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .interceptor(CountingInterceptor(self.aws_calls.clone()))
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&sdk)
                .interceptor(CountingSqs(self.aws_calls.clone()))
                .build(),
        );
        adapters.orders = DynamoOrderStore::new(dynamo.clone(), config.orders_table.clone());
        adapters.nonces = DynamoNonceStore::new(dynamo, config.nonces_table.clone());
        if let Some(url) = &config.expiry_queue_url {
            adapters.expiry = Some(SqsExpiryScheduler::new(sqs, url.clone()));
        }
        Ok(adapters)
    }

    /// A request signed with the first key.
    pub fn signed(&self, method: &str, path_and_query: &str, body: &str) -> Request {
        self.signed_with(KEY_ID, SECRET, method, path_and_query, body, |_| {})
    }

    /// A request signed with `key_id`/`secret`; `tweak` may change the headers afterwards.
    pub fn signed_with(
        &self,
        key_id: &str,
        secret: &str,
        method: &str,
        path_and_query: &str,
        body: &str,
        tweak: impl FnOnce(&mut BTreeMap<String, String>),
    ) -> Request {
        let headers = sign_headers(
            key_id,
            secret,
            method,
            path_and_query,
            body.as_bytes(),
            chrono::Utc::now().timestamp(),
        );
        let mut headers: BTreeMap<String, String> = headers.into_iter().collect();
        tweak(&mut headers);
        api_gateway_request(method, path_and_query, &headers, body)
    }

    pub async fn sandbox_get(&self, path: &str) -> TestResult<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.sandbox_url))
            .send()
            .await?;
        Ok(response.json().await?)
    }

    pub async fn sandbox_post(&self, path: &str, body: Value) -> TestResult<(u16, Value)> {
        let response = self
            .http
            .post(format!("{}{path}", self.sandbox_url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// Injects a fault (`POST /sandbox/faults`).
    pub async fn fault(&self, spec: Value) -> TestResult {
        let (status, body) = self.sandbox_post("/sandbox/faults", spec).await?;
        if status != 200 {
            return Err(err(format!("fault refused: {status} {body}")));
        }
        Ok(())
    }

    /// Every trade the sandbox knows.
    pub async fn trades(&self) -> TestResult<Vec<Value>> {
        let value = self.sandbox_get("/sandbox/trades").await?;
        match value {
            Value::Array(trades) => Ok(trades),
            Value::Object(mut map) => match map.remove("trades") {
                Some(Value::Array(trades)) => Ok(trades),
                _ => Err(err("unexpected /sandbox/trades shape")),
            },
            _ => Err(err("unexpected /sandbox/trades shape")),
        }
    }

    /// Every item of the table, as text (to look for what must never be stored).
    pub async fn table_dump(&self) -> TestResult<String> {
        let scan = self.dynamo.scan().table_name(&self.table).send().await?;
        Ok(format!("{:?}", scan.items()))
    }

    /// The number of items whose `sk` starts with `sk_prefix` (`ORDER`, `EVENT#`, `NONCE`).
    pub async fn items(&self, sk_prefix: &str) -> TestResult<usize> {
        let scan = self.dynamo.scan().table_name(&self.table).send().await?;
        Ok(scan
            .items()
            .iter()
            .filter(|item| {
                item.get("sk")
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|sk| sk.starts_with(sk_prefix))
            })
            .count())
    }

    /// The approximate number of messages in the expiry queue (visible + delayed).
    pub async fn queued_expiries(&self) -> TestResult<u64> {
        use aws_sdk_sqs::types::QueueAttributeName;
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await?;
        let count = |name: QueueAttributeName| {
            attributes
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(count(QueueAttributeName::ApproximateNumberOfMessages)
            + count(QueueAttributeName::ApproximateNumberOfMessagesDelayed))
    }

    /// Stops the sandbox (an "Alipay unreachable" test).
    pub async fn stop_sandbox(&mut self) {
        match self.sandbox.take() {
            Some(Sandbox::InProcess(running)) => running.shutdown().await,
            Some(Sandbox::Process(mut child)) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            None => {}
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(Sandbox::Process(child)) = &mut self.sandbox {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Debug)]
struct CountingSqs(AwsCalls);

impl aws_sdk_sqs::config::Intercept for CountingSqs {
    fn name(&self) -> &'static str {
        "CountingSqs"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_sqs::config::RuntimeComponents,
        _cfg: &mut aws_sdk_sqs::config::ConfigBag,
    ) -> Result<(), Box<dyn Error + Send + Sync>> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("AmazonSQS.unknown");
        let operation = target.split_once('.').map_or(target, |(_, op)| op);
        self.0.add(format!("SQS.{operation}"));
        Ok(())
    }
}

/// The four authentication headers for a request, signed at `timestamp`.
pub fn sign_headers(
    key_id: &str,
    secret: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    timestamp: i64,
) -> Vec<(String, String)> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let nonce = format!("n{}", ulid::Ulid::generate());
    let timestamp = timestamp.to_string();
    let to_sign = RequestToSign {
        method,
        path,
        raw_query: query,
        body,
    };
    // A query without a canonical form cannot be signed: it goes with an empty signature (the
    // functions refuse such a query before looking at the signature).
    let signature = string_to_sign(&to_sign, &timestamp, &nonce)
        .map(|text| sign(&SecretString::from(secret.to_owned()), &text))
        .unwrap_or_default();
    vec![
        ("x-key-id".to_owned(), key_id.to_owned()),
        ("x-timestamp".to_owned(), timestamp),
        ("x-nonce".to_owned(), nonce),
        ("x-signature".to_owned(), signature),
        ("content-type".to_owned(), "application/json".to_owned()),
    ]
}

/// An API Gateway HTTP API (payload v2) event, converted to a request by `lambda_http`.
pub fn api_gateway_request(
    method: &str,
    path_and_query: &str,
    headers: &BTreeMap<String, String>,
    body: &str,
) -> Request {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "merchant-api-harness"
            },
            "requestId": format!("req-{}", ulid::Ulid::generate()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2024:00:00:00 +0000",
            "timeEpoch": 1_704_067_200_000_i64
        },
        "body": body,
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).unwrap_or_default()
}

/// A response's JSON body (`Value::Null` if it is not JSON).
pub fn body_json(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body()).unwrap_or(Value::Null)
}

/// A response header as text.
pub fn header<'r>(response: &'r Response<Body>, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Starts `alipay-sandbox` as a separate process on a free port and waits for its ready line.
fn spawn_sandbox_process(keys_dir: &Path) -> TestResult<(Child, String)> {
    let bin = sandbox_binary()?;
    let mut child = Command::new(&bin)
        .args(["--listen", "127.0.0.1:0", "--keys-dir"])
        .arg(keys_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| err(format!("{}: {e}", bin.display())))?;
    let stdout = child.stdout.take().ok_or_else(|| err("no stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("alipay-sandbox listening on ")
        .ok_or_else(|| err(format!("unexpected ready line {line:?}")))?
        .to_owned();
    Ok((child, url))
}

/// `ALIPAY_SANDBOX_BIN`, else `alipay-sandbox` next to this executable's profile directory.
fn sandbox_binary() -> TestResult<PathBuf> {
    if let Ok(bin) = std::env::var("ALIPAY_SANDBOX_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe()?;
    for dir in exe.ancestors().skip(1).take(3) {
        let candidate = dir.join("alipay-sandbox");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(err(
        "alipay-sandbox binary not found: `cargo build --release -p alipay-sandbox` or set ALIPAY_SANDBOX_BIN",
    ))
}
