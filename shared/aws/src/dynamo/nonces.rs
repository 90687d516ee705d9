//! [`DynamoNonceStore`]: merchant-API nonces, remembered until `forget_after`.
//!
//! One conditional `PutItem` per nonce: `pk = NONCE#<nonce>`, `sk = NONCE`,
//! `ttl = <forget_after, unix seconds>`, condition `attribute_not_exists(pk) OR #ttl < :now`.
//! DynamoDB deletes expired items lazily (often within days, not seconds), so an item whose
//! `ttl` has passed counts as forgotten and is overwritten. The key id is not part of the
//! item's key: a nonce is used once across all keys (see [`domain::ports::NonceStore`]).
//!
//! Each call writes a random `attempt` id too, and asks for the stored item when the condition
//! fails: when the SDK resends a `PutItem` whose first attempt was written but answered with an
//! error (a 500 after the effect), the stored item is this call's own and the nonce is fresh,
//! not replayed.

use super::schema::TTL_ATTRIBUTE;
use super::{PK, SK, n, s};
use crate::error::describe;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use domain::ports::{NonceCheck, NonceStore, StoreError};

const NONCE_SK: &str = "NONCE";
/// The id of the call that stored the nonce.
const ATTEMPT: &str = "attempt";

pub fn nonce_pk(nonce: &str) -> String {
    format!("NONCE#{nonce}")
}

#[derive(Debug, Clone)]
pub struct DynamoNonceStore {
    client: Client,
    table: String,
}

impl DynamoNonceStore {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoNonceStore {
        DynamoNonceStore {
            client,
            table: table.into(),
        }
    }
}

impl NonceStore for DynamoNonceStore {
    async fn remember(
        &self,
        nonce: &str,
        forget_after: DateTime<Utc>,
    ) -> Result<NonceCheck, StoreError> {
        let attempt = ulid::Ulid::generate().to_string();
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(nonce_pk(nonce)))
            .item(SK, s(NONCE_SK))
            .item(TTL_ATTRIBUTE, n(forget_after.timestamp()))
            .item(ATTEMPT, s(attempt.clone()))
            .condition_expression("attribute_not_exists(pk) OR #ttl < :now")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(Utc::now().timestamp()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => {
                tracing::debug!(operation = "remember_nonce", outcome = "fresh");
                Ok(NonceCheck::Fresh)
            }
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    let stored = failed.item().and_then(|item| item.get(ATTEMPT));
                    if stored == Some(&AttributeValue::S(attempt)) {
                        tracing::info!(
                            operation = "remember_nonce",
                            outcome = "fresh",
                            note = "stored by an earlier attempt of this call"
                        );
                        return Ok(NonceCheck::Fresh);
                    }
                    tracing::warn!(operation = "remember_nonce", outcome = "replayed");
                    Ok(NonceCheck::Replayed)
                }
                _ => {
                    tracing::warn!(operation = "remember_nonce", outcome = "error", error = %describe(&err));
                    Err(StoreError::Unavailable(format!(
                        "remembering a nonce: {}",
                        describe(&err)
                    )))
                }
            },
        }
    }
}
