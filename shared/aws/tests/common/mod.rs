//! Shared by the adapter tests: one moto server per test binary (shared by the tests that run
//! at the same time), a table or queue of a unique name per test, orders to store.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_adapters::aws_sdk_dynamodb;
use aws_adapters::aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_adapters::aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_adapters::aws_sdk_dynamodb::error::BoxError;
use aws_adapters::dynamo::schema::create_table;
use chrono::{DateTime, Duration, Utc};
use domain::order::{NewOrder, Order, OrderEvent};
use domain::{OrderAmount, OutTradeNo, Scene};
use std::sync::{Arc, Mutex};
use test_support::{MotoServer, unique_name};

pub struct Dynamo {
    pub moto: Arc<MotoServer>,
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
    /// The DynamoDB operations the client sent, in order (retries included).
    pub calls: Calls,
}

/// A fresh table in the shared moto server, and a client that records its calls.
pub async fn dynamo() -> Dynamo {
    let moto = MotoServer::shared().await.unwrap();
    let calls = Calls::default();
    let config = aws_sdk_dynamodb::config::Builder::from(&moto.sdk_config())
        .interceptor(calls.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = unique_name("orders");
    create_table(&client, &table).await.unwrap();
    // Creating it again is fine.
    create_table(&client, &table).await.unwrap();
    calls.clear();
    Dynamo {
        moto,
        client,
        table,
        calls,
    }
}

#[derive(Debug, Clone, Default)]
pub struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "Calls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // DynamoDB's JSON protocol names the operation in X-Amz-Target:
        // "DynamoDB_20120810.TransactWriteItems".
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("?");
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        self.0.lock().unwrap().push(operation);
        Ok(())
    }
}

pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

/// A claimed order (CREATING, version 1) and its claim event, every optional field set.
pub fn claimed(no: &OutTradeNo, request_hash: &str, now: DateTime<Utc>) -> (Order, OrderEvent) {
    let new = NewOrder {
        out_trade_no: no.clone(),
        amount: OrderAmount::from_fen(12_345).unwrap(),
        subject: "咖啡 coffee".into(),
        scene: Scene::Qr,
        store_id: Some("S01".into()),
        operator_id: Some("op7".into()),
        terminal_id: None,
        request_hash: request_hash.into(),
        expires_at: now + Duration::minutes(15),
    };
    Order::claim(new, now, Duration::seconds(30))
}
