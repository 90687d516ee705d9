//! `DynamoNonceStore` against moto.

// Test code: a failing unwrap is a failing test. clippy.toml allows that in #[test] functions;
// this extends it to the helpers of this file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aws_adapters::DynamoNonceStore;
use chrono::{Duration, Utc};
use common::dynamo;
use domain::auth::{AuthHeaders, MerchantKeys, RequestToSign, authenticate, sign, string_to_sign};
use domain::ports::{NonceCheck, NonceStore};
use secrecy::SecretString;
use test_support::emulator_proxy::{EmulatorProxy, FaultKind, FaultPlan, FaultRates};

const SECRET: &str = "merchant-a-secret-0123456789-abcdefghij";

#[tokio::test]
async fn a_nonce_is_fresh_once_then_replayed_until_forgotten() {
    let db = dynamo().await;
    let nonces = DynamoNonceStore::new(db.client.clone(), &db.table);
    let later = Utc::now() + Duration::minutes(5);

    assert_eq!(
        nonces.remember("n-1", later).await.unwrap(),
        NonceCheck::Fresh
    );
    assert_eq!(
        nonces.remember("n-1", later).await.unwrap(),
        NonceCheck::Replayed
    );
    // Another nonce is new.
    assert_eq!(
        nonces.remember("n-2", later).await.unwrap(),
        NonceCheck::Fresh
    );
    assert_eq!(db.calls.take(), ["PutItem"; 3]);
}

#[tokio::test]
async fn a_nonce_whose_first_write_lost_its_answer_is_fresh_for_that_request() {
    let db = dynamo().await;
    // The first PutItem is written, then answered 500; the SDK sends it again, and the
    // condition fails on the item that first attempt wrote.
    let lost_once = FaultPlan::seeded(
        1,
        FaultRates {
            lost_answer: 1.0,
            ..FaultRates::NONE
        },
    )
    .at_most(1);
    let proxy = EmulatorProxy::start(&db.moto.endpoint_url(), lost_once)
        .await
        .unwrap();
    let config = db
        .moto
        .sdk_config()
        .into_builder()
        .endpoint_url(proxy.endpoint())
        .build();
    let nonces = DynamoNonceStore::new(
        aws_adapters::aws_sdk_dynamodb::Client::new(&config),
        &db.table,
    );
    let later = Utc::now() + Duration::minutes(5);

    assert_eq!(
        nonces.remember("n-lost", later).await.unwrap(),
        NonceCheck::Fresh
    );
    let counts = proxy.counts();
    assert_eq!(counts.total(FaultKind::LostAnswer), 1);
    assert_eq!(counts.passed, 1, "the SDK's retry");
    // Another request with the nonce is still a replay.
    assert_eq!(
        nonces.remember("n-lost", later).await.unwrap(),
        NonceCheck::Replayed
    );
}

#[tokio::test]
async fn a_nonce_used_under_one_key_id_is_replayed_under_another() {
    let db = dynamo().await;
    let nonces = DynamoNonceStore::new(db.client.clone(), &db.table);
    let key = |key_id: &str| {
        let mut keys = MerchantKeys::default();
        keys.insert(key_id, SecretString::from(SECRET.to_owned()));
        keys
    };
    // Two ids sharing one secret: the request signed with the first, replayed with the second.
    let (first, copy) = (key("merchant-a"), key("merchant-a-copy"));
    let request = RequestToSign {
        method: "GET",
        path: "/v1/payments/T1",
        raw_query: "",
        body: b"",
    };
    let now = Utc::now();
    let timestamp = now.timestamp().to_string();
    let nonce = "n01HMZ3W5X2Y8K7Q4R6T9V0ABCD";
    let signature = sign(
        &SecretString::from(SECRET.to_owned()),
        &string_to_sign(&request, &timestamp, nonce).unwrap(),
    );
    let headers = |key_id: &'static str| AuthHeaders {
        key_id: Some(key_id),
        timestamp: Some(&timestamp),
        nonce: Some(nonce),
        signature: Some(&signature),
    };
    let accepted = authenticate(&first, &nonces, &request, &headers("merchant-a"), now).await;
    assert_eq!(accepted.unwrap(), "merchant-a");
    let replayed = authenticate(&copy, &nonces, &request, &headers("merchant-a-copy"), now).await;
    assert_eq!(replayed.unwrap_err().code(), "auth_replayed_nonce");
    assert_eq!(db.calls.take(), ["PutItem"; 2]);
}

#[tokio::test]
async fn an_expired_nonce_not_yet_deleted_is_accepted_again() {
    let db = dynamo().await;
    let nonces = DynamoNonceStore::new(db.client.clone(), &db.table);
    let expired = Utc::now() - Duration::seconds(10);

    assert_eq!(
        nonces.remember("n", expired).await.unwrap(),
        NonceCheck::Fresh
    );
    // Still stored (DynamoDB deletes TTL items lazily), yet forgotten.
    let scan = db.client.scan().table_name(&db.table).send().await.unwrap();
    assert_eq!(scan.count, 1);
    let later = Utc::now() + Duration::minutes(5);
    assert_eq!(
        nonces.remember("n", later).await.unwrap(),
        NonceCheck::Fresh
    );
    assert_eq!(
        nonces.remember("n", later).await.unwrap(),
        NonceCheck::Replayed
    );
}
