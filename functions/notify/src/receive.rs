//! What a notification does: verify, check it is ours, then write the fact it reports as
//! one conditional transition (with the raw notification in the same write), or keep it with
//! the reason it changed nothing. Alipay is answered `success` only once that is durable.

use crate::delivery::Delivery;
use alipay::AlipayVerifier;
use alipay::notify::{NotifyError, TradeNotification, TradeStatus};
use domain::OutTradeNo;
use domain::anomaly::{AlipayFacts, Anomaly, AnomalyKind, FactSource};
use domain::converge::{self, Actor, AlipayView, Plan, check_trade};
use domain::notification::{ReceivedNotification, RefundNotice, Verdict};
use domain::order::{Buyer, Order, PaymentSource};
use domain::ports::{Clock, NotificationLog, OrderStore, StoreError};
use domain::refunding::plan_refund_notice;

/// The only notification type this endpoint acts on.
const TRADE_STATUS_SYNC: &str = "trade_status_sync";

/// The answer Alipay gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `success`: the outcome is durable; Alipay stops sending this notification.
    Success,
    /// Anything else: something of ours failed; Alipay sends the notification again later.
    RetryLater,
}

/// The notify function's logic, generic over its ports.
pub struct Notifications<S, C> {
    pub store: S,
    pub clock: C,
    pub verifier: AlipayVerifier,
    /// This merchant's app id: `app_id` (or `auth_app_id`) must name it.
    pub app_id: String,
    /// When set, `seller_id` must name it.
    pub seller_id: Option<String>,
}

/// What became of one notification (for logs, metrics and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub out_trade_no: Option<OutTradeNo>,
    /// The order as stored afterwards, when there is one.
    pub order: Option<Order>,
}

impl<S, C> Notifications<S, C>
where
    S: OrderStore + NotificationLog,
    C: Clock,
{
    /// Handles one delivery; a store failure is `RetryLater` (nothing was answered `success`
    /// that is not durable).
    pub async fn receive(&self, delivery: &Delivery) -> Reply {
        match self.process(delivery).await {
            Ok(outcome) => {
                tracing::info!(
                    request_id = %delivery.request_id,
                    out_trade_no = outcome.out_trade_no.as_ref().map(OutTradeNo::as_str),
                    verdict = outcome.verdict.as_str(),
                    status = outcome.order.as_ref().map(|o| o.status().as_str()),
                    "notification handled"
                );
                metrics::counter!(verdict_metric(outcome.verdict)).increment(1);
                Reply::Success
            }
            Err(error) => {
                tracing::warn!(request_id = %delivery.request_id, %error, "notification not recorded; Alipay will send it again");
                metrics::counter!("notification_retry_later").increment(1);
                Reply::RetryLater
            }
        }
    }

    /// Verifies, checks and records one delivery.
    pub async fn process(&self, delivery: &Delivery) -> Result<Outcome, StoreError> {
        let verified = match alipay::notify::verify(&delivery.body, &self.verifier) {
            Ok(verified) => verified,
            Err(error) => {
                metrics::counter!("notification_signature_failures").increment(1);
                return self.untrusted(delivery, &error).await;
            }
        };
        // Verified: the body's own (decoded, transcoded) value, not a second parse of it.
        let out_trade_no = verified
            .get("out_trade_no")
            .and_then(|no| OutTradeNo::parse(no).ok());
        if verified.get("notify_type") != Some(TRADE_STATUS_SYNC) {
            // Signed by Alipay, but of a kind this endpoint does not act on: kept, no anomaly.
            let record = delivery.record(out_trade_no).judged(
                Verdict::Recorded,
                Some(format!(
                    "notify_type {:?} is not acted on",
                    verified.get("notify_type").unwrap_or("")
                )),
            );
            return self.keep_only(record, None).await;
        }
        let notification = match verified.trade() {
            Ok(notification) => notification,
            Err(error) => return self.untrusted(delivery, &error).await,
        };
        let mut record = delivery.record(out_trade_no);
        record.notify_id = Some(notification.notify_id.clone());
        record.trade_status = Some(notification.trade_status.as_str().to_owned());
        record.refund = notification.refund_fee.map(|fee| RefundNotice {
            refund_fee_fen: fee.get(),
            gmt_refund: notification.gmt_refund.clone(),
            out_biz_no: notification.out_biz_no.clone(),
            trade_status: notification.trade_status.as_str().to_owned(),
        });
        if let Some(detail) = self.foreign(&notification) {
            let facts = facts(&notification);
            return self
                .refuse(
                    record,
                    Verdict::Foreign,
                    AnomalyKind::ForeignNotification,
                    facts,
                    detail,
                )
                .await;
        }
        let order = match &record.out_trade_no {
            Some(out_trade_no) => Box::pin(self.store.get(out_trade_no)).await?,
            None => None,
        };
        let Some(order) = order else {
            let detail = match record.out_trade_no {
                None => "the notification names no valid out_trade_no".to_owned(),
                Some(_) => format!(
                    "Alipay notified trade {} ({}, {}) for an order that does not exist",
                    notification.trade_no,
                    notification.trade_status.as_str(),
                    notification.total_amount.to_yuan()
                ),
            };
            let facts = facts(&notification);
            return self
                .refuse(
                    record,
                    Verdict::UnknownOrder,
                    AnomalyKind::UnknownOrder,
                    facts,
                    detail,
                )
                .await;
        };
        self.apply(order, &notification, record).await
    }

    /// Writes what a verified notification of ours says about `order`.
    async fn apply(
        &self,
        order: Order,
        notification: &TradeNotification,
        record: ReceivedNotification,
    ) -> Result<Outcome, StoreError> {
        let view = view_of(&order, notification);
        let applied_record = record.clone().judged(Verdict::Applied, None);
        // The payment first (a refund says the trade was paid); once the payment is settled
        // here, the refund it reports.
        let refund_plan = |current: &Order, now| match &record.refund {
            Some(notice) if current.status().is_final() => {
                plan_refund_notice(current, notice, Some(&notification.trade_no), now)
            }
            _ => Plan::nothing(),
        };
        let planner = |current: &Order, now| {
            let plan = converge::plan(current, &view, now, Actor::Witness);
            if plan.transition.is_none() && plan.anomaly.is_none() {
                refund_plan(current, now)
            } else {
                plan
            }
        };
        let settled = converge::apply_planned(&self.store, &self.clock, &order, |current, now| {
            let plan = planner(current, now);
            Plan {
                transition: plan
                    .transition
                    .map(|t| t.with_notification(applied_record.clone())),
                anomaly: plan.anomaly,
            }
        })
        .await?;
        let out_trade_no = Some(order.out_trade_no().clone());
        if settled.applied {
            // A payment and a refund in one notification: the refund's part, if it says more.
            let settled =
                converge::apply_planned(&self.store, &self.clock, &settled.order, refund_plan)
                    .await?;
            return Ok(Outcome {
                verdict: Verdict::Applied,
                out_trade_no,
                order: Some(settled.order),
            });
        }
        // Nothing of ours was written: say why in the kept record (an anomaly, if any, was
        // recorded by `apply_planned`).
        let now = self.clock.now();
        let leftover = planner(&settled.order, now);
        let (verdict, detail) = match (&view, leftover.anomaly, &record.refund) {
            (_, Some(anomaly), _) => (Verdict::Contradicts, Some(anomaly.detail)),
            (AlipayView::Mismatch(mismatch), None, _) => {
                (Verdict::Contradicts, Some(mismatch.detail.clone()))
            }
            (_, None, Some(notice)) if notice.refund_fee_fen > settled.order.refunded_fen() => (
                Verdict::Recorded,
                Some("a refund still pending here: its refund flow settles it".to_owned()),
            ),
            _ => (Verdict::AlreadyKnown, None),
        };
        self.store.keep(&record.judged(verdict, detail)).await?;
        Ok(Outcome {
            verdict,
            out_trade_no,
            order: Some(settled.order),
        })
    }

    /// A notification that failed verification (or is not a notification): kept and
    /// recorded as an anomaly, then answered `success` so a forgery is not sent again. Filed
    /// under the order number the body claims, if any (it is not trusted).
    async fn untrusted(
        &self,
        delivery: &Delivery,
        error: &NotifyError,
    ) -> Result<Outcome, StoreError> {
        let record = delivery.record(delivery.claimed_out_trade_no());
        let facts = AlipayFacts::from(FactSource::Notification);
        self.refuse(
            record,
            Verdict::Untrusted,
            AnomalyKind::UntrustedNotification,
            facts,
            error.to_string(),
        )
        .await
    }

    /// Keeps a notification that must change nothing, with the anomaly it is (there is no
    /// order to touch, or it is not ours to touch).
    async fn refuse(
        &self,
        record: ReceivedNotification,
        verdict: Verdict,
        kind: AnomalyKind,
        facts: AlipayFacts,
        detail: String,
    ) -> Result<Outcome, StoreError> {
        let anomaly = Anomaly {
            kind,
            out_trade_no: record.out_trade_no.clone(),
            order_status: None,
            order_amount_fen: None,
            facts,
            detail: detail.clone(),
            seen_at: self.clock.now(),
        };
        self.keep_only(record.judged(verdict, Some(detail)), Some(anomaly))
            .await
    }

    async fn keep_only(
        &self,
        record: ReceivedNotification,
        anomaly: Option<Anomaly>,
    ) -> Result<Outcome, StoreError> {
        self.store.keep(&record).await?;
        if let Some(anomaly) = anomaly {
            Box::pin(self.store.record_anomaly(&anomaly)).await?;
            anomaly.report();
        }
        Ok(Outcome {
            verdict: record.verdict,
            out_trade_no: record.out_trade_no,
            order: None,
        })
    }

    /// Why a correctly signed notification is not for this merchant, if it is not.
    fn foreign(&self, notification: &TradeNotification) -> Option<String> {
        let app_matches = notification.app_id == self.app_id
            || notification.auth_app_id.as_deref() == Some(self.app_id.as_str());
        if !app_matches {
            return Some(format!(
                "the notification is for app {} (auth_app_id {:?}), not this app",
                notification.app_id, notification.auth_app_id
            ));
        }
        match (&self.seller_id, &notification.seller_id) {
            (Some(ours), Some(theirs)) if ours != theirs => Some(format!(
                "the notification is for seller {theirs}, not this seller"
            )),
            (Some(_), None) => Some("the notification names no seller_id".to_owned()),
            _ => None,
        }
    }
}

fn verdict_metric(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Applied => "notification_applied",
        Verdict::AlreadyKnown => "notification_already_known",
        Verdict::Contradicts => "notification_contradicts",
        Verdict::UnknownOrder => "notification_unknown_order",
        Verdict::Untrusted => "notification_untrusted",
        Verdict::Foreign => "notification_foreign",
        Verdict::Recorded => "notification_recorded",
    }
}

/// What a verified notification says about `order`. A refund's notification (it carries
/// `refund_fee`) says the trade was paid, whatever its status (TRADE_CLOSED once fully
/// refunded); the refund itself is kept with the record.
fn view_of(order: &Order, notification: &TradeNotification) -> AlipayView {
    if let Some(mismatch) = check_trade(
        order,
        &notification.out_trade_no,
        Some(notification.total_amount.get()),
        Some(&notification.trade_no),
        || facts(notification),
    ) {
        return AlipayView::Mismatch(mismatch);
    }
    let trade_no = notification.trade_no.clone();
    if notification.trade_status.is_paid() || notification.refund_fee.is_some() {
        return AlipayView::Paid {
            trade_no,
            paid_at: notification
                .gmt_payment
                .as_deref()
                .and_then(|t| alipay::time::parse_beijing(t).ok()),
            source: PaymentSource::Notification,
            buyer: Buyer::new(
                notification.buyer_id.clone(),
                notification.buyer_open_id.clone(),
            ),
        };
    }
    match notification.trade_status {
        TradeStatus::WaitBuyerPay => AlipayView::Waiting { trade_no },
        _ => AlipayView::Closed {
            trade_no,
            source: FactSource::Notification,
        },
    }
}

fn facts(notification: &TradeNotification) -> AlipayFacts {
    AlipayFacts {
        source: Some(FactSource::Notification),
        out_trade_no: Some(notification.out_trade_no.clone()),
        trade_no: Some(notification.trade_no.clone()),
        trade_status: Some(notification.trade_status.as_str().to_owned()),
        total_amount_fen: Some(notification.total_amount.get()),
        refund_fen: notification.refund_fee.map(|fee| fee.get()),
    }
}
