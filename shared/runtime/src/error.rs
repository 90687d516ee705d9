//! The JSON error body every function answers with: `{"code","message","field"?}`. Codes are
//! stable (merchants branch on them); messages are for people and may change. A message never
//! contains a secret, a payment credential or text copied from an upstream error.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

/// The stable error codes besides those of [`domain::auth::AuthError::code`].
pub mod codes {
    pub const INVALID_JSON: &str = "invalid_json";
    pub const INVALID_FIELD: &str = "invalid_field";
    pub const MISSING_FIELD: &str = "missing_field";
    pub const UNKNOWN_FIELD: &str = "unknown_field";
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    pub const NOT_FOUND: &str = "not_found";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const ORDER_NOT_FOUND: &str = "order_not_found";
    pub const REFUND_NOT_FOUND: &str = "refund_not_found";
    pub const ORDER_NOT_PAID: &str = "order_not_paid";
    pub const ORDER_CLOSED: &str = "order_closed";
    pub const ORDER_FAILED: &str = "order_failed";
    pub const ORDER_REFUNDED: &str = "order_refunded";
    pub const REFUND_IN_FLIGHT: &str = "refund_in_flight";
    pub const ORDER_REFUND_IN_FLIGHT: &str = "order_refund_in_flight";
    pub const REFUND_EXCEEDS_PAID: &str = "refund_exceeds_paid";
    pub const REQUEST_IN_FLIGHT: &str = "request_in_flight";
    pub const IDEMPOTENCY_MISMATCH: &str = "idempotency_mismatch";
    pub const ALIPAY_UNAVAILABLE: &str = "alipay_unavailable";
    pub const ALIPAY_REJECTED: &str = "alipay_rejected";
    pub const ALIPAY_REFUSED_REQUEST: &str = "alipay_refused_request";
    pub const ALIPAY_RATE_LIMITED: &str = "alipay_rate_limited";
    pub const STORE_UNAVAILABLE: &str = "store_unavailable";
    pub const SCHEDULER_UNAVAILABLE: &str = "scheduler_unavailable";
    pub const AUTH_UNAVAILABLE: &str = "auth_unavailable";
    pub const INTERNAL_ERROR: &str = "internal_error";
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Seconds for a `Retry-After` header (409, 503).
    pub retry_after: Option<u32>,
    /// Alipay's `sub_code` when Alipay refused the request.
    pub alipay_sub_code: Option<String>,
    /// `refund_exceeds_paid`: what can still be refunded.
    pub refundable_fen: Option<i64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alipay_sub_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refundable_fen: Option<i64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            alipay_sub_code: None,
            refundable_fen: None,
        }
    }

    pub fn with_refundable_fen(mut self, fen: i64) -> Self {
        self.refundable_fen = Some(fen);
        self
    }

    pub fn with_alipay_sub_code(mut self, sub_code: impl Into<String>) -> Self {
        self.alipay_sub_code = Some(sub_code.into());
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(u32::try_from(seconds.max(1)).unwrap_or(u32::MAX));
        self
    }

    /// `400` about one field of the body.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::INVALID_FIELD, message).with_field(field)
    }

    pub fn store_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::STORE_UNAVAILABLE,
            "the order store is unavailable; retry the same request",
        )
        .with_retry_after(1)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL_ERROR,
            "an internal error occurred; it has been logged",
        )
    }

    pub fn into_response(self) -> Response<Body> {
        let body = ErrorBody {
            code: self.code,
            message: &self.message,
            field: self.field.as_deref(),
            alipay_sub_code: self.alipay_sub_code.as_deref(),
            refundable_fen: self.refundable_fen,
        };
        let mut response = crate::http::json_response(self.status, &body);
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<domain::auth::AuthError> for ApiError {
    fn from(error: domain::auth::AuthError) -> Self {
        let status = match error {
            domain::auth::AuthError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            domain::auth::AuthError::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::UNAUTHORIZED,
        };
        let message = match &error {
            // The store's own text stays in the logs.
            domain::auth::AuthError::Store(_) => {
                "request authentication is unavailable; retry".to_owned()
            }
            other => other.to_string(),
        };
        let mut api = ApiError::new(status, error.code(), message);
        api.field = error.field().map(str::to_owned);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            api.retry_after = Some(1);
        }
        api
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_code_message_field_and_retry_after() {
        let response = ApiError::invalid_field("amount_fen", "must be an integer")
            .with_retry_after(0)
            .into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER).unwrap(),
            "1",
            "at least one second"
        );
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"code":"invalid_field","message":"must be an integer","field":"amount_fen"})
        );
        let no_field = ApiError::internal().into_response();
        let body: serde_json::Value = serde_json::from_slice(no_field.body()).unwrap();
        assert!(body.get("field").is_none());
    }

    #[test]
    fn every_code_is_documented_in_the_openapi_file() {
        let openapi = include_str!("../../../infra/api/openapi.yaml");
        let auth = [
            "auth_missing_header",
            "auth_malformed_timestamp",
            "auth_timestamp_skew",
            "auth_malformed_nonce",
            "auth_unknown_key",
            "auth_bad_signature",
            "auth_replayed_nonce",
            "invalid_query",
        ];
        for code in [
            codes::INVALID_JSON,
            codes::INVALID_FIELD,
            codes::MISSING_FIELD,
            codes::UNKNOWN_FIELD,
            codes::BODY_TOO_LARGE,
            codes::NOT_FOUND,
            codes::METHOD_NOT_ALLOWED,
            codes::ORDER_NOT_FOUND,
            codes::REQUEST_IN_FLIGHT,
            codes::IDEMPOTENCY_MISMATCH,
            codes::ALIPAY_UNAVAILABLE,
            codes::ALIPAY_REJECTED,
            codes::STORE_UNAVAILABLE,
            codes::SCHEDULER_UNAVAILABLE,
            codes::AUTH_UNAVAILABLE,
            codes::INTERNAL_ERROR,
        ]
        .into_iter()
        .chain(auth)
        {
            assert!(
                openapi.contains(&format!("- {code}\n")),
                "{code} is not in the Error enum"
            );
        }
    }

    #[test]
    fn auth_errors_keep_their_codes() {
        let error = ApiError::from(domain::auth::AuthError::ReplayedNonce);
        assert_eq!(error.status, StatusCode::UNAUTHORIZED);
        assert_eq!(error.code, "auth_replayed_nonce");
        assert_eq!(error.field.as_deref(), Some("X-Nonce"));
        let error = ApiError::from(domain::auth::AuthError::InvalidQuery(
            domain::auth::InvalidQuery,
        ));
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.code, "invalid_query");
        let error = ApiError::from(domain::auth::AuthError::Store(
            domain::ports::StoreError::Unavailable("dynamo said: table secret-x".into()),
        ));
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!error.message.contains("secret-x"));
    }
}
