//! [`DynamoNonceStore`]: merchant-API nonces, remembered per key until `forget_after`.
//!
//! One conditional `PutItem` per nonce: `pk = NONCE#<key_id>#<nonce>`, `sk = NONCE`,
//! `ttl = <forget_after, unix seconds>`, condition `attribute_not_exists(pk) OR #ttl < :now`.
//! DynamoDB deletes expired items lazily (often within days, not seconds), so an item whose
//! `ttl` has passed counts as forgotten and is overwritten.

use super::schema::TTL_ATTRIBUTE;
use super::{PK, SK, n, s};
use crate::error::describe;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use domain::ports::{NonceCheck, NonceStore, StoreError};

const NONCE_SK: &str = "NONCE";

/// `NONCE#<key_id>#<nonce>`; a `#` or `%` in the key id is escaped, so two (key id, nonce)
/// pairs never share a key.
pub fn nonce_pk(key_id: &str, nonce: &str) -> String {
    let key_id = key_id.replace('%', "%25").replace('#', "%23");
    format!("NONCE#{key_id}#{nonce}")
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
        key_id: &str,
        nonce: &str,
        forget_after: DateTime<Utc>,
    ) -> Result<NonceCheck, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(nonce_pk(key_id, nonce)))
            .item(SK, s(NONCE_SK))
            .item(TTL_ATTRIBUTE, n(forget_after.timestamp()))
            .condition_expression("attribute_not_exists(pk) OR #ttl < :now")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(Utc::now().timestamp()))
            .send()
            .await;
        match put {
            Ok(_) => {
                tracing::debug!(key_id, operation = "remember_nonce", outcome = "fresh");
                Ok(NonceCheck::Fresh)
            }
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                tracing::warn!(key_id, operation = "remember_nonce", outcome = "replayed");
                Ok(NonceCheck::Replayed)
            }
            Err(err) => {
                tracing::warn!(key_id, operation = "remember_nonce", outcome = "error", error = %describe(&err));
                Err(StoreError::Unavailable(format!(
                    "remembering a nonce of key {key_id}: {}",
                    describe(&err)
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_cannot_borrow_part_of_the_nonce() {
        assert_eq!(nonce_pk("k1", "n"), "NONCE#k1#n");
        assert_ne!(nonce_pk("a#b", "c"), nonce_pk("a", "b#c"));
    }
}
