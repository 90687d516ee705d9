//! [`DynamoOrderStore`]: orders and their audit events (layout in [`super`]).
//!
//! Every write is one `TransactWriteItems` of two puts: the order (conditional) and its audit
//! event (`attribute_not_exists(pk)`), so an order never changes without its event, and an
//! event number is never written twice; a transition that carries an anomaly adds the anomaly
//! record's upsert (see [`super::anomalies`]), and one caused by a notification adds the kept
//! notification (see [`super::notifications`]), so they commit with it. The order's condition
//! is its expected status and version, and its amount (a transition planned from a
//! notification's amount can only land on an order of that amount). A failed order condition returns the stored order
//! (`ReturnValuesOnConditionCheckFailure = ALL_OLD`), so a claim that finds the number taken
//! or a transition that lost a race needs no second read.
//!
//! Writes are idempotent: when the condition fails and the stored order is exactly the one
//! being written (same version, same timestamps to the nanosecond), it was this write,
//! committed by an earlier attempt whose answer was lost, and the answer is `Claimed` or
//! `Applied` (no other request produces that exact value).
//!
//! A transaction cancelled only because another transaction on the same items was in flight
//! (`TransactionConflict`, which real DynamoDB reports for concurrent transactions, and
//! throttling) is retried a few times after a short pause: the retry then sees the winner's
//! write and answers `Exists` or `Conflict` like any late request.
//!
//! Items are mapped with `serde_dynamo` (a maintained serde bridge for `aws-sdk-dynamodb`
//! 1.x): `Order` keeps its fields private and derives serde, so an explicit mapping would
//! need accessors for every field and a constructor the domain does not want to expose.
//! Its mapping is plain: strings S, numbers N, options NULL when absent, structs and
//! tagged enums M, timestamps RFC 3339 strings.

use super::anomalies::anomaly_upsert;
use super::notifications::notification_item;
use super::schema::{DAY_INDEX, GSI1PK, GSI1SK};
use super::{PK, SK, n, s};
use crate::error::describe;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use chrono::{NaiveDate, SecondsFormat};
use domain::OutTradeNo;
use domain::anomaly::Anomaly;
use domain::notification::ReceivedNotification;
use domain::order::{Order, OrderEvent, Transition};
use domain::ports::{Applied, Claim, OrderStore, StoreError};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};
use std::collections::HashMap;
use std::time::Duration;

pub(crate) type Item = HashMap<String, AttributeValue>;

const ORDER_SK: &str = "ORDER";
/// BatchGetItem's most keys per request.
const BATCH_GET_KEYS: usize = 100;
/// Requests for one batch of keys before unprocessed ones are an error.
const BATCH_GET_ATTEMPTS: u32 = 6;
pub const EVENT_SK_PREFIX: &str = "EVENT#";
/// The attribute of an audit event item holding the order after the transition.
pub const ORDER_SNAPSHOT: &str = "order";
/// Attempts of one write when transactions collide or DynamoDB throttles.
const WRITE_ATTEMPTS: u32 = 4;
const RETRY_PAUSE: Duration = Duration::from_millis(25);

/// `ORDER#<out_trade_no>`: the partition of an order, its events and its anomalies.
pub fn order_pk(out_trade_no: &OutTradeNo) -> String {
    format!("ORDER#{out_trade_no}")
}

/// `EVENT#<version, zero-padded to 20 digits>`: events sort by version.
pub fn event_sk(version: u64) -> String {
    format!("{EVENT_SK_PREFIX}{version:020}")
}

pub use domain::beijing_day;

/// `DAY#<yyyy-MM-dd>`: the day index's partition.
pub fn day_pk(day: NaiveDate) -> String {
    format!("DAY#{}", day.format("%Y-%m-%d"))
}

/// The order as stored: its fields plus keys and the day index's keys.
fn order_item(order: &Order) -> Result<Item, StoreError> {
    let mut item: Item = to_item(order).map_err(|e| {
        StoreError::Corrupt(format!(
            "order {} cannot be mapped: {e}",
            order.out_trade_no()
        ))
    })?;
    item.insert(PK.into(), s(order_pk(order.out_trade_no())));
    item.insert(SK.into(), s(ORDER_SK));
    // Already among the fields; set explicitly because the conditions depend on them.
    item.insert("status".into(), s(order.status().as_str()));
    item.insert("version".into(), n(order.version()));
    item.insert(GSI1PK.into(), s(day_pk(beijing_day(order.created_at()))));
    item.insert(
        GSI1SK.into(),
        s(format!(
            "{}#{}",
            order
                .created_at()
                .to_rfc3339_opts(SecondsFormat::Micros, true),
            order.out_trade_no()
        )),
    );
    Ok(item)
}

/// The audit event, carrying the order it leaves behind (`order`): the event item is the
/// outbox of the business events, and their publisher reads the table's stream, not the table.
fn event_item(event: &OrderEvent, order: &Order, actor: Option<&str>) -> Result<Item, StoreError> {
    let unmapped = |e: serde_dynamo::Error| {
        StoreError::Corrupt(format!(
            "event {} of order {} cannot be mapped: {e}",
            event.version, event.out_trade_no
        ))
    };
    let mut item: Item = to_item(event).map_err(unmapped)?;
    let snapshot: Item = to_item(order).map_err(unmapped)?;
    item.insert(PK.into(), s(order_pk(&event.out_trade_no)));
    item.insert(SK.into(), s(event_sk(event.version)));
    item.insert(ORDER_SNAPSHOT.into(), AttributeValue::M(snapshot));
    if let Some(actor) = actor {
        item.entry("actor".into()).or_insert_with(|| s(actor));
    }
    Ok(item)
}

pub(crate) fn decode_order(item: Item) -> Result<Order, StoreError> {
    let pk = match item.get(PK) {
        Some(AttributeValue::S(pk)) => pk.clone(),
        _ => String::from("(no pk)"),
    };
    from_item(item).map_err(|e| StoreError::Corrupt(format!("order item {pk}: {e}")))
}

pub(crate) fn decode_event(item: Item) -> Result<OrderEvent, StoreError> {
    let key = match (item.get(PK), item.get(SK)) {
        (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => format!("{pk} {sk}"),
        _ => String::from("(no key)"),
    };
    from_item(item).map_err(|e| StoreError::Corrupt(format!("event item {key}: {e}")))
}

/// How a two-put transaction ended.
enum Written {
    Yes,
    /// The order's condition failed; the stored order item, if there is one.
    OrderConditionFailed(Option<Item>),
}

/// Clients are cheap to clone (they share one connection pool).
#[derive(Debug, Clone)]
pub struct DynamoOrderStore {
    client: Client,
    table: String,
    /// Stamped on every audit event written without an actor of its own.
    actor: Option<String>,
}

impl DynamoOrderStore {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoOrderStore {
        DynamoOrderStore {
            client,
            table: table.into(),
            actor: None,
        }
    }

    /// Names the function writing through this store in each audit event (the console's
    /// "who changed it").
    pub fn acting_as(mut self, actor: impl Into<String>) -> DynamoOrderStore {
        self.actor = Some(actor.into());
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes the order (under `condition`), its event and its anomaly (if any) in one
    /// transaction.
    async fn write(
        &self,
        operation: &'static str,
        order: &Order,
        condition: OrderCondition,
        event: &OrderEvent,
        anomaly: Option<&Anomaly>,
        notification: Option<&ReceivedNotification>,
    ) -> Result<Written, StoreError> {
        let no = order.out_trade_no();
        let unavailable = |reason: String| {
            StoreError::Unavailable(format!("{operation} of order {no}: {reason}"))
        };
        let mut put_order = Put::builder()
            .table_name(&self.table)
            .set_item(Some(order_item(order)?))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        put_order = match condition {
            OrderCondition::Absent => put_order.condition_expression("attribute_not_exists(pk)"),
            // The amount never changes: checking it too means a transition planned from a
            // notification's amount can only land on an order of that amount.
            OrderCondition::Expected { status, version } => put_order
                .condition_expression(
                    "#status = :expected_status AND #version = :expected_version AND #amount = :amount",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#version", "version")
                .expression_attribute_names("#amount", "amount")
                .expression_attribute_values(":expected_status", s(status))
                .expression_attribute_values(":expected_version", n(version))
                .expression_attribute_values(":amount", n(order.amount().fen().get())),
        };
        let put_event = Put::builder()
            .table_name(&self.table)
            .set_item(Some(event_item(event, order, self.actor.as_deref())?))
            .condition_expression("attribute_not_exists(pk)");
        let mut items = vec![
            TransactWriteItem::builder()
                .put(put_order.build().map_err(|e| unavailable(e.to_string()))?)
                .build(),
            TransactWriteItem::builder()
                .put(put_event.build().map_err(|e| unavailable(e.to_string()))?)
                .build(),
        ];
        if let Some(notification) = notification {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(notification_item(notification)?))
                .build()
                .map_err(|e| unavailable(e.to_string()))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        if let Some(anomaly) = anomaly {
            let update: Update = anomaly_upsert(&self.table, anomaly)?
                .into_transact()
                .map_err(|e| unavailable(e.to_string()))?;
            items.push(TransactWriteItem::builder().update(update).build());
        }

        let mut attempt = 1;
        loop {
            // On the heap: the SDK's request futures are large, and the payment flows nest
            // several levels of futures around every store call (a 2 MiB worker stack was
            // seen to overflow in a debug build without this).
            let sent = Box::pin(
                self.client
                    .transact_write_items()
                    .set_transact_items(Some(items.clone()))
                    .send(),
            )
            .await;
            let err = match sent {
                Ok(_) => return Ok(Written::Yes),
                Err(err) => err,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                err.as_service_error()
            else {
                tracing::warn!(out_trade_no = %no, operation, outcome = "error", error = %describe(&err));
                return Err(unavailable(describe(&err)));
            };
            let reasons = cancelled.cancellation_reasons();
            let code = |index: usize| reasons.get(index).and_then(|r| r.code()).unwrap_or("None");
            if code(0) == "ConditionalCheckFailed" {
                let stored = reasons.first().and_then(|r| r.item()).cloned();
                return Ok(Written::OrderConditionFailed(stored));
            }
            if code(1) == "ConditionalCheckFailed" {
                tracing::error!(out_trade_no = %no, operation, outcome = "event_exists", version = event.version);
                return Err(StoreError::Corrupt(format!(
                    "{operation} of order {no}: its audit event {} already exists",
                    event_sk(event.version)
                )));
            }
            let codes: Vec<&str> = (0..reasons.len()).map(code).collect();
            let transient = codes.iter().any(|c| {
                matches!(
                    *c,
                    "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
                )
            });
            if transient && attempt < WRITE_ATTEMPTS {
                tracing::info!(out_trade_no = %no, operation, outcome = "retry", reasons = ?codes, attempt);
                tokio::time::sleep(RETRY_PAUSE * attempt).await;
                attempt += 1;
                continue;
            }
            tracing::warn!(out_trade_no = %no, operation, outcome = "cancelled", reasons = ?codes);
            return Err(unavailable(format!(
                "transaction cancelled: {}",
                codes.join(", ")
            )));
        }
    }

    /// The audit events of an order, oldest first (strongly consistent).
    pub async fn events(&self, out_trade_no: &OutTradeNo) -> Result<Vec<OrderEvent>, StoreError> {
        let items = self
            .query_all("events", out_trade_no.as_str(), |query| {
                query
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":pk", s(order_pk(out_trade_no)))
                    .expression_attribute_values(":prefix", s(EVENT_SK_PREFIX))
                    .consistent_read(true)
            })
            .await?;
        items.into_iter().map(decode_event).collect()
    }

    /// The orders created on one Beijing day, by creation time (the day index is eventually
    /// consistent: a write of the last second may be missing).
    pub async fn orders_of_day(&self, day: NaiveDate) -> Result<Vec<Order>, StoreError> {
        let day_key = day_pk(day);
        let items = self
            .query_all("orders_of_day", &day_key, |query| {
                query
                    .index_name(DAY_INDEX)
                    .key_condition_expression("gsi1pk = :day")
                    .expression_attribute_values(":day", s(day_key.clone()))
            })
            .await?;
        items.into_iter().map(decode_order).collect()
    }

    /// Every order created on one Beijing day, handed to `each` page by page (a page is
    /// decoded, handed over and dropped before the next is read: memory stays at one page
    /// whatever the day's size). Returns how many there were.
    pub async fn each_order_of_day(
        &self,
        day: NaiveDate,
        each: &mut (dyn FnMut(Order) + Send),
    ) -> Result<u64, StoreError> {
        let day_key = day_pk(day);
        let mut start: Option<Item> = None;
        let mut count = 0;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(DAY_INDEX)
                .key_condition_expression("gsi1pk = :day")
                .expression_attribute_values(":day", s(day_key.clone()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| {
                    StoreError::Unavailable(format!("orders_of_day of {day_key}: {}", describe(&e)))
                })?;
            for item in page.items.unwrap_or_default() {
                each(decode_order(item)?);
                count += 1;
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(count)
    }

    /// The orders of these numbers (absent ones skipped), handed to `each`, read with
    /// BatchGetItem, 100 keys a request, strongly consistent: a bill's rows of orders created
    /// on other days are looked up a hundred at a time instead of one by one. Keys DynamoDB
    /// leaves unprocessed (throttling) are asked for again with a growing pause; still
    /// unprocessed after [`BATCH_GET_ATTEMPTS`] requests, the store is unavailable. Returns how
    /// many were found.
    pub async fn each_order_numbered(
        &self,
        numbers: &[OutTradeNo],
        each: &mut (dyn FnMut(Order) + Send),
    ) -> Result<u64, StoreError> {
        let mut found = 0;
        for chunk in numbers.chunks(BATCH_GET_KEYS) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|no| {
                    HashMap::from([
                        (PK.to_owned(), s(order_pk(no))),
                        (SK.to_owned(), s(ORDER_SK)),
                    ])
                })
                .collect();
            let mut pending = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Unavailable(format!("a BatchGetItem request: {e}")))?;
            for attempt in 0.. {
                let got = Box::pin(
                    self.client
                        .batch_get_item()
                        .request_items(&self.table, pending.clone())
                        .send(),
                )
                .await
                .map_err(|e| {
                    StoreError::Unavailable(format!("BatchGetItem of orders: {}", describe(&e)))
                })?;
                let items = got
                    .responses
                    .and_then(|mut tables| tables.remove(&self.table))
                    .unwrap_or_default();
                for item in items {
                    each(decode_order(item)?);
                    found += 1;
                }
                match got
                    .unprocessed_keys
                    .and_then(|mut tables| tables.remove(&self.table))
                {
                    Some(left) if !left.keys().is_empty() => {
                        if attempt + 1 >= BATCH_GET_ATTEMPTS {
                            return Err(StoreError::Unavailable(format!(
                                "BatchGetItem left {} orders unprocessed {BATCH_GET_ATTEMPTS} times",
                                left.keys().len()
                            )));
                        }
                        tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                        pending = left;
                    }
                    _ => break,
                }
            }
        }
        tracing::debug!(
            operation = "each_order_numbered",
            asked = numbers.len(),
            found
        );
        Ok(found)
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Every page of one query.
    pub(crate) async fn query_all(
        &self,
        operation: &'static str,
        subject: &str,
        shape: impl Fn(
            aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> Result<Vec<Item>, StoreError> {
        let mut all = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = shape(self.client.query().table_name(&self.table))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| {
                    StoreError::Unavailable(format!("{operation} of {subject}: {}", describe(&e)))
                })?;
            all.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        tracing::debug!(operation, subject, outcome = "ok", items = all.len());
        Ok(all)
    }
}

enum OrderCondition {
    /// The order number is free.
    Absent,
    /// The stored order has this status and version.
    Expected { status: &'static str, version: u64 },
}

impl OrderStore for DynamoOrderStore {
    async fn claim(&self, order: &Order, event: &OrderEvent) -> Result<Claim, StoreError> {
        let no = order.out_trade_no();
        match self
            .write("claim", order, OrderCondition::Absent, event, None, None)
            .await?
        {
            Written::Yes => {
                tracing::info!(out_trade_no = %no, operation = "claim", outcome = "claimed");
                Ok(Claim::Claimed)
            }
            Written::OrderConditionFailed(Some(item)) => {
                let stored = decode_order(item)?;
                if stored == *order {
                    // Our own write, committed by an earlier attempt whose answer was lost (the
                    // SDK retries transient failures): no other claim has this exact value.
                    tracing::info!(out_trade_no = %no, operation = "claim", outcome = "claimed", note = "committed by an earlier attempt");
                    return Ok(Claim::Claimed);
                }
                tracing::info!(
                    out_trade_no = %no, operation = "claim", outcome = "exists",
                    status = stored.status().as_str(), version = stored.version()
                );
                Ok(Claim::Exists(stored))
            }
            Written::OrderConditionFailed(None) => Err(StoreError::Unavailable(format!(
                "claim of order {no}: the number is taken but the store returned no item"
            ))),
        }
    }

    async fn get(&self, out_trade_no: &OutTradeNo) -> Result<Option<Order>, StoreError> {
        // Boxed like the writes' requests (see `write`).
        let got = Box::pin(
            self.client
                .get_item()
                .table_name(&self.table)
                .key(PK, s(order_pk(out_trade_no)))
                .key(SK, s(ORDER_SK))
                .consistent_read(true)
                .send(),
        )
        .await
        .map_err(|e| {
            StoreError::Unavailable(format!("get of order {out_trade_no}: {}", describe(&e)))
        })?;
        let order = got.item.map(decode_order).transpose()?;
        tracing::debug!(%out_trade_no, operation = "get", outcome = if order.is_some() { "found" } else { "absent" });
        Ok(order)
    }

    async fn apply(&self, transition: &Transition) -> Result<Applied, StoreError> {
        let next = &transition.next;
        let no = next.out_trade_no();
        let condition = OrderCondition::Expected {
            status: transition.expected_status.as_str(),
            version: transition.expected_version,
        };
        match self
            .write(
                "apply",
                next,
                condition,
                &transition.event,
                transition.anomaly.as_ref(),
                transition.notification.as_ref(),
            )
            .await?
        {
            Written::Yes => {
                tracing::info!(
                    out_trade_no = %no, operation = "apply", outcome = "applied",
                    from = transition.expected_status.as_str(), to = next.status().as_str(),
                    version = next.version()
                );
                Ok(Applied::Applied(next.clone()))
            }
            Written::OrderConditionFailed(stored) => {
                let current = stored.map(decode_order).transpose()?;
                if current.as_ref() == Some(next) {
                    // Our own write, committed by an earlier attempt (see `claim`).
                    tracing::info!(out_trade_no = %no, operation = "apply", outcome = "applied", note = "committed by an earlier attempt");
                    return Ok(Applied::Applied(next.clone()));
                }
                tracing::info!(
                    out_trade_no = %no, operation = "apply", outcome = "conflict",
                    expected_version = transition.expected_version,
                    current_version = current.as_ref().map(Order::version)
                );
                Ok(Applied::Conflict(current))
            }
        }
    }

    async fn record_anomaly(&self, anomaly: &Anomaly) -> Result<(), StoreError> {
        self.upsert_anomaly(anomaly).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn keys_sort_events_by_version_and_file_orders_under_the_beijing_day() {
        assert_eq!(event_sk(7), "EVENT#00000000000000000007");
        assert!(event_sk(9) < event_sk(10));
        let evening_utc = Utc.with_ymd_and_hms(2024, 1, 1, 17, 0, 0).unwrap();
        assert_eq!(day_pk(beijing_day(evening_utc)), "DAY#2024-01-02");
        let morning_utc = Utc.with_ymd_and_hms(2024, 1, 1, 15, 59, 59).unwrap();
        assert_eq!(day_pk(beijing_day(morning_utc)), "DAY#2024-01-01");
    }
}
