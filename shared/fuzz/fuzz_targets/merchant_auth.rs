//! Merchant-API authentication of a request as API Gateway delivers it (a payload v2 event,
//! converted by `lambda_http`), through `f2f_runtime::auth::authenticate`: the headers, the
//! timestamp window, the nonce, the key, the canonical query and the signature. The input
//! (see `alipay_f2f_fuzz::auth_input`) can ask for the right signature and the server's time,
//! so that mutated paths, queries, bodies and headers get past the signature check.
//!
//! Properties: the canonical query is a fixed point (canonicalising it again changes
//! nothing); a request signed with a known key's secret is never refused for its signature;
//! one that is accepted is refused when replayed.
#![no_main]

use alipay_f2f_fuzz::auth_input::{KEYS, NOW, NOW_SECONDS, SIGN};
use alipay_f2f_fuzz::block_on;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use domain::auth::{self, MerchantKeys, RequestToSign};
use domain::ports::{NonceCheck, NonceStore, StoreError};
use f2f_runtime::KeyRing;
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use std::sync::{LazyLock, Mutex, PoisonError};

/// The nonces of one input's requests.
#[derive(Default)]
struct Nonces(Mutex<Vec<String>>);

impl NonceStore for Nonces {
    async fn remember(
        &self,
        nonce: &str,
        _forget_after: DateTime<Utc>,
    ) -> Result<NonceCheck, StoreError> {
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.iter().any(|n| n == nonce) {
            return Ok(NonceCheck::Replayed);
        }
        seen.push(nonce.to_owned());
        Ok(NonceCheck::Fresh)
    }
}

static RING: LazyLock<KeyRing> = LazyLock::new(|| {
    let mut keys = MerchantKeys::default();
    for (id, secret) in KEYS {
        keys.insert(id, SecretString::from(secret));
    }
    KeyRing::fixed(keys)
});

static NOW_TIME: LazyLock<DateTime<Utc>> = LazyLock::new(|| {
    DateTime::from_timestamp(NOW_SECONDS, 0).unwrap_or_else(|| unreachable!("a valid time"))
});

/// The API Gateway HTTP API (payload v2) event of a request.
fn event(method: &str, path: &str, query: &str, headers: Map<String, Value>, body: &[u8]) -> Value {
    let (body, base64) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (STANDARD.encode(body), true),
    };
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "pos"
            },
            "requestId": "req-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "14/Nov/2023:22:13:20 +0000",
            "timeEpoch": NOW_SECONDS * 1000
        },
        "body": body,
        "isBase64Encoded": base64
    })
}

/// What API Gateway can deliver: a method (an empty one would be read as `GET`), a path from
/// `/` and a query of what HTTP can carry in a request line. The query may hold bytes a URI
/// may not (a raw `"`): the functions make them URI-safe before `lambda_http` builds the
/// request (`f2f_runtime::event`), as here, and the canonical query decodes them again. The
/// path is signed as sent, so only a URI-safe one can be signed right: a client percent-encodes
/// its path, and a raw `"` in it is refused as a bad signature (see README.md).
fn deliverable(method: &str, path: &str, query: &str) -> bool {
    let visible = |text: &str| text.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
    !method.is_empty()
        && path.starts_with('/')
        && visible(path)
        && f2f_runtime::event::uri_safe(path) == path
        && !path.contains('?')
        && visible(query)
}

/// The request a function's handler gets for the event, converted as `f2f_runtime::serve`
/// does; `None` for an event API Gateway could not send (a header value it would refuse).
fn request(event: &Value) -> Option<lambda_http::Request> {
    let payload: LambdaRequest = serde_json::from_value(event.clone()).ok()?;
    let event = f2f_runtime::event::uri_safe_event(LambdaEvent::new(payload, Context::default()));
    Some(lambda_http::Request::from(event.payload))
}

fuzz_target!(|input: &[u8]| {
    let Some((&flags, rest)) = input.split_first() else {
        return;
    };
    let mut parts = rest.splitn(8, |&b| b == b'\n');
    let mut text = || {
        parts
            .next()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    };
    let method = text().unwrap_or_default();
    let path = text().unwrap_or_default();
    let query = text().unwrap_or_default();
    let key_id = text();
    let mut timestamp = text();
    let nonce = text();
    let mut signature = text();
    let body = parts.next().unwrap_or_default();

    if let Ok(canonical) = auth::canonical_query(&query) {
        assert_eq!(auth::canonical_query(&canonical), Ok(canonical.clone()));
    }

    if flags & NOW != 0 {
        timestamp = Some(NOW_SECONDS.to_string());
    }
    let to_sign = RequestToSign {
        method: &method,
        path: &path,
        raw_query: &query,
        body,
    };
    let known = KEYS.iter().find(|(id, _)| Some(*id) == key_id.as_deref());
    let mut signed_right = false;
    if flags & SIGN != 0
        && let Ok(string) = auth::string_to_sign(
            &to_sign,
            timestamp.as_deref().unwrap_or_default(),
            nonce.as_deref().unwrap_or_default(),
        )
    {
        let (_, secret) = known.unwrap_or(&KEYS[0]);
        signature = Some(auth::sign(&SecretString::from(*secret), &string));
        signed_right = known.is_some();
    }

    let mut headers = Map::new();
    for (name, value) in [
        (auth::HEADER_KEY_ID, &key_id),
        (auth::HEADER_TIMESTAMP, &timestamp),
        (auth::HEADER_NONCE, &nonce),
        (auth::HEADER_SIGNATURE, &signature),
    ] {
        if let Some(value) = value {
            headers.insert(name.to_owned(), Value::String(value.clone()));
        }
    }
    if !deliverable(&method, &path, &query) {
        return;
    }
    let Some(request) = request(&event(&method, &path, &query, headers, body)) else {
        return;
    };
    let nonces = Nonces::default();
    let first = block_on(f2f_runtime::auth::authenticate(
        &RING, &nonces, &request, *NOW_TIME,
    ));
    if signed_right {
        assert!(
            !matches!(&first, Err(e) if e.code == "auth_bad_signature"),
            "a request signed with its key's secret was refused for its signature"
        );
    }
    if first.is_ok() {
        let replay = block_on(f2f_runtime::auth::authenticate(
            &RING, &nonces, &request, *NOW_TIME,
        ));
        assert!(
            replay.is_err_and(|e| e.code == "auth_replayed_nonce"),
            "an accepted request was accepted again"
        );
    }
});
