//! The HTTP side: API Gateway's request in, Alipay's expected answer out (`success` as
//! `text/plain` once durable; anything else makes Alipay send the notification again).

use crate::delivery::Delivery;
use crate::receive::{Notifications, Reply};
use chrono::{DateTime, Utc};
use domain::ports::{Clock, NotificationLog, OrderStore};
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use std::collections::BTreeMap;

/// The delivery a request carries (`lambda_http` has already decoded a Base64 body).
pub fn delivery_of(request: &Request, received_at: DateTime<Utc>) -> Delivery {
    let body = match request.body() {
        Body::Empty => Vec::new(),
        Body::Text(text) => text.as_bytes().to_vec(),
        Body::Binary(bytes) => bytes.clone(),
        // `Body` is non-exhaustive upstream; a kind we do not know carries nothing we read.
        #[allow(unreachable_patterns)]
        _ => Vec::new(),
    };
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_ascii_lowercase())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    Delivery {
        body,
        headers,
        request_id: f2f_runtime::http::request_id(request),
        received_at,
    }
}

pub fn reply(reply: Reply) -> Response<Body> {
    let (status, text) = match reply {
        Reply::Success => (StatusCode::OK, "success"),
        // Not `success`: Alipay retries on its schedule (4m, 10m, 10m, 1h, 2h, 6h, 15h).
        Reply::RetryLater => (StatusCode::INTERNAL_SERVER_ERROR, "fail"),
    };
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl<S, C> Notifications<S, C>
where
    S: OrderStore + NotificationLog,
    C: Clock,
{
    /// One `POST /alipay/notify`.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let delivery = delivery_of(&request, self.clock.now());
        reply(Box::pin(self.receive(&delivery)).await)
    }
}
