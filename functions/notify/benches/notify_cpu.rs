//! CPU time of the notify function per notification, without I/O: `Notifications::process`
//! on a paid notification for a PENDING order, against an in-memory store, next to
//! `alipay::notify::verify` alone on the same bodies in the same run (the baseline: the
//! signature check is most of the work). Also counts the store calls per notification.
//!
//! `cargo bench -p notify --bench notify_cpu`. `BENCH_SECONDS` sets the measuring time per
//! case (default 2). Without `--bench` (as `cargo test --all-targets` runs it) every case runs
//! once, as a smoke test. Exits non-zero only when a result is wrong; missing the goal
//! (≤ 50 µs per notification) is reported, never fatal: these machines are noisy.

use alipay::{AlipayVerifier, PrivateKey};
use chrono::{DateTime, Duration as Span, Utc};
use domain::anomaly::Anomaly;
use domain::notification::{ReceivedNotification, Verdict};
use domain::order::{NewOrder, Order, OrderEvent, Scene, Transition};
use domain::ports::{Applied, Claim, Clock, NotificationLog, OrderStore, StoreError};
use domain::{OrderAmount, OutTradeNo};
use notify::{Delivery, Notifications};
use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

type BenchResult<T> = Result<T, Box<dyn Error>>;

const APP_ID: &str = "2021004123456789";
const SELLER_ID: &str = "2088721012345678";
const GOAL_MICROS: f64 = 50.0;

/// Orders in a map; counts the calls, as DynamoDB would bill them.
#[derive(Default)]
struct MemoryStore {
    orders: Mutex<HashMap<OutTradeNo, Order>>,
    reads: AtomicU64,
    writes: AtomicU64,
}

impl OrderStore for MemoryStore {
    async fn claim(&self, _: &Order, _: &OrderEvent) -> Result<Claim, StoreError> {
        Err(StoreError::Unavailable("not used".into()))
    }
    async fn get(&self, no: &OutTradeNo) -> Result<Option<Order>, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let orders = self
            .orders
            .lock()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(orders.get(no).cloned())
    }
    async fn apply(&self, transition: &Transition) -> Result<Applied, StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut orders = self
            .orders
            .lock()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let no = transition.next.out_trade_no();
        let current = orders.get(no).cloned();
        match current {
            Some(order)
                if order.status() == transition.expected_status
                    && order.version() == transition.expected_version =>
            {
                orders.insert(no.clone(), transition.next.clone());
                Ok(Applied::Applied(transition.next.clone()))
            }
            other => Ok(Applied::Conflict(other)),
        }
    }
    async fn record_anomaly(&self, _: &Anomaly) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl NotificationLog for MemoryStore {
    async fn keep(&self, _: &ReceivedNotification) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

struct Fixed(DateTime<Utc>);

impl Clock for Fixed {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
    async fn sleep(&self, _: Duration) {}
}

/// A PENDING QR order.
fn pending(no: &str, now: DateTime<Utc>) -> BenchResult<Order> {
    let new = NewOrder {
        out_trade_no: OutTradeNo::parse(no)?,
        amount: OrderAmount::from_fen(8888)?,
        subject: "coffee".into(),
        scene: Scene::Qr,
        store_id: None,
        operator_id: None,
        terminal_id: None,
        request_hash: "h".into(),
        expires_at: now + Span::minutes(15),
    };
    let (claimed, _) = Order::claim(new, now, Span::seconds(15));
    Ok(claimed
        .created_at_alipay(Some("https://qr.alipay.com/x".into()), None, now)?
        .next)
}

fn body(no: &str, key: &PrivateKey) -> BenchResult<Vec<u8>> {
    let params = [
        ("notify_time", "2024-01-01 12:00:06"),
        ("notify_type", "trade_status_sync"),
        ("notify_id", "2024010100222120005046871234567890"),
        ("app_id", APP_ID),
        ("charset", "utf-8"),
        ("version", "1.0"),
        ("trade_no", "2024010122001446871234567890"),
        ("out_trade_no", no),
        ("trade_status", "TRADE_SUCCESS"),
        ("total_amount", "88.88"),
        ("receipt_amount", "88.88"),
        ("seller_id", SELLER_ID),
        (
            "buyer_open_id",
            "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5",
        ),
        ("subject", "Coffee order 静安寺店 #0123"),
        ("gmt_create", "2024-01-01 12:00:01"),
        ("gmt_payment", "2024-01-01 12:00:05"),
    ];
    Ok(alipay::notify::sign_form(&params, encoding_rs::UTF_8, key)?.into_bytes())
}

fn delivery(body: &[u8], now: DateTime<Utc>) -> Delivery {
    Delivery {
        body: body.to_vec(),
        headers: BTreeMap::from([(
            "content-type".to_owned(),
            "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
        )]),
        request_id: "bench".into(),
        received_at: now,
    }
}

fn main() -> BenchResult<()> {
    let full = std::env::args().any(|arg| arg == "--bench");
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| s.is_finite() && *s > 0.0)
        .unwrap_or(2.0);
    let count = if full { 2_000 } else { 3 };
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let (key, _) = PrivateKey::generate()?;
    let verifier = AlipayVerifier::PublicKey(key.public_key()?);
    let now = Utc::now();
    let numbers: Vec<String> = (0..count).map(|i| format!("B{i:06}")).collect();
    let bodies: Vec<Vec<u8>> = numbers
        .iter()
        .map(|no| body(no, &key))
        .collect::<BenchResult<_>>()?;

    // The baseline: verification alone, over every body.
    let mut verify_best = f64::MAX;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    loop {
        let started = Instant::now();
        for body in &bodies {
            black_box(alipay::notify::verify(black_box(body), &verifier)?);
        }
        verify_best = verify_best.min(started.elapsed().as_secs_f64() / count as f64);
        if !full || Instant::now() > deadline {
            break;
        }
    }

    // The whole handler: every round on fresh PENDING orders.
    let mut handler_best = f64::MAX;
    let mut per_notification;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    loop {
        let store = MemoryStore::default();
        {
            let mut orders = store.orders.lock().map_err(|e| e.to_string())?;
            for no in &numbers {
                orders.insert(OutTradeNo::parse(no)?, pending(no, now)?);
            }
        }
        let notifications = Notifications {
            store,
            clock: Fixed(now),
            verifier: verifier.clone(),
            app_id: APP_ID.to_owned(),
            seller_id: Some(SELLER_ID.to_owned()),
        };
        let deliveries: Vec<Delivery> = bodies.iter().map(|b| delivery(b, now)).collect();
        let started = Instant::now();
        for delivery in &deliveries {
            let outcome = runtime.block_on(notifications.process(delivery))?;
            if outcome.verdict != Verdict::Applied {
                return Err(format!("a notification was not applied: {outcome:?}").into());
            }
        }
        handler_best = handler_best.min(started.elapsed().as_secs_f64() / count as f64);
        per_notification = (
            notifications.store.reads.load(Ordering::Relaxed) as f64 / count as f64,
            notifications.store.writes.load(Ordering::Relaxed) as f64 / count as f64,
        );
        if !full || Instant::now() > deadline {
            break;
        }
    }

    let micros = |seconds: f64| seconds * 1e6;
    println!("notify CPU per notification (best round of {count}, one core, no I/O):");
    println!(
        "  verify alone (baseline)   {:>8.1} µs",
        micros(verify_best)
    );
    println!(
        "  whole handler             {:>8.1} µs  ({:.2}x the verification; goal ≤ {GOAL_MICROS} µs: {})",
        micros(handler_best),
        handler_best / verify_best,
        if micros(handler_best) <= GOAL_MICROS {
            "met"
        } else {
            "missed"
        }
    );
    println!(
        "  store calls per notification: {:.0} read(s), {:.0} write(s) (each write one DynamoDB transaction)",
        per_notification.0, per_notification.1
    );
    Ok(())
}
