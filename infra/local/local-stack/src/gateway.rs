//! What API Gateway (HTTP API, Lambda proxy payload v2) does in front of the functions: match
//! the routes of `template.yaml`, turn the HTTP request into a payload v2 event (converted to a
//! `lambda_http::Request` by `lambda_http` itself, as in Lambda), and the function's response
//! back into HTTP.
//!
//! Like API Gateway: no route (including a known path with another method) is `404
//! {"message":"Not Found"}`; a console route without a valid staff token is `401
//! {"message":"Unauthorized"}` ([`crate::authorizer`]); a function slower than the 30 s
//! integration timeout is `503 {"message":"Service Unavailable"}`; every answer carries an
//! `apigw-requestid` header.

use crate::authorizer::VerifiedJwt;
use axum::body::Body as AxumBody;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use base64::Engine;
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value, json};

/// API Gateway's maximum integration timeout.
pub const INTEGRATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// API Gateway's largest request payload.
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// The routes of `template.yaml`, each served by one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/payments` → pay
    Pay,
    /// `GET /v1/payments/{out_trade_no}` → query
    Query { out_trade_no: String },
    /// `POST /alipay/notify` → notify
    Notify,
    /// `POST /v1/payments/{out_trade_no}/refunds` → pay
    Refund { out_trade_no: String },
    /// `GET /v1/payments/{out_trade_no}/refunds/{out_request_no}` → query
    RefundStatus {
        out_trade_no: String,
        out_request_no: String,
    },
    /// `GET /admin/orders` → admin
    AdminOrders,
    /// `GET /admin/orders/{out_trade_no}` → admin
    AdminOrder { out_trade_no: String },
    /// `GET /admin/anomalies` → admin
    AdminAnomalies,
    /// `POST /admin/anomalies/{id}/resolve` → admin
    ResolveAnomaly { id: String },
    /// `GET /admin/reports/{date}` → admin
    AdminReport { date: String },
}

/// The function that serves a route (the crate and binary of the same name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Pay,
    Query,
    Notify,
    Admin,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Function::Pay => "pay",
            Function::Query => "query",
            Function::Notify => "notify",
            Function::Admin => "admin",
        }
    }
}

impl Route {
    /// The function that serves this route, as `template.yaml` maps it.
    pub fn function(&self) -> Function {
        match self {
            Route::Pay | Route::Refund { .. } => Function::Pay,
            Route::Query { .. } | Route::RefundStatus { .. } => Function::Query,
            Route::Notify => Function::Notify,
            Route::AdminOrders
            | Route::AdminOrder { .. }
            | Route::AdminAnomalies
            | Route::ResolveAnomaly { .. }
            | Route::AdminReport { .. } => Function::Admin,
        }
    }

    /// Whether the route is behind the JWT authorizer (the console's routes are).
    pub fn needs_staff_token(&self) -> bool {
        self.function() == Function::Admin
    }

    /// API Gateway's `routeKey`.
    pub fn key(&self) -> &'static str {
        match self {
            Route::Pay => "POST /v1/payments",
            Route::Query { .. } => "GET /v1/payments/{out_trade_no}",
            Route::Notify => "POST /alipay/notify",
            Route::Refund { .. } => "POST /v1/payments/{out_trade_no}/refunds",
            Route::RefundStatus { .. } => {
                "GET /v1/payments/{out_trade_no}/refunds/{out_request_no}"
            }
            Route::AdminOrders => "GET /admin/orders",
            Route::AdminOrder { .. } => "GET /admin/orders/{out_trade_no}",
            Route::AdminAnomalies => "GET /admin/anomalies",
            Route::ResolveAnomaly { .. } => "POST /admin/anomalies/{id}/resolve",
            Route::AdminReport { .. } => "GET /admin/reports/{date}",
        }
    }

    fn path_parameters(&self) -> Option<Value> {
        match self {
            Route::Query { out_trade_no }
            | Route::Refund { out_trade_no }
            | Route::AdminOrder { out_trade_no } => Some(json!({ "out_trade_no": out_trade_no })),
            Route::RefundStatus {
                out_trade_no,
                out_request_no,
            } => Some(json!({ "out_trade_no": out_trade_no, "out_request_no": out_request_no })),
            Route::ResolveAnomaly { id } => Some(json!({ "id": id })),
            Route::AdminReport { date } => Some(json!({ "date": date })),
            Route::Pay | Route::Notify | Route::AdminOrders | Route::AdminAnomalies => None,
        }
    }
}

/// The route a request matches, if any. A path variable matches one non-empty segment.
pub fn route(method: &Method, path: &str) -> Option<Route> {
    let segment = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    match (method, path) {
        (&Method::POST, "/v1/payments") => Some(Route::Pay),
        (&Method::POST, "/alipay/notify") => Some(Route::Notify),
        (&Method::GET, "/admin/orders") => Some(Route::AdminOrders),
        (&Method::GET, "/admin/anomalies") => Some(Route::AdminAnomalies),
        _ => {
            if let Some(rest) = path.strip_prefix("/admin/") {
                let parts: Vec<&str> = rest.split('/').collect();
                return match (method, parts.as_slice()) {
                    (&Method::GET, ["orders", number]) => Some(Route::AdminOrder {
                        out_trade_no: segment(number)?,
                    }),
                    (&Method::POST, ["anomalies", id, "resolve"]) => {
                        Some(Route::ResolveAnomaly { id: segment(id)? })
                    }
                    (&Method::GET, ["reports", date]) => Some(Route::AdminReport {
                        date: segment(date)?,
                    }),
                    _ => None,
                };
            }
            let rest = path.strip_prefix("/v1/payments/")?;
            let parts: Vec<&str> = rest.split('/').collect();
            match (method, parts.as_slice()) {
                (&Method::GET, [number]) => Some(Route::Query {
                    out_trade_no: segment(number)?,
                }),
                (&Method::POST, [number, "refunds"]) => Some(Route::Refund {
                    out_trade_no: segment(number)?,
                }),
                (&Method::GET, [number, "refunds", refund]) => Some(Route::RefundStatus {
                    out_trade_no: segment(number)?,
                    out_request_no: segment(refund)?,
                }),
                _ => None,
            }
        }
    }
}

/// The parts of an HTTP request an event is made of.
pub struct HttpRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The payload v2 event API Gateway would send for `request` on `route`, with the verified
/// token of a route behind the JWT authorizer.
pub fn event(
    request: &HttpRequest<'_>,
    route: &Route,
    request_id: &str,
    authorizer: Option<&VerifiedJwt>,
) -> Value {
    // Header names lower-case, repeated headers joined with commas, cookies apart.
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in request.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == axum::http::header::COOKIE {
            cookies.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
            );
            continue;
        }
        match headers.get_mut(name.as_str()) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let now = chrono::Utc::now();
    let mut event = json!({
        "version": "2.0",
        "routeKey": route.key(),
        "rawPath": request.path,
        "rawQueryString": request.raw_query,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": header("host"),
            "domainPrefix": "local",
            "http": {
                "method": request.method.as_str(),
                "path": request.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": header("user-agent"),
            },
            "requestId": request_id,
            "routeKey": route.key(),
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": false,
    });
    if let Some(verified) = authorizer
        && let Some(context) = event["requestContext"].as_object_mut()
    {
        context.insert("authorizer".into(), verified.event_authorizer());
    }
    if let Some(object) = event.as_object_mut() {
        if !cookies.is_empty() {
            object.insert("cookies".into(), json!(cookies));
        }
        object.insert("headers".into(), Value::Object(headers));
        if !request.raw_query.is_empty() {
            object.insert(
                "queryStringParameters".into(),
                query_parameters(request.raw_query),
            );
        }
        if let Some(parameters) = route.path_parameters() {
            object.insert("pathParameters".into(), parameters);
        }
        if !request.body.is_empty() {
            match std::str::from_utf8(request.body) {
                Ok(text) => {
                    object.insert("body".into(), Value::String(text.to_owned()));
                }
                Err(_) => {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(request.body);
                    object.insert("body".into(), Value::String(encoded));
                    object.insert("isBase64Encoded".into(), Value::Bool(true));
                }
            }
        }
    }
    event
}

/// `queryStringParameters`: decoded, repeated names joined with commas.
fn query_parameters(raw_query: &str) -> Value {
    let mut parameters = Map::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |text: &str| {
            let text = text.replace('+', " ");
            percent_decode(&text)
        };
        let (name, value) = (decode(name), decode(value));
        match parameters.get_mut(&name) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                parameters.insert(name, Value::String(value));
            }
        }
    }
    Value::Object(parameters)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The event as the function receives it (`lambda_http`'s own conversion).
pub fn lambda_request(event: &Value) -> Result<Request, String> {
    lambda_http::request::from_str(&event.to_string()).map_err(|e| e.to_string())
}

/// API Gateway's own answers: `{"message": ...}`.
pub fn gateway_answer(status: StatusCode, message: &str) -> axum::response::Response {
    let mut response =
        axum::response::Response::new(AxumBody::from(json!({ "message": message }).to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The function's response as HTTP.
pub fn http_response(response: Response<Body>) -> axum::response::Response {
    let (parts, body) = response.into_parts();
    axum::response::Response::from_parts(parts, AxumBody::from(body.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_template_routes_only() {
        assert_eq!(route(&Method::POST, "/v1/payments"), Some(Route::Pay));
        assert_eq!(
            route(&Method::GET, "/v1/payments/T1"),
            Some(Route::Query {
                out_trade_no: "T1".into()
            })
        );
        assert_eq!(route(&Method::POST, "/alipay/notify"), Some(Route::Notify));
        assert_eq!(route(&Method::GET, "/v1/payments"), None);
        assert_eq!(route(&Method::GET, "/v1/payments/"), None);
        assert_eq!(route(&Method::GET, "/v1/payments/a/b"), None);
        assert_eq!(route(&Method::DELETE, "/v1/payments/T1"), None);
        assert_eq!(
            route(&Method::POST, "/v1/payments/T1/refunds"),
            Some(Route::Refund {
                out_trade_no: "T1".into()
            })
        );
        assert_eq!(
            route(&Method::GET, "/v1/payments/T1/refunds/R1"),
            Some(Route::RefundStatus {
                out_trade_no: "T1".into(),
                out_request_no: "R1".into()
            })
        );
        assert_eq!(route(&Method::GET, "/v1/payments/T1/refunds"), None);
        assert_eq!(route(&Method::POST, "/v1/payments//refunds"), None);
        assert_eq!(route(&Method::GET, "/v1/payments/T1/refunds/"), None);
        assert_eq!(route(&Method::GET, "/"), None);
    }

    #[test]
    fn matches_the_console_routes_behind_the_authorizer() {
        let admin = |method: &Method, path: &str| route(method, path);
        assert_eq!(
            admin(&Method::GET, "/admin/orders"),
            Some(Route::AdminOrders)
        );
        assert_eq!(
            admin(&Method::GET, "/admin/orders/T1"),
            Some(Route::AdminOrder {
                out_trade_no: "T1".into()
            })
        );
        assert_eq!(
            admin(&Method::GET, "/admin/anomalies"),
            Some(Route::AdminAnomalies)
        );
        // The record id `T1/paid_after_close`, percent-encoded in its one segment.
        assert_eq!(
            admin(
                &Method::POST,
                "/admin/anomalies/T1%2Fpaid_after_close/resolve"
            ),
            Some(Route::ResolveAnomaly {
                id: "T1%2Fpaid_after_close".into()
            })
        );
        assert_eq!(
            admin(&Method::GET, "/admin/reports/2026-12-07"),
            Some(Route::AdminReport {
                date: "2026-12-07".into()
            })
        );
        for (method, path) in [
            (Method::POST, "/admin/orders"),
            (Method::GET, "/admin/orders/"),
            (Method::GET, "/admin/orders/a/b"),
            (Method::GET, "/admin/anomalies/x"),
            (Method::GET, "/admin/anomalies/x/resolve"),
            (Method::POST, "/admin/anomalies//resolve"),
            (Method::POST, "/admin/anomalies/x/resolve/"),
            (Method::GET, "/admin/reports"),
            (Method::GET, "/admin/reports/"),
            (Method::GET, "/admin"),
            (Method::GET, "/admin/"),
        ] {
            assert_eq!(admin(&method, path), None, "{method} {path}");
        }
        for path in [
            "/admin/orders",
            "/admin/orders/T1",
            "/admin/reports/2026-12-07",
        ] {
            let found = admin(&Method::GET, path);
            assert!(found.is_some_and(|r| r.needs_staff_token()), "{path}");
        }
        assert!(!Route::Pay.needs_staff_token());
        assert!(!Route::Notify.needs_staff_token());
    }

    #[test]
    fn the_verified_claims_reach_the_function_as_the_authorizer_renders_them() {
        let headers = HeaderMap::new();
        let request = HttpRequest {
            method: &Method::GET,
            path: "/admin/anomalies",
            raw_query: "",
            headers: &headers,
            body: b"",
        };
        let verified = VerifiedJwt {
            claims: [
                ("sub", "5e1f"),
                ("cognito:username", "li.na"),
                ("cognito:groups", "[viewer operator]"),
                ("exp", "1700000000"),
            ]
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect(),
            scopes: None,
        };
        let event = event(&request, &Route::AdminAnomalies, "req-1", Some(&verified));
        assert_eq!(
            event["requestContext"]["authorizer"],
            json!({"jwt": {"claims": {
                "sub": "5e1f",
                "cognito:username": "li.na",
                "cognito:groups": "[viewer operator]",
                "exp": "1700000000",
            }, "scopes": null}})
        );
        let converted = lambda_request(&event).unwrap_or_default();
        let staff = admin::staff::staff(&converted).ok();
        assert_eq!(
            staff.map(|s| (s.role, s.username)),
            Some((admin::staff::Role::Operator, Some("li.na".to_owned())))
        );
        // Without the authorizer's claims the function sees no one.
        let anonymous = lambda_request(&super::event(
            &request,
            &Route::AdminAnomalies,
            "req-2",
            None,
        ))
        .unwrap_or_default();
        assert!(admin::staff::staff(&anonymous).is_err());
    }

    #[test]
    fn builds_an_event_lambda_http_reads_back() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:8600"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        headers.insert("cookie", HeaderValue::from_static("a=1; b=2"));
        let request = HttpRequest {
            method: &Method::GET,
            path: "/v1/payments/T1",
            raw_query: "x=a%20b&y=1",
            headers: &headers,
            body: b"",
        };
        let route = Route::Query {
            out_trade_no: "T1".into(),
        };
        let event = event(&request, &route, "req-1", None);
        assert_eq!(event["headers"]["x-a"], "1,2");
        assert_eq!(event["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(event["queryStringParameters"]["x"], "a b");
        assert_eq!(event["pathParameters"]["out_trade_no"], "T1");
        let converted = lambda_request(&event).unwrap_or_default();
        assert_eq!(f2f_runtime::http::raw_path(&converted), "/v1/payments/T1");
        assert_eq!(f2f_runtime::http::raw_query(&converted), "x=a%20b&y=1");
        assert_eq!(f2f_runtime::http::request_id(&converted), "req-1");
        assert_eq!(converted.method(), Method::GET);
    }
}
