//! Merchant authentication of a `lambda_http::Request` (headers, raw path, raw query and body
//! bytes) with [`domain::auth::authenticate`], against the keys of a [`KeyRing`].

use crate::error::ApiError;
use crate::http::{header, raw_path, raw_query};
use crate::key_ring::KeyRing;
use chrono::{DateTime, Utc};
use domain::auth::{
    AuthHeaders, HEADER_KEY_ID, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, RequestToSign,
};
use domain::ports::NonceStore;
use lambda_http::Request;

/// Checks the request's signature and nonce; returns the key id it was signed with. `now` is
/// the handler's clock: it dates the request and tells the key ring whether its keys are due
/// to be read again.
pub async fn authenticate<N: NonceStore>(
    keys: &KeyRing,
    nonces: &N,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let to_sign = RequestToSign {
        method: request.method().as_str(),
        path: raw_path(request),
        raw_query: raw_query(request),
        body: request.body().as_ref(),
    };
    let headers = AuthHeaders {
        key_id: header(request, HEADER_KEY_ID),
        timestamp: header(request, HEADER_TIMESTAMP),
        nonce: header(request, HEADER_NONCE),
        signature: header(request, HEADER_SIGNATURE),
    };
    let keys = keys.current(now).await;
    match domain::auth::authenticate(&keys, nonces, &to_sign, &headers, now).await {
        Ok(key_id) => Ok(key_id),
        Err(error) => {
            match &error {
                domain::auth::AuthError::Store(store) => {
                    tracing::error!(error = %store, "nonce store unavailable");
                }
                other => tracing::info!(code = other.code(), "request refused"),
            }
            Err(ApiError::from(error))
        }
    }
}
