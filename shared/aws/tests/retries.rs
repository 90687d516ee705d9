//! What moto cannot show: DynamoDB cancelling a transaction because another one on the same
//! items was in flight (`TransactionConflict`), and a store that fails. A stand-in DynamoDB
//! on 127.0.0.1 answers each request with the next canned response.

// Test code: a failing unwrap is a failing test. clippy.toml allows that in #[test] functions;
// this extends it to the helpers of this file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aws_adapters::DynamoOrderStore;
use aws_adapters::aws_sdk_dynamodb;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use chrono::Utc;
use common::claimed;
use domain::OutTradeNo;
use domain::ports::{Claim, OrderStore, StoreError};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

const CANCELLED: &str = "com.amazonaws.dynamodb.v20120810#TransactionCanceledException";

#[derive(Clone)]
struct Canned {
    responses: Arc<Mutex<VecDeque<(StatusCode, String)>>>,
    targets: Arc<Mutex<Vec<String>>>,
}

fn cancelled(codes: [&str; 2]) -> (StatusCode, String) {
    let reasons: Vec<_> = codes
        .iter()
        .map(|code| serde_json::json!({"Code": code, "Message": "stand-in"}))
        .collect();
    let body = serde_json::json!({
        "__type": CANCELLED,
        "Message": format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", codes.join(", ")),
        "CancellationReasons": reasons,
    });
    (StatusCode::BAD_REQUEST, body.to_string())
}

fn ok() -> (StatusCode, String) {
    (StatusCode::OK, "{}".to_owned())
}

/// A stand-in DynamoDB and a store pointed at it.
async fn stand_in(responses: Vec<(StatusCode, String)>) -> (DynamoOrderStore, Canned) {
    let canned = Canned {
        responses: Arc::new(Mutex::new(responses.into())),
        targets: Arc::default(),
    };
    let state = canned.clone();
    let app = Router::new().fallback(move |headers: HeaderMap| {
        let state = state.clone();
        async move {
            let target = headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?");
            state
                .targets
                .lock()
                .unwrap()
                .push(target.rsplit('.').next().unwrap_or(target).to_owned());
            let (status, body) = state
                .responses
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| (StatusCode::INTERNAL_SERVER_ERROR, "{}".to_owned()));
            (
                status,
                [(header::CONTENT_TYPE, "application/x-amz-json-1.0")],
                body,
            )
                .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(2))
        .build();
    let store = DynamoOrderStore::new(aws_sdk_dynamodb::Client::from_conf(config), "orders");
    (store, canned)
}

#[tokio::test]
async fn a_claim_cancelled_by_a_concurrent_transaction_is_tried_again() {
    let (store, canned) = stand_in(vec![
        cancelled(["TransactionConflict", "None"]),
        cancelled(["None", "TransactionConflict"]),
        ok(),
    ])
    .await;
    let (order, event) = claimed(&OutTradeNo::generate(), "h", Utc::now());
    assert_eq!(store.claim(&order, &event).await.unwrap(), Claim::Claimed);
    assert_eq!(*canned.targets.lock().unwrap(), ["TransactWriteItems"; 3]);
}

#[tokio::test]
async fn conflicts_that_do_not_clear_make_the_store_unavailable() {
    let (store, canned) = stand_in(vec![cancelled(["TransactionConflict", "None"]); 10]).await;
    let (order, _) = claimed(&OutTradeNo::generate(), "h", Utc::now());
    let pending = order.created_at_alipay(None, None, Utc::now()).unwrap();
    let failed = store.apply(&pending).await;
    let Err(StoreError::Unavailable(message)) = failed else {
        panic!("expected Unavailable, got {failed:?}");
    };
    assert!(message.contains("TransactionConflict"), "{message}");
    assert_eq!(canned.targets.lock().unwrap().len(), 4, "four attempts");
}

#[tokio::test]
async fn a_failing_store_is_unavailable() {
    let (store, _canned) = stand_in(vec![
        (
            StatusCode::BAD_REQUEST,
            serde_json::json!({
                "__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
                "Message": "Requested resource not found",
            })
            .to_string(),
        ),
        (StatusCode::INTERNAL_SERVER_ERROR, "{}".to_owned()),
        (StatusCode::INTERNAL_SERVER_ERROR, "{}".to_owned()),
    ])
    .await;
    let no = OutTradeNo::generate();
    let (order, event) = claimed(&no, "h", Utc::now());
    let failed = store.claim(&order, &event).await;
    let Err(StoreError::Unavailable(message)) = failed else {
        panic!("expected Unavailable, got {failed:?}");
    };
    assert!(message.contains("ResourceNotFoundException"), "{message}");
    assert!(message.contains(no.as_str()), "{message}");
    assert!(matches!(
        store.get(&no).await,
        Err(StoreError::Unavailable(_))
    ));
}
