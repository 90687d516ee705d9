//! `SqsExpiryScheduler` against moto: the body, the delay, and that the delay holds.

// Test code: a failing unwrap is a failing test. clippy.toml allows that in #[test] functions;
// this extends it to the helpers of this file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_adapters::aws_sdk_sqs;
use aws_adapters::aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_adapters::aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_adapters::aws_sdk_sqs::error::BoxError;
use aws_adapters::{ExpiryMessage, SqsExpiryScheduler};
use chrono::{DateTime, Duration, Utc};
use domain::OutTradeNo;
use domain::ports::{ClaimRef, ExpiryScheduler};
use std::sync::{Arc, Mutex};
use test_support::{MotoServer, unique_name};

/// The `DelaySeconds` of every SendMessage the client sent.
#[derive(Debug, Clone, Default)]
struct Delays(Arc<Mutex<Vec<i64>>>);

impl Intercept for Delays {
    fn name(&self) -> &'static str {
        "Delays"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        if target.ends_with("SendMessage") {
            let body: serde_json::Value =
                serde_json::from_slice(request.body().bytes().unwrap()).unwrap();
            self.0
                .lock()
                .unwrap()
                .push(body["DelaySeconds"].as_i64().unwrap());
        }
        Ok(())
    }
}

struct Queue {
    _moto: Arc<MotoServer>,
    client: aws_sdk_sqs::Client,
    url: String,
    delays: Delays,
}

async fn queue() -> Queue {
    let moto = MotoServer::shared().await.unwrap();
    let delays = Delays::default();
    let config = aws_sdk_sqs::config::Builder::from(&moto.sdk_config())
        .interceptor(delays.clone())
        .build();
    let client = aws_sdk_sqs::Client::from_conf(config);
    let created = client
        .create_queue()
        .queue_name(unique_name("expiry"))
        .send()
        .await
        .unwrap();
    Queue {
        _moto: moto,
        client,
        url: created.queue_url.unwrap(),
        delays,
    }
}

async fn receive(queue: &Queue, wait_seconds: i32) -> Vec<ExpiryMessage> {
    let received = queue
        .client
        .receive_message()
        .queue_url(&queue.url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_seconds)
        .send()
        .await
        .unwrap();
    received
        .messages
        .unwrap_or_default()
        .iter()
        .map(|m| ExpiryMessage::parse(m.body().unwrap()).unwrap())
        .collect()
}

fn schedule_in(seconds: i64) -> (OutTradeNo, DateTime<Utc>) {
    (
        OutTradeNo::generate(),
        Utc::now() + Duration::seconds(seconds),
    )
}

#[tokio::test]
async fn delays_are_the_time_left_clamped_to_900_seconds() {
    let queue = queue().await;
    let scheduler = SqsExpiryScheduler::new(queue.client.clone(), &queue.url);

    let (soon, soon_due) = schedule_in(10);
    scheduler.schedule(&soon, soon_due).await.unwrap();
    let (late, late_due) = schedule_in(2 * 3600);
    scheduler.schedule(&late, late_due).await.unwrap();
    let (past, past_due) = schedule_in(-60);
    scheduler.schedule(&past, past_due).await.unwrap();

    let delays = queue.delays.0.lock().unwrap().clone();
    assert!((9..=10).contains(&delays[0]), "{delays:?}");
    assert_eq!(delays[1..], [900, 0]);

    // Only the past one is visible now, with the documented body.
    assert_eq!(
        receive(&queue, 0).await,
        [ExpiryMessage {
            out_trade_no: past,
            due_at: past_due,
            claim: None,
        }]
    );
}

#[tokio::test]
async fn a_message_scheduled_before_its_claim_names_the_claim() {
    let queue = queue().await;
    let scheduler = SqsExpiryScheduler::new(queue.client.clone(), &queue.url);
    let (no, due_at) = schedule_in(-1);
    let claim = ClaimRef {
        claimed_at: due_at - Duration::seconds(900),
        request_hash: "9f86d081884c7d65".into(),
    };
    scheduler.schedule_claim(&no, due_at, &claim).await.unwrap();
    assert_eq!(
        receive(&queue, 0).await,
        [ExpiryMessage {
            out_trade_no: no,
            due_at,
            claim: Some(claim),
        }]
    );
}

#[tokio::test]
async fn a_delayed_message_shows_up_only_after_its_delay() {
    let queue = queue().await;
    let scheduler = SqsExpiryScheduler::new(queue.client.clone(), &queue.url);
    let (no, due_at) = schedule_in(2);
    scheduler.schedule(&no, due_at).await.unwrap();

    assert!(
        receive(&queue, 0).await.is_empty(),
        "not visible before its delay"
    );
    let arrived = receive(&queue, 6).await;
    assert!(Utc::now() >= due_at);
    let message = arrived.first().expect("visible after its delay");
    assert_eq!(message.out_trade_no, no);
    assert_eq!(message.due_at, due_at);
    assert!(message.is_due(Utc::now()));
}

#[tokio::test]
async fn an_early_message_is_scheduled_again_for_the_rest_of_its_time() {
    // The chained contract: timeout-close gets a message whose order is not due yet and
    // schedules the same due time again.
    let queue = queue().await;
    let scheduler = SqsExpiryScheduler::new(queue.client.clone(), &queue.url);
    let early = ExpiryMessage {
        out_trade_no: OutTradeNo::generate(),
        due_at: Utc::now() + Duration::seconds(1200),
        claim: None,
    };
    assert!(!early.is_due(Utc::now()));
    scheduler
        .schedule(&early.out_trade_no, early.due_at)
        .await
        .unwrap();
    assert_eq!(*queue.delays.0.lock().unwrap(), [900]);
}
