//! The console's routes. Every route needs a verified member of staff ([`crate::staff`]).
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /admin/orders?date=YYYY-MM-DD[&status=][&store_id=][&cursor=][&limit=]` | a page of the day's orders, newest first, and `next_cursor` |
//! | `GET /admin/orders/{out_trade_no}` | the order, its audit trail (every transition) and its anomalies |
//! | `GET /admin/anomalies[?status=open\|resolved][&kind=][&cursor=][&limit=]` | a page of anomaly records |
//!
//! Errors: `400 invalid_field` / `unknown_field` (with `field`), `401 unauthenticated`,
//! `403 forbidden`, `404 order_not_found` / `not_found`, `405 method_not_allowed`,
//! `503 store_unavailable`.

use crate::staff::{Role, staff};
use chrono::NaiveDate;
use domain::anomaly::{AnomalyKind, AnomalyRecord, AnomalyStatus};
use domain::console::{AnomalyFilter, ConsoleReads, OrderFilter, PageCursor, ReadError};
use domain::order::OrderEvent;
use domain::{OrderStatus, OutTradeNo};
use f2f_runtime::telemetry::{observe, record_out_trade_no};
use f2f_runtime::{ApiError, Function, OrderView, codes};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use std::collections::BTreeMap;

const ORDERS: &str = "/admin/orders";
const ANOMALIES: &str = "/admin/anomalies";
/// A page when the caller does not say.
const DEFAULT_LIMIT: u32 = 50;

pub struct AdminApi<R> {
    pub store: R,
}

#[derive(Debug, Serialize)]
struct OrdersPage {
    date: NaiveDate,
    orders: Vec<OrderView>,
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
struct OrderDetail {
    order: OrderView,
    timeline: Vec<OrderEvent>,
    anomalies: Vec<AnomalyRecord>,
}

#[derive(Debug, Serialize)]
struct AnomaliesPage {
    status: AnomalyStatus,
    anomalies: Vec<AnomalyRecord>,
    next_cursor: Option<String>,
}

impl<R: ConsoleReads> AdminApi<R> {
    /// Answers one request; never fails and never panics on any input.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        observe(Function::Admin, &request, self.answer(&request)).await
    }

    async fn answer(&self, request: &Request) -> Result<Response<Body>, ApiError> {
        let path = f2f_runtime::http::route_path(request);
        let route = if path == ORDERS {
            Route::Orders
        } else if path == ANOMALIES {
            Route::Anomalies
        } else if let Some(number) = path
            .strip_prefix(ORDERS)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|number| !number.is_empty() && !number.contains('/'))
        {
            Route::Order(number)
        } else {
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
                "use GET",
            ));
        }
        let staff = staff(request)?;
        staff.may(Role::Viewer)?;
        tracing::info!(staff = %staff.subject, "console read");
        let query = Query::parse(f2f_runtime::http::raw_query(request))?;
        match route {
            Route::Orders => self.orders(&query).await,
            Route::Order(number) => {
                query.only(&[])?;
                self.order(number).await
            }
            Route::Anomalies => self.anomalies(&query).await,
        }
    }

    async fn orders(&self, query: &Query) -> Result<Response<Body>, ApiError> {
        query.only(&["date", "status", "store_id", "cursor", "limit"])?;
        let date = query
            .get("date")
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    codes::MISSING_FIELD,
                    "date (YYYY-MM-DD, Beijing) is required",
                )
                .with_field("date")
            })
            .and_then(|text| {
                NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map_err(|_| ApiError::invalid_field("date", "a date as YYYY-MM-DD"))
            })?;
        let status = query
            .get("status")
            .map(|text| {
                OrderStatus::ALL
                    .into_iter()
                    .find(|status| status.as_str() == text)
                    .ok_or_else(|| ApiError::invalid_field("status", "an order status"))
            })
            .transpose()?;
        let store_id = query.get("store_id").map(str::to_owned);
        let filter = OrderFilter { status, store_id };
        let page = self
            .store
            .orders_of_day(date, &filter, query.cursor().as_ref(), query.limit()?)
            .await
            .map_err(read_error)?;
        Ok(ok(&OrdersPage {
            date,
            orders: page.items.iter().map(OrderView::of).collect(),
            next_cursor: page.next.map(|cursor| cursor.0),
        }))
    }

    async fn order(&self, number: &str) -> Result<Response<Body>, ApiError> {
        let out_trade_no = OutTradeNo::parse(number)
            .map_err(|e| ApiError::invalid_field("out_trade_no", e.to_string()))?;
        record_out_trade_no(out_trade_no.as_str());
        let history = self.store.history(&out_trade_no).await.map_err(|error| {
            tracing::error!(%error, "order store failed");
            ApiError::store_unavailable()
        })?;
        let Some(history) = history else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                codes::ORDER_NOT_FOUND,
                format!("no order {out_trade_no}"),
            )
            .with_field("out_trade_no"));
        };
        Ok(ok(&OrderDetail {
            order: OrderView::of(&history.order),
            timeline: history.events,
            anomalies: history.anomalies,
        }))
    }

    async fn anomalies(&self, query: &Query) -> Result<Response<Body>, ApiError> {
        query.only(&["status", "kind", "cursor", "limit"])?;
        let status = match query.get("status") {
            None | Some("open") => AnomalyStatus::Open,
            Some("resolved") => AnomalyStatus::Resolved,
            Some(_) => return Err(ApiError::invalid_field("status", "open or resolved")),
        };
        let kind = query
            .get("kind")
            .map(|text| {
                AnomalyKind::ALL
                    .into_iter()
                    .find(|kind| kind.as_str() == text)
                    .ok_or_else(|| ApiError::invalid_field("kind", "an anomaly kind"))
            })
            .transpose()?;
        let page = self
            .store
            .anomalies(
                &AnomalyFilter { status, kind },
                query.cursor().as_ref(),
                query.limit()?,
            )
            .await
            .map_err(read_error)?;
        Ok(ok(&AnomaliesPage {
            status,
            anomalies: page.items,
            next_cursor: page.next.map(|cursor| cursor.0),
        }))
    }
}

enum Route<'a> {
    Orders,
    Order(&'a str),
    Anomalies,
}

fn ok(body: &impl Serialize) -> Response<Body> {
    f2f_runtime::http::json_response(StatusCode::OK, body)
}

fn read_error(error: ReadError) -> ApiError {
    match error {
        ReadError::InvalidCursor => {
            ApiError::invalid_field("cursor", "a next_cursor of this same listing")
        }
        ReadError::Store(error) => {
            tracing::error!(%error, "order store failed");
            ApiError::store_unavailable()
        }
    }
}

/// The query string's parameters, each at most once.
struct Query(BTreeMap<String, String>);

impl Query {
    fn parse(raw: &str) -> Result<Query, ApiError> {
        let mut parameters = BTreeMap::new();
        for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
            let name = name.into_owned();
            if parameters.contains_key(&name) {
                return Err(ApiError::invalid_field(name, "given more than once"));
            }
            parameters.insert(name, value.into_owned());
        }
        Ok(Query(parameters))
    }

    /// Refuses any parameter not in `known`.
    fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|name| !known.contains(&name.as_str())) {
            Some(name) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::UNKNOWN_FIELD,
                format!("unknown parameter {name}"),
            )
            .with_field(name.clone())),
            None => Ok(()),
        }
    }

    /// A parameter; an empty one counts as absent.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn cursor(&self) -> Option<PageCursor> {
        self.get("cursor").map(|c| PageCursor(c.to_owned()))
    }

    fn limit(&self) -> Result<u32, ApiError> {
        let max = domain::console::MAX_PAGE;
        self.get("limit").map_or(Ok(DEFAULT_LIMIT), |text| {
            text.parse::<u32>()
                .ok()
                .filter(|limit| (1..=max).contains(limit))
                .ok_or_else(|| ApiError::invalid_field("limit", format!("1 to {max}")))
        })
    }
}
