//! `DynamoNonceStore` against moto.

// Test code: a failing unwrap is a failing test. clippy.toml allows that in #[test] functions;
// this extends it to the helpers of this file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aws_adapters::DynamoNonceStore;
use chrono::{Duration, Utc};
use common::dynamo;
use domain::ports::{NonceCheck, NonceStore};

#[tokio::test]
async fn a_nonce_is_fresh_once_then_replayed_until_forgotten() {
    let db = dynamo().await;
    let nonces = DynamoNonceStore::new(db.client.clone(), &db.table);
    let later = Utc::now() + Duration::minutes(5);

    assert_eq!(
        nonces.remember("k1", "n-1", later).await.unwrap(),
        NonceCheck::Fresh
    );
    assert_eq!(
        nonces.remember("k1", "n-1", later).await.unwrap(),
        NonceCheck::Replayed
    );
    // The same nonce under another key, and another nonce under the same key, are new.
    assert_eq!(
        nonces.remember("k2", "n-1", later).await.unwrap(),
        NonceCheck::Fresh
    );
    assert_eq!(
        nonces.remember("k1", "n-2", later).await.unwrap(),
        NonceCheck::Fresh
    );
    assert_eq!(db.calls.take(), ["PutItem"; 4]);
}

#[tokio::test]
async fn an_expired_nonce_not_yet_deleted_is_accepted_again() {
    let db = dynamo().await;
    let nonces = DynamoNonceStore::new(db.client.clone(), &db.table);
    let expired = Utc::now() - Duration::seconds(10);

    assert_eq!(
        nonces.remember("k1", "n", expired).await.unwrap(),
        NonceCheck::Fresh
    );
    // Still stored (DynamoDB deletes TTL items lazily), yet forgotten.
    let scan = db.client.scan().table_name(&db.table).send().await.unwrap();
    assert_eq!(scan.count, 1);
    let later = Utc::now() + Duration::minutes(5);
    assert_eq!(
        nonces.remember("k1", "n", later).await.unwrap(),
        NonceCheck::Fresh
    );
    assert_eq!(
        nonces.remember("k1", "n", later).await.unwrap(),
        NonceCheck::Replayed
    );
}
