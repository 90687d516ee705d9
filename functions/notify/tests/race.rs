//! Notifications racing the expiry job and merchant GETs on the same orders, over many
//! seeded interleavings, against the AWS emulator and the Alipay sandbox (which delivers its
//! own notifications over HTTP meanwhile). After each batch, every order must agree with
//! Alipay's truth and its own history:
//!
//! - no PAID order was ever closed, and no CLOSED order was ever paid;
//! - a trade the sandbox reports paid has a PAID order here, or a `paid_after_close` anomaly;
//! - a trade the sandbox does not report paid has no PAID order here;
//! - exactly one audit (outbox) event per committed version, versions 1, 2, 3, … with no gap.
//!
//! `RACE_INTERLEAVINGS` (default 500) and `RACE_SEED` (default fixed) reproduce a run; the
//! seed and each order's schedule are printed when an invariant fails.

mod common;

use aws_adapters::{DynamoOrderStore, ExpiryMessage, SqsExpiryScheduler};
use chrono::{DateTime, Utc};
use common::*;
use domain::OutTradeNo;
use domain::anomaly::AnomalyKind;
use domain::fence::LeasePolicy;
use domain::order::{EventKind, OrderStatus};
use domain::ports::Clock;
use f2f_runtime::{Function, SystemClock};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use timeout_close::Expiries;

/// The system clock moved past every order's expiry: the expiry job acts at once.
#[derive(Clone, Copy)]
struct Later;

impl Clock for Later {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::minutes(20)
    }
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// SplitMix64: a tiny seeded generator, enough to draw schedules reproducibly.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Buyer {
    Nothing,
    Scans,
    Pays,
}

/// One order's schedule: what the buyer does, and when (ms) each actor starts.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    buyer: Buyer,
    buyer_at: u64,
    expire_at: u64,
    get_at: u64,
    /// A second, late copy of a notification (the paid one if the buyer pays, else a
    /// WAIT_BUYER_PAY), when set.
    replay_at: Option<u64>,
}

fn draw_schedule(draw: &mut Draw) -> Schedule {
    let buyer = match draw.below(3) {
        0 => Buyer::Nothing,
        1 => Buyer::Scans,
        _ => Buyer::Pays,
    };
    Schedule {
        buyer,
        buyer_at: draw.below(600),
        expire_at: draw.below(60),
        get_at: draw.below(100),
        replay_at: (draw.below(2) == 0).then(|| draw.below(700)),
    }
}

type Expiry = Expiries<DynamoOrderStore, SqsExpiryScheduler, alipay::client::AlipayClient, Later>;

struct Actors {
    stack: Stack,
    expiries: Expiry,
    orders: query::Orders<DynamoOrderStore, alipay::client::AlipayClient, SystemClock>,
}

async fn run(actors: Arc<Actors>, no: String, schedule: Schedule) -> TestResult {
    let s = &actors.stack;
    let number = OutTradeNo::parse(&no)?;
    let buyer = {
        let env = &s.env;
        let no = no.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(schedule.buyer_at)).await;
            let path = match schedule.buyer {
                Buyer::Nothing => return Ok::<_, Box<dyn std::error::Error + Send + Sync>>(()),
                Buyer::Scans => format!("/sandbox/trades/{no}/scan"),
                Buyer::Pays => format!("/sandbox/trades/{no}/pay"),
            };
            // 409 when the expiry job closed the trade first: the buyer is too late.
            env.sandbox_post(&path, json!({})).await?;
            Ok(())
        }
    };
    let expire = async {
        tokio::time::sleep(Duration::from_millis(schedule.expire_at)).await;
        let message = ExpiryMessage {
            out_trade_no: number.clone(),
            due_at: Utc::now(),
            claim: None,
        };
        // A transient failure would be redelivered by SQS: do the same.
        for _ in 0..5 {
            if actors.expiries.expire(&message).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    };
    let get = async {
        tokio::time::sleep(Duration::from_millis(schedule.get_at)).await;
        let _ = actors.orders.lookup(&number).await;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    };
    let replay = async {
        let Some(at) = schedule.replay_at else {
            return Ok::<_, Box<dyn std::error::Error + Send + Sync>>(());
        };
        tokio::time::sleep(Duration::from_millis(at)).await;
        let trade = s.env.sandbox_get(&format!("/sandbox/trades/{no}")).await?;
        let Some(trade_no) = trade["trade_no"].as_str() else {
            return Ok(());
        };
        let order = s.order(&no).await?;
        let status = if schedule.buyer == Buyer::Pays && trade["trade_status"] == "TRADE_SUCCESS" {
            "TRADE_SUCCESS"
        } else {
            "WAIT_BUYER_PAY"
        };
        let body = s.sign(
            &s.fields(&order, trade_no, status),
            &s.alipay_key,
            encoding_rs::UTF_8,
        )?;
        let (code, text) = s.post(&body).await?;
        if (code, text.as_str()) != (200, "success") {
            return Err(err(format!("replay answered {code} {text}")));
        }
        Ok(())
    };
    tokio::try_join!(buyer, expire, get, replay)?;
    Ok(())
}

/// Checks every invariant of one order once the dust has settled.
async fn check(s: &Stack, no: &str, schedule: &Schedule) -> Result<(), String> {
    let fail = |what: String| format!("order {no} ({schedule:?}): {what}");
    let order = s.order(no).await.map_err(|e| fail(e.to_string()))?;
    let events = s.events(no).await.map_err(|e| fail(e.to_string()))?;
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    let expected: Vec<u64> = (1..=order.version()).collect();
    if versions != expected {
        return Err(fail(format!(
            "event versions {versions:?}, order at v{}",
            order.version()
        )));
    }
    let paid_events = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Paid { .. }))
        .count();
    let closed_events = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Closed { .. }))
        .count();
    if paid_events + closed_events > 1 {
        return Err(fail(format!(
            "paid {paid_events} and closed {closed_events} times: {events:?}"
        )));
    }
    let trade = s
        .env
        .sandbox_get(&format!("/sandbox/trades/{no}"))
        .await
        .map_err(|e| fail(e.to_string()))?;
    let paid_there = matches!(
        trade["trade_status"].as_str(),
        Some("TRADE_SUCCESS" | "TRADE_FINISHED")
    );
    let anomalies = s.anomalies(no).await.map_err(|e| fail(e.to_string()))?;
    let paid_after_close = anomalies
        .iter()
        .any(|a| a.latest.kind == AnomalyKind::PaidAfterClose);
    match (paid_there, order.status()) {
        (true, OrderStatus::Paid) => {}
        (true, OrderStatus::Closed) if paid_after_close => {}
        (true, status) => {
            return Err(fail(format!(
                "paid at Alipay, {status:?} here, anomalies {anomalies:?}"
            )));
        }
        (false, OrderStatus::Paid) => {
            return Err(fail(format!(
                "PAID here, {} at Alipay",
                trade["trade_status"]
            )));
        }
        (false, _) => {}
    }
    if order.status().is_open() && schedule.buyer != Buyer::Pays {
        // The expiry job ran: an unpaid order is closed (or settled otherwise), never left open.
        return Err(fail(format!(
            "still {:?} after the expiry job",
            order.status()
        )));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notify_timeout_close_and_get_race_without_breaking_an_invariant() -> TestResult {
    let interleavings: usize = std::env::var("RACE_INTERLEAVINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let seed: u64 = std::env::var("RACE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_2026);
    let stack = Stack::start().await?;
    let config = stack.env.config(Function::TimeoutClose)?;
    let expiry_adapters = stack.env.adapters(Function::TimeoutClose).await?;
    let query_adapters = stack.env.adapters(Function::Query).await?;
    let actors = Arc::new(Actors {
        expiries: Expiries {
            store: expiry_adapters.orders,
            scheduler: expiry_adapters.expiry.ok_or_else(|| err("no scheduler"))?,
            gateway: expiry_adapters.alipay,
            clock: Later,
            policy: LeasePolicy {
                lease: config.knobs.claim_lease,
                margin: LeasePolicy::DEFAULT_MARGIN,
            },
            refunds: config.refund_policy(),
        },
        orders: query::Orders {
            store: query_adapters.orders,
            gateway: query_adapters.alipay,
            clock: SystemClock,
            sync_after: Duration::ZERO,
        },
        stack,
    });
    let mut draw = Draw(seed);
    let mut failures = Vec::new();
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    const BATCH: usize = 25;
    let mut done = 0;
    while done < interleavings {
        let size = BATCH.min(interleavings - done);
        let mut batch = Vec::new();
        let amounts: Vec<i64> = (0..size).map(|_| 100 + draw.below(900) as i64).collect();
        let created = futures_util::future::join_all(
            amounts
                .iter()
                .map(|fen| Box::pin(actors.stack.create_qr(*fen))),
        )
        .await;
        for no in created {
            batch.push((no?, draw_schedule(&mut draw)));
        }
        let runs: Vec<_> = batch
            .iter()
            .map(|(no, schedule)| tokio::spawn(run(actors.clone(), no.clone(), *schedule)))
            .collect();
        for run in runs {
            run.await.map_err(|e| err(e.to_string()))??;
        }
        // Let the sandbox's own notifications of this batch land.
        for (no, _) in &batch {
            let log = actors
                .stack
                .env
                .sandbox_get(&format!("/sandbox/notifications?out_trade_no={no}"))
                .await?;
            let expected = log.as_array().map_or(0, Vec::len);
            if expected > 0 {
                actors.stack.wait_for_deliveries(no, expected).await?;
            }
        }
        for (no, schedule) in &batch {
            if let Err(failure) = check(&actors.stack, no, schedule).await {
                failures.push(failure);
            }
            let order = actors.stack.order(no).await?;
            *counts.entry(order.status().as_str()).or_default() += 1;
            let trade = actors
                .stack
                .env
                .sandbox_get(&format!("/sandbox/trades/{no}"))
                .await?;
            let alipay_status = trade["trade_status"].as_str().unwrap_or("none").to_owned();
            *counts
                .entry(match (schedule.buyer, alipay_status.as_str()) {
                    (Buyer::Pays, "TRADE_SUCCESS") => "buyer_paid",
                    (Buyer::Pays, _) => "buyer_too_late",
                    (Buyer::Scans, _) => "buyer_scanned",
                    (Buyer::Nothing, _) => "buyer_did_nothing",
                })
                .or_default() += 1;
            for anomaly in actors.stack.anomalies(no).await? {
                *counts.entry(anomaly.latest.kind.as_str()).or_default() += 1;
            }
        }
        done += size;
    }
    println!("race: {interleavings} interleavings, seed {seed}, final states {counts:?}");
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {interleavings} interleavings broke an invariant:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}
