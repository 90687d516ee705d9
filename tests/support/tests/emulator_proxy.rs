//! The emulator proxy in front of a real moto server, over HTTP: without faults it passes
//! requests and answers through and keeps the client's connection open across requests
//! (moto closes its own after each answer); each fault reaches a real AWS SDK client (retries
//! off) as the service's error, with the effect it claims (nothing written, or written with
//! the answer lost), and is counted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_config::retry::RetryConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::Arc;
use test_support::emulator_proxy::{EmulatorProxy, FaultKind, FaultPlan, FaultRates};
use test_support::streams::create_stream_table;
use test_support::{MotoServer, unique_name};

type Item = HashMap<String, AttributeValue>;

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

fn item(pk: &str, value: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s("ITEM")),
        ("value".to_owned(), s(value)),
    ])
}

struct Setup {
    moto: Arc<MotoServer>,
    /// Straight to moto.
    direct: Client,
    table: String,
}

async fn setup() -> Setup {
    let moto = MotoServer::shared().await.unwrap();
    let direct = Client::new(&moto.sdk_config());
    let table = unique_name("proxy");
    create_stream_table(&direct, &table).await.unwrap();
    Setup {
        moto,
        direct,
        table,
    }
}

/// A client of the proxy that does not retry, so that each fault is seen as it was answered.
fn client_of(proxy: &EmulatorProxy, moto: &MotoServer) -> Client {
    let config = moto
        .sdk_config()
        .into_builder()
        .endpoint_url(proxy.endpoint())
        .retry_config(RetryConfig::disabled())
        .build();
    Client::new(&config)
}

async fn stored(setup: &Setup, pk: &str) -> Option<Item> {
    setup
        .direct
        .get_item()
        .table_name(&setup.table)
        .key("pk", s(pk))
        .key("sk", s("ITEM"))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn only(kind: FaultKind) -> FaultPlan {
    let mut rates = FaultRates::NONE;
    match kind {
        FaultKind::Throttled => rates.throttle = 1.0,
        FaultKind::Unavailable => rates.unavailable = 1.0,
        FaultKind::LostAnswer => rates.lost_answer = 1.0,
        FaultKind::ConditionFailed => rates.condition_failed = 1.0,
    }
    FaultPlan::seeded(1, rates)
}

#[tokio::test]
async fn without_faults_it_passes_through_on_one_kept_alive_connection() {
    let setup = setup().await;
    let proxy = EmulatorProxy::start(&setup.moto.endpoint_url(), FaultPlan::none())
        .await
        .unwrap();

    // A real SDK client: a write and a read through the proxy.
    let client = client_of(&proxy, &setup.moto);
    client
        .put_item()
        .table_name(&setup.table)
        .set_item(Some(item("A", "one")))
        .send()
        .await
        .unwrap();
    let got = client
        .get_item()
        .table_name(&setup.table)
        .key("pk", s("A"))
        .key("sk", s("ITEM"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.item, Some(item("A", "one")));
    assert_eq!(stored(&setup, "A").await, Some(item("A", "one")));

    // Several requests on one connection: moto would close it after the first answer.
    let before = proxy.connections();
    let address = proxy.endpoint().trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    for _ in 0..3 {
        sender.ready().await.unwrap();
        let request = hyper::Request::get("/moto-api/")
            .header("host", &address)
            .body(String::new())
            .unwrap();
        let response: hyper::Response<Incoming> = sender.send_request(request).await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        assert!(
            response.headers().get("connection").is_none(),
            "{:?}",
            response.headers()
        );
        // Read the whole answer before the next request.
        let mut body = response.into_body();
        while let Some(frame) = std::future::poll_fn(|cx| {
            hyper::body::Body::poll_frame(std::pin::Pin::new(&mut body), cx)
        })
        .await
        {
            frame.unwrap();
        }
    }
    assert_eq!(proxy.connections(), before + 1);

    let counts = proxy.counts();
    assert_eq!(counts.faults(), 0);
    assert_eq!(counts.passed, 5);
}

#[tokio::test]
async fn throttling_and_unavailability_are_the_services_errors_and_change_nothing() {
    let setup = setup().await;
    let proxy = EmulatorProxy::start(&setup.moto.endpoint_url(), only(FaultKind::Throttled))
        .await
        .unwrap();
    let client = client_of(&proxy, &setup.moto);
    for pk in ["T1", "T2", "T3", "T4"] {
        let err = client
            .put_item()
            .table_name(&setup.table)
            .set_item(Some(item(pk, "x")))
            .send()
            .await
            .unwrap_err();
        let err = err.into_service_error();
        assert!(
            matches!(
                err,
                PutItemError::ProvisionedThroughputExceededException(_)
                    | PutItemError::ThrottlingException(_)
            ),
            "{err:?}"
        );
        assert_eq!(stored(&setup, pk).await, None);
    }
    assert_eq!(proxy.counts().total(FaultKind::Throttled), 4);

    proxy.set_plan(only(FaultKind::Unavailable));
    let err = client
        .put_item()
        .table_name(&setup.table)
        .set_item(Some(item("U", "x")))
        .send()
        .await
        .unwrap_err();
    let raw = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(raw, Some(503));
    assert_eq!(err.code(), Some("ServiceUnavailable"));
    assert_eq!(stored(&setup, "U").await, None);

    // SQS (JSON protocol): its own throttling code, through the query-compatible header too.
    let sqs_config = setup
        .moto
        .sdk_config()
        .into_builder()
        .endpoint_url(proxy.endpoint())
        .retry_config(RetryConfig::disabled())
        .build();
    let sqs = aws_sdk_sqs::Client::new(&sqs_config);
    proxy.set_plan(only(FaultKind::Throttled));
    let err = sqs
        .list_queues()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("RequestThrottled"), "{err:?}");

    let counts = proxy.counts();
    assert_eq!(counts.total(FaultKind::Throttled), 5);
    assert_eq!(counts.total(FaultKind::Unavailable), 1);
    assert_eq!(
        counts.injected[&("AmazonSQS.ListQueues".to_owned(), FaultKind::Throttled)],
        1
    );
}

#[tokio::test]
async fn a_lost_answer_is_a_500_after_the_effect() {
    let setup = setup().await;
    let proxy = EmulatorProxy::start(&setup.moto.endpoint_url(), only(FaultKind::LostAnswer))
        .await
        .unwrap();
    let client = client_of(&proxy, &setup.moto);
    let err = client
        .put_item()
        .table_name(&setup.table)
        .set_item(Some(item("L", "written")))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert_eq!(err.code(), Some("InternalServerError"));
    assert_eq!(stored(&setup, "L").await, Some(item("L", "written")));
    assert_eq!(proxy.counts().total(FaultKind::LostAnswer), 1);
}

#[tokio::test]
async fn a_failed_condition_is_answered_with_the_stored_item_and_nothing_written() {
    let setup = setup().await;
    setup
        .direct
        .put_item()
        .table_name(&setup.table)
        .set_item(Some(item("C", "old")))
        .send()
        .await
        .unwrap();
    let proxy = EmulatorProxy::start(&setup.moto.endpoint_url(), only(FaultKind::ConditionFailed))
        .await
        .unwrap();
    let client = client_of(&proxy, &setup.moto);

    // An unconditional write is not a candidate: it passes.
    client
        .put_item()
        .table_name(&setup.table)
        .set_item(Some(item("P", "plain")))
        .send()
        .await
        .unwrap();
    assert_eq!(stored(&setup, "P").await, Some(item("P", "plain")));

    // PutItem whose condition holds in moto: refused as if another writer got there first.
    let err = client
        .put_item()
        .table_name(&setup.table)
        .set_item(Some(item("C", "new")))
        .condition_expression("#v = :old")
        .expression_attribute_names("#v", "value")
        .expression_attribute_values(":old", s("old"))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    let PutItemError::ConditionalCheckFailedException(failed) = err else {
        panic!("{err:?}");
    };
    assert_eq!(failed.item, Some(item("C", "old")));
    assert_eq!(stored(&setup, "C").await, Some(item("C", "old")));

    // A transaction: its first conditioned item failed (with the item), the others `None`.
    let put = |value: &str, condition: Option<&str>| {
        let mut put = Put::builder()
            .table_name(&setup.table)
            .set_item(Some(item(
                if condition.is_some() { "C" } else { "D" },
                value,
            )))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(condition) = condition {
            put = put
                .condition_expression(condition)
                .expression_attribute_names("#v", "value")
                .expression_attribute_values(":old", s("old"));
        }
        TransactWriteItem::builder()
            .put(put.build().unwrap())
            .build()
    };
    let err = client
        .transact_write_items()
        .transact_items(put("plain", None))
        .transact_items(put("new", Some("#v = :old")))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    let TransactWriteItemsError::TransactionCanceledException(cancelled) = err else {
        panic!("{err:?}");
    };
    let reasons = cancelled.cancellation_reasons();
    let codes: Vec<Option<&str>> = reasons.iter().map(|r| r.code()).collect();
    assert_eq!(codes, [Some("None"), Some("ConditionalCheckFailed")]);
    assert_eq!(reasons[1].item(), Some(&item("C", "old")));
    assert_eq!(stored(&setup, "C").await, Some(item("C", "old")));
    assert_eq!(stored(&setup, "D").await, None);

    let counts = proxy.counts();
    assert_eq!(counts.total(FaultKind::ConditionFailed), 2);
    assert_eq!(
        counts.injected[&(
            "DynamoDB_20120810.TransactWriteItems".to_owned(),
            FaultKind::ConditionFailed
        )],
        1
    );
}

#[tokio::test]
async fn faults_are_drawn_at_their_rates_from_the_seed() {
    let setup = setup().await;
    let rates = FaultRates {
        throttle: 0.25,
        unavailable: 0.25,
        ..FaultRates::NONE
    };
    let proxy = EmulatorProxy::start(&setup.moto.endpoint_url(), FaultPlan::seeded(42, rates))
        .await
        .unwrap();
    let client = client_of(&proxy, &setup.moto);
    let mut outcomes = Vec::new();
    for round in 0..2 {
        proxy.set_plan(FaultPlan::seeded(42, rates).with_operation("GetItem", FaultRates::NONE));
        let mut failed = Vec::new();
        for i in 0..40 {
            let put = client
                .put_item()
                .table_name(&setup.table)
                .set_item(Some(item(&format!("R{round}-{i}"), "x")))
                .send()
                .await;
            failed.push(put.is_err());
            // Exempted from faults: always answers.
            client
                .get_item()
                .table_name(&setup.table)
                .key("pk", s("none"))
                .key("sk", s("ITEM"))
                .send()
                .await
                .unwrap();
        }
        outcomes.push(failed);
    }
    // The same seed draws the same faults.
    assert_eq!(outcomes[0], outcomes[1]);
    let faults = outcomes[0].iter().filter(|f| **f).count();
    assert!((8..=32).contains(&faults), "{faults} of 40");
    let counts = proxy.counts();
    assert_eq!(counts.faults() as usize, 2 * faults);
    assert_eq!(counts.passed as usize, 80 + 80 - 2 * faults);
}
