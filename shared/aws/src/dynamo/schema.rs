//! The table, as `template.yaml` declares it (keep the two in step):
//!
//! ```yaml
//! BillingMode: PAY_PER_REQUEST
//! AttributeDefinitions: [pk S, sk S, gsi1pk S, gsi1sk S, gsi2pk S, gsi2sk S]
//! KeySchema: [pk HASH, sk RANGE]
//! GlobalSecondaryIndexes:
//!   - IndexName: gsi1
//!     KeySchema: [gsi1pk HASH, gsi1sk RANGE]
//!     Projection: { ProjectionType: ALL }
//!   - IndexName: gsi2
//!     KeySchema: [gsi2pk HASH, gsi2sk RANGE]
//!     Projection: { ProjectionType: ALL }
//! TimeToLiveSpecification: { AttributeName: ttl, Enabled: true }
//! StreamSpecification: { StreamViewType: NEW_AND_OLD_IMAGES }
//! ```
//!
//! [`table_definition`] is that definition in code (the local stack's drift test compares it
//! with the template), and [`create_table`] creates it for tests and the local stack; it is
//! idempotent. The stream
//! feeds the business event publisher (`functions/publish-events`): old images tell it
//! whether an anomaly record's `occurrences` grew.

use super::{PK, SK};
use crate::error::describe;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use std::time::Duration;

/// The day index: orders by Beijing day of creation, anomalies by day of first sighting.
pub const DAY_INDEX: &str = "gsi1";
pub(crate) const GSI1PK: &str = "gsi1pk";
pub(crate) const GSI1SK: &str = "gsi1sk";
/// The status index (sparse): anomalies by status.
pub const STATUS_INDEX: &str = "gsi2";
pub(crate) const GSI2PK: &str = "gsi2pk";
pub(crate) const GSI2SK: &str = "gsi2sk";
/// The TTL attribute (unix seconds).
pub const TTL_ATTRIBUTE: &str = "ttl";

const ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
#[error("table {table}: {reason}")]
pub struct SchemaError {
    pub table: String,
    pub reason: String,
}

/// One key of a key schema: the attribute and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDefinition {
    pub attribute: &'static str,
    pub key_type: KeyType,
}

/// A global secondary index as created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDefinition {
    pub name: &'static str,
    pub key_schema: Vec<KeyDefinition>,
    pub projection: ProjectionType,
}

/// The table as [`create_table`] creates it: the one place its definition is written, which
/// the local stack's drift test compares with `OrdersTable` in `template.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDefinition {
    pub billing_mode: BillingMode,
    /// Attribute name and type, in declaration order.
    pub attributes: Vec<(&'static str, ScalarAttributeType)>,
    pub key_schema: Vec<KeyDefinition>,
    pub indexes: Vec<IndexDefinition>,
    pub stream_view_type: StreamViewType,
    pub ttl_attribute: &'static str,
}

/// The orders table's definition (whatever its name).
pub fn table_definition() -> TableDefinition {
    let key = |attribute, key_type| KeyDefinition {
        attribute,
        key_type,
    };
    let index = |name, hash, range| IndexDefinition {
        name,
        key_schema: vec![key(hash, KeyType::Hash), key(range, KeyType::Range)],
        projection: ProjectionType::All,
    };
    TableDefinition {
        billing_mode: BillingMode::PayPerRequest,
        attributes: [PK, SK, GSI1PK, GSI1SK, GSI2PK, GSI2SK]
            .into_iter()
            .map(|name| (name, ScalarAttributeType::S))
            .collect(),
        key_schema: vec![key(PK, KeyType::Hash), key(SK, KeyType::Range)],
        indexes: vec![
            index(DAY_INDEX, GSI1PK, GSI1SK),
            index(STATUS_INDEX, GSI2PK, GSI2SK),
        ],
        stream_view_type: StreamViewType::NewAndOldImages,
        ttl_attribute: TTL_ATTRIBUTE,
    }
}

/// Creates the table (as [`table_definition`] describes it) if it does not exist, waits until
/// it is active, and enables TTL and the stream if they are not enabled yet.
pub async fn create_table(client: &Client, name: &str) -> Result<(), SchemaError> {
    let failed = |reason: String| SchemaError {
        table: name.to_owned(),
        reason,
    };
    let definition = table_definition();
    let keys = |schema: &[KeyDefinition]| {
        schema
            .iter()
            .map(|key| {
                KeySchemaElement::builder()
                    .attribute_name(key.attribute)
                    .key_type(key.key_type.clone())
                    .build()
                    .map_err(|e| failed(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let attributes = definition
        .attributes
        .iter()
        .map(|(attribute, kind)| {
            AttributeDefinition::builder()
                .attribute_name(*attribute)
                .attribute_type(kind.clone())
                .build()
                .map_err(|e| failed(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let indexes = definition
        .indexes
        .iter()
        .map(|index| {
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .set_key_schema(Some(keys(&index.key_schema)?))
                .projection(
                    Projection::builder()
                        .projection_type(index.projection.clone())
                        .build(),
                )
                .build()
                .map_err(|e| failed(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(definition.billing_mode.clone())
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(keys(&definition.key_schema)?))
        .set_global_secondary_indexes(Some(indexes))
        .stream_specification(stream(name, &definition)?)
        .send()
        .await;
    match created {
        Ok(_) => tracing::info!(
            table = name,
            operation = "create_table",
            outcome = "created"
        ),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            tracing::info!(table = name, operation = "create_table", outcome = "exists");
        }
        Err(err) => return Err(failed(describe(&err))),
    }

    let status = wait_active(client, name).await.map_err(failed)?;
    if !status.stream_enabled {
        client
            .update_table()
            .table_name(name)
            .stream_specification(stream(name, &definition)?)
            .send()
            .await
            .map_err(|e| failed(describe(&e)))?;
        wait_active(client, name).await.map_err(failed)?;
    }

    let ttl = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| failed(describe(&e)))?;
    let enabled = ttl.time_to_live_description().is_some_and(|d| {
        matches!(
            d.time_to_live_status(),
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        )
    });
    if !enabled {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(definition.ttl_attribute)
                    .enabled(true)
                    .build()
                    .map_err(|e| failed(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| failed(describe(&e)))?;
    }
    Ok(())
}

fn stream(table: &str, definition: &TableDefinition) -> Result<StreamSpecification, SchemaError> {
    StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(definition.stream_view_type.clone())
        .build()
        .map_err(|e| SchemaError {
            table: table.to_owned(),
            reason: e.to_string(),
        })
}

/// What [`wait_active`] saw of an active table.
struct ActiveTable {
    stream_enabled: bool,
}

async fn wait_active(client: &Client, name: &str) -> Result<ActiveTable, String> {
    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = described.table().and_then(|t| t.table_status());
        if status == Some(&TableStatus::Active) {
            let stream_enabled = described
                .table()
                .and_then(|t| t.stream_specification())
                .is_some_and(|spec| spec.stream_enabled());
            return Ok(ActiveTable { stream_enabled });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "not active after {ACTIVE_TIMEOUT:?} (status {status:?})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
