//! The parts of a `lambda_http::Request` the functions read, and JSON answers.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

/// The path as the client sent it (API Gateway's `rawPath`), which is what the client signed.
pub fn raw_path(request: &Request) -> &str {
    let raw = request.raw_http_path();
    if raw.is_empty() {
        request.uri().path()
    } else {
        raw
    }
}

/// The path to route on: [`raw_path`] without the stage prefix (`/prod/v1/payments` on a
/// stage named `prod`; the `$default` stage has none). Signatures still cover [`raw_path`].
pub fn route_path(request: &Request) -> &str {
    let path = raw_path(request);
    if let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref()
        && let Some(stage) = context.stage.as_deref()
        && stage != "$default"
        && let Some(rest) = path.strip_prefix('/').and_then(|p| p.strip_prefix(stage))
        && rest.starts_with('/')
    {
        return rest;
    }
    path
}

/// The query string as sent, without `?` (API Gateway's `rawQueryString`).
pub fn raw_query(request: &Request) -> &str {
    request.uri().query().unwrap_or("")
}

/// API Gateway's request id (`requestContext.requestId`), else the Lambda request id.
pub fn request_id(request: &Request) -> String {
    if let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref()
        && let Some(id) = &context.request_id
    {
        return id.clone();
    }
    request
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default()
}

/// A header's value as text; absent when missing or not visible ASCII.
pub fn header<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A JSON answer. Serialising our own view types cannot fail; if it ever did, the answer is a
/// plain `500` rather than a panic.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    let (status, text) = match serde_json::to_string(body) {
        Ok(text) => (status, text),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"code":"internal_error","message":"the answer could not be serialised"}"#
                .to_owned(),
        ),
    };
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(stage: &str, raw_path: &str, query: &str) -> Request {
        let event = serde_json::json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": raw_path,
            "rawQueryString": query,
            "headers": {"x-key-id": "k", "host": "api.example.com"},
            "requestContext": {
                "http": {"method": "GET", "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "req-42",
                "stage": stage,
                "routeKey": "$default",
                "accountId": "1", "apiId": "a", "domainName": "api.example.com", "domainPrefix": "api",
                "time": "01/Jan/2024:00:00:00 +0000", "timeEpoch": 0
            },
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    #[test]
    fn reads_the_raw_path_query_and_request_id_of_a_payload_v2_event() {
        let request = event("$default", "/v1/payments/T1", "b=2&a=1");
        assert_eq!(raw_path(&request), "/v1/payments/T1");
        assert_eq!(route_path(&request), "/v1/payments/T1");
        assert_eq!(raw_query(&request), "b=2&a=1");
        assert_eq!(request_id(&request), "req-42");
        assert_eq!(header(&request, "X-Key-Id"), Some("k"));
    }

    #[test]
    fn routes_without_a_named_stage_but_signs_the_path_as_sent() {
        let request = event("prod", "/prod/v1/payments", "");
        assert_eq!(raw_path(&request), "/prod/v1/payments");
        assert_eq!(route_path(&request), "/v1/payments");
        let other = event("prod", "/production/v1/payments", "");
        assert_eq!(route_path(&other), "/production/v1/payments");
    }
}
