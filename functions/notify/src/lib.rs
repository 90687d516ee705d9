//! Handler of the `notify` function. Not built yet: it answers every request with
//! `501 not_implemented` rather than pretending to work.

use lambda_http::{Body, Request, Response, http::StatusCode};
use std::convert::Infallible;

pub async fn handle(_request: Request) -> Result<Response<Body>, Infallible> {
    let body = serde_json::json!({
        "code": "not_implemented",
        "message": "the notify function is not implemented yet",
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::NOT_IMPLEMENTED;
    response.headers_mut().insert(
        "content-type",
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_not_implemented_instead_of_pretending() {
        let response = handle(Request::default())
            .await
            .unwrap_or_else(|never| match never {});
        assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED);
        let Body::Text(text) = response.body() else {
            unreachable!("a JSON text body")
        };
        assert!(text.contains("not_implemented"));
    }
}
