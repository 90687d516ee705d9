//! Business events published per second by the local stack's publisher ([`streams`]): the
//! orders table's stream read from moto, each batch turned into events by the real
//! publisher and sent to the FIFO events queue in moto.
//!
//! `cargo bench -p local-stack --bench events_throughput` (run by `make bench-stack`).
//! `BENCH_EVENT_ORDERS` orders (default 500) are written first through `DynamoOrderStore`
//! by 8 concurrent writers, each claimed, created at Alipay, synced and paid (three public
//! events, eight stream records); then the publisher starts on the whole backlog and the
//! time until it has published every event is measured. Without `--bench` on the command
//! line (`cargo test --all-targets` runs bench targets that way) it runs a few, as a smoke
//! test. A wrong count of events is fatal; the rate is only reported.
//!
//! [`streams`]: local_stack::streams

use aws_adapters::aws_sdk_sqs::types::QueueAttributeName;
use aws_adapters::dynamo::schema::create_table;
use aws_adapters::{DynamoOrderStore, aws_sdk_dynamodb, aws_sdk_sqs};
use chrono::{Duration as Lease, Utc};
use domain::order::{NewOrder, Order, PaymentSource, Transition};
use domain::ports::{Applied, OrderStore};
use domain::{OrderAmount, OutTradeNo, Scene};
use local_stack::streams;
use std::error::Error;
use std::time::{Duration, Instant};
use test_support::MotoServer;

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const WRITERS: usize = 8;
const DEFAULT_ORDERS: usize = 500;
const PUBLIC_EVENTS_PER_ORDER: u64 = 3;
const TABLE: &str = "bench-events";
/// Give up when the publisher makes no progress for this long.
const STALL: Duration = Duration::from_secs(30);

fn main() -> BenchResult<()> {
    let full = std::env::args().any(|arg| arg == "--bench");
    let orders = match std::env::var("BENCH_EVENT_ORDERS") {
        Ok(text) => text
            .parse()
            .map_err(|e| format!("BENCH_EVENT_ORDERS={text}: not a count: {e}"))?,
        Err(_) if full => DEFAULT_ORDERS,
        Err(_) => 4,
    };
    tokio::runtime::Runtime::new()?.block_on(run(orders))
}

async fn run(orders: usize) -> BenchResult<()> {
    let moto = MotoServer::start().await?;
    let sdk = moto.sdk_config();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    create_table(&dynamo, TABLE).await?;
    let store = DynamoOrderStore::new(dynamo, TABLE);

    let written = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        let count = orders / WRITERS + usize::from(writer < orders % WRITERS);
        writers.push(tokio::spawn(async move {
            for _ in 0..count {
                write_order(&store).await?;
            }
            Ok::<_, Box<dyn Error + Send + Sync>>(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    let expected = orders as u64 * PUBLIC_EVENTS_PER_ORDER;
    println!(
        "events: {orders} orders written in {:.1} s ({expected} public events, {} stream records)",
        written.elapsed().as_secs_f64(),
        orders * 8
    );

    let started = Instant::now();
    let publisher = streams::start(&sdk, TABLE).await?;
    let mut last = (0, Instant::now());
    while publisher.published() < expected {
        let published = publisher.published();
        if published != last.0 {
            last = (published, Instant::now());
        } else if last.1.elapsed() > STALL {
            return Err(
                format!("the publisher stalled at {published} of {expected} events").into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let queue_url = publisher.queue_url().to_owned();
    publisher.shutdown().await;

    let queued = aws_sdk_sqs::Client::new(&sdk)
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await?
        .attributes
        .and_then(|a| {
            a.get(&QueueAttributeName::ApproximateNumberOfMessages)
                .cloned()
        })
        .unwrap_or_default();
    if queued != expected.to_string() {
        return Err(format!("{queued} messages queued, {expected} expected").into());
    }
    println!(
        "events: published {expected} in {elapsed:.2} s: {:.0} events/s ({:.0} stream records/s) \
         through one moto",
        expected as f64 / elapsed,
        (orders * 8) as f64 / elapsed
    );
    Ok(())
}

/// Claimed, created at Alipay, synced, paid: four transactions of two items.
async fn write_order(store: &DynamoOrderStore) -> BenchResult<()> {
    let now = Utc::now();
    let new = NewOrder {
        out_trade_no: OutTradeNo::generate(),
        amount: OrderAmount::from_fen(1500)?,
        subject: "Latte".into(),
        scene: Scene::Qr,
        store_id: None,
        operator_id: None,
        terminal_id: None,
        request_hash: "bench".into(),
        expires_at: now + Lease::minutes(15),
    };
    let (order, claim) = Order::claim(new, now, Lease::seconds(30));
    store.claim(&order, &claim).await?;
    let pending = apply(
        store,
        order.created_at_alipay(Some("https://qr.alipay.com/bench".into()), None, now)?,
    )
    .await?;
    let synced = apply(store, pending.synced(now)?).await?;
    apply(
        store,
        synced.paid(
            "2024".into(),
            now,
            PaymentSource::Notification,
            domain::order::Buyer::default(),
            now,
        )?,
    )
    .await?;
    Ok(())
}

async fn apply(store: &DynamoOrderStore, transition: Transition) -> BenchResult<Order> {
    match store.apply(&transition).await? {
        Applied::Applied(order) => Ok(order),
        Applied::Conflict(_) => Err("a transition of a fresh order conflicted".into()),
    }
}
