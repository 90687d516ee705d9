//! The async gateway client: one pooled HTTP client, one way to call any method.
//!
//! Every call goes through [`AlipayClient::execute`]: serialise `biz_content` once, sign it
//! with the system parameters, POST, read a size-capped body, and let
//! [`crate::outcome::classify`] decide from verified text only. Transport trouble after the
//! request may have left this process is [`Outcome::Unknown`], never a failure, because the
//! gateway may have acted on it.

use crate::api::{
    ApiRequest, BillDownloadUrlRequest, BillDownloadUrlResponse, CancelRequest, CancelResponse,
    CloseRequest, CloseResponse, PayRequest, PayResponse, PrecreateRequest, PrecreateResponse,
    QueryRequest, QueryResponse, RefundQueryRequest, RefundQueryResponse, RefundRequest,
    RefundResponse,
};
use crate::keys::PrivateKey;
use crate::outcome::{self, Failure, Outcome, Rejection, UnknownCause};
use crate::request::{self, SystemParams};
use crate::verifier::AlipayVerifier;
use chrono::{DateTime, Utc};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Alipay's production gateway.
pub const PRODUCTION_GATEWAY: &str = "https://openapi.alipay.com/gateway.do";
/// Alipay's sandbox gateway.
pub const SANDBOX_GATEWAY: &str = "https://openapi-sandbox.dl.alipaydev.com/gateway.do";

const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded;charset=utf-8";

/// Everything the client needs. `Debug` is safe to log: the private key redacts itself.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://openapi.alipay.com/gateway.do`, the sandbox, or a local fake. Must be
    /// `https`, except on a loopback host (`127.0.0.0/8`, `::1`, `localhost`).
    pub gateway_url: String,
    pub app_id: String,
    pub app_private_key: PrivateKey,
    pub verifier: AlipayVerifier,
    /// Sent with `precreate` and `pay` only (the calls that get notifications).
    pub notify_url: Option<String>,
    /// Certificate mode: SN of the app's public-key certificate.
    pub app_cert_sn: Option<String>,
    /// Certificate mode: SN of Alipay's root certificate chain.
    pub alipay_root_cert_sn: Option<String>,
    /// TCP + TLS handshake budget.
    pub connect_timeout: Duration,
    /// Whole-call budget for gateway calls, connecting and reading the body included.
    pub request_timeout: Duration,
    /// Gateway answers are a few KiB; anything larger is refused unread.
    pub max_response_bytes: usize,
    /// Whole-call budget for [`AlipayClient::download_bill`] (a bill can be large).
    pub bill_download_timeout: Duration,
    pub max_bill_bytes: u64,
    /// The only roots the gateway's certificate may chain to (DER), when the caller chooses
    /// them and shares them with its other clients (the Lambda functions do, once per cold
    /// start). `None`: reqwest's platform verifier, which reads the system store itself when
    /// the client is built.
    pub root_certificates: Option<RootCertificates>,
}

/// Trusted root certificates in DER, shared by the clients built with them. `Debug` shows
/// how many there are.
#[derive(Clone, PartialEq, Eq)]
pub struct RootCertificates(Arc<[Vec<u8>]>);

impl RootCertificates {
    pub fn new(der: Vec<Vec<u8>>) -> Self {
        RootCertificates(Arc::from(der))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.0.iter().map(Vec::as_slice)
    }
}

impl std::fmt::Debug for RootCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RootCertificates({})", self.0.len())
    }
}

impl ClientConfig {
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;
    pub const DEFAULT_BILL_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);
    pub const DEFAULT_MAX_BILL_BYTES: u64 = 512 * 1024 * 1024;

    /// Public-key mode with default limits; adjust with the `with_*` methods.
    pub fn new(
        gateway_url: impl Into<String>,
        app_id: impl Into<String>,
        app_private_key: PrivateKey,
        verifier: AlipayVerifier,
    ) -> Self {
        ClientConfig {
            gateway_url: gateway_url.into(),
            app_id: app_id.into(),
            app_private_key,
            verifier,
            notify_url: None,
            app_cert_sn: None,
            alipay_root_cert_sn: None,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            max_response_bytes: Self::DEFAULT_MAX_RESPONSE_BYTES,
            bill_download_timeout: Self::DEFAULT_BILL_DOWNLOAD_TIMEOUT,
            max_bill_bytes: Self::DEFAULT_MAX_BILL_BYTES,
            root_certificates: None,
        }
    }

    /// Trusts exactly `roots` (certificate and host name still verified) instead of reading
    /// the system store when the client is built.
    pub fn with_root_certificates(mut self, roots: RootCertificates) -> Self {
        self.root_certificates = Some(roots);
        self
    }

    pub fn with_notify_url(mut self, notify_url: impl Into<String>) -> Self {
        self.notify_url = Some(notify_url.into());
        self
    }

    /// Certificate mode: both SNs are sent (and signed) with every call.
    pub fn with_cert_sns(
        mut self,
        app_cert_sn: impl Into<String>,
        alipay_root_cert_sn: impl Into<String>,
    ) -> Self {
        self.app_cert_sn = Some(app_cert_sn.into());
        self.alipay_root_cert_sn = Some(alipay_root_cert_sn.into());
        self
    }

    pub fn with_timeouts(mut self, connect: Duration, request: Duration) -> Self {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }

    pub fn with_max_response_bytes(mut self, max: usize) -> Self {
        self.max_response_bytes = max;
        self
    }

    pub fn with_bill_download_limits(mut self, timeout: Duration, max_bytes: u64) -> Self {
        self.bill_download_timeout = timeout;
        self.max_bill_bytes = max_bytes;
        self
    }
}

/// The client could not be built (configuration, never the network).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientBuildError {
    #[error("gateway_url {0:?} is not an http(s) URL")]
    GatewayUrl(String),
    #[error("gateway_url {0:?} must be https (plain http is allowed only on a loopback host)")]
    InsecureGatewayUrl(String),
    #[error("app_id is empty")]
    EmptyAppId,
    #[error("the HTTP client could not be built: {0}")]
    Http(String),
}

/// Why a bill could not be downloaded. Downloads have no side effect, so every error is
/// simply retryable (after asking for a fresh URL: they expire within about 30 s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillDownloadError {
    #[error("the bill URL is not an http(s) URL")]
    InvalidUrl,
    #[error("the bill download timed out")]
    Timeout,
    #[error("the bill download failed: {0}")]
    Connection(String),
    #[error("the bill server answered HTTP {0}")]
    HttpStatus(u16),
    #[error("the bill is larger than the {limit}-byte limit")]
    TooLarge { limit: u64 },
}

/// Supplies "now" for the `timestamp` system parameter.
pub type Clock = fn() -> DateTime<Utc>;

/// An Alipay gateway client. Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct AlipayClient {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
    /// `?` or `&`, depending on whether `gateway_url` already has a query.
    query_separator: char,
    clock: Clock,
}

impl AlipayClient {
    pub fn new(config: ClientConfig) -> Result<Self, ClientBuildError> {
        let url = reqwest::Url::parse(&config.gateway_url)
            .map_err(|_| ClientBuildError::GatewayUrl(config.gateway_url.clone()))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => {
                return Err(ClientBuildError::InsecureGatewayUrl(
                    config.gateway_url.clone(),
                ));
            }
            _ => return Err(ClientBuildError::GatewayUrl(config.gateway_url.clone())),
        }
        if config.app_id.is_empty() {
            return Err(ClientBuildError::EmptyAppId);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // A redirect would resend the signed request (or the bill's token) elsewhere, and
            // Alipay never redirects: a 3xx is answered as the status it is.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(roots) = &config.root_certificates {
            if roots.is_empty() {
                return Err(ClientBuildError::Http(
                    "no root certificate to trust".into(),
                ));
            }
            let certificates = roots
                .iter()
                .map(reqwest::Certificate::from_der)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ClientBuildError::Http(describe(e)))?;
            // rustls's WebPKI verifier over these roots: what the platform verifier does on
            // Linux, without reading the store again.
            builder = builder.tls_certs_only(certificates);
        }
        let http = builder
            .build()
            .map_err(|e| ClientBuildError::Http(describe(e)))?;
        let query_separator = if url.query().is_some() { '&' } else { '?' };
        Ok(AlipayClient {
            http,
            config: Arc::new(config),
            query_separator,
            clock: Utc::now,
        })
    }

    /// Replaces the clock that stamps requests (tests, replays).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// `alipay.trade.precreate`: a QR code for the buyer to scan.
    pub async fn precreate(&self, request: &PrecreateRequest) -> Outcome<PrecreateResponse> {
        self.execute(request).await
    }

    /// `alipay.trade.pay`: charge a scanned payment code; may be `WaitingForBuyer`.
    pub async fn pay(&self, request: &PayRequest) -> Outcome<PayResponse> {
        self.execute(request).await
    }

    pub async fn query(&self, request: &QueryRequest) -> Outcome<QueryResponse> {
        self.execute(request).await
    }

    pub async fn close(&self, request: &CloseRequest) -> Outcome<CloseResponse> {
        self.execute(request).await
    }

    pub async fn cancel(&self, request: &CancelRequest) -> Outcome<CancelResponse> {
        self.execute(request).await
    }

    pub async fn refund(&self, request: &RefundRequest) -> Outcome<RefundResponse> {
        self.execute(request).await
    }

    pub async fn refund_query(&self, request: &RefundQueryRequest) -> Outcome<RefundQueryResponse> {
        self.execute(request).await
    }

    pub async fn bill_download_url(
        &self,
        request: &BillDownloadUrlRequest,
    ) -> Outcome<BillDownloadUrlResponse> {
        self.execute(request).await
    }

    /// Calls any gateway method described by an [`ApiRequest`].
    pub async fn execute<R: ApiRequest>(&self, request: &R) -> Outcome<R::Response> {
        let started = Instant::now();
        let outcome = self.call(request).await;
        log_outcome(R::METHOD, request, &outcome, started.elapsed());
        outcome
    }

    async fn call<R: ApiRequest>(&self, request: &R) -> Outcome<R::Response> {
        let biz_content = match serde_json::to_string(request) {
            Ok(text) => text,
            Err(e) => {
                return Outcome::Rejected(Rejection::Local(format!(
                    "biz_content could not be serialised: {e}"
                )));
            }
        };
        let timestamp = crate::time::format_beijing((self.clock)());
        let config = &*self.config;
        let params = SystemParams {
            app_id: &config.app_id,
            method: R::METHOD,
            timestamp: &timestamp,
            notify_url: config.notify_url.as_deref().filter(|_| R::SENDS_NOTIFY_URL),
            app_cert_sn: config.app_cert_sn.as_deref(),
            alipay_root_cert_sn: config.alipay_root_cert_sn.as_deref(),
        };
        let signed = match request::sign_request(&params, &biz_content, &config.app_private_key) {
            Ok(signed) => signed,
            Err(e) => return Outcome::Rejected(Rejection::Local(e.to_string())),
        };
        let url = format!(
            "{}{}{}",
            config.gateway_url, self.query_separator, signed.query
        );
        let body = match self.post(url, signed.body).await {
            Ok(body) => body,
            Err(cause) => return Outcome::Unknown(cause),
        };
        outcome::classify(&body, R::METHOD, &config.verifier, R::WAITING)
    }

    /// Sends the signed form and returns the body as UTF-8 text, or why it is unknown what
    /// the gateway did.
    async fn post(&self, url: String, form: String) -> Result<String, UnknownCause> {
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, FORM_CONTENT_TYPE)
            .body(form)
            .send()
            .await
            .map_err(transport_cause)?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(UnknownCause::HttpStatus(status.as_u16()));
        }
        let limit = u64::try_from(self.config.max_response_bytes).unwrap_or(u64::MAX);
        let bytes = read_capped(response, limit).await.map_err(|e| match e {
            BodyError::TooLarge => {
                UnknownCause::Unverifiable(format!("the response body exceeds {limit} bytes"))
            }
            BodyError::Http(e) => transport_cause(e),
        })?;
        // Verification needs the exact bytes: a lossy decode would verify something else.
        String::from_utf8(bytes)
            .map_err(|_| UnknownCause::Unverifiable("the response body is not UTF-8".into()))
    }

    /// Fetches a bill ZIP from a URL returned by [`Self::bill_download_url`], with the
    /// configured size and time limits.
    pub async fn download_bill(&self, url: &str) -> Result<Vec<u8>, BillDownloadError> {
        let started = Instant::now();
        let result = self.fetch_bill(url).await;
        // The URL carries an access token; log only its host.
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let elapsed_ms = elapsed_ms(started.elapsed());
        match &result {
            Ok(bytes) => tracing::info!(host, bytes = bytes.len(), elapsed_ms, "bill downloaded"),
            Err(error) => tracing::warn!(host, %error, elapsed_ms, "bill download failed"),
        }
        result
    }

    async fn fetch_bill(&self, url: &str) -> Result<Vec<u8>, BillDownloadError> {
        let url = reqwest::Url::parse(url).map_err(|_| BillDownloadError::InvalidUrl)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(BillDownloadError::InvalidUrl);
        }
        let response = self
            .http
            .get(url)
            .timeout(self.config.bill_download_timeout)
            .send()
            .await
            .map_err(bill_error)?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(BillDownloadError::HttpStatus(status.as_u16()));
        }
        let limit = self.config.max_bill_bytes;
        read_capped(response, limit).await.map_err(|e| match e {
            BodyError::TooLarge => BillDownloadError::TooLarge { limit },
            BodyError::Http(e) => bill_error(e),
        })
    }
}

/// `127.0.0.0/8`, `::1` or `localhost`: the only hosts a gateway may be reached over plain
/// http (a local sandbox or fake).
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    // The parsed URL writes IPv6 hosts in brackets and IPv4 ones in dotted decimal.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

enum BodyError {
    TooLarge,
    Http(reqwest::Error),
}

/// Reads a body chunk by chunk, refusing it as soon as it passes `limit` bytes, so that a
/// hostile or broken server cannot make us allocate without bound.
async fn read_capped(mut response: reqwest::Response, limit: u64) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|len| len > limit) {
        return Err(BodyError::TooLarge);
    }
    let initial = response
        .content_length()
        .and_then(|len| usize::try_from(len).ok())
        .unwrap_or(0);
    let mut body = Vec::with_capacity(initial);
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Http)? {
        let total = u64::try_from(body.len().saturating_add(chunk.len())).unwrap_or(u64::MAX);
        if total > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn transport_cause(error: reqwest::Error) -> UnknownCause {
    if error.is_timeout() {
        UnknownCause::Timeout
    } else {
        UnknownCause::Connection(describe(error))
    }
}

fn bill_error(error: reqwest::Error) -> BillDownloadError {
    if error.is_timeout() {
        BillDownloadError::Timeout
    } else {
        BillDownloadError::Connection(describe(error))
    }
}

/// The error and its causes, without the URL: the gateway URL carries the request's `sign`,
/// a bill URL its access token.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn elapsed_ms(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

/// The variant name of an outcome, for logs and metrics.
pub fn outcome_kind<T>(outcome: &Outcome<T>) -> &'static str {
    match outcome {
        Outcome::Success(_) => "success",
        Outcome::WaitingForBuyer(_) => "waiting_for_buyer",
        Outcome::Unknown(_) => "unknown",
        Outcome::Failed(_) => "failed",
        Outcome::Rejected(_) => "rejected",
    }
}

fn codes(failure: &Failure) -> (&str, &str) {
    (&failure.code, failure.sub_code.as_deref().unwrap_or(""))
}

/// One line per call. Refusals are logged by `code` and `sub_code` only: `msg` and `sub_msg`
/// are Alipay's free text, and `sub_msg` can quote the signed request (see [`Failure`]).
fn log_outcome<R: ApiRequest, T>(
    method: &'static str,
    request: &R,
    outcome: &Outcome<T>,
    elapsed: Duration,
) {
    let out_trade_no = request.out_trade_no().unwrap_or("");
    let trade_no = request.trade_no().unwrap_or("");
    let outcome_kind = outcome_kind(outcome);
    let elapsed_ms = elapsed_ms(elapsed);
    match outcome {
        Outcome::Success(_) | Outcome::WaitingForBuyer(_) => {
            tracing::info!(
                method,
                out_trade_no,
                trade_no,
                outcome = outcome_kind,
                elapsed_ms,
                "alipay call"
            );
        }
        Outcome::Failed(failure) => {
            let (code, sub_code) = codes(failure);
            tracing::info!(
                method,
                out_trade_no,
                trade_no,
                outcome = outcome_kind,
                elapsed_ms,
                code,
                sub_code,
                "alipay call"
            );
        }
        Outcome::Unknown(UnknownCause::SystemError(failure)) => {
            let (code, sub_code) = codes(failure);
            tracing::warn!(
                method,
                out_trade_no,
                trade_no,
                outcome = outcome_kind,
                elapsed_ms,
                cause = "system_error",
                code,
                sub_code,
                "alipay call"
            );
        }
        // The other causes carry our own descriptions, never Alipay's text.
        Outcome::Unknown(cause) => {
            tracing::warn!(method, out_trade_no, trade_no, outcome = outcome_kind, elapsed_ms, cause = ?cause, "alipay call");
        }
        Outcome::Rejected(Rejection::Gateway { failure, signed }) => {
            let (code, sub_code) = codes(failure);
            tracing::warn!(
                method,
                out_trade_no,
                trade_no,
                outcome = outcome_kind,
                elapsed_ms,
                code,
                sub_code,
                signed,
                "alipay call"
            );
        }
        Outcome::Rejected(Rejection::Local(reason)) => {
            tracing::warn!(
                method,
                out_trade_no,
                trade_no,
                outcome = outcome_kind,
                elapsed_ms,
                reason,
                "alipay call"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(gateway: &str) -> ClientConfig {
        let (key, _) = PrivateKey::generate().unwrap();
        let verifier = AlipayVerifier::PublicKey(key.public_key().unwrap());
        ClientConfig::new(gateway, "2021000000000000", key, verifier)
    }

    fn ca_der() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["gateway.test".to_owned()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn builds_with_shared_root_certificates() {
        let roots = RootCertificates::new(vec![ca_der()]);
        assert_eq!(format!("{roots:?}"), "RootCertificates(1)");
        let client =
            AlipayClient::new(config(PRODUCTION_GATEWAY).with_root_certificates(roots.clone()))
                .unwrap();
        assert_eq!(client.config().root_certificates, Some(roots));
    }

    #[test]
    fn refuses_an_empty_or_unusable_set_of_roots() {
        for roots in [
            RootCertificates::new(Vec::new()),
            RootCertificates::new(vec![b"not a certificate".to_vec()]),
        ] {
            let built = AlipayClient::new(config(PRODUCTION_GATEWAY).with_root_certificates(roots));
            assert!(matches!(built, Err(ClientBuildError::Http(_))), "{built:?}");
        }
    }

    #[test]
    fn shared_roots_do_not_allow_plain_http_to_a_remote_host() {
        let roots = RootCertificates::new(vec![ca_der()]);
        let built = AlipayClient::new(
            config("http://openapi.alipay.com/gateway.do").with_root_certificates(roots),
        );
        assert!(matches!(
            built,
            Err(ClientBuildError::InsecureGatewayUrl(_))
        ));
    }
}
