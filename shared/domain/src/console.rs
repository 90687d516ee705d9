//! What the operator console reads: a day's orders page by page (newest first, from the day
//! index, never a scan), one order with its whole history, and anomalies by status; and how
//! an operator resolves an anomaly. The ports [`ConsoleReads`] and [`AnomalyDesk`] are
//! implemented by the DynamoDB adapter; the admin function is generic over them.

use crate::OutTradeNo;
use crate::anomaly::{AnomalyKind, AnomalyRecord, AnomalyStatus, Resolution};
use crate::order::{Order, OrderEvent, OrderStatus};
use crate::ports::StoreError;
use chrono::NaiveDate;
use std::future::Future;

/// The largest page a listing reads.
pub const MAX_PAGE: u32 = 100;

/// Where the next page starts: opaque to callers, checked by the store that issued it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor(pub String);

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// `None` on the last page.
    pub next: Option<PageCursor>,
    /// The read capacity the page consumed, when the store reports it.
    pub read_units: Option<f64>,
}

/// Which of a day's orders to list. The filters narrow a page, they do not make the store
/// read less: a page may hold fewer orders than asked for and still have a next one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub store_id: Option<String>,
}

/// Which anomalies to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnomalyFilter {
    pub status: AnomalyStatus,
    pub kind: Option<AnomalyKind>,
}

/// An order as the console shows it: the order, every audit event (oldest first) and its
/// anomaly records.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderHistory {
    pub order: Order,
    pub events: Vec<OrderEvent>,
    pub anomalies: Vec<AnomalyRecord>,
}

/// A cursor the store did not issue for this listing.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the cursor is not one this listing issued")]
    InvalidCursor,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub trait ConsoleReads: Send + Sync {
    /// Orders created on `day` (Beijing), newest first, at most `limit` (≤ [`MAX_PAGE`]) read
    /// per page.
    fn orders_of_day(
        &self,
        day: NaiveDate,
        filter: &OrderFilter,
        after: Option<&PageCursor>,
        limit: u32,
    ) -> impl Future<Output = Result<Page<Order>, ReadError>> + Send;

    /// The order with its history (strongly consistent), if it exists.
    fn history(
        &self,
        out_trade_no: &OutTradeNo,
    ) -> impl Future<Output = Result<Option<OrderHistory>, StoreError>> + Send;

    /// Anomaly records by status, oldest first sighting first.
    fn anomalies(
        &self,
        filter: &AnomalyFilter,
        after: Option<&PageCursor>,
        limit: u32,
    ) -> impl Future<Output = Result<Page<AnomalyRecord>, ReadError>> + Send;
}

/// What became of a resolution.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// The open record is resolved now; as stored after.
    Now(AnomalyRecord),
    /// The record was not open (resolved before); as stored.
    NotOpen(AnomalyRecord),
    NotFound,
}

pub trait AnomalyDesk: Send + Sync {
    /// The anomaly record `id` (strongly consistent), if it exists.
    fn anomaly(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<AnomalyRecord>, StoreError>> + Send;

    /// Resolves the record `id` if it is open (one conditional write).
    fn resolve(
        &self,
        id: &str,
        resolution: &Resolution,
    ) -> impl Future<Output = Result<Resolved, StoreError>> + Send;
}
