//! The gateway client against a fake Alipay gateway on 127.0.0.1: real HTTP, real RSA2
//! signatures both ways. The fake verifies every request's signature with the app public key
//! and records anything wrong as a "problem"; each test ends by asserting there were none.
// Test keys are generated with `PrivateKey::generate`, which needs the AWS-LC backend.
#![cfg(feature = "aws-lc")]

use alipay::api::{
    BillDownloadUrlRequest, CancelAction, CancelRequest, CloseRequest, PayRequest,
    PrecreateRequest, QueryRequest, RefundQueryRequest, RefundRequest, RefundStatus, Scene,
    TradeRef,
};
use alipay::client::{AlipayClient, BillDownloadError, ClientBuildError, ClientConfig};
use alipay::notify::TradeStatus;
use alipay::outcome::{Outcome, Rejection, UnknownCause};
use alipay::{AlipayVerifier, Fen, PrivateKey, PublicKey};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use std::error::Error;
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

type TestResult = Result<(), Box<dyn Error>>;

const APP_ID: &str = "2021000000000001";
const NOTIFY_URL: &str = "https://merchant.example.com/alipay/notify";
const BILL_BYTES: &[u8] = b"PK\x03\x04 not really a zip, but bytes all the same";

// ---------------------------------------------------------------------------------------------
// Keys: generated once per test binary (2048-bit generation is the slow part).

struct Keys {
    app: PrivateKey,
    app_pem: String,
    app_public: PublicKey,
    alipay: PrivateKey,
    alipay_public: PublicKey,
    stranger: PrivateKey,
}

fn keys() -> Result<&'static Keys, String> {
    static KEYS: OnceLock<Result<Keys, String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let err = |e: alipay::KeyError| e.to_string();
        let (app, app_pem) = PrivateKey::generate().map_err(err)?;
        let (alipay, _) = PrivateKey::generate().map_err(err)?;
        let (stranger, _) = PrivateKey::generate().map_err(err)?;
        Ok(Keys {
            app_public: app.public_key().map_err(err)?,
            app_pem: app_pem.to_string(),
            app,
            alipay_public: alipay.public_key().map_err(err)?,
            alipay,
            stranger,
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

// ---------------------------------------------------------------------------------------------
// The fake gateway.

/// One request as the fake gateway received and verified it.
#[derive(Debug, Clone)]
struct Received {
    query: Vec<(String, String)>,
    biz: Value,
}

impl Received {
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn biz_str(&self, key: &str) -> Option<&str> {
        self.biz.get(key).and_then(Value::as_str)
    }
}

#[derive(Debug, Clone)]
enum Reply {
    Body(Vec<u8>),
    Status(u16),
    /// A 3xx status with a `location`.
    Redirect(u16, String),
    Delayed(Duration, Box<Reply>),
}

type Scenario = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

fn fixed(reply: Reply) -> Scenario {
    Arc::new(move |_| reply.clone())
}

struct GatewayState {
    app_public: PublicKey,
    scenario: Scenario,
    received: Mutex<Vec<Received>>,
    problems: Mutex<Vec<String>>,
}

struct Gateway {
    base: String,
    state: Arc<GatewayState>,
}

impl Gateway {
    async fn start(scenario: Scenario) -> Result<Gateway, Box<dyn Error>> {
        let state = Arc::new(GatewayState {
            app_public: keys()?.app_public.clone(),
            scenario,
            received: Mutex::new(Vec::new()),
            problems: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/gateway.do", post(gateway))
            .route("/bill.zip", get(|| async { BILL_BYTES }))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Gateway { base, state })
    }

    fn url(&self) -> String {
        format!("{}/gateway.do", self.base)
    }

    fn config(&self) -> Result<ClientConfig, Box<dyn Error>> {
        let keys = keys()?;
        Ok(ClientConfig::new(
            self.url(),
            APP_ID,
            keys.app.clone(),
            AlipayVerifier::PublicKey(keys.alipay_public.clone()),
        )
        .with_notify_url(NOTIFY_URL))
    }

    fn client(&self) -> Result<AlipayClient, Box<dyn Error>> {
        Ok(AlipayClient::new(self.config()?)?)
    }

    /// Fails if any request was malformed or badly signed; returns what was received.
    fn finish(&self) -> Result<Vec<Received>, Box<dyn Error>> {
        let problems = self.state.problems.lock().map_err(|e| e.to_string())?;
        if !problems.is_empty() {
            return Err(format!("the fake gateway saw problems: {problems:?}").into());
        }
        Ok(self
            .state
            .received
            .lock()
            .map_err(|e| e.to_string())?
            .clone())
    }
}

async fn gateway(
    State(state): State<Arc<GatewayState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match check(&state, query.as_deref().unwrap_or(""), &headers, &body) {
        Err(problem) => {
            if let Ok(mut problems) = state.problems.lock() {
                problems.push(problem.clone());
            }
            (StatusCode::BAD_REQUEST, problem).into_response()
        }
        Ok(received) => {
            let reply = (state.scenario)(&received);
            if let Ok(mut all) = state.received.lock() {
                all.push(received);
            }
            respond(reply).await
        }
    }
}

async fn respond(mut reply: Reply) -> Response {
    loop {
        match reply {
            Reply::Delayed(delay, inner) => {
                tokio::time::sleep(delay).await;
                reply = *inner;
            }
            Reply::Status(code) => {
                return StatusCode::from_u16(code)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                    .into_response();
            }
            Reply::Redirect(code, location) => {
                let status = StatusCode::from_u16(code).unwrap_or(StatusCode::FOUND);
                return (status, [("location", location)]).into_response();
            }
            // Alipay answers `text/html;charset=utf-8` for JSON; the client must not care.
            Reply::Body(bytes) => {
                return ([("content-type", "text/html;charset=utf-8")], bytes).into_response();
            }
        }
    }
}

/// What Alipay's gateway would check before acting on a request.
fn check(
    state: &GatewayState,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Received, String> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != "application/x-www-form-urlencoded;charset=utf-8" {
        return Err(format!("unexpected content-type {content_type:?}"));
    }
    let query: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let in_query = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    if in_query("charset") != Some("utf-8") {
        return Err("charset=utf-8 is not in the query string".into());
    }
    if in_query("biz_content").is_some() {
        return Err("biz_content is in the query string".into());
    }
    let biz_content = match form.as_slice() {
        [(key, value)] if key == "biz_content" => value.clone(),
        _ => return Err(format!("the body is not exactly biz_content: {form:?}")),
    };
    for required in [
        "app_id",
        "method",
        "format",
        "sign_type",
        "timestamp",
        "version",
        "sign",
    ] {
        if in_query(required).is_none_or(str::is_empty) {
            return Err(format!("system parameter {required} is missing"));
        }
    }
    if in_query("sign_type") != Some("RSA2") {
        return Err("sign_type is not RSA2".into());
    }
    let timestamp = in_query("timestamp").unwrap_or("");
    if !alipay::time::is_wire_time(timestamp) {
        return Err(format!(
            "timestamp {timestamp:?} is not yyyy-MM-dd HH:mm:ss"
        ));
    }
    let sign = in_query("sign").unwrap_or("");
    let content = alipay::canonical::request_content(
        query
            .iter()
            .chain(form.iter())
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    state
        .app_public
        .verify_base64(content.as_bytes(), sign)
        .map_err(|e| format!("the request signature does not verify: {e}"))?;
    let biz =
        serde_json::from_str(&biz_content).map_err(|e| format!("biz_content is not JSON: {e}"))?;
    Ok(Received { query, biz })
}

// ---------------------------------------------------------------------------------------------
// Response bodies as Alipay writes them.

/// Node text as Alipay writes it: compact JSON with `/` escaped as `\/`.
fn node_text(node: &Value) -> Result<String, Box<dyn Error>> {
    Ok(serde_json::to_string(node)?.replace('/', "\\/"))
}

/// `{"<method>_response":<node>,"sign":"..."}`, signed over the raw node text.
fn signed_body(method: &str, node: &Value, key: &PrivateKey) -> Result<String, Box<dyn Error>> {
    let node = node_text(node)?;
    let sign = key.sign_base64(node.as_bytes())?;
    Ok(format!(
        r#"{{"{}":{node},"sign":"{sign}"}}"#,
        alipay::response::node_name(method)
    ))
}

fn alipay_signed(method: &str, node: &Value) -> Result<String, Box<dyn Error>> {
    signed_body(method, node, &keys()?.alipay)
}

fn unsigned_body(node_name: &str, node: &Value) -> Result<String, Box<dyn Error>> {
    Ok(format!(r#"{{"{node_name}":{}}}"#, node_text(node)?))
}

fn body(text: String) -> Reply {
    Reply::Body(text.into_bytes())
}

/// A scenario built per request; an error becomes an HTTP 500 (and a failing test).
fn dynamic(
    f: impl Fn(&Received) -> Result<String, Box<dyn Error>> + Send + Sync + 'static,
) -> Scenario {
    Arc::new(move |received| match f(received) {
        Ok(text) => body(text),
        Err(_) => Reply::Status(500),
    })
}

// ---------------------------------------------------------------------------------------------
// Outcome helpers.

fn success<T: Debug>(outcome: Outcome<T>) -> Result<T, String> {
    match outcome {
        Outcome::Success(t) => Ok(t),
        other => Err(format!("expected Success, got {other:?}")),
    }
}

fn unknown<T: Debug>(outcome: Outcome<T>) -> Result<UnknownCause, String> {
    match outcome {
        Outcome::Unknown(cause) => Ok(cause),
        other => Err(format!("expected Unknown, got {other:?}")),
    }
}

fn yuan(text: &str) -> Result<Fen, alipay::AmountError> {
    Fen::from_yuan(text)
}

fn only<T: Clone>(items: &[T]) -> Result<T, String> {
    match items {
        [one] => Ok(one.clone()),
        _ => Err(format!("expected exactly one request, got {}", items.len())),
    }
}

fn pay_request() -> Result<PayRequest, Box<dyn Error>> {
    Ok(PayRequest::new(
        "pay-1",
        yuan("0.10")?,
        "Coffee",
        "287654321098765432",
    ))
}

// ---------------------------------------------------------------------------------------------
// Trade creation.

#[tokio::test]
async fn precreate_success_unescapes_the_qr_code() -> TestResult {
    let method = "alipay.trade.precreate";
    let node = json!({
        "code": "10000", "msg": "Success",
        "out_trade_no": "qr-1", "qr_code": "https://qr.alipay.com/bax08431ikrpvxqtrkmr00d1",
    });
    let text = alipay_signed(method, &node)?;
    assert!(text.contains(r"https:\/\/qr.alipay.com\/bax"), "{text}");
    let gateway = Gateway::start(fixed(body(text))).await?;

    let mut request = PrecreateRequest::new("qr-1", yuan("0.10")?, "Green tea");
    request.store_id = Some("store-7".into());
    request.time_expire = Utc.with_ymd_and_hms(2024, 1, 1, 4, 0, 0).single();
    let response = success(gateway.client()?.precreate(&request).await)?;
    assert_eq!(response.out_trade_no, "qr-1");
    assert_eq!(
        response.qr_code,
        "https://qr.alipay.com/bax08431ikrpvxqtrkmr00d1"
    );

    let received = only(&gateway.finish()?)?;
    assert_eq!(
        received.biz,
        json!({
            "out_trade_no": "qr-1",
            "total_amount": "0.10",
            "subject": "Green tea",
            "product_code": "FACE_TO_FACE_PAYMENT",
            "store_id": "store-7",
            "time_expire": "2024-01-01 12:00:00",
        })
    );
    assert_eq!(received.param("method"), Some(method));
    assert_eq!(received.param("app_id"), Some(APP_ID));
    assert_eq!(received.param("format"), Some("JSON"));
    assert_eq!(received.param("version"), Some("1.0"));
    assert_eq!(received.param("notify_url"), Some(NOTIFY_URL));
    assert_eq!(received.param("app_cert_sn"), None);
    Ok(())
}

#[tokio::test]
async fn pay_success_reads_every_amount_as_fen() -> TestResult {
    let node = json!({
        "code": "10000", "msg": "Success",
        "trade_no": "2024010122001400001000000001", "out_trade_no": "pay-1",
        "buyer_logon_id": "159****5620", "buyer_user_id": "2088102122524333",
        "total_amount": "88.88", "receipt_amount": "88.88", "buyer_pay_amount": "80.00",
        "point_amount": "8.88", "invoice_amount": "88.88",
        "gmt_payment": "2024-01-01 12:00:03",
        "fund_bill_list": [
            {"fund_channel": "ALIPAYACCOUNT", "amount": "80.00", "real_amount": "80.00"},
            {"fund_channel": "POINT", "amount": "8.88"},
        ],
        "a_field_added_next_year": {"nested": true},
    });
    let gateway = Gateway::start(fixed(body(alipay_signed("alipay.trade.pay", &node)?))).await?;
    let mut request = PayRequest::new("pay-1", yuan("88.88")?, "Coffee", "287654321098765432");
    request.scene = Scene::SecurityCode;
    let response = success(gateway.client()?.pay(&request).await)?;
    assert_eq!(response.trade_no, "2024010122001400001000000001");
    assert_eq!(response.out_trade_no, "pay-1");
    assert_eq!(response.buyer_logon_id.as_deref(), Some("159****5620"));
    assert_eq!(response.buyer_user_id.as_deref(), Some("2088102122524333"));
    assert_eq!(response.total_amount, Some(Fen::new(8888)));
    assert_eq!(response.receipt_amount, Some(Fen::new(8888)));
    assert_eq!(response.buyer_pay_amount, Some(Fen::new(8000)));
    assert_eq!(response.point_amount, Some(Fen::new(888)));
    assert_eq!(response.invoice_amount, Some(Fen::new(8888)));
    assert_eq!(response.gmt_payment.as_deref(), Some("2024-01-01 12:00:03"));
    let channels: Vec<(&str, Fen)> = response
        .fund_bill_list
        .iter()
        .map(|b| (b.fund_channel.as_str(), b.amount))
        .collect();
    assert_eq!(
        channels,
        [("ALIPAYACCOUNT", Fen::new(8000)), ("POINT", Fen::new(888))]
    );

    let received = only(&gateway.finish()?)?;
    assert_eq!(
        received.biz,
        json!({
            "out_trade_no": "pay-1",
            "total_amount": "88.88",
            "subject": "Coffee",
            "auth_code": "287654321098765432",
            "scene": "security_code",
            "product_code": "FACE_TO_FACE_PAYMENT",
        })
    );
    assert_eq!(received.param("notify_url"), Some(NOTIFY_URL));
    Ok(())
}

#[tokio::test]
async fn pay_10003_is_waiting_for_the_buyer() -> TestResult {
    let node = json!({
        "code": "10003", "msg": "Order success pay inprocess",
        "trade_no": "2024010122001400001000000002", "out_trade_no": "pay-1",
        "buyer_logon_id": "159****5620", "total_amount": "0.10",
    });
    let gateway = Gateway::start(fixed(body(alipay_signed("alipay.trade.pay", &node)?))).await?;
    let outcome = gateway.client()?.pay(&pay_request()?).await;
    let Outcome::WaitingForBuyer(response) = outcome else {
        return Err(format!("expected WaitingForBuyer, got {outcome:?}").into());
    };
    assert_eq!(response.trade_no, "2024010122001400001000000002");
    assert_eq!(response.total_amount, Some(Fen::new(10)));
    assert_eq!(only(&gateway.finish()?)?.biz_str("scene"), Some("bar_code"));
    Ok(())
}

#[tokio::test]
async fn code_10003_from_query_is_unknown_not_waiting() -> TestResult {
    let node = json!({"code": "10003", "msg": "in process", "trade_no": "t", "out_trade_no": "o"});
    let gateway = Gateway::start(fixed(body(alipay_signed("alipay.trade.query", &node)?))).await?;
    let outcome = gateway
        .client()?
        .query(&QueryRequest::new(TradeRef::out_trade_no("o")))
        .await;
    assert!(matches!(unknown(outcome)?, UnknownCause::Unverifiable(_)));
    gateway.finish()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Errors and the money-safety rules.

#[tokio::test]
async fn system_error_20000_is_unknown() -> TestResult {
    let node = json!({
        "code": "20000", "msg": "Service Currently Unavailable",
        "sub_code": "isp.unknow-error", "sub_msg": "系统繁忙",
    });
    let gateway = Gateway::start(fixed(body(alipay_signed("alipay.trade.pay", &node)?))).await?;
    let cause = unknown(gateway.client()?.pay(&pay_request()?).await)?;
    let UnknownCause::SystemError(failure) = cause else {
        return Err(format!("expected SystemError, got {cause:?}").into());
    };
    assert_eq!(failure.code, "20000");
    assert_eq!(failure.sub_msg.as_deref(), Some("系统繁忙"));
    gateway.finish()?;
    Ok(())
}

#[tokio::test]
async fn acq_system_error_40004_is_unknown() -> TestResult {
    let node = json!({
        "code": "40004", "msg": "Business Failed",
        "sub_code": "ACQ.SYSTEM_ERROR", "sub_msg": "系统错误",
    });
    let gateway = Gateway::start(fixed(body(alipay_signed("alipay.trade.pay", &node)?))).await?;
    let cause = unknown(gateway.client()?.pay(&pay_request()?).await)?;
    assert!(
        matches!(&cause, UnknownCause::SystemError(f) if f.sub_code_is("ACQ.SYSTEM_ERROR")),
        "{cause:?}"
    );
    gateway.finish()?;
    Ok(())
}

#[tokio::test]
async fn invalid_auth_code_is_a_verified_failure() -> TestResult {
    let node = json!({
        "code": "40004", "msg": "Business Failed",
        "sub_code": "ACQ.PAYMENT_AUTH_CODE_INVALID", "sub_msg": "支付失败，获取顾客账户信息失败",
    });
    let gateway = Gateway::start(fixed(body(alipay_signed("alipay.trade.pay", &node)?))).await?;
    let outcome = gateway.client()?.pay(&pay_request()?).await;
    let Outcome::Failed(failure) = outcome else {
        return Err(format!("expected Failed, got {outcome:?}").into());
    };
    assert_eq!(failure.code, "40004");
    assert_eq!(
        failure.sub_code.as_deref(),
        Some("ACQ.PAYMENT_AUTH_CODE_INVALID")
    );
    gateway.finish()?;
    Ok(())
}

#[tokio::test]
async fn unsigned_invalid_signature_is_rejected_as_unsigned() -> TestResult {
    let node = json!({
        "code": "40002", "msg": "Invalid Arguments",
        "sub_code": "isv.invalid-signature", "sub_msg": "验签出错",
    });
    let gateway = Gateway::start(fixed(body(unsigned_body("error_response", &node)?))).await?;
    let outcome = gateway.client()?.pay(&pay_request()?).await;
    let Outcome::Rejected(Rejection::Gateway { failure, signed }) = outcome else {
        return Err(format!("expected a gateway rejection, got {outcome:?}").into());
    };
    assert!(!signed);
    assert_eq!(failure.code, "40002");
    assert_eq!(failure.sub_code.as_deref(), Some("isv.invalid-signature"));
    gateway.finish()?;
    Ok(())
}

#[tokio::test]
async fn unsigned_10000_is_never_a_success() -> TestResult {
    let node = json!({
        "code": "10000", "msg": "Success",
        "trade_no": "2024010122001400001000000003", "out_trade_no": "pay-1",
        "total_amount": "0.10",
    });
    let gateway = Gateway::start(fixed(body(unsigned_body(
        "alipay_trade_pay_response",
        &node,
    )?)))
    .await?;
    let cause = unknown(gateway.client()?.pay(&pay_request()?).await)?;
    assert!(matches!(cause, UnknownCause::Unverifiable(_)), "{cause:?}");
    gateway.finish()?;
    Ok(())
}

#[tokio::test]
async fn a_response_signed_with_another_key_is_unverifiable() -> TestResult {
    let node = json!({
        "code": "10000", "msg": "Success",
        "trade_no": "2024010122001400001000000004", "out_trade_no": "pay-1",
    });
    let text = signed_body("alipay.trade.pay", &node, &keys()?.stranger)?;
    let gateway = Gateway::start(fixed(body(text))).await?;
    let cause = unknown(gateway.client()?.pay(&pay_request()?).await)?;
    assert!(matches!(cause, UnknownCause::Unverifiable(_)), "{cause:?}");
    gateway.finish()?;
    Ok(())
}

#[tokio::test]
async fn a_success_forged_after_signing_is_unverifiable() -> TestResult {
    let node = json!({
        "code": "10003", "msg": "Order success pay inprocess",
        "trade_no": "2024010122001400001000000005", "out_trade_no": "pay-1",
    });
    let signed = alipay_signed("alipay.trade.pay", &node)?;
    let tampered = signed.replacen(
        r#""code":"10003","msg":"Order success pay inprocess""#,
        r#""code":"10000","msg":"Success""#,
        1,
    );
    assert_ne!(signed, tampered);
    let gateway = Gateway::start(fixed(body(tampered))).await?;
    let cause = unknown(gateway.client()?.pay(&pay_request()?).await)?;
    assert!(matches!(cause, UnknownCause::Unverifiable(_)), "{cause:?}");
    gateway.finish()?;
    Ok(())
}

#[tokio::test]
async fn a_body_that_is_not_utf8_is_unverifiable() -> TestResult {
    let mut bytes = br#"{"alipay_trade_pay_response":{"code":"10000","msg":""#.to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(br#""},"sign":"c2ln"}"#);
    let gateway = Gateway::start(fixed(Reply::Body(bytes))).await?;
    let cause = unknown(gateway.client()?.pay(&pay_request()?).await)?;
    assert!(
        matches!(&cause, UnknownCause::Unverifiable(why) if why.contains("UTF-8")),
        "{cause:?}"
    );
    gateway.finish()?;
    Ok(())
}

#[tokio::test]
async fn an_oversized_body_is_refused_unread() -> TestResult {
    let node = json!({"code": "10000", "msg": "Success", "padding": "x".repeat(4096)});
    let gateway = Gateway::start(fixed(body(alipay_signed("alipay.trade.query", &node)?))).await?;
    let client = AlipayClient::new(gateway.config()?.with_max_response_bytes(1024))?;
    let cause = unknown(
        client
            .query(&QueryRequest::new(TradeRef::out_trade_no("o")))
            .await,
    )?;
    assert!(matches!(cause, UnknownCause::Unverifiable(_)), "{cause:?}");
    gateway.finish()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Transport failures.

#[tokio::test]
async fn a_reply_slower_than_the_request_timeout_is_unknown_timeout() -> TestResult {
    let node = json!({"code": "10000", "msg": "Success", "trade_no": "t", "out_trade_no": "pay-1"});
    let late = Reply::Delayed(
        Duration::from_secs(3),
        Box::new(body(alipay_signed("alipay.trade.pay", &node)?)),
    );
    let gateway = Gateway::start(fixed(late)).await?;
    let config = gateway
        .config()?
        .with_timeouts(Duration::from_secs(1), Duration::from_millis(300));
    let client = AlipayClient::new(config)?;
    let started = Instant::now();
    let cause = unknown(client.pay(&pay_request()?).await)?;
    assert_eq!(cause, UnknownCause::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2));
    gateway.finish()?;
    Ok(())
}

#[tokio::test]
async fn a_refused_connection_is_unknown_connection() -> TestResult {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let keys = keys()?;
    let config = ClientConfig::new(
        format!("http://127.0.0.1:{port}/gateway.do"),
        APP_ID,
        keys.app.clone(),
        AlipayVerifier::PublicKey(keys.alipay_public.clone()),
    );
    let cause = unknown(AlipayClient::new(config)?.pay(&pay_request()?).await)?;
    let UnknownCause::Connection(why) = &cause else {
        return Err(format!("expected Connection, got {cause:?}").into());
    };
    assert!(
        !why.contains("sign="),
        "the error must not carry the URL: {why}"
    );
    Ok(())
}

/// A bare TCP server that answers every connection with `head`, then stalls for `stall`
/// before closing: for failures an HTTP framework would not produce.
async fn raw_server(head: Vec<u8>, stall: Duration) -> Result<String, Box<dyn Error>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/gateway.do", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let head = head.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0_u8; 64 * 1024];
                let _ = socket.read(&mut buffer).await;
                let _ = socket.write_all(&head).await;
                tokio::time::sleep(stall).await;
            });
        }
    });
    Ok(url)
}

fn raw_client(url: String, request_timeout: Duration) -> Result<AlipayClient, Box<dyn Error>> {
    let keys = keys()?;
    let config = ClientConfig::new(
        url,
        APP_ID,
        keys.app.clone(),
        AlipayVerifier::PublicKey(keys.alipay_public.clone()),
    )
    .with_timeouts(Duration::from_secs(1), request_timeout)
    .with_max_response_bytes(1024);
    Ok(AlipayClient::new(config)?)
}

#[tokio::test]
async fn a_body_that_stalls_after_the_headers_is_unknown_timeout() -> TestResult {
    let head =
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"alipay_trade_pay_response\":".to_vec();
    let url = raw_server(head, Duration::from_secs(3)).await?;
    let client = raw_client(url, Duration::from_millis(300))?;
    let cause = unknown(client.pay(&pay_request()?).await)?;
    assert_eq!(cause, UnknownCause::Timeout);
    Ok(())
}

#[tokio::test]
async fn a_chunked_body_past_the_cap_is_refused() -> TestResult {
    let chunk = "x".repeat(2048);
    let head = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let url = raw_server(head.into_bytes(), Duration::from_millis(10)).await?;
    let client = raw_client(url, Duration::from_secs(2))?;
    let cause = unknown(client.pay(&pay_request()?).await)?;
    assert!(
        matches!(&cause, UnknownCause::Unverifiable(why) if why.contains("exceeds")),
        "{cause:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_connection_dropped_before_answering_is_unknown_connection() -> TestResult {
    let url = raw_server(Vec::new(), Duration::ZERO).await?;
    let client = raw_client(url, Duration::from_secs(2))?;
    let cause = unknown(client.pay(&pay_request()?).await)?;
    assert!(matches!(cause, UnknownCause::Connection(_)), "{cause:?}");
    Ok(())
}

#[tokio::test]
async fn http_502_is_unknown_http_status() -> TestResult {
    let gateway = Gateway::start(fixed(Reply::Status(502))).await?;
    let cause = unknown(gateway.client()?.pay(&pay_request()?).await)?;
    assert_eq!(cause, UnknownCause::HttpStatus(502));
    gateway.finish()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Query, close, cancel.

#[tokio::test]
async fn query_reports_each_trade_status() -> TestResult {
    // The fake answers with the status named by the out_trade_no.
    let gateway = Gateway::start(dynamic(|received| {
        let status = received.biz_str("out_trade_no").unwrap_or("");
        alipay_signed(
            "alipay.trade.query",
            &json!({
                "code": "10000", "msg": "Success",
                "trade_no": format!("T-{status}"), "out_trade_no": status,
                "trade_status": status, "total_amount": "12.30",
                "receipt_amount": "12.30", "buyer_pay_amount": "12.30",
                "buyer_logon_id": "159****5620", "buyer_user_id": "2088102122524333",
                "send_pay_date": "2024-01-01 12:00:03",
                "store_id": "store-7", "terminal_id": "till-2",
                "fund_bill_list": [{"fund_channel": "ALIPAYACCOUNT", "amount": "12.30"}],
            }),
        )
    }))
    .await?;
    let client = gateway.client()?;
    for status in [
        TradeStatus::WaitBuyerPay,
        TradeStatus::TradeClosed,
        TradeStatus::TradeSuccess,
        TradeStatus::TradeFinished,
    ] {
        let request = QueryRequest::new(TradeRef::out_trade_no(status.as_str()));
        let response = success(client.query(&request).await)?;
        assert_eq!(response.trade_status, status);
        assert_eq!(response.out_trade_no, status.as_str());
        assert_eq!(response.total_amount, Fen::new(1230));
        assert_eq!(response.receipt_amount, Some(Fen::new(1230)));
        assert_eq!(response.buyer_pay_amount, Some(Fen::new(1230)));
        assert_eq!(
            response.send_pay_date.as_deref(),
            Some("2024-01-01 12:00:03")
        );
        assert_eq!(response.store_id.as_deref(), Some("store-7"));
        assert_eq!(response.terminal_id.as_deref(), Some("till-2"));
    }
    let received = gateway.finish()?;
    assert_eq!(received.len(), 4);
    for request in &received {
        assert_eq!(request.param("method"), Some("alipay.trade.query"));
        // notify_url belongs to the calls that create trades only.
        assert_eq!(request.param("notify_url"), None);
        assert_eq!(
            request
                .biz
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["out_trade_no".to_owned()])
        );
    }
    Ok(())
}

#[tokio::test]
async fn close_by_trade_no_sends_the_trade_no_key() -> TestResult {
    let node =
        json!({"code": "10000", "msg": "Success", "trade_no": "2024010122001400001000000006"});
    let gateway = Gateway::start(fixed(body(alipay_signed("alipay.trade.close", &node)?))).await?;
    let mut request = CloseRequest::new(TradeRef::trade_no("2024010122001400001000000006"));
    request.operator_id = Some("op-1".into());
    let response = success(gateway.client()?.close(&request).await)?;
    assert_eq!(
        response.trade_no.as_deref(),
        Some("2024010122001400001000000006")
    );
    assert_eq!(response.out_trade_no, None);
    assert_eq!(
        only(&gateway.finish()?)?.biz,
        json!({"trade_no": "2024010122001400001000000006", "operator_id": "op-1"})
    );
    Ok(())
}

#[tokio::test]
async fn cancel_reports_action_and_retry_flag() -> TestResult {
    let gateway = Gateway::start(dynamic(|received| {
        let node = match received.biz_str("out_trade_no") {
            Some("paid") => json!({
                "code": "10000", "msg": "Success",
                "trade_no": "T1", "out_trade_no": "paid",
                "retry_flag": "N", "action": "refund",
                "gmt_refund_pay": "2024-01-01 12:05:00",
            }),
            Some("unpaid") => json!({
                "code": "10000", "msg": "Success",
                "trade_no": "T2", "out_trade_no": "unpaid",
                "retry_flag": "N", "action": "close",
            }),
            _ => json!({
                "code": "10000", "msg": "Success",
                "out_trade_no": "busy", "retry_flag": "Y",
            }),
        };
        alipay_signed("alipay.trade.cancel", &node)
    }))
    .await?;
    let client = gateway.client()?;
    let cancel = |no: &str| CancelRequest::new(TradeRef::out_trade_no(no));

    let refunded = success(client.cancel(&cancel("paid")).await)?;
    assert_eq!(refunded.action, CancelAction::Refund);
    assert!(!refunded.retry_flag);
    assert_eq!(
        refunded.gmt_refund_pay.as_deref(),
        Some("2024-01-01 12:05:00")
    );

    let closed = success(client.cancel(&cancel("unpaid")).await)?;
    assert_eq!(closed.action, CancelAction::Close);

    let retry = success(client.cancel(&cancel("busy")).await)?;
    assert!(retry.retry_flag);
    assert_eq!(retry.action, CancelAction::NotReported);
    assert_eq!(retry.trade_no, None);

    let received = gateway.finish()?;
    assert_eq!(received.len(), 3);
    assert_eq!(
        received.first().map(|r| r.biz.clone()),
        Some(json!({"out_trade_no": "paid"}))
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Refunds.

#[tokio::test]
async fn refund_reports_fund_change_and_the_cumulative_refund_fee() -> TestResult {
    let node = json!({
        "code": "10000", "msg": "Success",
        "trade_no": "T1", "out_trade_no": "o-9", "buyer_logon_id": "159****5620",
        "fund_change": "Y", "refund_fee": "0.15",
        "gmt_refund_pay": "2024-01-02 09:00:00",
        "refund_detail_item_list": [{"fund_channel": "ALIPAYACCOUNT", "amount": "0.05"}],
    });
    let gateway = Gateway::start(fixed(body(alipay_signed("alipay.trade.refund", &node)?))).await?;
    let mut request = RefundRequest::new(TradeRef::out_trade_no("o-9"), yuan("0.05")?, "r-2");
    request.refund_reason = Some("broken cup".into());
    request.operator_id = Some("op-1".into());
    let response = success(gateway.client()?.refund(&request).await)?;
    assert!(response.fund_change);
    assert_eq!(response.refund_fee, Fen::new(15));
    assert_eq!(response.trade_no, "T1");
    assert_eq!(response.out_trade_no, "o-9");
    assert_eq!(response.buyer_logon_id.as_deref(), Some("159****5620"));
    assert_eq!(
        response.gmt_refund_pay.as_deref(),
        Some("2024-01-02 09:00:00")
    );
    assert_eq!(
        only(&gateway.finish()?)?.biz,
        json!({
            "out_trade_no": "o-9",
            "refund_amount": "0.05",
            "out_request_no": "r-2",
            "refund_reason": "broken cup",
            "operator_id": "op-1",
        })
    );
    Ok(())
}

#[tokio::test]
async fn refund_query_with_and_without_refund_status() -> TestResult {
    let gateway = Gateway::start(dynamic(|received| {
        let node = match received.biz_str("out_request_no") {
            Some("r-done") => json!({
                "code": "10000", "msg": "Success",
                "trade_no": "T1", "out_trade_no": "o-9", "out_request_no": "r-done",
                "total_amount": "1.00", "refund_amount": "0.05",
                "refund_status": "REFUND_SUCCESS", "gmt_refund_pay": "2024-01-02 09:00:00",
            }),
            _ => json!({"code": "10000", "msg": "Success"}),
        };
        alipay_signed("alipay.trade.fastpay.refund.query", &node)
    }))
    .await?;
    let client = gateway.client()?;

    let done = success(
        client
            .refund_query(&RefundQueryRequest::new(TradeRef::trade_no("T1"), "r-done"))
            .await,
    )?;
    assert_eq!(done.refund_status, RefundStatus::Success);
    assert_eq!(done.total_amount, Some(Fen::new(100)));
    assert_eq!(done.refund_amount, Some(Fen::new(5)));
    assert_eq!(done.out_request_no.as_deref(), Some("r-done"));

    let missing = success(
        client
            .refund_query(&RefundQueryRequest::new(
                TradeRef::out_trade_no("o-9"),
                "r-lost",
            ))
            .await,
    )?;
    assert_eq!(missing.refund_status, RefundStatus::NotSucceeded);
    assert_eq!(missing.refund_amount, None);
    assert_eq!(missing.trade_no, None);

    let received = gateway.finish()?;
    assert_eq!(
        received.iter().map(|r| r.biz.clone()).collect::<Vec<_>>(),
        [
            json!({"trade_no": "T1", "out_request_no": "r-done"}),
            json!({"out_trade_no": "o-9", "out_request_no": "r-lost"}),
        ]
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bills.

#[tokio::test]
async fn bill_url_then_download_and_a_missing_bill() -> TestResult {
    let method = "alipay.data.dataservice.bill.downloadurl.query";
    let base: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let base_in_scenario = base.clone();
    let gateway = Gateway::start(dynamic(move |received| {
        let node = match received.biz_str("bill_date") {
            Some("2024-03-05") => json!({
                "code": "10000", "msg": "Success",
                "bill_download_url": format!(
                    "{}/bill.zip?downloadFileName=20880.csv.zip&fileType=trade&bizDates=20240305",
                    base_in_scenario.get().map_or("", String::as_str)
                ),
                "bill_file_code": "F-1",
            }),
            _ => json!({
                "code": "40004", "msg": "Business Failed",
                "sub_code": "isp.bill_not_exist", "sub_msg": "账单不存在",
            }),
        };
        alipay_signed(method, &node)
    }))
    .await?;
    base.get_or_init(|| gateway.base.clone());
    let client = gateway.client()?;

    let day = chrono::NaiveDate::from_ymd_opt(2024, 3, 5).ok_or("date")?;
    let found = success(
        client
            .bill_download_url(&BillDownloadUrlRequest::trade_day(day))
            .await,
    )?;
    assert_eq!(
        found.bill_download_url,
        format!(
            "{}/bill.zip?downloadFileName=20880.csv.zip&fileType=trade&bizDates=20240305",
            gateway.base
        )
    );
    assert_eq!(found.bill_file_code.as_deref(), Some("F-1"));
    assert_eq!(
        client.download_bill(&found.bill_download_url).await?,
        BILL_BYTES
    );

    let next = chrono::NaiveDate::from_ymd_opt(2024, 3, 6).ok_or("date")?;
    let outcome = client
        .bill_download_url(&BillDownloadUrlRequest::trade_day(next))
        .await;
    let Outcome::Failed(failure) = outcome else {
        return Err(format!("expected Failed, got {outcome:?}").into());
    };
    assert!(failure.sub_code_is("isp.bill_not_exist"));

    let received = gateway.finish()?;
    assert_eq!(
        received.first().map(|r| r.biz.clone()),
        Some(json!({"bill_type": "trade", "bill_date": "2024-03-05"}))
    );
    Ok(())
}

#[tokio::test]
async fn download_bill_enforces_its_size_cap_and_status() -> TestResult {
    let gateway = Gateway::start(fixed(Reply::Status(500))).await?;
    let config = gateway
        .config()?
        .with_bill_download_limits(Duration::from_secs(5), 8);
    let client = AlipayClient::new(config)?;
    assert_eq!(
        client
            .download_bill(&format!("{}/bill.zip", gateway.base))
            .await,
        Err(BillDownloadError::TooLarge { limit: 8 })
    );
    assert_eq!(
        client
            .download_bill(&format!("{}/no-such-bill.zip", gateway.base))
            .await,
        Err(BillDownloadError::HttpStatus(404))
    );
    assert_eq!(
        client.download_bill("ftp://example.com/bill.zip").await,
        Err(BillDownloadError::InvalidUrl)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Configuration.

#[tokio::test]
async fn certificate_mode_sends_and_signs_both_serial_numbers() -> TestResult {
    let node = json!({
        "code": "10000", "msg": "Success",
        "trade_no": "T1", "out_trade_no": "o-1", "trade_status": "TRADE_SUCCESS",
        "total_amount": "0.10",
    });
    let gateway = Gateway::start(fixed(body(alipay_signed("alipay.trade.query", &node)?))).await?;
    let config = gateway.config()?.with_cert_sns(
        "a1b2c3d4e5f60718293a4b5c6d7e8f90",
        "687b59193f3f462dd5336e5abf83c5d8_02941eef3187dddf3d3b83462e1dfcf6",
    );
    let client = AlipayClient::new(config)?;
    success(
        client
            .query(&QueryRequest::new(TradeRef::out_trade_no("o-1")))
            .await,
    )?;
    // The fake gateway verified the signature over every query parameter, SNs included.
    let received = only(&gateway.finish()?)?;
    assert_eq!(
        received.param("app_cert_sn"),
        Some("a1b2c3d4e5f60718293a4b5c6d7e8f90")
    );
    assert_eq!(
        received.param("alipay_root_cert_sn"),
        Some("687b59193f3f462dd5336e5abf83c5d8_02941eef3187dddf3d3b83462e1dfcf6")
    );
    Ok(())
}

fn new_year_2024() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 4, 0, 0)
        .single()
        .unwrap_or_default()
}

#[tokio::test]
async fn the_timestamp_is_beijing_time_from_the_injected_clock() -> TestResult {
    let node = json!({"code": "10000", "msg": "Success", "trade_no": "T1"});
    let gateway = Gateway::start(fixed(body(alipay_signed("alipay.trade.close", &node)?))).await?;
    let client = gateway.client()?.with_clock(new_year_2024);
    success(
        client
            .close(&CloseRequest::new(TradeRef::out_trade_no("o-1")))
            .await,
    )?;
    assert_eq!(
        only(&gateway.finish()?)?.param("timestamp"),
        Some("2024-01-01 12:00:00")
    );
    Ok(())
}

#[test]
fn config_debug_never_shows_the_private_key() -> TestResult {
    let keys = keys()?;
    let config = ClientConfig::new(
        "https://openapi.alipay.com/gateway.do",
        APP_ID,
        keys.app.clone(),
        AlipayVerifier::PublicKey(keys.alipay_public.clone()),
    );
    let pem_body: String = keys
        .app_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let leaks = |text: &str| {
        pem_body
            .as_bytes()
            .chunks(32)
            .any(|chunk| text.contains(String::from_utf8_lossy(chunk).as_ref()))
    };
    let text = format!("{config:?}");
    assert!(text.contains("<redacted>"), "{text}");
    assert!(!leaks(&text), "key material in the config's Debug");
    let client = AlipayClient::new(config)?;
    assert!(
        !leaks(&format!("{client:?}")),
        "key material in the client's Debug"
    );
    Ok(())
}

#[test]
fn bad_configurations_are_refused_when_building() -> TestResult {
    let keys = keys()?;
    let config = |url: &str, app_id: &str| {
        ClientConfig::new(
            url,
            app_id,
            keys.app.clone(),
            AlipayVerifier::PublicKey(keys.alipay_public.clone()),
        )
    };
    assert!(AlipayClient::new(config("not a url", APP_ID)).is_err());
    assert!(AlipayClient::new(config("ftp://example.com/gateway.do", APP_ID)).is_err());
    assert!(AlipayClient::new(config("https://openapi.alipay.com/gateway.do", "")).is_err());
    Ok(())
}

#[test]
fn plain_http_is_refused_except_on_loopback_hosts() -> TestResult {
    let keys = keys()?;
    let build = |url: &str| {
        AlipayClient::new(ClientConfig::new(
            url,
            APP_ID,
            keys.app.clone(),
            AlipayVerifier::PublicKey(keys.alipay_public.clone()),
        ))
    };
    for url in [
        "http://openapi.alipay.com/gateway.do",
        "http://10.0.0.7:8639/gateway.do",
        "http://[::2]/gateway.do",
        "http://[::ffff:10.0.0.7]/gateway.do",
        "http://localhost.example.com/gateway.do",
        "http://127.0.0.1.example.com/gateway.do",
    ] {
        let built = build(url);
        assert!(
            matches!(&built, Err(ClientBuildError::InsecureGatewayUrl(u)) if u == url),
            "{url}: {built:?}"
        );
    }
    for url in [
        alipay::client::PRODUCTION_GATEWAY,
        alipay::client::SANDBOX_GATEWAY,
        "https://10.0.0.7/gateway.do",
        "http://127.0.0.1:8639/gateway.do",
        "http://127.200.0.9/gateway.do",
        "http://[::1]:8639/gateway.do",
        "http://localhost:8639/gateway.do",
        "http://LocalHost/gateway.do",
    ] {
        let built = build(url);
        assert!(built.is_ok(), "{url}: {built:?}");
    }
    Ok(())
}

/// A server on 127.0.0.1 that answers everything with a signed success and counts requests.
async fn elsewhere() -> Result<(String, Arc<AtomicUsize>), Box<dyn Error>> {
    let hits = Arc::new(AtomicUsize::new(0));
    let success = alipay_signed(
        "alipay.trade.pay",
        &json!({"code": "10000", "msg": "Success", "trade_no": "T9", "out_trade_no": "pay-1"}),
    )?;
    let counter = hits.clone();
    let app = Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let success = success.clone();
        async move { success }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((base, hits))
}

#[tokio::test]
async fn a_redirect_from_the_gateway_is_not_followed_and_is_unknown() -> TestResult {
    let (elsewhere, hits) = elsewhere().await?;
    // 302 would be followed as a GET, 307 by resending the signed POST.
    for code in [302, 307] {
        let to = format!("{elsewhere}/gateway.do");
        let gateway = Gateway::start(fixed(Reply::Redirect(code, to))).await?;
        let cause = unknown(gateway.client()?.pay(&pay_request()?).await)?;
        assert_eq!(cause, UnknownCause::HttpStatus(code));
        assert_eq!(hits.load(Ordering::SeqCst), 0, "the {code} was followed");
        only(&gateway.finish()?)?;
    }
    Ok(())
}

#[tokio::test]
async fn a_redirected_bill_download_is_an_error() -> TestResult {
    let (elsewhere, hits) = elsewhere().await?;
    let target = format!("{elsewhere}/bill.zip");
    let app = Router::new().fallback(move || {
        let target = target.clone();
        async move { (StatusCode::FOUND, [("location", target)]) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let moved = format!("http://{}/bill.zip", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let gateway = Gateway::start(fixed(Reply::Status(500))).await?;
    assert_eq!(
        gateway.client()?.download_bill(&moved).await,
        Err(BillDownloadError::HttpStatus(302))
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");
    Ok(())
}

#[tokio::test]
async fn the_fake_gateway_catches_a_request_signed_with_the_wrong_key() -> TestResult {
    let gateway = Gateway::start(fixed(Reply::Status(500))).await?;
    let mut config = gateway.config()?;
    config.app_private_key = keys()?.stranger.clone();
    let cause = unknown(AlipayClient::new(config)?.pay(&pay_request()?).await)?;
    assert_eq!(cause, UnknownCause::HttpStatus(400));
    let problems = gateway.finish().err().map(|e| e.to_string());
    assert!(
        problems
            .as_deref()
            .is_some_and(|p| p.contains("does not verify")),
        "{problems:?}"
    );
    Ok(())
}
