//! API Gateway hands over the path and query exactly as the client sent them
//! (`rawPath`, `rawQueryString`), which may hold bytes a URI may not (`"`, a space, `<`,
//! non-ASCII …; curl sends `?a="b"` as is). `lambda_http` builds an `http::Uri` from them
//! and panics on such bytes (it `expect`s the request to build), which would turn a caller's
//! odd request into a failed invocation (API Gateway's `500`). Before the conversion, those
//! bytes are percent-encoded: a percent-encoded byte decodes to the same byte, so the
//! parameters, the route and the signed canonical query (which decodes and re-encodes) mean
//! what the caller sent, and the handler answers as for any request.

use lambda_http::LambdaEvent;
use lambda_http::request::LambdaRequest;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use std::borrow::Cow;

/// What `http::Uri` refuses in a path or query, besides non-ASCII: controls and these.
/// `%` stays: an escape is left as the client wrote it.
const NOT_IN_URI: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// `text` with every byte a URI may not hold percent-encoded (unchanged if there is none).
pub fn uri_safe(text: &str) -> Cow<'_, str> {
    utf8_percent_encode(text, NOT_IN_URI).into()
}

/// The event with its raw path and query made URI-safe ([`uri_safe`]).
pub fn uri_safe_event(mut event: LambdaEvent<LambdaRequest>) -> LambdaEvent<LambdaRequest> {
    if let LambdaRequest::ApiGatewayV2(request) = &mut event.payload {
        for part in [&mut request.raw_path, &mut request.raw_query_string]
            .into_iter()
            .flatten()
        {
            // Compared, not matched on `Cow::Owned`: a text that is one escaped byte (`"`)
            // comes back borrowed, as the escape itself.
            let safe = uri_safe(part);
            if safe != part.as_str() {
                *part = safe.into_owned();
            }
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Context;
    use serde_json::json;

    fn event(raw_path: &str, raw_query: &str) -> LambdaEvent<LambdaRequest> {
        let payload = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": raw_path,
            "rawQueryString": raw_query, "headers": {"host": "api.example"},
            "requestContext": {
                "accountId": "1", "apiId": "a", "domainName": "api.example",
                "domainPrefix": "api", "requestId": "r", "routeKey": "$default",
                "stage": "$default", "time": "01/Jan/2024:00:00:00 +0000", "timeEpoch": 0,
                "http": {"method": "GET", "path": raw_path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "t"},
            },
            "isBase64Encoded": false,
        });
        let request = serde_json::from_value(payload).unwrap_or_else(|e| unreachable!("{e}"));
        LambdaEvent::new(request, Context::default())
    }

    fn converted(event: LambdaEvent<LambdaRequest>) -> lambda_http::Request {
        lambda_http::Request::from(uri_safe_event(event).payload)
    }

    #[test]
    fn bytes_a_uri_may_not_hold_are_encoded_before_the_request_is_built() {
        let request = converted(event("/v1/payments/T\"1", "a=\"b c\"&x=<y>&z=中"));
        assert_eq!(
            request.uri().query(),
            Some("a=%22b%20c%22&x=%3Cy%3E&z=%E4%B8%AD")
        );
        assert_eq!(request.uri().path(), "/v1/payments/T%221");
        assert_eq!(crate::http::raw_path(&request), "/v1/payments/T%221");
    }

    #[test]
    fn a_query_that_is_one_byte_a_uri_may_not_hold_is_encoded() {
        for (raw, safe) in [
            ("\"", "%22"),
            ("<", "%3C"),
            (" ", "%20"),
            ("中", "%E4%B8%AD"),
        ] {
            let request = converted(event("/v1/payments", raw));
            assert_eq!(request.uri().query(), Some(safe), "{raw:?}");
        }
    }

    #[test]
    fn a_uri_safe_request_is_left_as_sent() {
        let query = "b=%FF&a=1+2&c=%2F&d=~!$'()*,;:@/?";
        let request = converted(event("/v1/payments/T_1", query));
        assert_eq!(request.uri().query(), Some(query));
        assert_eq!(request.uri().path(), "/v1/payments/T_1");
    }

    #[test]
    fn the_canonical_query_of_what_was_sent_is_unchanged() {
        for raw in ["a=\"b c\"", "x=<y>&z=中&a=%22", "q=^{|}`\\[]"] {
            assert_eq!(
                domain::auth::canonical_query(&uri_safe(raw)).ok(),
                domain::auth::canonical_query(raw).ok(),
                "{raw}"
            );
        }
    }
}
