//! Convergence: ask Alipay what happened to an order (`alipay.trade.query`) and apply the
//! matching conditional transition. The pay and query functions use it, and so will the
//! notification and timeout-close functions: every path that learns a trade's state from a
//! query goes through [`read_query`] and [`plan`], so they cannot disagree.
//!
//! Nothing here guesses: an answer that cannot be believed (unknown outcome, a rejection, a
//! trade of another number or amount) changes nothing, and says why in [`AlipayView`].

use crate::Fen;
use crate::order::{Order, OrderStatus, PaymentSource, Transition};
use crate::ports::{Applied, Clock, OrderStore, PaymentGateway, StoreError};
use alipay::api::{QueryRequest, QueryResponse, TradeRef};
use alipay::notify::TradeStatus;
use alipay::outcome::{Outcome, Rejection, UnknownCause};
use chrono::{DateTime, Utc};

/// Why an order was closed, as recorded in its `Closed` event.
pub mod reasons {
    /// Alipay reports the trade closed (expired, declined by the buyer, closed elsewhere).
    pub const CLOSED_AT_ALIPAY: &str = "closed_at_alipay";
    /// A barcode payment waited for the buyer's confirmation until the end of the polling
    /// schedule and was cancelled.
    pub const BUYER_DID_NOT_CONFIRM: &str = "buyer_did_not_confirm";
    /// A barcode payment's outcome could not be learned and the trade was cancelled, so it
    /// can never be paid later.
    pub const PAY_OUTCOME_UNKNOWN_CANCELLED: &str = "pay_outcome_unknown_cancelled";
    /// The cancel found the trade paid and refunded it in full.
    pub const CANCELLED_AND_REFUNDED: &str = "cancelled_and_refunded";
}

/// What Alipay's answer to a query says about an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlipayView {
    /// `TRADE_SUCCESS` or `TRADE_FINISHED` for the order's amount.
    Paid {
        trade_no: String,
        paid_at: Option<DateTime<Utc>>,
    },
    /// `WAIT_BUYER_PAY`: the trade exists, the buyer has not paid (yet).
    Waiting { trade_no: String },
    /// `TRADE_CLOSED`.
    Closed { trade_no: String },
    /// `ACQ.TRADE_NOT_EXIST`: Alipay has no trade (an unscanned QR code, or a request that
    /// never arrived).
    NotExist,
    /// The answer says nothing we may act on: transport trouble, a system error, a rejection,
    /// an unverifiable body or another business failure.
    Unknown(String),
    /// Alipay's trade does not match the order (another number or amount): a human looks.
    Mismatch(String),
}

impl AlipayView {
    /// A short, stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            AlipayView::Paid { .. } => "paid",
            AlipayView::Waiting { .. } => "waiting",
            AlipayView::Closed { .. } => "closed",
            AlipayView::NotExist => "not_exist",
            AlipayView::Unknown(_) => "unknown",
            AlipayView::Mismatch(_) => "mismatch",
        }
    }
}

/// Describes an unknown outcome without any request data.
pub fn describe_unknown(cause: &UnknownCause) -> String {
    match cause {
        UnknownCause::Timeout => "timeout".into(),
        UnknownCause::Connection(_) => "connection".into(),
        UnknownCause::HttpStatus(status) => format!("http_status_{status}"),
        UnknownCause::SystemError(failure) => failure
            .sub_code
            .clone()
            .unwrap_or_else(|| failure.code.clone()),
        UnknownCause::Unverifiable(_) => "unverifiable".into(),
    }
}

/// Describes a rejection without any request data.
pub fn describe_rejection(rejection: &Rejection) -> String {
    match rejection {
        Rejection::Gateway { failure, .. } => format!(
            "rejected_{}",
            failure.sub_code.as_deref().unwrap_or(&failure.code)
        ),
        Rejection::Local(_) => "rejected_locally".into(),
    }
}

/// Reads a query's outcome for `order`.
pub fn read_query(order: &Order, outcome: Outcome<QueryResponse>) -> AlipayView {
    let trade = match outcome {
        Outcome::Success(trade) | Outcome::WaitingForBuyer(trade) => trade,
        Outcome::Failed(failure) if failure.sub_code_is("ACQ.TRADE_NOT_EXIST") => {
            return AlipayView::NotExist;
        }
        Outcome::Failed(failure) => {
            return AlipayView::Unknown(format!(
                "query_failed_{}",
                failure.sub_code.as_deref().unwrap_or(&failure.code)
            ));
        }
        Outcome::Unknown(cause) => return AlipayView::Unknown(describe_unknown(&cause)),
        Outcome::Rejected(rejection) => {
            return AlipayView::Unknown(describe_rejection(&rejection));
        }
    };
    if trade.out_trade_no != order.out_trade_no().as_str() {
        return AlipayView::Mismatch(format!(
            "Alipay answered for out_trade_no {:?}",
            trade.out_trade_no
        ));
    }
    match trade.trade_status {
        status if status.is_paid() => {
            if trade.total_amount != order.amount().fen() {
                return AlipayView::Mismatch(format!(
                    "Alipay reports {} paid for an order of {}",
                    trade.total_amount.to_yuan(),
                    order.amount().fen().to_yuan()
                ));
            }
            let paid_at = trade
                .send_pay_date
                .as_deref()
                .and_then(|t| alipay::time::parse_beijing(t).ok());
            AlipayView::Paid {
                trade_no: trade.trade_no,
                paid_at,
            }
        }
        TradeStatus::WaitBuyerPay => AlipayView::Waiting {
            trade_no: trade.trade_no,
        },
        _ => AlipayView::Closed {
            trade_no: trade.trade_no,
        },
    }
}

/// The transition that brings `order` in line with `view`, if any. Final orders never move;
/// a claim Alipay has no trade for is left to its holder (only it may re-send the request).
pub fn plan(order: &Order, view: &AlipayView, now: DateTime<Utc>) -> Option<Transition> {
    if order.status().is_final() {
        return None;
    }
    let transition = match (view, order.status()) {
        (AlipayView::Paid { trade_no, paid_at }, _) => order.paid(
            trade_no.clone(),
            paid_at.unwrap_or(now),
            PaymentSource::Query,
            now,
        ),
        (AlipayView::Waiting { trade_no }, OrderStatus::Creating) => {
            order.created_at_alipay(None, Some(trade_no.clone()), now)
        }
        (AlipayView::Waiting { .. } | AlipayView::NotExist, OrderStatus::Pending) => {
            order.synced(now)
        }
        (AlipayView::Closed { .. }, _) => order.closed(reasons::CLOSED_AT_ALIPAY, now),
        _ => return None,
    };
    transition.ok()
}

/// Applies a transition; a lost race is answered with the order as stored now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub order: Order,
    /// `false` when someone else changed the order first.
    pub applied: bool,
}

pub async fn settle<S: OrderStore>(
    store: &S,
    transition: &Transition,
) -> Result<Settled, StoreError> {
    match store.apply(transition).await? {
        Applied::Applied(order) => Ok(Settled {
            order,
            applied: true,
        }),
        Applied::Conflict(Some(order)) => Ok(Settled {
            order,
            applied: false,
        }),
        Applied::Conflict(None) => Err(StoreError::Corrupt(format!(
            "order {} vanished during a transition",
            transition.next.out_trade_no()
        ))),
    }
}

/// The result of one convergence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converged {
    /// The order as stored now (after our transition, or someone else's).
    pub order: Order,
    /// What Alipay said.
    pub view: AlipayView,
    /// Whether our transition was written.
    pub applied: bool,
}

/// Queries Alipay about `order` by its `out_trade_no` and applies what the answer implies.
pub async fn converge<S, G, C>(
    store: &S,
    gateway: &G,
    clock: &C,
    order: &Order,
) -> Result<Converged, StoreError>
where
    S: OrderStore,
    G: PaymentGateway,
    C: Clock,
{
    let request = QueryRequest::new(TradeRef::out_trade_no(order.out_trade_no().as_str()));
    let view = read_query(order, gateway.query(&request).await);
    apply_view(store, clock, order, view).await
}

/// Applies an already obtained view (e.g. from a poll) to `order`.
pub async fn apply_view<S, C>(
    store: &S,
    clock: &C,
    order: &Order,
    view: AlipayView,
) -> Result<Converged, StoreError>
where
    S: OrderStore,
    C: Clock,
{
    match plan(order, &view, clock.now()) {
        Some(transition) => {
            let settled = settle(store, &transition).await?;
            Ok(Converged {
                order: settled.order,
                view,
                applied: settled.applied,
            })
        }
        None => Ok(Converged {
            order: order.clone(),
            view,
            applied: false,
        }),
    }
}

/// Parses an amount Alipay sent, for callers that compare it with an order.
pub fn same_amount(order: &Order, alipay: Option<Fen>) -> bool {
    alipay.is_none_or(|fen| fen == order.amount().fen())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::NewOrder;
    use crate::{OrderAmount, OutTradeNo, Scene};
    use alipay::api::QueryResponse;
    use alipay::outcome::Failure;
    use chrono::{Duration, TimeZone};

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0)
            .single()
            .unwrap()
    }

    fn order() -> Order {
        let new = NewOrder {
            out_trade_no: OutTradeNo::parse("T1").unwrap(),
            amount: OrderAmount::from_fen(100).unwrap(),
            subject: "coffee".into(),
            scene: Scene::Qr,
            store_id: None,
            operator_id: None,
            terminal_id: None,
            request_hash: "h".into(),
            expires_at: at(900),
        };
        Order::claim(new, at(0), Duration::seconds(30)).0
    }

    fn trade(status: TradeStatus, fen: i64) -> Outcome<QueryResponse> {
        Outcome::Success(QueryResponse {
            trade_no: "2024".into(),
            out_trade_no: "T1".into(),
            trade_status: status,
            total_amount: Fen::new(fen),
            receipt_amount: None,
            buyer_pay_amount: None,
            buyer_logon_id: None,
            buyer_user_id: None,
            send_pay_date: Some("2023-11-15 06:13:20".into()),
            store_id: None,
            terminal_id: None,
        })
    }

    fn failure(sub_code: &str) -> Failure {
        Failure {
            code: "40004".into(),
            msg: "Business Failed".into(),
            sub_code: Some(sub_code.into()),
            sub_msg: None,
        }
    }

    #[test]
    fn reads_each_trade_status() {
        let o = order();
        assert_eq!(
            read_query(&o, trade(TradeStatus::TradeSuccess, 100)),
            AlipayView::Paid {
                trade_no: "2024".into(),
                paid_at: alipay::time::parse_beijing("2023-11-15 06:13:20").ok()
            }
        );
        assert_eq!(
            read_query(&o, trade(TradeStatus::WaitBuyerPay, 100)).kind(),
            "waiting"
        );
        assert_eq!(
            read_query(&o, trade(TradeStatus::TradeClosed, 100)).kind(),
            "closed"
        );
        assert_eq!(
            read_query(&o, Outcome::Failed(failure("ACQ.TRADE_NOT_EXIST"))),
            AlipayView::NotExist
        );
        assert_eq!(
            read_query(&o, Outcome::Failed(failure("ACQ.INVALID_PARAMETER"))).kind(),
            "unknown"
        );
        assert_eq!(
            read_query(&o, Outcome::Unknown(UnknownCause::Timeout)),
            AlipayView::Unknown("timeout".into())
        );
    }

    #[test]
    fn a_paid_trade_of_another_amount_is_never_taken_as_paid() {
        let o = order();
        let view = read_query(&o, trade(TradeStatus::TradeSuccess, 99));
        assert_eq!(view.kind(), "mismatch");
        assert!(plan(&o, &view, at(1)).is_none());
    }

    #[test]
    fn plans_follow_the_state_machine() {
        let creating = order();
        let waiting = AlipayView::Waiting {
            trade_no: "2024".into(),
        };
        let pending = plan(&creating, &waiting, at(1)).unwrap();
        assert_eq!(pending.next.status(), OrderStatus::Pending);
        assert_eq!(pending.next.alipay_trade_no(), Some("2024"));
        assert!(plan(&creating, &AlipayView::NotExist, at(1)).is_none());
        let pending = pending.next;
        assert_eq!(
            plan(&pending, &AlipayView::NotExist, at(2))
                .unwrap()
                .next
                .last_synced_at(),
            Some(at(2))
        );
        let closed = plan(
            &pending,
            &AlipayView::Closed {
                trade_no: "2024".into(),
            },
            at(3),
        )
        .unwrap()
        .next;
        assert_eq!(closed.status(), OrderStatus::Closed);
        let paid_view = AlipayView::Paid {
            trade_no: "2024".into(),
            paid_at: None,
        };
        assert!(
            plan(&closed, &paid_view, at(4)).is_none(),
            "final stays final"
        );
        let paid = plan(&pending, &paid_view, at(4)).unwrap().next;
        assert_eq!(paid.paid_at(), Some(at(4)));
    }
}
