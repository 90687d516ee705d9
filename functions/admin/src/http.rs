//! The console's routes. Every route needs a verified member of staff ([`crate::staff`]).
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /admin/orders?date=YYYY-MM-DD[&status=][&store_id=][&cursor=][&limit=]` | a page of the day's orders, newest first, and `next_cursor` |
//! | `GET /admin/orders/{out_trade_no}` | the order, its audit trail (every transition) and its anomalies |
//! | `GET /admin/anomalies[?status=open\|resolved][&kind=][&cursor=][&limit=]` | a page of anomaly records |
//! | `POST /admin/anomalies/{id}/resolve` `{"note","action"}` (operators only) | the resolved record ([`crate::resolve`]) |
//! | `GET /admin/reports/{date}` | the day's reconciliation report: summary, discrepancies, or why the bill was refused |
//!
//! Errors: `400 invalid_json` / `invalid_field` / `missing_field` / `unknown_field` (with
//! `field`), `401 unauthenticated`, `403 forbidden`, `404 order_not_found` /
//! `anomaly_not_found` / `report_not_found` / `not_found`, `405 method_not_allowed`, `409`
//! (`anomaly_resolved`, `order_state`, `order_busy`, `anomaly_without_trade`), `503
//! store_unavailable` / `scheduler_unavailable` / `reports_unavailable`.

use crate::resolve::{ResolveError, ResolveRequest, resolve};
use crate::staff::{Role, Staff, staff};
use chrono::NaiveDate;
use domain::anomaly::ResolutionAction;
use domain::anomaly::{AnomalyKind, AnomalyRecord, AnomalyStatus};
use domain::bills::{discrepancies_key, rejected_key, summary_key};
use domain::console::AnomalyDesk;
use domain::console::{AnomalyFilter, ConsoleReads, OrderFilter, PageCursor, ReadError};
use domain::order::Order;
use domain::order::OrderEvent;
use domain::ports::{Clock, ExpiryScheduler, ObjectStore, OrderStore};
use domain::{OrderStatus, OutTradeNo};
use f2f_runtime::telemetry::{observe, record_out_trade_no};
use f2f_runtime::{ApiError, Function, OrderView, codes};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use std::collections::BTreeMap;

const ORDERS: &str = "/admin/orders";
const ANOMALIES: &str = "/admin/anomalies";
const REPORTS: &str = "/admin/reports";
/// The longest note an operator may leave.
const MAX_NOTE_CHARS: usize = 500;
/// A page when the caller does not say.
const DEFAULT_LIMIT: u32 = 50;

pub struct AdminApi<R, O, Q, C> {
    pub store: R,
    /// The bill bucket, where reconcile writes each day's report.
    pub reports: O,
    /// The expiry queue: an operator's refund is sent by the refund flow's re-check.
    pub scheduler: Q,
    pub clock: C,
}

/// An order as staff see it: the merchant API's view, plus where it was sold.
#[derive(Debug, Serialize)]
struct StaffOrderView {
    #[serde(flatten)]
    order: OrderView,
    store_id: Option<String>,
    operator_id: Option<String>,
    terminal_id: Option<String>,
}

impl StaffOrderView {
    fn of(order: &Order) -> StaffOrderView {
        StaffOrderView {
            order: OrderView::of(order),
            store_id: order.store_id().map(str::to_owned),
            operator_id: order.operator_id().map(str::to_owned),
            terminal_id: order.terminal_id().map(str::to_owned),
        }
    }
}

#[derive(Debug, Serialize)]
struct OrdersPage {
    date: NaiveDate,
    orders: Vec<StaffOrderView>,
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
struct OrderDetail {
    order: StaffOrderView,
    timeline: Vec<OrderEvent>,
    anomalies: Vec<AnomalyRecord>,
}

#[derive(Debug, Serialize)]
struct ResolvedAnswer {
    anomaly: AnomalyRecord,
}

#[derive(Debug, Serialize)]
struct ReportAnswer {
    date: NaiveDate,
    /// Reconcile's summary (counts and fen totals per class), as it wrote it.
    summary: Option<serde_json::Value>,
    /// Every discrepancy, one object per row of reconcile's CSV.
    discrepancies: Vec<BTreeMap<String, String>>,
    /// Why the day's bill was refused whole, if it was.
    rejected: Option<serde_json::Value>,
}

/// The body of a resolution.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    note: Option<String>,
    action: Option<String>,
}

#[derive(Debug, Serialize)]
struct AnomaliesPage {
    status: AnomalyStatus,
    anomalies: Vec<AnomalyRecord>,
    next_cursor: Option<String>,
}

impl<R, O, Q, C> AdminApi<R, O, Q, C>
where
    R: ConsoleReads + AnomalyDesk + OrderStore,
    O: ObjectStore,
    Q: ExpiryScheduler,
    C: Clock,
{
    /// Answers one request; never fails and never panics on any input.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        observe(Function::Admin, &request, self.answer(&request)).await
    }

    async fn answer(&self, request: &Request) -> Result<Response<Body>, ApiError> {
        let path = f2f_runtime::http::route_path(request);
        let Some(route) = Route::of(path) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                codes::NOT_FOUND,
                "no such route",
            ));
        };
        let method = if matches!(route, Route::Resolve(_)) {
            Method::POST
        } else {
            Method::GET
        };
        if request.method() != method {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                codes::METHOD_NOT_ALLOWED,
                format!("use {method}"),
            ));
        }
        let staff = staff(request)?;
        staff.may(Role::Viewer)?;
        let query = Query::parse(f2f_runtime::http::raw_query(request))?;
        match route {
            Route::Orders => self.orders(&query).await,
            Route::Order(number) => {
                query.only(&[])?;
                self.order(number).await
            }
            Route::Anomalies => self.anomalies(&query).await,
            Route::Resolve(id) => {
                query.only(&[])?;
                staff.may(Role::Operator)?;
                self.resolve(&staff, id, request.body()).await
            }
            Route::Report(date) => {
                query.only(&[])?;
                self.report(date).await
            }
        }
    }

    async fn resolve(
        &self,
        staff: &Staff,
        id: &str,
        body: &[u8],
    ) -> Result<Response<Body>, ApiError> {
        let id = percent_decode_str(id)
            .decode_utf8()
            .map_err(|_| ApiError::invalid_field("id", "an anomaly id"))?;
        let body: ResolveBody = serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::INVALID_JSON,
                format!("the body is not a resolution: {e}"),
            )
        })?;
        let note = body.note.map(|n| n.trim().to_owned()).unwrap_or_default();
        if note.is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::MISSING_FIELD,
                "say why in a note",
            )
            .with_field("note"));
        }
        if note.chars().count() > MAX_NOTE_CHARS {
            return Err(ApiError::invalid_field(
                "note",
                format!("at most {MAX_NOTE_CHARS} characters"),
            ));
        }
        let action = match body.action.as_deref() {
            None => ResolutionAction::Dismiss,
            Some(text) => ResolutionAction::ALL
                .into_iter()
                .find(|action| action.as_str() == text)
                .ok_or_else(|| {
                    ApiError::invalid_field("action", "dismiss, accept_as_paid or refund")
                })?,
        };
        let request = ResolveRequest { note, action };
        let resolved = resolve(
            &self.store,
            &self.scheduler,
            &self.clock,
            staff,
            &id,
            &request,
        )
        .await
        .map_err(resolve_error)?;
        Ok(ok(&ResolvedAnswer { anomaly: resolved }))
    }

    async fn report(&self, date: &str) -> Result<Response<Body>, ApiError> {
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .map_err(|_| ApiError::invalid_field("date", "a date as YYYY-MM-DD"))?;
        let read = |key: String| async move {
            self.reports.read(&key).await.map_err(|error| {
                tracing::error!(%error, key, "the reports bucket failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    REPORTS_UNAVAILABLE,
                    "the reports could not be read; retry",
                )
                .with_retry_after(1)
            })
        };
        let summary = read(summary_key(date)).await?;
        let rejected = read(rejected_key(date)).await?;
        if summary.is_none() && rejected.is_none() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                REPORT_NOT_FOUND,
                format!("{date} has not been reconciled"),
            )
            .with_field("date"));
        }
        let discrepancies = match read(discrepancies_key(date)).await? {
            Some(csv) => rows(&csv)?,
            None => Vec::new(),
        };
        Ok(ok(&ReportAnswer {
            date,
            summary: summary.map(|bytes| json(&bytes)).transpose()?,
            discrepancies,
            rejected: rejected.map(|bytes| json(&bytes)).transpose()?,
        }))
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
            orders: page.items.iter().map(StaffOrderView::of).collect(),
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
            order: StaffOrderView::of(&history.order),
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
    Resolve(&'a str),
    Report(&'a str),
}

impl<'a> Route<'a> {
    fn of(path: &'a str) -> Option<Route<'a>> {
        let segment = |prefix: &str| {
            path.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('/'))
        };
        let one = |text: &'a str| (!text.is_empty() && !text.contains('/')).then_some(text);
        if path == ORDERS {
            Some(Route::Orders)
        } else if path == ANOMALIES {
            Some(Route::Anomalies)
        } else if let Some(rest) = segment(ORDERS) {
            one(rest).map(Route::Order)
        } else if let Some(rest) = segment(ANOMALIES) {
            rest.strip_suffix("/resolve")
                .and_then(one)
                .map(Route::Resolve)
        } else {
            segment(REPORTS).and_then(one).map(Route::Report)
        }
    }
}

const REPORT_NOT_FOUND: &str = "report_not_found";
const REPORTS_UNAVAILABLE: &str = "reports_unavailable";
const ANOMALY_NOT_FOUND: &str = "anomaly_not_found";
const ANOMALY_RESOLVED: &str = "anomaly_resolved";
const ANOMALY_WITHOUT_TRADE: &str = "anomaly_without_trade";
const ORDER_STATE: &str = "order_state";
const ORDER_BUSY: &str = "order_busy";

fn resolve_error(error: ResolveError) -> ApiError {
    let conflict = |code, message: String| ApiError::new(StatusCode::CONFLICT, code, message);
    match error {
        ResolveError::NotFound(id) => ApiError::new(
            StatusCode::NOT_FOUND,
            ANOMALY_NOT_FOUND,
            format!("no anomaly or order {id}"),
        )
        .with_field("id"),
        ResolveError::AlreadyResolved(record) => conflict(
            ANOMALY_RESOLVED,
            format!(
                "resolved already{}",
                record
                    .resolution
                    .map(|r| format!(" by {} ({})", r.by, r.action.as_str()))
                    .unwrap_or_default()
            ),
        ),
        error @ ResolveError::ActionNotAllowed { .. } => {
            ApiError::invalid_field("action", error.to_string())
        }
        error @ ResolveError::NoTrade => conflict(ANOMALY_WITHOUT_TRADE, error.to_string()),
        error @ ResolveError::OrderState(_) => conflict(ORDER_STATE, error.to_string()),
        ResolveError::Busy { retry_after } => conflict(
            ORDER_BUSY,
            "a refund of this order is being sent; retry".to_owned(),
        )
        .with_retry_after(retry_after),
        error @ ResolveError::Contended => {
            conflict(ORDER_BUSY, error.to_string()).with_retry_after(1)
        }
        ResolveError::Store(error) => {
            tracing::error!(%error, "order store failed");
            ApiError::store_unavailable()
        }
        ResolveError::Schedule(error) => {
            tracing::error!(%error, "the expiry queue failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::SCHEDULER_UNAVAILABLE,
                "the refund could not be scheduled; retry the same request",
            )
            .with_retry_after(1)
        }
    }
}

/// A stored JSON report, as it is.
fn json(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        tracing::error!(%error, "a stored report is not JSON");
        ApiError::internal()
    })
}

/// The rows of reconcile's discrepancies CSV, each by its header's names.
fn rows(csv_bytes: &[u8]) -> Result<Vec<BTreeMap<String, String>>, ApiError> {
    csv::Reader::from_reader(csv_bytes)
        .deserialize()
        .collect::<Result<_, _>>()
        .map_err(|error| {
            tracing::error!(%error, "a stored discrepancies file is not CSV");
            ApiError::internal()
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = include_str!("../../../infra/api/admin-openapi.yaml");

    #[test]
    fn the_routes_are_the_documented_ones() {
        let documented: Vec<&str> = SPEC
            .lines()
            .filter_map(|line| line.strip_prefix("  /admin"))
            .filter_map(|rest| rest.strip_suffix(':'))
            .collect();
        assert_eq!(
            documented,
            vec![
                "/orders",
                "/orders/{out_trade_no}",
                "/anomalies",
                "/anomalies/{id}/resolve",
                "/reports/{date}"
            ]
        );
        for path in documented {
            let concrete = format!("/admin{path}")
                .replace("{out_trade_no}", "T1")
                .replace("{id}", "T1%2Fpaid_after_close")
                .replace("{date}", "2026-12-07");
            assert!(Route::of(&concrete).is_some(), "{concrete}");
        }
        assert!(Route::of("/admin/orders/T1/refunds").is_none());
        assert!(Route::of("/admin/anomalies/x/close").is_none());
        assert!(Route::of("/admin/reports/").is_none());
    }

    #[test]
    fn every_code_is_documented() {
        for code in [
            codes::INVALID_JSON,
            codes::INVALID_FIELD,
            codes::MISSING_FIELD,
            codes::UNKNOWN_FIELD,
            codes::NOT_FOUND,
            codes::METHOD_NOT_ALLOWED,
            codes::ORDER_NOT_FOUND,
            codes::STORE_UNAVAILABLE,
            codes::SCHEDULER_UNAVAILABLE,
            codes::INTERNAL_ERROR,
            crate::staff::UNAUTHENTICATED,
            crate::staff::FORBIDDEN,
            REPORT_NOT_FOUND,
            REPORTS_UNAVAILABLE,
            ANOMALY_NOT_FOUND,
            ANOMALY_RESOLVED,
            ANOMALY_WITHOUT_TRADE,
            ORDER_STATE,
            ORDER_BUSY,
        ] {
            assert!(SPEC.contains(&format!("- {code}\n")), "{code}");
        }
    }
}
