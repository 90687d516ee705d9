//! Anomaly records (`domain::anomaly`), in the order's partition: `pk = ORDER#<out_trade_no>`
//! (or `UNATTRIBUTED#<day>` for a sighting that names no order),
//! `sk = ANOMALY#<kind>`, so there is one record per order and kind. A sighting is an upsert:
//! the latest sighting's fields and `last_seen` are set, `occurrences` is incremented,
//! `first_seen` and the index keys are set only by the first sighting, and the status becomes
//! `OPEN` (a repeat reopens a resolved record: the money still contradicts the order).
//!
//! Listings: by Beijing day of the first sighting on `gsi1` (`gsi1pk = ANOMALY_DAY#<day>`),
//! and the open ones on `gsi2` (`gsi2pk = ANOMALY#OPEN`; resolving moves the record to
//! `ANOMALY#RESOLVED`), both sorted by first sighting. Resolving is one conditional update of
//! an open record ([`AnomalyDesk`]).

use super::orders::{DynamoOrderStore, Item, beijing_day, order_pk};
use super::schema::{DAY_INDEX, GSI1PK, GSI1SK, GSI2PK, GSI2SK, STATUS_INDEX};
use super::{PK, SK, n, s};
use crate::error::describe;
use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, Update,
};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use domain::anomaly::{
    Anomaly, AnomalyKind, AnomalyRecord, AnomalyStatus, Resolution, UNATTRIBUTED,
};
use domain::console::{AnomalyDesk, Resolved};
use domain::ports::StoreError;
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};

pub const ANOMALY_SK_PREFIX: &str = "ANOMALY#";
const OPEN_KEY: &str = "ANOMALY#OPEN";

/// `ANOMALY_DAY#<yyyy-MM-dd>`: the day listing's partition.
pub fn anomaly_day_pk(day: NaiveDate) -> String {
    format!("ANOMALY_DAY#{}", day.format("%Y-%m-%d"))
}

/// `UNATTRIBUTED#<yyyy-MM-dd>`: the partition of a day's anomalies that name no order (a
/// notification without a valid order number), one record per kind.
pub fn unattributed_pk(day: NaiveDate) -> String {
    format!("UNATTRIBUTED#{}", day.format("%Y-%m-%d"))
}

pub(crate) fn status_pk(status: AnomalyStatus) -> String {
    match status {
        AnomalyStatus::Open => OPEN_KEY.to_owned(),
        AnomalyStatus::Resolved => "ANOMALY#RESOLVED".to_owned(),
    }
}

/// As chrono's `Serialize` writes it, so stored timestamps read back alike.
fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The pieces of one anomaly upsert, usable alone (`UpdateItem`) or in a transaction.
pub(crate) struct AnomalyUpsert {
    table: String,
    key: Item,
    expression: String,
    names: Vec<(String, String)>,
    values: Item,
}

impl AnomalyUpsert {
    pub(crate) fn into_transact(self) -> Result<Update, BuildError> {
        let mut update = Update::builder()
            .table_name(self.table)
            .set_key(Some(self.key))
            .update_expression(self.expression)
            .set_expression_attribute_values(Some(self.values));
        for (name, attribute) in self.names {
            update = update.expression_attribute_names(name, attribute);
        }
        update.build()
    }
}

pub(crate) fn anomaly_upsert(table: &str, anomaly: &Anomaly) -> Result<AnomalyUpsert, StoreError> {
    let latest: Item = to_item(anomaly).map_err(|e| {
        StoreError::Corrupt(format!("anomaly {} cannot be mapped: {e}", anomaly.id()))
    })?;
    let id = anomaly.id();
    let seen = rfc3339(anomaly.seen_at);
    let index_sk = format!("{seen}#{id}");
    let mut names = Vec::new();
    let mut values = Item::new();
    let mut sets = Vec::new();
    let mut set = |attribute: &str, value: AttributeValue, first_only: bool| {
        let name = format!("#{attribute}");
        let placeholder = format!(":{attribute}");
        sets.push(if first_only {
            format!("{name} = if_not_exists({name}, {placeholder})")
        } else {
            format!("{name} = {placeholder}")
        });
        names.push((name, attribute.to_owned()));
        values.insert(placeholder, value);
    };
    set("latest", AttributeValue::M(latest), false);
    set("id", s(id.clone()), false);
    set("status", s("OPEN"), false);
    set("last_seen", s(seen.clone()), false);
    set(GSI2PK, s(status_pk(AnomalyStatus::Open)), false);
    set("first_seen", s(seen), true);
    set(
        GSI1PK,
        s(anomaly_day_pk(beijing_day(anomaly.seen_at))),
        true,
    );
    set(GSI1SK, s(index_sk.clone()), true);
    set(GSI2SK, s(index_sk), true);
    names.push(("#occurrences".into(), "occurrences".into()));
    values.insert(":one".into(), n(1));
    let expression = format!("SET {} ADD #occurrences :one", sets.join(", "));
    let mut key = Item::new();
    let pk = match &anomaly.out_trade_no {
        Some(no) => order_pk(no),
        None => unattributed_pk(beijing_day(anomaly.seen_at)),
    };
    key.insert(PK.into(), s(pk));
    key.insert(
        SK.into(),
        s(format!("{ANOMALY_SK_PREFIX}{}", anomaly.kind.as_str())),
    );
    Ok(AnomalyUpsert {
        table: table.to_owned(),
        key,
        expression,
        names,
        values,
    })
}

pub(crate) fn decode(item: Item) -> Result<AnomalyRecord, StoreError> {
    let key = match (item.get(PK), item.get(SK)) {
        (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => format!("{pk} {sk}"),
        _ => String::from("(no key)"),
    };
    from_item(item).map_err(|e| StoreError::Corrupt(format!("anomaly item {key}: {e}")))
}

impl DynamoOrderStore {
    /// Records a sighting outside any transition (`OrderStore::record_anomaly`).
    pub(crate) async fn upsert_anomaly(&self, anomaly: &Anomaly) -> Result<(), StoreError> {
        let upsert = anomaly_upsert(self.table(), anomaly)?;
        let mut update = self
            .client()
            .update_item()
            .table_name(upsert.table)
            .set_key(Some(upsert.key))
            .update_expression(upsert.expression)
            .set_expression_attribute_values(Some(upsert.values));
        for (name, attribute) in upsert.names {
            update = update.expression_attribute_names(name, attribute);
        }
        // Boxed like the order writes' requests (see `orders::write`).
        Box::pin(update.send()).await.map_err(|e| {
            tracing::warn!(anomaly_id = %anomaly.id(), operation = "record_anomaly", outcome = "error", error = %describe(&e));
            StoreError::Unavailable(format!(
                "recording anomaly {}: {}",
                anomaly.id(),
                describe(&e)
            ))
        })?;
        Ok(())
    }

    /// The anomalies first seen on one Beijing day, oldest first (eventually consistent).
    pub async fn anomalies_of_day(&self, day: NaiveDate) -> Result<Vec<AnomalyRecord>, StoreError> {
        let day_key = anomaly_day_pk(day);
        let items = self
            .query_all("anomalies_of_day", &day_key, |query| {
                query
                    .index_name(DAY_INDEX)
                    .key_condition_expression("gsi1pk = :day")
                    .expression_attribute_values(":day", s(day_key.clone()))
            })
            .await?;
        items.into_iter().map(decode).collect()
    }

    /// Every open anomaly, oldest first (eventually consistent).
    pub async fn open_anomalies(&self) -> Result<Vec<AnomalyRecord>, StoreError> {
        let items = self
            .query_all("open_anomalies", OPEN_KEY, |query| {
                query
                    .index_name(STATUS_INDEX)
                    .key_condition_expression("gsi2pk = :status")
                    .expression_attribute_values(":status", s(OPEN_KEY))
            })
            .await?;
        items.into_iter().map(decode).collect()
    }

    /// The anomalies of one order (strongly consistent).
    pub async fn anomalies_of_order(
        &self,
        out_trade_no: &domain::OutTradeNo,
    ) -> Result<Vec<AnomalyRecord>, StoreError> {
        let items = self
            .query_all("anomalies_of_order", out_trade_no.as_str(), |query| {
                query
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":pk", s(order_pk(out_trade_no)))
                    .expression_attribute_values(":prefix", s(ANOMALY_SK_PREFIX))
                    .consistent_read(true)
            })
            .await?;
        items.into_iter().map(decode).collect()
    }
}

/// The key of the record an anomaly id names (`<out_trade_no>/<kind>` or
/// `unattributed/<yyyy-MM-dd>/<kind>`, see `Anomaly::id`); `None` for no such id.
pub(crate) fn anomaly_key(id: &str) -> Option<Item> {
    let (owner, kind) = id.rsplit_once('/')?;
    let kind = AnomalyKind::ALL.into_iter().find(|k| k.as_str() == kind)?;
    let pk = match owner.split_once('/') {
        Some((UNATTRIBUTED, day)) => {
            unattributed_pk(NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?)
        }
        Some(_) => return None,
        None => order_pk(&domain::OutTradeNo::parse(owner).ok()?),
    };
    Some(Item::from([
        (PK.to_owned(), s(pk)),
        (
            SK.to_owned(),
            s(format!("{ANOMALY_SK_PREFIX}{}", kind.as_str())),
        ),
    ]))
}

impl AnomalyDesk for DynamoOrderStore {
    async fn anomaly(&self, id: &str) -> Result<Option<AnomalyRecord>, StoreError> {
        let Some(key) = anomaly_key(id) else {
            return Ok(None);
        };
        let got = self
            .client()
            .get_item()
            .table_name(self.table())
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(format!("anomaly {id}: {}", describe(&e))))?;
        got.item.map(decode).transpose()
    }

    async fn resolve(&self, id: &str, resolution: &Resolution) -> Result<Resolved, StoreError> {
        let Some(key) = anomaly_key(id) else {
            return Ok(Resolved::NotFound);
        };
        let resolution_item: Item = to_item(resolution).map_err(|e| {
            StoreError::Corrupt(format!("the resolution of {id} cannot be mapped: {e}"))
        })?;
        let written = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key))
            .update_expression(
                "SET #status = :resolved, #gsi2pk = :resolved_pk, #resolution = :resolution",
            )
            .condition_expression("#status = :open")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#gsi2pk", GSI2PK)
            .expression_attribute_names("#resolution", "resolution")
            .expression_attribute_values(":resolved", s("RESOLVED"))
            .expression_attribute_values(":open", s("OPEN"))
            .expression_attribute_values(":resolved_pk", s(status_pk(AnomalyStatus::Resolved)))
            .expression_attribute_values(":resolution", AttributeValue::M(resolution_item))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match written {
            Ok(output) => match output.attributes {
                Some(item) => Ok(Resolved::Now(decode(item)?)),
                None => Err(StoreError::Corrupt(format!(
                    "resolving {id} returned nothing"
                ))),
            },
            Err(error) => match error.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    match failed.item.clone().filter(|item| !item.is_empty()) {
                        Some(item) => Ok(Resolved::NotOpen(decode(item)?)),
                        None => Ok(Resolved::NotFound),
                    }
                }
                _ => Err(StoreError::Unavailable(format!(
                    "resolving anomaly {id}: {}",
                    describe(&error)
                ))),
            },
        }
    }
}
