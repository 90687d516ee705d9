//! HTTP mapping of `GET /v1/payments/{out_trade_no}` and
//! `GET /v1/payments/{out_trade_no}/refunds/{out_request_no}` (the same answers; a refund
//! that is not there is `404 refund_not_found`).
//!
//! | answer | when |
//! | --- | --- |
//! | `200` + order | found (synced with Alipay when due) |
//! | `200` + order with `"stale": true`, `sync_error` and a `Warning: 110` header | Alipay could not be asked; the stored state |
//! | `400` `invalid_field` (`field: out_trade_no`) | the number is malformed |
//! | `400` `invalid_query` | a query string whose escapes are not UTF-8 (it has no canonical form to sign) |
//! | `401` | `auth_*` |
//! | `404` `order_not_found` | no such order |
//! | `404` / `405` | `not_found`, `method_not_allowed` |
//! | `503` | `store_unavailable`, `auth_unavailable` |

use crate::sync::{Orders, RefundLookup};
use domain::ports::{Clock, NonceStore, OrderStore, PaymentGateway};
use domain::{OutRequestNo, OutTradeNo};
use f2f_runtime::KeyRing;
use f2f_runtime::telemetry::{count, observe, record_out_trade_no};
use f2f_runtime::{ApiError, Function, OrderView, RefundView, codes};
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};

pub const PREFIX: &str = "/v1/payments/";

pub struct QueryApi<S, G, C, N> {
    pub orders: Orders<S, G, C>,
    pub nonces: N,
    pub keys: KeyRing,
}

impl<S, G, C, N> QueryApi<S, G, C, N>
where
    S: OrderStore,
    G: PaymentGateway,
    C: Clock,
    N: NonceStore,
{
    /// Answers one request; never fails and never panics on any input.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        observe(Function::Query, &request, self.answer(&request)).await
    }

    async fn answer(&self, request: &Request) -> Result<Response<Body>, ApiError> {
        let path = f2f_runtime::http::route_path(request);
        let Some(number) = path.strip_prefix(PREFIX) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                codes::NOT_FOUND,
                "no such route",
            ));
        };
        if request.method() != Method::GET {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                codes::METHOD_NOT_ALLOWED,
                "use GET to read a payment",
            ));
        }
        let now = self.orders.clock.now();
        f2f_runtime::auth::authenticate(&self.keys, &self.nonces, request, now).await?;
        // Raw path segments: a percent-encoded or otherwise odd number is simply invalid.
        let (number, refund) = match number.split_once('/') {
            None => (number, None),
            Some((number, rest)) => match rest.strip_prefix("refunds/") {
                Some(refund) if !refund.is_empty() && !refund.contains('/') => {
                    (number, Some(refund))
                }
                _ => {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        codes::NOT_FOUND,
                        "no such route",
                    ));
                }
            },
        };
        let out_trade_no = OutTradeNo::parse(number)
            .map_err(|e| ApiError::invalid_field("out_trade_no", e.to_string()))?;
        record_out_trade_no(out_trade_no.as_str());
        if let Some(refund) = refund {
            let out_request_no = OutRequestNo::parse(refund)
                .map_err(|e| ApiError::invalid_field("out_request_no", e.to_string()))?;
            return self.refund(&out_trade_no, &out_request_no).await;
        }
        let looked = match self.orders.lookup(&out_trade_no).await {
            Ok(Some(looked)) => looked,
            Ok(None) => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    codes::ORDER_NOT_FOUND,
                    format!("no order {out_trade_no}"),
                )
                .with_field("out_trade_no"));
            }
            Err(error) => {
                tracing::error!(%error, "order store failed");
                return Err(ApiError::store_unavailable());
            }
        };
        let mut view = OrderView::of(&looked.order);
        if let Some(reason) = looked.sync_error.clone() {
            view = view.stale(reason);
        }
        Ok(answered(&view, looked.sync_error.is_some()))
    }

    async fn refund(
        &self,
        out_trade_no: &OutTradeNo,
        out_request_no: &OutRequestNo,
    ) -> Result<Response<Body>, ApiError> {
        let looked = match self
            .orders
            .lookup_refund(out_trade_no, out_request_no)
            .await
        {
            Ok(RefundLookup::Found(looked)) => looked,
            Ok(RefundLookup::NoOrder) => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    codes::ORDER_NOT_FOUND,
                    format!("no order {out_trade_no}"),
                )
                .with_field("out_trade_no"));
            }
            Ok(RefundLookup::NoRefund) => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    codes::REFUND_NOT_FOUND,
                    format!("order {out_trade_no} has no refund {out_request_no}"),
                )
                .with_field("out_request_no"));
            }
            Err(error) => {
                tracing::error!(%error, "order store failed");
                return Err(ApiError::store_unavailable());
            }
        };
        let Some(refund) = looked.order.refund(out_request_no) else {
            return Err(ApiError::internal());
        };
        let mut view = RefundView::of(&looked.order, refund);
        if let Some(reason) = looked.sync_error.clone() {
            view = view.stale(reason);
        }
        Ok(answered(&view, looked.sync_error.is_some()))
    }
}

/// `200` with the view; a stale one is counted and carries `Warning: 110`.
fn answered(view: &impl serde::Serialize, stale: bool) -> Response<Body> {
    let mut response = f2f_runtime::http::json_response(StatusCode::OK, view);
    if stale {
        count("stale_answer");
        response.headers_mut().insert(
            header::WARNING,
            HeaderValue::from_static("110 - \"Response is Stale\""),
        );
    }
    response
}
