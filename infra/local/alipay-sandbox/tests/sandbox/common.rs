//! The test harness: a sandbox started in-process on port 0 with a fresh keys directory, a
//! merchant that signs real requests with the app private key from that directory and verifies
//! every business answer with Alipay's public key from it, and a notification receiver.

use alipay::request::{SignedRequest, SystemParams, sign_request};
use alipay::{AlipayVerifier, PrivateKey, PublicKey};
use alipay_sandbox::{Config, RunningSandbox};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub const PRECREATE: &str = "alipay.trade.precreate";
pub const PAY: &str = "alipay.trade.pay";
pub const QUERY: &str = "alipay.trade.query";
pub const CLOSE: &str = "alipay.trade.close";
pub const CANCEL: &str = "alipay.trade.cancel";
pub const REFUND: &str = "alipay.trade.refund";
pub const REFUND_QUERY: &str = "alipay.trade.fastpay.refund.query";
pub const BILL: &str = "alipay.data.dataservice.bill.downloadurl.query";

/// A sandbox payment code: `28` + selector + 4-digit parameter + 10 buyer digits.
pub fn auth_code(selector: &str, seconds: u32) -> String {
    format!("28{selector}{seconds:04}0012345678")
}

pub fn err(message: impl Into<String>) -> Box<dyn std::error::Error + Send + Sync> {
    message.into().into()
}

pub struct Harness {
    pub running: RunningSandbox,
    /// Keeps the temporary keys directory alive for the test.
    _dir: tempfile::TempDir,
    pub app_key: PrivateKey,
    pub alipay_public_key: PublicKey,
    pub verifier: AlipayVerifier,
    pub app_id: String,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start() -> TestResult<Harness> {
        Harness::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestResult<Harness> {
        let dir = tempfile::tempdir()?;
        let mut config = Config::new(dir.path().join("keys"));
        adjust(&mut config);
        Harness::start_in(dir, config).await
    }

    /// Starts with `config` (whose keys_dir should be inside `dir`). A keys directory without
    /// keys is seeded with this process's shared test keys (RSA key generation is slow); the
    /// sandbox derives the public keys and writes sandbox.json as usual.
    pub async fn start_in(dir: tempfile::TempDir, config: Config) -> TestResult<Harness> {
        let keys_dir = config.keys_dir.clone();
        seed_keys(&keys_dir)?;
        let running = alipay_sandbox::spawn(config).await?;
        let app_key = PrivateKey::parse(&std::fs::read_to_string(
            keys_dir.join("app_private_key.pem"),
        )?)?;
        let alipay_public_key = PublicKey::parse(&std::fs::read_to_string(
            keys_dir.join("alipay_public_key.pem"),
        )?)?;
        let sandbox_json: Value =
            serde_json::from_str(&std::fs::read_to_string(keys_dir.join("sandbox.json"))?)?;
        let app_id = sandbox_json["app_id"]
            .as_str()
            .ok_or_else(|| err("sandbox.json has no app_id"))?
            .to_owned();
        Ok(Harness {
            running,
            _dir: dir,
            app_key,
            verifier: AlipayVerifier::PublicKey(alipay_public_key.clone()),
            alipay_public_key,
            app_id,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()?,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url())
    }

    /// A request signed like a merchant signs it.
    pub fn sign(
        &self,
        method: &str,
        biz: &Value,
        notify_url: Option<&str>,
    ) -> TestResult<SignedRequest> {
        self.sign_at(method, biz, notify_url, chrono::Utc::now())
    }

    /// A request signed with the `timestamp` of instant `at` (Beijing time).
    pub fn sign_at(
        &self,
        method: &str,
        biz: &Value,
        notify_url: Option<&str>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> TestResult<SignedRequest> {
        let timestamp = alipay::time::format_beijing(at);
        let params = SystemParams {
            app_id: &self.app_id,
            method,
            timestamp: &timestamp,
            notify_url,
            app_cert_sn: None,
            alipay_root_cert_sn: None,
        };
        Ok(sign_request(&params, &biz.to_string(), &self.app_key)?)
    }

    /// POSTs `query` and `body` to the gateway; returns the raw body text.
    pub async fn post_gateway(&self, query: &str, body: &str) -> TestResult<String> {
        let response = self
            .http
            .post(format!("{}?{query}", self.running.gateway_url()))
            .header(
                "content-type",
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .body(body.to_owned())
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Err(err(format!("gateway answered HTTP {}", response.status())));
        }
        Ok(response.text().await?)
    }

    /// Signs, sends, and returns the raw body.
    pub async fn call_raw(
        &self,
        method: &str,
        biz: &Value,
        notify_url: Option<&str>,
    ) -> TestResult<String> {
        let signed = self.sign(method, biz, notify_url)?;
        self.post_gateway(&signed.query, &signed.body).await
    }

    /// Signs, sends, verifies Alipay's signature and returns the node.
    pub async fn call(&self, method: &str, biz: Value) -> TestResult<Value> {
        let body = self.call_raw(method, &biz, None).await?;
        self.verified(&body, method)
    }

    pub async fn call_notify(
        &self,
        method: &str,
        biz: Value,
        notify_url: &str,
    ) -> TestResult<Value> {
        let body = self.call_raw(method, &biz, Some(notify_url)).await?;
        self.verified(&body, method)
    }

    /// Verifies a business answer with the Alipay public key from the keys directory.
    pub fn verified(&self, body: &str, method: &str) -> TestResult<Value> {
        let verified = alipay::response::verify(body, method, &self.verifier)
            .map_err(|e| err(format!("{e}: {body}")))?;
        Ok(serde_json::from_str(&verified.node)?)
    }

    /// A gateway refusal: must be unsigned; returns `(node name, node)`.
    pub fn unsigned(&self, body: &str) -> TestResult<(String, Value)> {
        let value: Value = serde_json::from_str(body)?;
        let object = value.as_object().ok_or_else(|| err("not an object"))?;
        if object.contains_key("sign") {
            return Err(err(format!("a gateway refusal must be unsigned: {body}")));
        }
        let (name, node) = object.iter().next().ok_or_else(|| err("empty body"))?;
        Ok((name.clone(), node.clone()))
    }

    pub async fn control_post(&self, path: &str, body: Value) -> TestResult<(u16, Value)> {
        let response = self
            .http
            .post(self.url(path))
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

    /// POST that must answer 200.
    pub async fn control(&self, path: &str, body: Value) -> TestResult<Value> {
        let (status, value) = self.control_post(path, body).await?;
        if status != 200 {
            return Err(err(format!("POST {path} answered {status}: {value}")));
        }
        Ok(value)
    }

    pub async fn control_get(&self, path: &str) -> TestResult<Value> {
        let response = self.http.get(self.url(path)).send().await?;
        let status = response.status().as_u16();
        let value: Value = serde_json::from_str(&response.text().await?)?;
        if status != 200 {
            return Err(err(format!("GET {path} answered {status}: {value}")));
        }
        Ok(value)
    }

    pub async fn advance(&self, seconds: f64) -> TestResult<()> {
        self.control(
            "/sandbox/clock/advance",
            serde_json::json!({"seconds": seconds}),
        )
        .await
        .map(|_| ())
    }

    /// `alipay.trade.query` by out_trade_no.
    pub async fn query(&self, out_trade_no: &str) -> TestResult<Value> {
        self.call(QUERY, serde_json::json!({"out_trade_no": out_trade_no}))
            .await
    }

    /// A barcode payment with the given code.
    pub async fn pay(&self, out_trade_no: &str, amount: &str, code: &str) -> TestResult<Value> {
        self.call(
            PAY,
            serde_json::json!({
                "out_trade_no": out_trade_no,
                "total_amount": amount,
                "subject": "sandbox test",
                "scene": "bar_code",
                "auth_code": code,
            }),
        )
        .await
    }

    /// Sandbox time now (ms since the epoch).
    pub async fn now_ms(&self) -> TestResult<i64> {
        let clock = self.control_get("/sandbox/clock").await?;
        clock["now_ms"].as_i64().ok_or_else(|| err("no now_ms"))
    }
}

static TEST_KEYS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();

/// Writes the shared app and Alipay private keys into `keys_dir` unless it has keys already.
fn seed_keys(keys_dir: &std::path::Path) -> TestResult {
    if keys_dir.join("app_private_key.pem").exists() {
        return Ok(());
    }
    let keys = match TEST_KEYS.get() {
        Some(keys) => keys,
        None => {
            let (_, app) = PrivateKey::generate()?;
            let (_, alipay) = PrivateKey::generate()?;
            TEST_KEYS.get_or_init(|| (app.as_str().to_owned(), alipay.as_str().to_owned()))
        }
    };
    std::fs::create_dir_all(keys_dir)?;
    std::fs::write(keys_dir.join("app_private_key.pem"), &keys.0)?;
    std::fs::write(keys_dir.join("alipay_private_key.pem"), &keys.1)?;
    Ok(())
}

/// `code`/`sub_code` of a node.
pub fn codes(node: &Value) -> (String, String) {
    (
        node["code"].as_str().unwrap_or_default().to_owned(),
        node["sub_code"].as_str().unwrap_or_default().to_owned(),
    )
}

pub fn assert_sub_code(node: &Value, code: &str, sub_code: &str) {
    assert_eq!(
        codes(node),
        (code.to_owned(), sub_code.to_owned()),
        "{node}"
    );
}

pub fn assert_success(node: &Value) {
    assert_eq!(node["code"], "10000", "{node}");
}

/// One notification request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: Vec<u8>,
    pub content_type: String,
}

/// How the receiver answers the n-th request (0-based).
pub type Responder = Arc<dyn Fn(usize) -> (u16, &'static str) + Send + Sync>;

#[derive(Clone)]
struct ReceiverState {
    received: Arc<Mutex<Vec<Received>>>,
    responder: Responder,
}

/// A merchant notify_url on loopback that records every request.
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Fails (HTTP 500) the first `failures` requests, then answers `success`.
    pub async fn failing_first(failures: usize) -> TestResult<Receiver> {
        Receiver::start(Arc::new(move |n| {
            if n < failures {
                (500, "fail")
            } else {
                (200, "success")
            }
        }))
        .await
    }

    pub async fn start(responder: Responder) -> TestResult<Receiver> {
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = ReceiverState {
            received: received.clone(),
            responder,
        };
        let app = axum::Router::new()
            .route("/notify", axum::routing::post(receive))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/notify", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { url, received })
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Waits (real time) until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize) -> TestResult<Vec<Received>> {
        for _ in 0..500 {
            let received = self.received();
            if received.len() >= n {
                return Ok(received);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(err(format!(
            "expected {n} notification requests, got {}",
            self.received().len()
        )))
    }

    /// Asserts that no more than `n` requests arrive within a short real-time window.
    pub async fn assert_stays_at(&self, n: usize) -> TestResult<()> {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let count = self.received().len();
        if count != n {
            return Err(err(format!(
                "expected {n} notification requests, got {count}"
            )));
        }
        Ok(())
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let n = match state.received.lock() {
        Ok(mut received) => {
            received.push(Received {
                body: body.to_vec(),
                content_type,
            });
            received.len() - 1
        }
        Err(_) => 0,
    };
    let (status, text) = (state.responder)(n);
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        text,
    )
}

/// Verifies a notification body with Alipay's public key; returns its fields.
pub fn verify_notification(
    harness: &Harness,
    body: &[u8],
) -> TestResult<std::collections::BTreeMap<String, String>> {
    let verified = alipay::notify::verify(body, &harness.verifier)?;
    Ok(verified.params().clone())
}
