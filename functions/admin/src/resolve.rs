//! An operator resolves an anomaly: with a note, and with the action its kind allows
//! (`AnomalyKind::resolution_actions`):
//!
//! - `dismiss`: the record is resolved, nothing else changes;
//! - `accept_as_paid` (a `paid_after_close`): the order, given up here, becomes PAID with the
//!   trade Alipay reported ([`domain::order::Order::accepted_as_paid`]);
//! - `refund` (a `paid_after_close`): accepted as paid as above, then a full refund is claimed
//!   (`operator_refund`, PENDING, its amount reserved) and the expiry queue brings it to the
//!   refund flow's re-check at once, which sends it under the order's lease as any refund.
//!   The admin function never calls Alipay itself.
//!
//! Every write is conditional and names the operator (`operator:<username>` in the audit
//! events, `resolution.by` on the record). A retry of the same resolution finds each step done
//! and answers the same; a different resolution of a resolved record is refused.

use crate::staff::Staff;
use chrono::Duration;
use domain::anomaly::{AnomalyKind, AnomalyRecord, AnomalyStatus, Resolution, ResolutionAction};
use domain::console::{AnomalyDesk, Resolved};
use domain::order::{NewRefund, Order, RefundRefused};
use domain::ports::{Applied, Clock, ExpiryScheduler, OrderStore, ScheduleError, StoreError};
use domain::{OrderStatus, OutRequestNo, OutTradeNo};

/// The number of the refund an operator's `refund` claims (one per order: it is the rest of
/// the whole amount).
pub const OPERATOR_REFUND_NO: &str = "operator_refund";

/// Conditional writes a resolution retries on a lost race before giving up.
const ATTEMPTS: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveRequest {
    pub note: String,
    pub action: ResolutionAction,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no anomaly {0}")]
    NotFound(String),
    #[error("the anomaly was resolved already, differently")]
    AlreadyResolved(Box<AnomalyRecord>),
    #[error("a {kind} anomaly cannot be resolved with {action}")]
    ActionNotAllowed {
        kind: &'static str,
        action: &'static str,
    },
    #[error("the anomaly names no Alipay trade to accept or refund")]
    NoTrade,
    #[error("the order is {0}: the payment cannot be accepted or refunded from there")]
    OrderState(&'static str),
    #[error("the order is busy with another refund; retry in {retry_after} s")]
    Busy { retry_after: u64 },
    #[error("the order changed too often meanwhile; retry")]
    Contended,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

/// Resolves anomaly `id` as `staff` asks.
pub async fn resolve<S, Q, C>(
    store: &S,
    scheduler: &Q,
    clock: &C,
    staff: &Staff,
    id: &str,
    request: &ResolveRequest,
) -> Result<AnomalyRecord, ResolveError>
where
    S: AnomalyDesk + OrderStore,
    Q: ExpiryScheduler,
    C: Clock,
{
    let record = store
        .anomaly(id)
        .await?
        .ok_or_else(|| ResolveError::NotFound(id.to_owned()))?;
    if record.status == AnomalyStatus::Resolved {
        return same_resolution(record, staff, request);
    }
    let kind = record.latest.kind;
    if !kind.resolution_actions().contains(&request.action) {
        return Err(ResolveError::ActionNotAllowed {
            kind: kind.as_str(),
            action: request.action.as_str(),
        });
    }
    if request.action != ResolutionAction::Dismiss {
        let out_trade_no = record
            .latest
            .out_trade_no
            .clone()
            .ok_or_else(|| ResolveError::NotFound(id.to_owned()))?;
        let trade_no = record
            .latest
            .facts
            .trade_no
            .clone()
            .ok_or(ResolveError::NoTrade)?;
        let order = accept(store, clock, staff, &out_trade_no, &trade_no).await?;
        if request.action == ResolutionAction::Refund {
            refund_all(store, scheduler, clock, staff, order, kind).await?;
        }
    }
    let resolution = Resolution {
        by: staff.name().to_owned(),
        at: clock.now(),
        note: request.note.clone(),
        action: request.action,
    };
    match store.resolve(id, &resolution).await? {
        Resolved::Now(record) => {
            tracing::info!(anomaly_id = id, action = request.action.as_str(), by = %staff.name(), "anomaly resolved");
            Ok(record)
        }
        Resolved::NotOpen(record) => same_resolution(record, staff, request),
        Resolved::NotFound => Err(ResolveError::NotFound(id.to_owned())),
    }
}

/// A resolved record answers a retry of its own resolution, and refuses any other.
fn same_resolution(
    record: AnomalyRecord,
    staff: &Staff,
    request: &ResolveRequest,
) -> Result<AnomalyRecord, ResolveError> {
    let same = record.resolution.as_ref().is_some_and(|r| {
        r.by == staff.name() && r.note == request.note && r.action == request.action
    });
    if same {
        Ok(record)
    } else {
        Err(ResolveError::AlreadyResolved(Box::new(record)))
    }
}

/// The order PAID with `trade_no`: accepted now, or by an earlier attempt of this resolution.
async fn accept<S, C>(
    store: &S,
    clock: &C,
    staff: &Staff,
    out_trade_no: &OutTradeNo,
    trade_no: &str,
) -> Result<Order, ResolveError>
where
    S: OrderStore,
    C: Clock,
{
    let mut order = store
        .get(out_trade_no)
        .await?
        .ok_or_else(|| ResolveError::NotFound(out_trade_no.to_string()))?;
    for _ in 0..ATTEMPTS {
        match order.status() {
            OrderStatus::Closed | OrderStatus::Failed => {
                let Ok(transition) = order.accepted_as_paid(trade_no.to_owned(), clock.now())
                else {
                    return Err(ResolveError::OrderState(order.status().as_str()));
                };
                match store.apply(&transition.by(staff.actor())).await? {
                    Applied::Applied(accepted) => return Ok(accepted),
                    Applied::Conflict(Some(current)) => order = current,
                    Applied::Conflict(None) => {
                        return Err(ResolveError::NotFound(out_trade_no.to_string()));
                    }
                }
            }
            status if status.is_refundable() || status == OrderStatus::Refunded => {
                return if order.alipay_trade_no() == Some(trade_no) {
                    Ok(order)
                } else {
                    Err(ResolveError::OrderState(status.as_str()))
                };
            }
            status => return Err(ResolveError::OrderState(status.as_str())),
        }
    }
    Err(ResolveError::Contended)
}

/// Claims the refund of everything still refundable (unless claimed by an earlier attempt)
/// and has the expiry queue bring it to the refund flow now.
async fn refund_all<S, Q, C>(
    store: &S,
    scheduler: &Q,
    clock: &C,
    staff: &Staff,
    mut order: Order,
    kind: AnomalyKind,
) -> Result<(), ResolveError>
where
    S: OrderStore,
    Q: ExpiryScheduler,
    C: Clock,
{
    let no = OutRequestNo::parse(OPERATOR_REFUND_NO)
        .map_err(|e| StoreError::Corrupt(format!("{OPERATOR_REFUND_NO}: {e}")))?;
    for _ in 0..ATTEMPTS {
        if order.refund(&no).is_some() {
            return Ok(());
        }
        let now = clock.now();
        let new = NewRefund {
            out_request_no: no.clone(),
            amount_fen: order.refundable_fen(),
            reason: Some(kind.as_str().to_owned()),
            store_id: None,
            operator_id: None,
            terminal_id: None,
            request_hash: OPERATOR_REFUND_NO.to_owned(),
        };
        // No lease worth the name: the re-check sends it, taking the order over at once.
        let claim = match order.claim_refund(new, now, Duration::zero()) {
            Ok(claim) => claim,
            Err(RefundRefused::Busy { .. }) => {
                return Err(ResolveError::Busy {
                    retry_after: order.lease_seconds_left(now),
                });
            }
            Err(RefundRefused::Exists(_)) => return Ok(()),
            Err(RefundRefused::NotRefundable { status, .. }) => {
                return Err(ResolveError::OrderState(status.as_str()));
            }
            Err(RefundRefused::ExceedsPaid { .. }) => {
                return Err(ResolveError::OrderState(order.status().as_str()));
            }
        };
        // Before the claim is visible: a claimed refund is never left without its re-check.
        scheduler.schedule(order.out_trade_no(), now).await?;
        match store.apply(&claim.by(staff.actor())).await? {
            Applied::Applied(_) => return Ok(()),
            Applied::Conflict(Some(current)) => order = current,
            Applied::Conflict(None) => {
                return Err(ResolveError::NotFound(order.out_trade_no().to_string()));
            }
        }
    }
    Err(ResolveError::Contended)
}
