//! Merchant-API authentication: every request to `/v1/*` is signed with a shared secret.
//!
//! Headers: `X-Key-Id`, `X-Timestamp` (Unix seconds), `X-Nonce` (16–64 of `[A-Za-z0-9_-]`),
//! `X-Signature` = Base64(HMAC-SHA256(secret, string_to_sign)) where
//!
//! ```text
//! string_to_sign = METHOD "\n" PATH "\n" CANONICAL_QUERY "\n" TIMESTAMP "\n" NONCE "\n" HEX_SHA256(BODY)
//! ```
//!
//! `METHOD` is upper case, `PATH` is the request path as sent (e.g. `/v1/payments/T1`),
//! `CANONICAL_QUERY` is the query parameters decoded, sorted by name (then value), each name
//! and value percent-encoded per RFC 3986 (everything but `A-Z a-z 0-9 - . _ ~`), joined as
//! `name=value` with `&` (empty when there is no query), and `HEX_SHA256(BODY)` is the
//! lowercase hex SHA-256 of the raw body bytes (of the empty string when there is none).
//! A query whose percent-escapes do not decode to UTF-8 has no canonical form: it is refused
//! rather than decoded lossily (which would give `a=%FF` and `a=%FE` one signature).
//!
//! A request is refused when its timestamp is more than 300 s from the server clock, when
//! its nonce was already used in the last 10 minutes (with any key: the signature does not
//! cover the key id, so two ids sharing a secret must not let a request be replayed under
//! the other), or when the key is unknown or the signature wrong. Several keys may be active
//! at once, so secrets can be rotated without downtime.

use crate::ports::{NonceCheck, NonceStore, StoreError};
use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::fmt;

pub const HEADER_KEY_ID: &str = "x-key-id";
pub const HEADER_TIMESTAMP: &str = "x-timestamp";
pub const HEADER_NONCE: &str = "x-nonce";
pub const HEADER_SIGNATURE: &str = "x-signature";

/// How far a request's timestamp may be from the server clock.
pub const MAX_SKEW_SECONDS: i64 = 300;
/// How long a nonce is remembered; longer than twice the skew, so a replay inside the
/// accepted timestamp window is always caught.
pub const NONCE_MEMORY_SECONDS: i64 = 600;

/// RFC 3986 unreserved characters stay; everything else is percent-encoded.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The active merchant API keys: key id → secret.
#[derive(Clone, Default)]
pub struct MerchantKeys {
    keys: BTreeMap<String, SecretString>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("merchant keys must be a JSON object of key id → secret: {0}")]
    NotJson(String),
    #[error("merchant keys must contain at least one key")]
    Empty,
    #[error("merchant key {0:?} has a secret shorter than 32 characters")]
    WeakSecret(String),
}

impl MerchantKeys {
    /// Parses `{"key-id": "secret", ...}` (the format stored in Secrets Manager).
    pub fn from_json(text: &str) -> Result<Self, KeysError> {
        // Only the error's position is reported: serde_json messages may quote the input.
        let map: BTreeMap<String, String> = serde_json::from_str(text).map_err(|e| {
            KeysError::NotJson(format!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        if map.is_empty() {
            return Err(KeysError::Empty);
        }
        let mut keys = BTreeMap::new();
        for (id, secret) in map {
            if secret.len() < 32 {
                return Err(KeysError::WeakSecret(id));
            }
            keys.insert(id, SecretString::from(secret));
        }
        Ok(MerchantKeys { keys })
    }

    pub fn insert(&mut self, key_id: impl Into<String>, secret: SecretString) {
        self.keys.insert(key_id.into(), secret);
    }

    fn secret(&self, key_id: &str) -> Option<&SecretString> {
        self.keys.get(key_id)
    }
}

impl fmt::Debug for MerchantKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MerchantKeys")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Why a request was refused. Each has a stable `code` for the JSON error body.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    #[error("X-Timestamp must be Unix seconds")]
    MalformedTimestamp,
    #[error("X-Timestamp is more than {MAX_SKEW_SECONDS} s away from the server clock")]
    TimestampSkew,
    #[error("X-Nonce must be 16-64 characters of A-Z, a-z, 0-9, '_' and '-'")]
    MalformedNonce,
    #[error("X-Key-Id names no active key")]
    UnknownKey,
    #[error("X-Signature does not match the request")]
    BadSignature,
    #[error("X-Nonce was already used")]
    ReplayedNonce,
    #[error(transparent)]
    InvalidQuery(#[from] InvalidQuery),
    #[error("the nonce store is unavailable: {0}")]
    Store(#[from] StoreError),
}

/// The query string's percent-escapes do not decode to UTF-8 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the query string's percent-escapes do not decode to UTF-8 text")]
pub struct InvalidQuery;

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingHeader(_) => "auth_missing_header",
            AuthError::MalformedTimestamp => "auth_malformed_timestamp",
            AuthError::TimestampSkew => "auth_timestamp_skew",
            AuthError::MalformedNonce => "auth_malformed_nonce",
            AuthError::UnknownKey => "auth_unknown_key",
            AuthError::BadSignature => "auth_bad_signature",
            AuthError::ReplayedNonce => "auth_replayed_nonce",
            // A malformed request rather than a failed authentication, like `invalid_json`.
            AuthError::InvalidQuery(_) => "invalid_query",
            AuthError::Store(_) => "auth_unavailable",
        }
    }

    /// The header at fault, for the error body's `field`.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            AuthError::MissingHeader(h) => Some(h),
            AuthError::MalformedTimestamp | AuthError::TimestampSkew => Some("X-Timestamp"),
            AuthError::MalformedNonce | AuthError::ReplayedNonce => Some("X-Nonce"),
            AuthError::UnknownKey => Some("X-Key-Id"),
            AuthError::BadSignature => Some("X-Signature"),
            AuthError::InvalidQuery(_) | AuthError::Store(_) => None,
        }
    }
}

/// The parts of an HTTP request that are signed.
#[derive(Debug, Clone, Copy)]
pub struct RequestToSign<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The raw query string, without `?` (may be empty).
    pub raw_query: &'a str,
    pub body: &'a [u8],
}

/// The four authentication headers' values.
#[derive(Debug, Clone, Copy)]
pub struct AuthHeaders<'a> {
    pub key_id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// `CANONICAL_QUERY` of a raw query string (see the module documentation).
pub fn canonical_query(raw_query: &str) -> Result<String, InvalidQuery> {
    let decode = |s: &str| {
        let spaced = s.replace('+', " ");
        percent_decode_str(&spaced)
            .decode_utf8()
            .map(|text| text.into_owned())
            .map_err(|_| InvalidQuery)
    };
    let mut pairs = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => Ok((decode(k)?, decode(v)?)),
            None => Ok((decode(p)?, String::new())),
        })
        .collect::<Result<Vec<(String, String)>, InvalidQuery>>()?;
    pairs.sort();
    Ok(pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, RFC3986),
                utf8_percent_encode(v, RFC3986)
            )
        })
        .collect::<Vec<_>>()
        .join("&"))
}

/// The text a client signs and the server verifies; a query without a canonical form has none.
pub fn string_to_sign(
    request: &RequestToSign<'_>,
    timestamp: &str,
    nonce: &str,
) -> Result<String, InvalidQuery> {
    let body_hash = digest::digest(&digest::SHA256, request.body);
    let hex: String = body_hash
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method.to_ascii_uppercase(),
        request.path,
        canonical_query(request.raw_query)?,
        timestamp,
        nonce,
        hex
    ))
}

/// The `X-Signature` value a client sends.
pub fn sign(secret: &SecretString, string_to_sign: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes());
    STANDARD.encode(hmac::sign(&key, string_to_sign.as_bytes()).as_ref())
}

fn valid_nonce(nonce: &str) -> bool {
    (16..=64).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a request; on success returns the key id it was signed with. The nonce is only
/// recorded after the signature checks out, so forged requests cannot burn nonces; it is
/// recorded alone, not with the key id, so it can be used once whatever the key.
pub async fn authenticate<N: NonceStore>(
    keys: &MerchantKeys,
    nonces: &N,
    request: &RequestToSign<'_>,
    headers: &AuthHeaders<'_>,
    now: DateTime<Utc>,
) -> Result<String, AuthError> {
    let key_id = headers.key_id.ok_or(AuthError::MissingHeader("X-Key-Id"))?;
    let timestamp = headers
        .timestamp
        .ok_or(AuthError::MissingHeader("X-Timestamp"))?;
    let nonce = headers.nonce.ok_or(AuthError::MissingHeader("X-Nonce"))?;
    let signature = headers
        .signature
        .ok_or(AuthError::MissingHeader("X-Signature"))?;
    let seconds: i64 = timestamp
        .parse()
        .ok()
        .filter(|_| timestamp.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(AuthError::MalformedTimestamp)?;
    if (now.timestamp() - seconds).abs() > MAX_SKEW_SECONDS {
        return Err(AuthError::TimestampSkew);
    }
    if !valid_nonce(nonce) {
        return Err(AuthError::MalformedNonce);
    }
    let secret = keys.secret(key_id).ok_or(AuthError::UnknownKey)?;
    let presented = STANDARD
        .decode(signature)
        .map_err(|_| AuthError::BadSignature)?;
    let signed = string_to_sign(request, timestamp, nonce)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes());
    hmac::verify(&key, signed.as_bytes(), &presented).map_err(|_| AuthError::BadSignature)?;
    let forget_after = now + Duration::seconds(NONCE_MEMORY_SECONDS);
    match nonces.remember(nonce, forget_after).await? {
        NonceCheck::Fresh => Ok(key_id.to_owned()),
        NonceCheck::Replayed => Err(AuthError::ReplayedNonce),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct MemoryNonces(Mutex<Vec<String>>);

    impl NonceStore for MemoryNonces {
        async fn remember(
            &self,
            nonce: &str,
            _forget_after: DateTime<Utc>,
        ) -> Result<NonceCheck, StoreError> {
            let mut seen = self.0.lock().unwrap();
            if seen.iter().any(|n| n == nonce) {
                Ok(NonceCheck::Replayed)
            } else {
                seen.push(nonce.to_owned());
                Ok(NonceCheck::Fresh)
            }
        }
    }

    const SECRET_A: &str = "a-very-long-secret-for-key-a-0123456789";
    const SECRET_B: &str = "another-long-secret-for-key-b-987654321";

    fn keys() -> MerchantKeys {
        MerchantKeys::from_json(&format!(r#"{{"a":"{SECRET_A}","b":"{SECRET_B}"}}"#)).unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    const REQUEST: RequestToSign<'static> = RequestToSign {
        method: "POST",
        path: "/v1/payments",
        raw_query: "",
        body: br#"{"amount_fen":1}"#,
    };

    fn signed_with(key_id: &'static str, secret: &str, ts: &str, nonce: &str) -> (String, String) {
        let signature = sign(
            &SecretString::from(secret.to_owned()),
            &string_to_sign(&REQUEST, ts, nonce).unwrap(),
        );
        (key_id.to_owned(), signature)
    }

    async fn check(
        key_id: &str,
        ts: &str,
        nonce: &str,
        sig: &str,
        nonces: &MemoryNonces,
    ) -> Result<String, AuthError> {
        let headers = AuthHeaders {
            key_id: Some(key_id),
            timestamp: Some(ts),
            nonce: Some(nonce),
            signature: Some(sig),
        };
        authenticate(&keys(), nonces, &REQUEST, &headers, now()).await
    }

    #[test]
    fn the_string_to_sign_is_exactly_specified() {
        let request = RequestToSign {
            method: "get",
            path: "/v1/payments/T1",
            raw_query: "b=2&a=x%20y&a=1&c=%E6%B5%8B&d=~._-!",
            body: b"",
        };
        assert_eq!(
            string_to_sign(&request, "1700000000", "nonce-0123456789ab").unwrap(),
            "GET\n/v1/payments/T1\na=1&a=x%20y&b=2&c=%E6%B5%8B&d=~._-%21\n1700000000\nnonce-0123456789ab\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_query_that_does_not_decode_to_utf8_has_no_canonical_form() {
        for raw in ["a=%FF", "%FF=1", "a=1&b=%C3", "a=%E6%B5", "x=%ED%A0%80"] {
            assert_eq!(canonical_query(raw), Err(InvalidQuery), "{raw}");
        }
        // Well-formed escapes, `+` and stray `%` that escape nothing still canonicalise.
        assert_eq!(
            canonical_query("b=%C3%BF&a=x+y&c=100%").unwrap(),
            "a=x%20y&b=%C3%BF&c=100%25"
        );
    }

    #[tokio::test]
    async fn a_signed_request_with_an_invalid_query_is_refused_as_malformed() {
        let nonces = MemoryNonces::default();
        let nonce = "nonce-0123456789ab";
        let request = RequestToSign {
            raw_query: "x=%FF",
            ..REQUEST
        };
        // Signed over the lossy decoding of `%FF` (U+FFFD), which would have matched.
        let lossy = RequestToSign {
            raw_query: "x=%EF%BF%BD",
            ..REQUEST
        };
        let signature = sign(
            &SecretString::from(SECRET_A.to_owned()),
            &string_to_sign(&lossy, "1700000000", nonce).unwrap(),
        );
        let headers = AuthHeaders {
            key_id: Some("a"),
            timestamp: Some("1700000000"),
            nonce: Some(nonce),
            signature: Some(&signature),
        };
        let error = authenticate(&keys(), &nonces, &request, &headers, now())
            .await
            .unwrap_err();
        assert_eq!(error.code(), "invalid_query");
        assert!(nonces.0.lock().unwrap().is_empty(), "no nonce burnt");
    }

    #[tokio::test]
    async fn accepts_a_correctly_signed_request_with_either_active_key() {
        let nonces = MemoryNonces::default();
        for (id, secret, nonce) in [
            ("a", SECRET_A, "nonce-aaaaaaaaaaaa"),
            ("b", SECRET_B, "nonce-bbbbbbbbbbbb"),
        ] {
            let (id, sig) = signed_with(id, secret, "1700000100", nonce);
            assert_eq!(
                check(&id, "1700000100", nonce, &sig, &nonces)
                    .await
                    .unwrap(),
                id
            );
        }
    }

    #[tokio::test]
    async fn refuses_each_fault_with_its_own_code() {
        let nonces = MemoryNonces::default();
        let nonce = "nonce-0123456789ab";
        let (_, good) = signed_with("a", SECRET_A, "1700000000", nonce);
        let code = |r: Result<String, AuthError>| r.unwrap_err().code();
        assert_eq!(
            code(check("a", "1700000301", nonce, &good, &nonces).await),
            "auth_timestamp_skew"
        );
        assert_eq!(
            code(check("a", "1699999699", nonce, &good, &nonces).await),
            "auth_timestamp_skew"
        );
        assert_eq!(
            code(check("a", "17e8", nonce, &good, &nonces).await),
            "auth_malformed_timestamp"
        );
        assert_eq!(
            code(check("a", "1700000000", "short", &good, &nonces).await),
            "auth_malformed_nonce"
        );
        assert_eq!(
            code(check("a", "1700000000", "bad nonce with spaces", &good, &nonces).await),
            "auth_malformed_nonce"
        );
        assert_eq!(
            code(check("zzz", "1700000000", nonce, &good, &nonces).await),
            "auth_unknown_key"
        );
        let (_, wrong_key_sig) = signed_with("b", SECRET_B, "1700000000", nonce);
        assert_eq!(
            code(check("a", "1700000000", nonce, &wrong_key_sig, &nonces).await),
            "auth_bad_signature"
        );
        assert_eq!(
            code(check("a", "1700000000", nonce, "not base64!", &nonces).await),
            "auth_bad_signature"
        );
        // None of the refusals above consumed the nonce.
        assert!(
            check("a", "1700000000", nonce, &good, &nonces)
                .await
                .is_ok()
        );
        assert_eq!(
            code(check("a", "1700000000", nonce, &good, &nonces).await),
            "auth_replayed_nonce"
        );
    }

    #[tokio::test]
    async fn a_nonce_is_used_once_whatever_the_key_id() {
        // The signature does not cover the key id: when two ids share a secret, a request
        // replayed under the other id must still meet its used nonce.
        let keys =
            MerchantKeys::from_json(&format!(r#"{{"a":"{SECRET_A}","a-copy":"{SECRET_A}"}}"#))
                .unwrap();
        let nonces = MemoryNonces::default();
        let nonce = "nonce-shared-by-two-ids";
        let (_, signature) = signed_with("a", SECRET_A, "1700000000", nonce);
        let headers = |key_id: &'static str| AuthHeaders {
            key_id: Some(key_id),
            timestamp: Some("1700000000"),
            nonce: Some(nonce),
            signature: Some(signature.as_str()),
        };
        let first = authenticate(&keys, &nonces, &REQUEST, &headers("a"), now()).await;
        assert_eq!(first.unwrap(), "a");
        let replay = authenticate(&keys, &nonces, &REQUEST, &headers("a-copy"), now()).await;
        assert_eq!(replay.unwrap_err().code(), "auth_replayed_nonce");
    }

    #[tokio::test]
    async fn a_missing_header_is_named() {
        let headers = AuthHeaders {
            key_id: Some("a"),
            timestamp: None,
            nonce: None,
            signature: None,
        };
        let error = authenticate(&keys(), &MemoryNonces::default(), &REQUEST, &headers, now())
            .await
            .unwrap_err();
        assert_eq!(error.code(), "auth_missing_header");
        assert_eq!(error.field(), Some("X-Timestamp"));
    }

    #[test]
    fn keys_are_validated_and_never_shown() {
        assert!(matches!(
            MerchantKeys::from_json("{}"),
            Err(KeysError::Empty)
        ));
        assert!(matches!(
            MerchantKeys::from_json(r#"{"a":"short"}"#),
            Err(KeysError::WeakSecret(_))
        ));
        let error =
            MerchantKeys::from_json(r#"{"a": 12345678901234567890123456789012345}"#).unwrap_err();
        assert!(!error.to_string().contains("1234567890"));
        let shown = format!("{:?}", keys());
        assert!(shown.contains("\"a\"") && !shown.contains(SECRET_A));
    }
}
