//! The fault run: the whole local stack (as `make run` starts it, on free ports) takes a seeded
//! batch of payments of every kind while the Alipay sandbox and the AWS emulator misbehave at
//! random, then is left to settle, and must agree with the sandbox's truth.
//!
//! - Payments: QR scanned and paid, QR left to expire, QR scanned then abandoned, barcode paid
//!   at once, barcode waiting for the buyer then paid, barcode declined; some created twice at
//!   the same time, some created again afterwards (a replay), read a few times, and some paid
//!   ones refunded in one or two parts. Clients follow the API contract: `409` with
//!   `Retry-After`, `503`, `202` and timeouts are answered by resending the identical request.
//! - Sandbox faults (`POST /sandbox/faults`, one per payment at random, on a random method):
//!   answers later than the functions' timeout with and without the effect, `20000` with and
//!   without the effect, unsigned answers, dropped connections with and without the effect.
//!   Notification switches per order at random: duplicates, out of order, late.
//! - Emulator faults: the functions reach moto through `test_support::emulator_proxy`
//!   (throttling, unavailability, answers lost after the effect, failed conditions on the
//!   order writes), on top of the AWS SDK's own retries.
//!
//! Then every fault is turned off, the stack is left alone (no `GET`) until every order has
//! left `CREATING`/`PENDING` and the expiry queue is empty, bounded by the last order's
//! deadline; the events queue is consumed; and:
//!
//! - every order agrees with the sandbox's record (paid amount, trade number, refunds and
//!   refunded amount, state), except where an anomaly records that the money contradicts the
//!   order, and every anomaly is such a contradiction;
//! - every committed version of an order has exactly one audit event, and every business
//!   event of the audit trail (and every anomaly sighting) was published exactly once;
//! - nothing is stuck: no order `CREATING`/`PENDING`, no refund `PENDING`, no sandbox trade
//!   still payable for an order closed here, the expiry queue and its dead-letter queue empty,
//!   nothing in the events failure queue.
//!
//! `CHAOS_PAYMENTS` sizes the batch (default 36: `make test`; `make chaos` runs 240),
//! `CHAOS_SEED` picks the draws (printed), `CHAOS_CONCURRENCY` the payments in flight.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_adapters::aws_sdk_sqs::types::QueueAttributeName;
use aws_adapters::{DynamoOrderStore, aws_sdk_dynamodb, aws_sdk_sqs};
use domain::OutTradeNo;
use domain::business_event::{BusinessEvent, anomaly_event_id};
use domain::ports::OrderStore;
use local_stack::{LocalStack, ORDERS_TABLE, Options};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use test_support::emulator_proxy::{FaultKind, FaultPlan, FaultRates, SplitMix64};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The functions' Alipay timeout; sandbox delays are longer.
const ALIPAY_TIMEOUT_MS: u64 = 2000;
const LATE_MS: u64 = ALIPAY_TIMEOUT_MS + 1500;
/// The shortest order timeout the API takes: the expiry job has work within the run.
const ORDER_TIMEOUT_SECONDS: i64 = 60;
/// A client's patience per request (the API reference asks for at least 60 s).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Resends of one request before the client gives up (and the run reports it).
const MAX_SENDS: u32 = 40;
/// `202` answers a refund client accepts before leaving the refund to settle on its own.
const PENDING_RESENDS: u32 = 4;
/// After the last order's deadline, how long the stack may take to settle: an expiry that
/// failed while faults were on comes back after the queue's visibility timeout.
const SETTLE_MARGIN: Duration =
    Duration::from_secs(local_stack::expiry::VISIBILITY_TIMEOUT_SECONDS as u64 + 60);

const SANDBOX_METHODS: [&str; 7] = [
    "alipay.trade.precreate",
    "alipay.trade.pay",
    "alipay.trade.query",
    "alipay.trade.cancel",
    "alipay.trade.close",
    "alipay.trade.refund",
    "alipay.trade.fastpay.refund.query",
];

/// The sandbox faults drawn from: a name and its spec (without `method`).
fn sandbox_faults() -> [(&'static str, Value); 7] {
    [
        ("late_with_effect", json!({"delay_ms": LATE_MS})),
        (
            "late_without_effect",
            json!({"delay_ms": LATE_MS, "code": "20000", "apply": false}),
        ),
        ("20000_with_effect", json!({"code": "20000", "apply": true})),
        (
            "20000_without_effect",
            json!({"code": "20000", "apply": false}),
        ),
        ("unsigned", json!({"unsigned": true})),
        (
            "dropped_with_effect",
            json!({"drop_connection": true, "apply": true}),
        ),
        (
            "dropped_without_effect",
            json!({"drop_connection": true, "apply": false}),
        ),
    ]
}

/// The emulator faults: each AWS call of a function draws one at these rates (the SDK then
/// retries what is retryable, as in Lambda). Failed conditions only on the order writes: on a
/// nonce's `PutItem` a failed condition means a replayed request, which no fault makes.
fn emulator_faults(seed: u64) -> FaultPlan {
    const RATES: FaultRates = FaultRates {
        throttle: 0.04,
        unavailable: 0.02,
        lost_answer: 0.03,
        condition_failed: 0.03,
    };
    FaultPlan::seeded(seed, RATES).with_operation(
        "PutItem",
        FaultRates {
            condition_failed: 0.0,
            ..RATES
        },
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    QrPaid,
    QrExpired,
    QrAbandoned,
    BarcodePaid,
    BarcodeWaitPaid,
    BarcodeDeclined,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::QrPaid,
        Kind::QrExpired,
        Kind::QrAbandoned,
        Kind::BarcodePaid,
        Kind::BarcodeWaitPaid,
        Kind::BarcodeDeclined,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::QrPaid => "qr scanned+paid",
            Kind::QrExpired => "qr left to expire",
            Kind::QrAbandoned => "qr scanned, abandoned",
            Kind::BarcodePaid => "barcode paid at once",
            Kind::BarcodeWaitPaid => "barcode waiting, then paid",
            Kind::BarcodeDeclined => "barcode declined",
        }
    }

    fn refundable(self) -> bool {
        matches!(
            self,
            Kind::QrPaid | Kind::BarcodePaid | Kind::BarcodeWaitPaid
        )
    }
}

/// One payment, drawn from the seed.
#[derive(Debug, Clone)]
struct Plan {
    no: String,
    kind: Kind,
    amount: i64,
    auth_code: Option<String>,
    /// Two identical creates at once.
    concurrent: bool,
    /// The identical create again once answered.
    replay: bool,
    gets: u64,
    refunds: Vec<i64>,
    switches: Value,
    /// One sandbox fault posted just before the create: (name, spec).
    fault: Option<(&'static str, Value)>,
    start_after: Duration,
    buyer_after: Duration,
}

impl Plan {
    fn draw(rng: &mut SplitMix64, run: &str, index: usize) -> Plan {
        let kind = Kind::ALL[rng.below(Kind::ALL.len() as u64) as usize];
        let amount = 100 + rng.below(9_900) as i64;
        let buyer = rng.below(10_000_000_000);
        let auth_code = match kind {
            Kind::BarcodePaid => Some(format!("2800{:04}{buyer:010}", 0)),
            Kind::BarcodeWaitPaid => Some(format!("2801{:04}{buyer:010}", 2 + rng.below(6))),
            Kind::BarcodeDeclined if rng.chance(0.5) => {
                Some(format!("2803{:04}{buyer:010}", 2 + rng.below(4)))
            }
            Kind::BarcodeDeclined => Some(format!("2811{:04}{buyer:010}", 0)),
            _ => None,
        };
        let refunds = if kind.refundable() && rng.chance(0.35) {
            if rng.chance(0.5) {
                let first = 1 + rng.below(amount as u64 - 1) as i64;
                vec![first, amount - first]
            } else {
                vec![1 + rng.below(amount as u64) as i64]
            }
        } else {
            Vec::new()
        };
        let switches = json!({
            "trade_closed": true,
            "refunds": true,
            "duplicates": rng.chance(0.3),
            "out_of_order": rng.chance(0.3),
            "late_seconds": if rng.chance(0.3) { 1 + rng.below(4) } else { 0 },
        });
        let faults = sandbox_faults();
        let fault = rng.chance(0.6).then(|| {
            let (name, mut spec) = faults[rng.below(faults.len() as u64) as usize].clone();
            spec["method"] =
                json!(SANDBOX_METHODS[rng.below(SANDBOX_METHODS.len() as u64) as usize]);
            (name, spec)
        });
        Plan {
            no: format!("C{run}_{index:04}"),
            kind,
            amount,
            auth_code,
            concurrent: rng.chance(0.15),
            replay: rng.chance(0.3),
            gets: rng.below(3),
            refunds,
            switches,
            fault,
            start_after: Duration::from_millis(rng.below(400)),
            buyer_after: Duration::from_millis(rng.below(2_000)),
        }
    }

    fn create_body(&self) -> String {
        let mut body = json!({
            "out_trade_no": self.no,
            "amount_fen": self.amount,
            "subject": "chaos",
            "scene": if self.auth_code.is_some() { "barcode" } else { "qr" },
            "timeout_seconds": ORDER_TIMEOUT_SECONDS,
        });
        if let Some(code) = &self.auth_code {
            body["auth_code"] = json!(code);
        }
        body.to_string()
    }
}

/// An answer of the merchant API.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    replayed: bool,
    retry_after: Option<u64>,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

/// The merchant's and the buyer's side: signed API requests, sandbox control calls.
struct Client {
    http: reqwest::Client,
    api_url: String,
    sandbox_url: String,
    key_id: String,
    secret: String,
    /// Resends, by what caused them.
    resends: Mutex<BTreeMap<String, u64>>,
}

impl Client {
    fn of(stack: &LocalStack) -> TestResult<Client> {
        let key = stack.merchant_key();
        Ok(Client {
            http: reqwest::Client::builder()
                .timeout(CLIENT_TIMEOUT)
                .no_proxy()
                .build()?,
            api_url: stack.api_url().to_owned(),
            sandbox_url: stack.sandbox_url().to_owned(),
            key_id: key.key_id.to_owned(),
            secret: std::fs::read_to_string(&key.secret_file)?.trim().to_owned(),
            resends: Mutex::new(BTreeMap::new()),
        })
    }

    fn resent(&self, why: String) {
        *self.resends.lock().unwrap().entry(why).or_default() += 1;
    }

    async fn send(&self, method: &str, path: &str, body: &str) -> Result<Answer, String> {
        let headers = harness::sign_headers(
            &self.key_id,
            &self.secret,
            method,
            path,
            body.as_bytes(),
            chrono::Utc::now().timestamp(),
        );
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api_url))
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let replayed = header("idempotent-replayed").as_deref() == Some("true");
        let retry_after = header("retry-after").and_then(|v| v.parse().ok());
        let text = response.text().await.map_err(|e| e.to_string())?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer {
            status,
            replayed,
            retry_after,
            body,
        })
    }

    /// Sends the request until its answer is final by the API contract: resends the
    /// identical request after a timeout, a `409 …in_flight`, a `503`, and (a few times) a
    /// `202`.
    async fn until_final(&self, method: &str, path: &str, body: &str) -> Result<Answer, String> {
        let mut pending = 0;
        let mut last = String::new();
        for _ in 0..MAX_SENDS {
            let pause = match self.send(method, path, body).await {
                Err(error) => {
                    self.resent("transport error".to_owned());
                    last = error;
                    Duration::from_millis(500)
                }
                Ok(answer) => {
                    let why = format!("{} {}", answer.status, answer.code());
                    let pause = Duration::from_secs(answer.retry_after.unwrap_or(1).clamp(1, 2));
                    let resend = match answer.status {
                        409 => answer.code().ends_with("in_flight"),
                        503 => true,
                        202 => {
                            pending += 1;
                            pending <= PENDING_RESENDS
                        }
                        _ => false,
                    };
                    if !resend {
                        return Ok(answer);
                    }
                    self.resent(why.trim().to_owned());
                    last = format!("{} {}", answer.status, answer.body);
                    pause
                }
            };
            tokio::time::sleep(pause).await;
        }
        Err(format!(
            "{method} {path}: no final answer after {MAX_SENDS} sends; last {last}"
        ))
    }

    async fn sandbox(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.sandbox_url));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }
}

/// What driving one payment did.
#[derive(Debug, Default)]
struct Driven {
    /// The final answers of the creates sent (two when sent at once).
    creates: Vec<Answer>,
    /// The buyer's action (`/pay` or `/scan`): its HTTP status.
    buyer: Option<u16>,
    refunds: Vec<(String, i64, Answer)>,
    /// What the client saw that the contract rules out.
    problems: Vec<String>,
}

async fn drive(client: &Client, plan: &Plan) -> Driven {
    let mut driven = Driven::default();
    if let Err(error) = drive_into(client, plan, &mut driven).await {
        driven.problems.push(error);
    }
    driven
}

async fn drive_into(client: &Client, plan: &Plan, driven: &mut Driven) -> Result<(), String> {
    tokio::time::sleep(plan.start_after).await;
    let no = &plan.no;
    let post = reqwest::Method::POST;
    client
        .sandbox(
            post.clone(),
            &format!("/sandbox/trades/{no}/notifications/switches"),
            Some(&plan.switches),
        )
        .await?;
    if let Some((_, spec)) = &plan.fault {
        let (status, answer) = client
            .sandbox(post.clone(), "/sandbox/faults", Some(spec))
            .await?;
        if status != 200 {
            return Err(format!("POST /sandbox/faults {spec}: {status} {answer}"));
        }
    }
    let body = plan.create_body();
    let created = if plan.concurrent {
        let (first, second) = tokio::join!(
            client.until_final("POST", "/v1/payments", &body),
            client.until_final("POST", "/v1/payments", &body)
        );
        driven.creates = vec![first?, second?];
        driven.creates[0].clone()
    } else {
        let answer = client.until_final("POST", "/v1/payments", &body).await?;
        driven.creates = vec![answer.clone()];
        answer
    };
    for answer in &driven.creates {
        if !matches!(answer.status, 200 | 201) || answer.body["out_trade_no"] != no.as_str() {
            driven.problems.push(format!(
                "{no}: create answered {} {}",
                answer.status, answer.body
            ));
        }
    }
    if driven
        .creates
        .iter()
        .filter(|a| a.status == 200)
        .any(|a| !a.replayed)
    {
        driven
            .problems
            .push(format!("{no}: a 200 without Idempotent-Replayed"));
    }
    let pending_qr = created.body["status"] == "PENDING" && created.body["qr_code"].is_string();
    match plan.kind {
        Kind::QrPaid if pending_qr => {
            tokio::time::sleep(plan.buyer_after).await;
            let (status, _) = client
                .sandbox(post.clone(), &format!("/sandbox/trades/{no}/pay"), None)
                .await?;
            driven.buyer = Some(status);
        }
        Kind::QrAbandoned if pending_qr => {
            tokio::time::sleep(plan.buyer_after).await;
            let (status, _) = client
                .sandbox(post.clone(), &format!("/sandbox/trades/{no}/scan"), None)
                .await?;
            driven.buyer = Some(status);
        }
        _ => {}
    }
    if plan.replay {
        let again = client.until_final("POST", "/v1/payments", &body).await?;
        // A barcode order left PENDING (`pending_reason`) is finished by the identical request.
        let finishes = again.status == 201 && created.body["pending_reason"].is_string();
        let replayed = again.status == 200 && again.replayed;
        if !(replayed || finishes) || again.body["out_trade_no"] != no.as_str() {
            driven.problems.push(format!(
                "{no}: the replay answered {} {}",
                again.status, again.body
            ));
        }
    }
    let path = format!("/v1/payments/{no}");
    for _ in 0..plan.gets {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let got = client.until_final("GET", &path, "").await?;
        if got.status != 200 {
            driven
                .problems
                .push(format!("{no}: GET answered {} {}", got.status, got.body));
        }
    }
    if plan.refunds.is_empty() {
        return Ok(());
    }
    // Refund once the order shows paid (a QR payment may still be on its way here).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = client.until_final("GET", &path, "").await?;
        if got.body["status"] == "PAID" {
            break;
        }
        if Instant::now() > deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    for (index, amount) in plan.refunds.iter().enumerate() {
        let out_request_no = format!("{no}_R{index}");
        let body = json!({"out_request_no": out_request_no, "amount_fen": amount}).to_string();
        let answer = client
            .until_final("POST", &format!("{path}/refunds"), &body)
            .await?;
        if !matches!(answer.status, 200..=202) {
            driven.problems.push(format!(
                "{no}: refund {out_request_no} answered {} {}",
                answer.status, answer.body
            ));
        }
        driven.refunds.push((out_request_no, *amount, answer));
    }
    Ok(())
}

/// `"15.00"` → 1500.
fn fen(yuan: &Value) -> i64 {
    let text = yuan.as_str().unwrap_or("0");
    let (whole, cents) = text.split_once('.').unwrap_or((text, "0"));
    whole.parse::<i64>().unwrap_or(0) * 100
        + format!("{cents:0<2}")[..2].parse::<i64>().unwrap_or(0)
}

fn count<K: Ord>(map: &mut BTreeMap<K, u64>, key: K) {
    *map.entry(key).or_default() += 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payments_under_faults_end_as_alipay_says() -> TestResult {
    let number = |name: &str, default: u64| -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let payments = number("CHAOS_PAYMENTS", 36) as usize;
    let seed = number("CHAOS_SEED", 20_261_207);
    let concurrency = number("CHAOS_CONCURRENCY", 12) as usize;
    if std::env::var_os("RUST_LOG").is_some() {
        // The stack's logs, to follow one order (`RUST_LOG=info 2>log`).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let dir = tempfile::tempdir()?;
    let knobs = [
        ("SYNC_AFTER_SECONDS", "0".to_owned()),
        ("ALIPAY_REQUEST_TIMEOUT_MS", ALIPAY_TIMEOUT_MS.to_string()),
        ("REFUND_RECHECK_SECONDS", "5".to_owned()),
    ];
    let stack = LocalStack::start(Options {
        knobs: knobs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        emulator_faults: Some(emulator_faults(seed)),
        ..Options::on_free_ports(dir.path())
    })
    .await?;
    let outcome = run(&stack, payments, seed, concurrency).await;
    stack.shutdown().await;
    let (report, problems) = outcome?;
    println!("{report}");
    assert!(
        problems.is_empty(),
        "{} problems (seed {seed}):\n{}",
        problems.len(),
        problems.join("\n")
    );
    Ok(())
}

async fn run(
    stack: &LocalStack,
    payments: usize,
    seed: u64,
    concurrency: usize,
) -> TestResult<(String, Vec<String>)> {
    let started = Instant::now();
    let client = Arc::new(Client::of(stack)?);
    let proxy = stack.emulator_proxy().ok_or("no emulator proxy")?;
    let mut rng = SplitMix64::new(seed);
    let run_id = chrono::Utc::now().format("%H%M%S").to_string();
    let plans: Vec<Plan> = (0..payments)
        .map(|i| Plan::draw(&mut rng, &run_id, i))
        .collect();

    // Drive: `concurrency` payments in flight.
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for plan in plans.iter().cloned() {
        let slot = slots.clone().acquire_owned().await?;
        let client = client.clone();
        tasks.spawn(async move {
            let driven = drive(&client, &plan).await;
            drop(slot);
            (plan.no, driven)
        });
    }
    let mut driven: BTreeMap<String, Driven> = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (no, result) = done?;
        driven.insert(no, result);
    }
    let drive_time = started.elapsed();

    // Faults off; what was injected.
    let emulator = proxy.counts();
    proxy.set_plan(FaultPlan::none());
    let (_, left) = client
        .sandbox(reqwest::Method::GET, "/sandbox/faults", None)
        .await?;
    client
        .sandbox(reqwest::Method::DELETE, "/sandbox/faults", None)
        .await?;
    let unused_faults: u64 = left
        .as_array()
        .map(|faults| faults.iter().filter_map(|f| f["remaining"].as_u64()).sum())
        .unwrap_or(0);

    // Settle: no requests of ours; the expiry job, notifications and re-checks finish it.
    let sdk = stack.aws_sdk_config();
    let store = DynamoOrderStore::new(aws_sdk_dynamodb::Client::new(&sdk), ORDERS_TABLE);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let description = stack.description();
    let expiry_queues = [
        description["expiry_queue_url"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        description["expiry_dead_letter_queue_url"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ];
    let mut last_deadline = chrono::Utc::now();
    let mut numbers = Vec::new();
    for plan in &plans {
        let no = OutTradeNo::parse(&plan.no)?;
        if let Some(order) = store.get(&no).await? {
            last_deadline = last_deadline.max(order.expires_at());
        }
        numbers.push(no);
    }
    let settle_until = Instant::now()
        + (last_deadline - chrono::Utc::now())
            .to_std()
            .unwrap_or_default()
        + SETTLE_MARGIN;
    let settle_started = Instant::now();
    let mut open: Vec<String>;
    let mut queued: i64;
    loop {
        open = Vec::new();
        for no in &numbers {
            match store.get(no).await? {
                Some(order) if !order.status().is_final() => {
                    open.push(format!("{no} {}", order.status().as_str()));
                }
                _ => {}
            }
        }
        queued = 0;
        for url in &expiry_queues {
            queued += queue_depth(&sqs, url).await?;
        }
        if (open.is_empty() && queued == 0) || Instant::now() > settle_until {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let settle_time = settle_started.elapsed();

    // The truth on both sides.
    let (_, trades) = client
        .sandbox(reqwest::Method::GET, "/sandbox/trades", None)
        .await?;
    let trades: BTreeMap<String, Value> = trades
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["out_trade_no"].as_str().unwrap_or_default().to_owned(),
                t.clone(),
            )
        })
        .collect();
    let mut orders = BTreeMap::new();
    let mut problems: Vec<String> = driven
        .values()
        .flat_map(|d| d.problems.iter().cloned())
        .collect();
    for plan in &plans {
        let answer = client
            .until_final("GET", &format!("/v1/payments/{}", plan.no), "")
            .await?;
        if answer.status == 200 {
            orders.insert(plan.no.clone(), answer.body);
        } else {
            problems.push(format!(
                "{}: final GET {} {}",
                plan.no, answer.status, answer.body
            ));
        }
    }
    let expected: BTreeMap<String, BTreeSet<String>> =
        expected_events(&store, &numbers, &mut problems).await?;
    let published = consume_events(stack, &sqs, &expected).await?;

    // Checks, and the counts.
    let mut final_states: BTreeMap<(Kind, String), u64> = BTreeMap::new();
    let mut anomalies: BTreeMap<String, u64> = BTreeMap::new();
    for plan in &plans {
        let Some(order) = orders.get(&plan.no) else {
            continue;
        };
        let status = order["status"].as_str().unwrap_or("?").to_owned();
        count(&mut final_states, (plan.kind, status));
        let no = OutTradeNo::parse(&plan.no)?;
        let recorded = store.anomalies_of_order(&no).await?;
        let kinds: BTreeSet<&str> = recorded.iter().map(|a| a.latest.kind.as_str()).collect();
        for kind in &kinds {
            count(&mut anomalies, (*kind).to_owned());
        }
        agree(
            plan,
            order,
            trades.get(&plan.no),
            &kinds,
            &driven[&plan.no],
            &mut problems,
        );
        let sightings: BTreeSet<String> = recorded
            .iter()
            .flat_map(|a| (1..=a.occurrences).map(|k| anomaly_event_id(&a.latest.id(), k)))
            .collect();
        published_once(
            &plan.no,
            &expected[&plan.no],
            &sightings,
            &published,
            &mut problems,
        );
    }
    for url in &expiry_queues {
        let depth = queue_depth(&sqs, url).await?;
        if depth != 0 {
            problems.push(format!("{depth} messages left in {url}"));
        }
    }
    for entry in &open {
        problems.push(format!(
            "{entry}: still open {} s after the last deadline",
            SETTLE_MARGIN.as_secs()
        ));
    }
    let failures = stack.events().sent_to_failure_queue();
    if failures != 0 {
        problems.push(format!(
            "{failures} stream records sent to the events failure queue"
        ));
    }

    // The report.
    let mut report = String::new();
    let out = &mut report;
    writeln!(
        out,
        "\nchaos run: {payments} payments, seed {seed}, {concurrency} in flight; driven in {:.0} s, settled in {:.0} s",
        drive_time.as_secs_f64(),
        settle_time.as_secs_f64()
    )?;
    writeln!(out, "payments per kind (final states):")?;
    for kind in Kind::ALL {
        let total: u64 = final_states
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|(_, n)| n)
            .sum();
        let states: Vec<String> = final_states
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, s), n)| format!("{s} {n}"))
            .collect();
        writeln!(
            out,
            "  {:<28} {total:>4}  {}",
            kind.name(),
            states.join(", ")
        )?;
    }
    let extra: Vec<String> = [
        (
            "created twice at once",
            plans.iter().filter(|p| p.concurrent).count(),
        ),
        ("replayed", plans.iter().filter(|p| p.replay).count()),
        ("GETs", plans.iter().map(|p| p.gets as usize).sum()),
        (
            "refunds sent",
            driven.values().map(|d| d.refunds.len()).sum(),
        ),
    ]
    .iter()
    .map(|(what, n)| format!("{what} {n}"))
    .collect();
    writeln!(out, "  also: {}", extra.join(", "))?;
    let mut sandbox_posted: BTreeMap<&str, u64> = BTreeMap::new();
    for plan in &plans {
        if let Some((name, _)) = &plan.fault {
            count(&mut sandbox_posted, *name);
        }
    }
    let posted: u64 = sandbox_posted.values().sum();
    writeln!(
        out,
        "sandbox faults: {posted} posted, {} met a call, {unused_faults} unused: {sandbox_posted:?}",
        posted - unused_faults
    )?;
    let by_kind: Vec<String> = FaultKind::ALL
        .iter()
        .map(|k| format!("{} {}", k.as_str(), emulator.total(*k)))
        .collect();
    writeln!(
        out,
        "emulator faults: {} of {} function calls: {}",
        emulator.faults(),
        emulator.faults() + emulator.passed,
        by_kind.join(", ")
    )?;
    let mut by_operation: BTreeMap<&str, u64> = BTreeMap::new();
    for ((operation, _), n) in &emulator.injected {
        *by_operation.entry(operation.as_str()).or_default() += n;
    }
    writeln!(out, "  by operation: {by_operation:?}")?;
    writeln!(out, "client resends: {:?}", client.resends.lock().unwrap())?;
    let mut refund_states: BTreeMap<String, u64> = BTreeMap::new();
    for order in orders.values() {
        for refund in order["refunds"].as_array().into_iter().flatten() {
            count(
                &mut refund_states,
                refund["status"].as_str().unwrap_or("?").to_owned(),
            );
        }
    }
    writeln!(out, "refunds: {refund_states:?}")?;
    let mut event_types: BTreeMap<String, u64> = BTreeMap::new();
    for event in published.values().flatten() {
        count(
            &mut event_types,
            event["type"].as_str().unwrap_or("?").to_owned(),
        );
    }
    writeln!(
        out,
        "business events published: {} {event_types:?}",
        event_types.values().sum::<u64>()
    )?;
    let (mut deliveries, mut accepted) = (0, 0);
    for trade in trades.values() {
        for notification in trade["notifications"].as_array().into_iter().flatten() {
            for attempt in notification["attempts"].as_array().into_iter().flatten() {
                deliveries += 1;
                accepted += u64::from(attempt["success"] == true);
            }
        }
    }
    writeln!(
        out,
        "notification deliveries: {deliveries}, answered success {accepted}"
    )?;
    writeln!(out, "anomalies: {anomalies:?}")?;
    writeln!(out, "problems: {}", problems.len())?;
    Ok((report, problems))
}

/// Messages in a queue: visible, in flight and delayed.
async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> TestResult<i64> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    Ok([
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
    ]
    .iter()
    .filter_map(|name| attributes.get(name)?.parse::<i64>().ok())
    .sum())
}

/// Each order's public audit events (`event_id`s); a problem for any committed version
/// without exactly one audit event.
async fn expected_events(
    store: &DynamoOrderStore,
    numbers: &[OutTradeNo],
    problems: &mut Vec<String>,
) -> TestResult<BTreeMap<String, BTreeSet<String>>> {
    let mut expected = BTreeMap::new();
    for no in numbers {
        let audit = store.events(no).await?;
        let version = store.get(no).await?.map_or(0, |o| o.version());
        let versions: Vec<u64> = audit.iter().map(|e| e.version).collect();
        if versions != (1..=version).collect::<Vec<u64>>() {
            problems.push(format!(
                "{no}: audit versions {versions:?}, order version {version}"
            ));
        }
        let public: BTreeSet<String> = audit
            .iter()
            .filter_map(|e| BusinessEvent::of_order_event(e, Value::Null))
            .map(|e| e.event_id)
            .collect();
        expected.insert(no.as_str().to_owned(), public);
    }
    Ok(expected)
}

/// Consumes the events queue until every order's audit events have come, then a little longer
/// (a duplicate would show), by order.
async fn consume_events(
    stack: &LocalStack,
    sqs: &aws_sdk_sqs::Client,
    expected: &BTreeMap<String, BTreeSet<String>>,
) -> TestResult<BTreeMap<String, Vec<Value>>> {
    let mut published: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut quiet_rounds = 0;
    loop {
        let events = stack.events().take_published(sqs).await?;
        let received = events.len();
        for event in events {
            let no = event["out_trade_no"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            published.entry(no).or_default().push(event);
        }
        let complete = expected.iter().all(|(no, ids)| {
            let seen: BTreeSet<&str> = published
                .get(no)
                .into_iter()
                .flatten()
                .filter_map(|e| e["event_id"].as_str())
                .collect();
            ids.iter().all(|id| seen.contains(id.as_str()))
        });
        quiet_rounds = if complete && received == 0 {
            quiet_rounds + 1
        } else {
            0
        };
        if quiet_rounds >= 3 || Instant::now() > deadline {
            return Ok(published);
        }
    }
}

/// Every audit event and anomaly sighting of the order published once, and nothing else.
fn published_once(
    no: &str,
    audit: &BTreeSet<String>,
    sightings: &BTreeSet<String>,
    published: &BTreeMap<String, Vec<Value>>,
    problems: &mut Vec<String>,
) {
    let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
    for event in published.get(no).into_iter().flatten() {
        count(&mut seen, event["event_id"].as_str().unwrap_or("?"));
    }
    for (id, n) in &seen {
        if *n != 1 {
            problems.push(format!("{no}: event {id} published {n} times"));
        }
    }
    let wanted: BTreeSet<&str> = audit.iter().chain(sightings).map(String::as_str).collect();
    let got: BTreeSet<&str> = seen.keys().copied().collect();
    if wanted != got {
        problems.push(format!("{no}: published {got:?}, committed {wanted:?}"));
    }
}

/// The order agrees with the sandbox's record of it; each anomaly is money contradicting it.
fn agree(
    plan: &Plan,
    order: &Value,
    trade: Option<&Value>,
    anomalies: &BTreeSet<&str>,
    driven: &Driven,
    problems: &mut Vec<String>,
) {
    let no = &plan.no;
    // The trade without its notifications (long, and not what is compared).
    let shown = trade.map_or("none".to_owned(), |t| {
        let mut t = t.clone();
        t["notifications"] = json!(t["notifications"].as_array().map_or(0, Vec::len));
        t.to_string()
    });
    let mut problem = |what: String| {
        problems.push(format!(
            "{no} ({}): {what}; order {order}; trade {shown}",
            plan.kind.name(),
        ))
    };
    let status = order["status"].as_str().unwrap_or("?");
    let paid = trade.map_or(0, |t| fen(&t["paid_amount"]));
    let refunded = trade.map_or(0, |t| fen(&t["refunded_amount"]));
    let stage = trade.map_or("", |t| t["stage"].as_str().unwrap_or(""));
    let by_cancel = trade.is_some_and(|t| {
        t["refunds"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["by_cancel"] == true)
    });
    let ours: BTreeMap<String, (i64, String)> = order["refunds"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["out_request_no"].as_str().unwrap_or("").to_owned(),
                (
                    r["amount_fen"].as_i64().unwrap_or(0),
                    r["status"].as_str().unwrap_or("").to_owned(),
                ),
            )
        })
        .collect();
    let theirs: BTreeMap<String, i64> = trade
        .and_then(|t| t["refunds"].as_array())
        .into_iter()
        .flatten()
        .filter(|r| r["by_cancel"] != true)
        .map(|r| {
            (
                r["out_request_no"].as_str().unwrap_or("").to_owned(),
                fen(&r["refund_amount"]),
            )
        })
        .collect();
    let succeeded: BTreeMap<String, i64> = ours
        .iter()
        .filter(|(_, (_, s))| s == "SUCCEEDED")
        .map(|(n, (a, _))| (n.clone(), *a))
        .collect();

    if ours.values().any(|(_, s)| s == "PENDING") {
        problem("a refund is still PENDING".into());
    }
    if paid > 0 {
        if order["alipay_trade_no"] != trade.map_or(Value::Null, |t| t["trade_no"].clone()) {
            problem("another trade number".into());
        }
        if paid != plan.amount {
            problem(format!("paid {paid} for an order of {}", plan.amount));
        }
        let expected = if by_cancel {
            "REFUNDED"
        } else if refunded == 0 {
            "PAID"
        } else if refunded < paid {
            "PARTIALLY_REFUNDED"
        } else {
            "REFUNDED"
        };
        let contradiction =
            matches!(status, "CLOSED" | "FAILED") && anomalies.contains("paid_after_close");
        if status != expected && !contradiction {
            problem(format!("{status} here, {expected} at Alipay"));
        }
        if by_cancel && !anomalies.contains("refunded_by_cancel") {
            problem("refunded by a cancel without a refunded_by_cancel anomaly".into());
        }
        if !by_cancel && order["refunded_fen"].as_i64() != Some(refunded) {
            problem(format!(
                "refunded {} here, {refunded} at Alipay",
                order["refunded_fen"]
            ));
        }
    } else {
        if !matches!(status, "CLOSED" | "FAILED") {
            problem(format!("{status} here, nothing paid at Alipay"));
        }
        if matches!(stage, "AWAITING_SCAN" | "WAIT_BUYER_PAY") {
            problem(format!("the trade is still payable ({stage})"));
        }
    }
    if succeeded != theirs {
        problem(format!(
            "refunds succeeded here {succeeded:?}, at Alipay {theirs:?}"
        ));
    }
    // The refunds the client sent are the order's, each settled.
    for (out_request_no, amount, _) in &driven.refunds {
        if ours.get(out_request_no).map(|(a, _)| a) != Some(amount) {
            problem(format!("refund {out_request_no} of {amount} missing"));
        }
    }
    for kind in anomalies {
        let justified = match *kind {
            "paid_after_close" => paid > 0 && matches!(status, "CLOSED" | "FAILED"),
            "refunded_by_cancel" => by_cancel,
            "unrequested_refund" => theirs.keys().any(|n| !succeeded.contains_key(n)),
            _ => false,
        };
        if !justified {
            problem(format!(
                "anomaly {kind} without money contradicting the order"
            ));
        }
    }
    // A buyer who paid a QR code shown as PENDING paid an order that was open then.
    if plan.kind == Kind::QrPaid && driven.buyer == Some(200) && paid == 0 {
        problem("the buyer's payment is not at Alipay".into());
    }
}
