//! HTTP mapping of `POST /v1/payments` (API Gateway HTTP API, payload v2); the refunds route
//! (`POST /v1/payments/{out_trade_no}/refunds`) is answered as [`crate::refunds`] says.
//!
//! Order of checks: route → body size → merchant authentication → body validation → create.
//! Nothing is written before the request is authenticated and valid.
//!
//! | answer | when |
//! | --- | --- |
//! | `201` + order | this request created the order (or completed an abandoned attempt); the `status` says how it ended: PENDING (QR issued, or barcode left to the expiry job with `pending_reason`), PAID, CLOSED, FAILED (with `failure.code` = Alipay's `sub_code`) |
//! | `200` + order + `Idempotent-Replayed: true` | the same request was made before: the order as it is now |
//! | `400` | `invalid_json`, `unknown_field`, `missing_field`, `invalid_field` (with `field`), `invalid_query` (a query string whose escapes are not UTF-8) |
//! | `401` | `auth_*` (see `domain::auth`) |
//! | `404` / `405` | `not_found`, `method_not_allowed` |
//! | `409` + `Retry-After` | `request_in_flight`: another request holds the order's lease |
//! | `413` | `body_too_large` |
//! | `422` | `idempotency_mismatch`: the number is used by a different request; `alipay_refused_request` (with `alipay_sub_code`): Alipay refused the request's content |
//! | `502` | `alipay_rejected`: Alipay refused the call itself (our configuration) |
//! | `503` + `Retry-After` | `alipay_unavailable` (outcome unknown; retry the same request), `alipay_rate_limited`, `store_unavailable`, `scheduler_unavailable`, `auth_unavailable` |
//! | `500` | `internal_error`: a bug |

use crate::validation::{self, PaymentRequest};
use crate::{CreateError, Created, Payments};
use domain::OutTradeNo;
use domain::ports::{Clock, ExpiryScheduler, NonceStore, OrderStore, PaymentGateway};
use f2f_runtime::KeyRing;
use f2f_runtime::telemetry::{observe, record_out_trade_no};
use f2f_runtime::{ApiError, Function, OrderView, codes};
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};

pub const PATH: &str = "/v1/payments";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Alipay publishes no rate (its limits are per app and method): a short pause.
const RATE_LIMIT_RETRY_AFTER_SECONDS: u64 = 2;

/// The function's HTTP side: authentication and the create logic.
pub struct PayApi<S, Q, G, C, N> {
    pub payments: Payments<S, Q, G, C>,
    pub nonces: N,
    pub keys: KeyRing,
    pub max_body_bytes: usize,
}

impl<S, Q, G, C, N> PayApi<S, Q, G, C, N>
where
    S: OrderStore,
    Q: ExpiryScheduler,
    G: PaymentGateway,
    C: Clock,
    N: NonceStore,
{
    /// Answers one request; never fails and never panics on any input.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        observe(Function::Pay, &request, self.answer(&request)).await
    }

    async fn answer(&self, request: &Request) -> Result<Response<Body>, ApiError> {
        let path = f2f_runtime::http::route_path(request);
        let refunded = crate::refunds::route(path).map(str::to_owned);
        if path != PATH && refunded.is_none() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                codes::NOT_FOUND,
                "no such route",
            ));
        }
        if request.method() != Method::POST {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                codes::METHOD_NOT_ALLOWED,
                "use POST to create a payment or a refund",
            ));
        }
        let body = self.checked_body(request)?;
        let now = self.payments.clock.now();
        let key_id =
            f2f_runtime::auth::authenticate(&self.keys, &self.nonces, request, now).await?;
        if let Some(number) = refunded {
            return self.refund(&number, body, key_id).await;
        }
        let payment = validation::parse(body)?;
        record_out_trade_no(payment.out_trade_no.as_str());
        tracing::info!(key_id, scene = ?payment.scene, amount_fen = payment.amount.fen().get(), generated = payment.generated_out_trade_no, "create payment");
        let created = self
            .payments
            .create(&payment)
            .await
            .map_err(|e| create_error(e, &payment))?;
        Ok(created_response(&created))
    }

    /// `POST /v1/payments/{out_trade_no}/refunds`, authenticated.
    async fn refund(
        &self,
        number: &str,
        body: &[u8],
        key_id: String,
    ) -> Result<Response<Body>, ApiError> {
        // The raw path segment: a percent-encoded or otherwise odd number is simply invalid.
        let out_trade_no = OutTradeNo::parse(number)
            .map_err(|e| ApiError::invalid_field("out_trade_no", e.to_string()))?;
        record_out_trade_no(out_trade_no.as_str());
        let refund = crate::refunds::parse(&out_trade_no, body)?;
        tracing::info!(key_id, out_request_no = %refund.out_request_no, amount_fen = refund.amount_fen, "refund");
        let answer = self
            .payments
            .refund(&out_trade_no, &refund)
            .await
            .map_err(|e| crate::refunds::refund_error(e, &out_trade_no))?;
        crate::refunds::refund_response(&answer)
    }

    fn checked_body<'r>(&self, request: &'r Request) -> Result<&'r [u8], ApiError> {
        let body: &[u8] = request.body().as_ref();
        if body.len() > self.max_body_bytes {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::BODY_TOO_LARGE,
                format!("the body must be at most {} bytes", self.max_body_bytes),
            ));
        }
        Ok(body)
    }
}

/// `201` for a creation, `200` + `Idempotent-Replayed: true` for a replay.
pub fn created_response(created: &Created) -> Response<Body> {
    let mut view = OrderView::of(&created.order);
    if let Some(reason) = created.pending_reason {
        view = view.with_pending_reason(reason);
    }
    let status = if created.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = f2f_runtime::http::json_response(status, &view);
    let headers = response.headers_mut();
    if created.replayed {
        headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    if let Ok(location) = HeaderValue::from_str(&format!("{PATH}/{}", created.order.out_trade_no()))
    {
        headers.insert(header::LOCATION, location);
    }
    response
}

fn create_error(error: CreateError, request: &PaymentRequest) -> ApiError {
    match error {
        CreateError::Mismatch => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::IDEMPOTENCY_MISMATCH,
            format!(
                "out_trade_no {} was already used for a different request; use a new out_trade_no",
                request.out_trade_no
            ),
        )
        .with_field("out_trade_no"),
        CreateError::InFlight { retry_after } => ApiError::new(
            StatusCode::CONFLICT,
            codes::REQUEST_IN_FLIGHT,
            "another request with this out_trade_no is still talking to Alipay; retry the same request",
        )
        .with_retry_after(retry_after),
        CreateError::AlipayRefusedRequest { sub_code } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::ALIPAY_REFUSED_REQUEST,
            format!(
                "Alipay refused the request ({sub_code}); correct the request (e.g. the subject) and use a new out_trade_no"
            ),
        )
        .with_alipay_sub_code(sub_code),
        CreateError::AlipayRateLimited { sub_code } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::ALIPAY_RATE_LIMITED,
            "Alipay refused the call for its rate limit; nothing was done: retry the same request later",
        )
        .with_alipay_sub_code(sub_code)
        .with_retry_after(RATE_LIMIT_RETRY_AFTER_SECONDS),
        CreateError::Store(error) => {
            tracing::error!(%error, "order store failed");
            ApiError::store_unavailable()
        }
        CreateError::Scheduler(error) => {
            tracing::error!(%error, "expiry scheduler failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::SCHEDULER_UNAVAILABLE,
                "the payment could not be prepared (nothing was sent to Alipay); retry the same request",
            )
            .with_retry_after(1)
        }
        CreateError::AlipayUnavailable(detail) => {
            tracing::warn!(detail, "Alipay outcome unknown; the claim was released");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::ALIPAY_UNAVAILABLE,
                "Alipay's answer is unknown; retry the same request (same out_trade_no and body) to learn the outcome",
            )
            .with_retry_after(1)
        }
        CreateError::AlipayRejected(detail) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            codes::ALIPAY_REJECTED,
            format!("Alipay rejected the call ({detail}); the payment was not created"),
        ),
        CreateError::Internal(detail) => {
            tracing::error!(detail, "internal error");
            ApiError::internal()
        }
    }
}
