//! Received notifications, kept for audit: in the partition of the order they name
//! (`pk = ORDER#<out_trade_no>`), or of their Beijing day when they name no valid order
//! (`pk = UNATTRIBUTED#<day>`, kept 90 days: these are mostly noise or forgeries), with
//! `sk = NOTIFICATION#<received_at, microseconds>#<request_id>`: one item per delivery, so a
//! repeated notification is kept once per time it arrived.
//!
//! A notification that causes a transition is written in the transition's transaction (see
//! [`super::orders`]); the others are a single conditional put here.

use super::anomalies::unattributed_pk;
use super::orders::{DynamoOrderStore, Item, beijing_day, order_pk};
use super::schema::TTL_ATTRIBUTE;
use super::{PK, SK, n, s};
use crate::error::describe;
use chrono::SecondsFormat;
use domain::notification::ReceivedNotification;
use domain::ports::{NotificationLog, StoreError};
use serde_dynamo::aws_sdk_dynamodb_1::to_item;

const NOTIFICATION_SK_PREFIX: &str = "NOTIFICATION#";
/// How long notifications that name no order are kept.
const UNATTRIBUTED_DAYS: i64 = 90;

pub(crate) fn notification_item(notification: &ReceivedNotification) -> Result<Item, StoreError> {
    let mut item: Item = to_item(notification).map_err(|e| {
        StoreError::Corrupt(format!(
            "notification {} cannot be mapped: {e}",
            notification.request_id
        ))
    })?;
    let pk = match &notification.out_trade_no {
        Some(no) => order_pk(no),
        None => {
            let forget_after = notification.received_at + chrono::Duration::days(UNATTRIBUTED_DAYS);
            item.insert(TTL_ATTRIBUTE.into(), n(forget_after.timestamp()));
            unattributed_pk(beijing_day(notification.received_at))
        }
    };
    item.insert(PK.into(), s(pk));
    item.insert(
        SK.into(),
        s(format!(
            "{NOTIFICATION_SK_PREFIX}{}#{}",
            notification
                .received_at
                .to_rfc3339_opts(SecondsFormat::Micros, true),
            notification.request_id
        )),
    );
    Ok(item)
}

impl NotificationLog for DynamoOrderStore {
    async fn keep(&self, notification: &ReceivedNotification) -> Result<(), StoreError> {
        let item = notification_item(notification)?;
        // A retried put of the same delivery writes the same item: harmless, so no condition.
        Box::pin(
            self.client()
                .put_item()
                .table_name(self.table())
                .set_item(Some(item))
                .send(),
        )
        .await
        .map_err(|e| {
            tracing::warn!(request_id = %notification.request_id, operation = "keep_notification", outcome = "error", error = %describe(&e));
            StoreError::Unavailable(format!(
                "keeping notification {}: {}",
                notification.request_id,
                describe(&e)
            ))
        })?;
        tracing::debug!(request_id = %notification.request_id, operation = "keep_notification", outcome = "kept", verdict = notification.verdict.as_str());
        Ok(())
    }
}

impl DynamoOrderStore {
    /// The notifications kept for an order, oldest first (strongly consistent).
    pub async fn notifications_of_order(
        &self,
        out_trade_no: &domain::OutTradeNo,
    ) -> Result<Vec<ReceivedNotification>, StoreError> {
        let items = self
            .query_all("notifications_of_order", out_trade_no.as_str(), |query| {
                query
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":pk", s(order_pk(out_trade_no)))
                    .expression_attribute_values(":prefix", s(NOTIFICATION_SK_PREFIX))
                    .consistent_read(true)
            })
            .await?;
        items
            .into_iter()
            .map(|item| {
                serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(|e| {
                    StoreError::Corrupt(format!("notification of order {out_trade_no}: {e}"))
                })
            })
            .collect()
    }
}
