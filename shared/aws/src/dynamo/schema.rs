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
//! [`create_table`] creates it for tests and the local stack; it is idempotent. The stream
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

/// Creates the table if it does not exist, waits until it is active, and enables TTL on
/// `ttl` and the stream (new and old images) if they are not enabled yet.
pub async fn create_table(client: &Client, name: &str) -> Result<(), SchemaError> {
    let failed = |reason: String| SchemaError {
        table: name.to_owned(),
        reason,
    };
    let key = |attribute: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(attribute)
            .key_type(key_type)
            .build()
            .map_err(|e| failed(e.to_string()))
    };
    let string_attribute = |attribute: &str| {
        AttributeDefinition::builder()
            .attribute_name(attribute)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| failed(e.to_string()))
    };
    let index = |name: &str, hash: &str, range: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(hash, KeyType::Hash)?)
            .key_schema(key(range, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(|e| failed(e.to_string()))
    };

    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute(PK)?)
        .attribute_definitions(string_attribute(SK)?)
        .attribute_definitions(string_attribute(GSI1PK)?)
        .attribute_definitions(string_attribute(GSI1SK)?)
        .attribute_definitions(string_attribute(GSI2PK)?)
        .attribute_definitions(string_attribute(GSI2SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(index(DAY_INDEX, GSI1PK, GSI1SK)?)
        .global_secondary_indexes(index(STATUS_INDEX, GSI2PK, GSI2SK)?)
        .stream_specification(stream(name)?)
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
            .stream_specification(stream(name)?)
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
                    .attribute_name(TTL_ATTRIBUTE)
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

fn stream(table: &str) -> Result<StreamSpecification, SchemaError> {
    StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewAndOldImages)
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
