//! [`ConsoleReads`] on the orders table: a day's orders from the day index (`gsi1`, newest
//! first), anomalies from the status index (`gsi2`), an order's history from its partition.
//! Nothing here scans.
//!
//! A page's cursor is DynamoDB's `LastEvaluatedKey` (four string attributes), as URL-safe
//! base64 of its JSON. A cursor is accepted only for the listing it came from: its index
//! partition must be the one asked for, so a cursor of another day or status is refused
//! rather than silently listing something else.

use super::anomalies::{ANOMALY_SK_PREFIX, status_pk};
use super::orders::{DynamoOrderStore, Item, day_pk, decode_event, decode_order, order_pk};
use super::schema::{DAY_INDEX, GSI1PK, GSI1SK, GSI2PK, GSI2SK, STATUS_INDEX};
use super::{PK, SK, s};
use crate::error::describe;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDate;
use domain::OutTradeNo;
use domain::anomaly::AnomalyRecord;
use domain::console::{
    AnomalyFilter, ConsoleReads, MAX_PAGE, OrderFilter, OrderHistory, Page, PageCursor, ReadError,
};
use domain::order::Order;
use domain::ports::{OrderStore, StoreError};
use std::collections::BTreeMap;

fn encode_cursor(key: &Item) -> Option<PageCursor> {
    let strings: BTreeMap<&str, &str> = key
        .iter()
        .map(|(name, value)| match value {
            AttributeValue::S(text) => Some((name.as_str(), text.as_str())),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let json = serde_json::to_vec(&strings).ok()?;
    Some(PageCursor(URL_SAFE_NO_PAD.encode(json)))
}

/// The start key a cursor names, if it is a key of `index_pk`'s partition of the index whose
/// attributes are `index_keys`.
fn decode_cursor(
    cursor: &PageCursor,
    index_keys: [&str; 2],
    index_pk: &str,
) -> Result<Item, ReadError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.0.as_bytes())
        .map_err(|_| ReadError::InvalidCursor)?;
    let strings: BTreeMap<String, String> =
        serde_json::from_slice(&bytes).map_err(|_| ReadError::InvalidCursor)?;
    let expected = [PK, SK, index_keys[0], index_keys[1]];
    let complete = strings.len() == expected.len()
        && expected.iter().all(|name| strings.contains_key(*name))
        && strings.get(index_keys[0]).map(String::as_str) == Some(index_pk);
    if !complete {
        return Err(ReadError::InvalidCursor);
    }
    Ok(strings
        .into_iter()
        .map(|(name, value)| (name, AttributeValue::S(value)))
        .collect())
}

/// Sends one page's Query and decodes its items; the cursor of the next page, if any.
async fn read_page<T>(
    query: QueryFluentBuilder,
    operation: &str,
    decode: fn(Item) -> Result<T, StoreError>,
) -> Result<Page<T>, ReadError> {
    let page = query.send().await.map_err(|e| {
        ReadError::Store(StoreError::Unavailable(format!(
            "{operation}: {}",
            describe(&e)
        )))
    })?;
    let items = page
        .items
        .unwrap_or_default()
        .into_iter()
        .map(decode)
        .collect::<Result<_, _>>()?;
    Ok(Page {
        items,
        next: page
            .last_evaluated_key
            .filter(|key| !key.is_empty())
            .and_then(|key| encode_cursor(&key)),
        read_units: page.consumed_capacity.and_then(|c| c.capacity_units),
    })
}

impl ConsoleReads for DynamoOrderStore {
    async fn orders_of_day(
        &self,
        day: NaiveDate,
        filter: &OrderFilter,
        after: Option<&PageCursor>,
        limit: u32,
    ) -> Result<Page<Order>, ReadError> {
        let partition = day_pk(day);
        let start = after
            .map(|cursor| decode_cursor(cursor, [GSI1PK, GSI1SK], &partition))
            .transpose()?;
        let mut conditions = Vec::new();
        let mut query = self
            .client()
            .query()
            .table_name(self.table())
            .index_name(DAY_INDEX)
            .key_condition_expression("gsi1pk = :day")
            .expression_attribute_values(":day", s(partition.clone()))
            .scan_index_forward(false)
            .limit(limit.clamp(1, MAX_PAGE) as i32)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .set_exclusive_start_key(start);
        if let Some(status) = filter.status {
            conditions.push("#status = :status");
            query = query
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status.as_str()));
        }
        if let Some(store_id) = &filter.store_id {
            conditions.push("store_id = :store_id");
            query = query.expression_attribute_values(":store_id", s(store_id.clone()));
        }
        if !conditions.is_empty() {
            query = query.filter_expression(conditions.join(" AND "));
        }
        read_page(query, "orders_of_day", decode_order).await
    }

    async fn history(&self, out_trade_no: &OutTradeNo) -> Result<Option<OrderHistory>, StoreError> {
        let Some(order) = self.get(out_trade_no).await? else {
            return Ok(None);
        };
        let items = self
            .query_all("history", out_trade_no.as_str(), |query| {
                query
                    .key_condition_expression("pk = :pk")
                    .expression_attribute_values(":pk", s(order_pk(out_trade_no)))
                    .consistent_read(true)
            })
            .await?;
        let mut events = Vec::new();
        let mut anomalies = Vec::new();
        for item in items {
            let sk = match item.get(SK) {
                Some(AttributeValue::S(sk)) => sk.clone(),
                _ => String::new(),
            };
            if sk.starts_with(super::orders::EVENT_SK_PREFIX) {
                events.push(decode_event(item)?);
            } else if sk.starts_with(ANOMALY_SK_PREFIX) {
                anomalies.push(super::anomalies::decode(item)?);
            }
        }
        Ok(Some(OrderHistory {
            order,
            events,
            anomalies,
        }))
    }

    async fn anomalies(
        &self,
        filter: &AnomalyFilter,
        after: Option<&PageCursor>,
        limit: u32,
    ) -> Result<Page<AnomalyRecord>, ReadError> {
        let partition = status_pk(filter.status);
        let start = after
            .map(|cursor| decode_cursor(cursor, [GSI2PK, GSI2SK], &partition))
            .transpose()?;
        let mut query = self
            .client()
            .query()
            .table_name(self.table())
            .index_name(STATUS_INDEX)
            .key_condition_expression("gsi2pk = :status")
            .expression_attribute_values(":status", s(partition.clone()))
            .limit(limit.clamp(1, MAX_PAGE) as i32)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .set_exclusive_start_key(start);
        if let Some(kind) = filter.kind {
            query = query
                .filter_expression("#sk = :sk")
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(
                    ":sk",
                    s(format!("{ANOMALY_SK_PREFIX}{}", kind.as_str())),
                );
        }
        read_page(query, "anomalies", super::anomalies::decode).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(day: &str) -> Item {
        [
            (PK, "ORDER#T1"),
            (SK, "ORDER"),
            (GSI1PK, day),
            (GSI1SK, "2026-12-07T01:00:00.000000Z#T1"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), AttributeValue::S(value.to_owned())))
        .collect()
    }

    #[test]
    fn a_cursor_round_trips_for_its_own_listing_only() {
        let cursor = encode_cursor(&key("DAY#2026-12-07")).unwrap_or_else(|| unreachable!());
        let start = decode_cursor(&cursor, [GSI1PK, GSI1SK], "DAY#2026-12-07");
        assert_eq!(start.ok(), Some(key("DAY#2026-12-07")));
        assert!(matches!(
            decode_cursor(&cursor, [GSI1PK, GSI1SK], "DAY#2026-12-08"),
            Err(ReadError::InvalidCursor)
        ));
        assert!(matches!(
            decode_cursor(&cursor, [GSI2PK, GSI2SK], "ANOMALY#OPEN"),
            Err(ReadError::InvalidCursor)
        ));
        for junk in ["", "!!", "e30", "bnVsbA"] {
            assert!(matches!(
                decode_cursor(&PageCursor(junk.into()), [GSI1PK, GSI1SK], "DAY#2026-12-07"),
                Err(ReadError::InvalidCursor)
            ));
        }
    }
}
