//! Throughput of the local stack of `make run` (moto, the Alipay sandbox and the real
//! handlers, started in this process as `make run` starts them): signed QR creates
//! (`POST /v1/payments`) from concurrent clients, next to the AWS emulator's raw conditional
//! `PutItem` rate through the same server with as many clients, in the same run, first on an
//! empty table, then on a table of `BENCH_ORDERS` orders.
//!
//! `cargo bench -p local-stack --bench stack_throughput` (or `make bench-stack`).
//! `BENCH_CREATES` creates per phase (default 400), `BENCH_ORDERS` orders loaded for the
//! second phase (default 10 000). Without `--bench` on the command line (`cargo test
//! --all-targets` runs bench targets that way) it runs a few of each, as a smoke test.
//!
//! A create sends the emulator four requests: one conditional put (the nonce), two
//! transactions of two puts (the claim, then the QR code) and one SQS message; it also makes
//! two RSA2 round trips to the sandbox. So the bench also sends those four requests alone,
//! as many times as it creates: creates/s ÷ that rate is what the stack adds to the
//! emulator's own cost, and that rate ÷ raw puts/s bounds creates/s ÷ raw puts/s.
//!
//! The target: creates/s ÷ raw puts/s of at least `TARGET_RATIO`, as high with the loaded
//! table as with the empty one. Missing it is reported, never fatal (these machines are
//! noisy); a failed request is.

use aws_adapters::aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_adapters::aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_adapters::aws_sdk_dynamodb::types::builders::PutBuilder;
use aws_adapters::aws_sdk_dynamodb::types::{
    AttributeValue, Put, PutRequest, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    WriteRequest,
};
use aws_adapters::aws_sdk_dynamodb::{self, Client};
use aws_adapters::aws_sdk_sqs;
use domain::auth::{RequestToSign, sign, string_to_sign};
use local_stack::{LocalStack, ORDERS_TABLE, Options};
use secrecy::SecretString;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;
type Item = HashMap<String, AttributeValue>;

const CLIENTS: usize = 8;
const DEFAULT_CREATES: usize = 400;
const DEFAULT_ORDERS: usize = 10_000;
/// Raw puts per phase, half before and half after its creates (so both see the same drift).
const PUTS: usize = 2_000;
const WARM_UP_CREATES: usize = CLIENTS;
/// creates/s ÷ raw puts/s to reach, on each table size.
const TARGET_RATIO: f64 = 0.5;
/// creates/s ÷ raw puts/s on the loaded table ÷ the same on the empty one: at least this
/// counts as flat.
const FLAT_ENOUGH: f64 = 0.85;
/// The table (of the orders table's shape) and the queue of the requests sent without the
/// stack.
const BENCH_TABLE: &str = "bench-writes";
const BENCH_QUEUE: &str = "bench-expiry";
const REGION: &str = "us-east-1";
/// TTL values of the nonce puts (2100-01-01) and their condition's "now" (2026-01-01).
const FAR_FUTURE: &str = "4102444800";
const NOW: &str = "1767225600";
/// DynamoDB's limit of items per BatchWriteItem.
const BATCH: usize = 25;

fn main() -> BenchResult<()> {
    let full = std::env::args().any(|arg| arg == "--bench");
    let sizes = Sizes {
        creates: env_count("BENCH_CREATES", if full { DEFAULT_CREATES } else { 8 })?,
        orders: env_count("BENCH_ORDERS", if full { DEFAULT_ORDERS } else { 20 })?,
        puts: if full { PUTS } else { 16 },
    };
    tokio::runtime::Runtime::new()?.block_on(run(sizes))
}

#[derive(Debug, Clone, Copy)]
struct Sizes {
    creates: usize,
    orders: usize,
    puts: usize,
}

fn env_count(name: &str, default: usize) -> BenchResult<usize> {
    match std::env::var(name) {
        Ok(text) => Ok(text
            .parse()
            .map_err(|e| format!("{name}={text}: not a count: {e}"))?),
        Err(_) => Ok(default),
    }
}

async fn run(sizes: Sizes) -> BenchResult<()> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let stack = LocalStack::start(Options {
        knobs: Options::knobs_from_env(),
        ..Options::on_free_ports(dir.path())
    })
    .await?;
    let emulator = Emulator::of(&stack).await?;
    let merchant = Arc::new(Merchant::of(&stack)?);
    println!(
        "local stack: {CLIENTS} concurrent clients; per phase {} QR creates, as many of their \
         emulator requests alone, and {} conditional PutItem (raw), all through the same moto",
        sizes.creates, sizes.puts
    );

    creates(&merchant, WARM_UP_CREATES, "W").await?;
    let template = Template::of_one_order(&emulator.dynamo).await?;
    puts(&emulator.dynamo, CLIENTS, "W").await?;
    emulator_creates(&emulator, &template, CLIENTS, "W").await?;

    let empty = phase(&merchant, &emulator, &template, sizes, "E").await?;
    report("empty table", &empty);

    let loaded_started = Instant::now();
    let missing = sizes
        .orders
        .saturating_sub(count_orders(&emulator.dynamo).await?);
    preload(&emulator.dynamo, &template, missing).await?;
    println!(
        "  (loaded {missing} orders in {:.1} s)",
        loaded_started.elapsed().as_secs_f64()
    );
    let loaded = phase(&merchant, &emulator, &template, sizes, "L").await?;
    report(&format!("{} orders", sizes.orders), &loaded);

    // Same-run ratios: the machine's drift between the phases cancels out.
    let flatness = loaded.ratio_to_puts() / empty.ratio_to_puts();
    println!(
        "creates/s ÷ raw puts/s with {} orders, ÷ the same on the empty table: {flatness:.2}",
        sizes.orders
    );
    let ratios_met = [&empty, &loaded]
        .iter()
        .all(|p| p.ratio_to_puts() >= TARGET_RATIO);
    println!(
        "target: creates/s ÷ raw puts/s ≥ {TARGET_RATIO} on both tables ({}), and flat \
         (≥ {FLAT_ENOUGH}: {})",
        if ratios_met { "met" } else { "MISSED" },
        if flatness >= FLAT_ENOUGH {
            "met"
        } else {
            "MISSED"
        },
    );
    let bound = |p: &Phase| p.emulator_creates.per_second() / p.puts.per_second();
    println!(
        "bound: a create's emulator requests alone ÷ raw puts/s: {:.2} (empty table), {:.2} \
         ({} orders)",
        bound(&empty),
        bound(&loaded),
        sizes.orders
    );
    println!("(whole run {:.0} s)", started.elapsed().as_secs_f64());
    stack.shutdown().await;
    Ok(())
}

/// One measurement on the table as it is.
struct Phase {
    orders_before: usize,
    puts: Rate,
    emulator_creates: Rate,
    creates: Rate,
    create_latencies: Vec<Duration>,
}

/// So many operations in so much time.
#[derive(Default)]
struct Rate {
    count: usize,
    time: Duration,
}

impl Rate {
    fn add(&mut self, count: usize, time: Duration) {
        self.count += count;
        self.time += time;
    }

    fn per_second(&self) -> f64 {
        self.count as f64 / self.time.as_secs_f64()
    }
}

impl Phase {
    fn ratio_to_puts(&self) -> f64 {
        self.creates.per_second() / self.puts.per_second()
    }

    fn latency_ms(&self, quantile: f64) -> f64 {
        let mut sorted = self.create_latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * quantile).round() as usize;
        sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}

/// Raw puts and the emulator's requests alone, half before and half after the creates (so
/// that both see the same drift of a noisy machine).
async fn phase(
    merchant: &Arc<Merchant>,
    emulator: &Emulator,
    template: &Template,
    sizes: Sizes,
    tag: &str,
) -> BenchResult<Phase> {
    let orders_before = count_orders(&emulator.dynamo).await?;
    let mut phase = Phase {
        orders_before,
        puts: Rate::default(),
        emulator_creates: Rate::default(),
        creates: Rate::default(),
        create_latencies: Vec::new(),
    };
    let puts_half = sizes.puts / 2;
    let creates_half = sizes.creates / 2;
    for (half, puts_count, creates_count) in [
        ("1", puts_half, creates_half),
        ("2", sizes.puts - puts_half, sizes.creates - creates_half),
    ] {
        let tag = format!("{tag}{half}");
        if half == "2" {
            let created = Instant::now();
            phase.create_latencies = creates(merchant, sizes.creates, &tag).await?;
            phase.creates.add(sizes.creates, created.elapsed());
        }
        let time = puts(&emulator.dynamo, puts_count, &tag).await?;
        phase.puts.add(puts_count, time);
        let time = emulator_creates(emulator, template, creates_count, &tag).await?;
        phase.emulator_creates.add(creates_count, time);
    }
    Ok(phase)
}

fn report(label: &str, phase: &Phase) {
    let creates = phase.creates.per_second();
    println!(
        "{label:>14}: {} orders before | raw puts {:.0}/s | creates {creates:.1}/s, ratio to raw \
         puts {:.2} | their emulator requests alone {:.1}/s (creates keep {:.0}% of that) | \
         create latency p50 {:.0} ms, p95 {:.0} ms",
        phase.orders_before,
        phase.puts.per_second(),
        phase.ratio_to_puts(),
        phase.emulator_creates.per_second(),
        100.0 * creates / phase.emulator_creates.per_second(),
        phase.latency_ms(0.5),
        phase.latency_ms(0.95),
    );
}

/// Clients of the stack's moto, and a table and a queue of their own for the requests sent
/// without the stack (so that these add nothing to the stack's table and queue).
struct Emulator {
    dynamo: Client,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl Emulator {
    async fn of(stack: &LocalStack) -> BenchResult<Emulator> {
        let endpoint = stack.moto_url();
        let credentials = Credentials::new("testing", "testing", None, None, "bench");
        let dynamo = Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(REGION))
                .credentials_provider(credentials.clone())
                .endpoint_url(&endpoint)
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::Config::builder()
                .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                .region(aws_sdk_sqs::config::Region::new(REGION))
                .credentials_provider(credentials)
                .endpoint_url(&endpoint)
                .build(),
        );
        aws_adapters::dynamo::schema::create_table(&dynamo, BENCH_TABLE).await?;
        let queue_url = sqs
            .create_queue()
            .queue_name(BENCH_QUEUE)
            .send()
            .await
            .map_err(|e| failed("CreateQueue", e))?
            .queue_url
            .ok_or("the bench queue has no URL")?;
        Ok(Emulator {
            dynamo,
            sqs,
            queue_url,
        })
    }
}

fn failed(operation: &str, error: impl Error) -> Box<dyn Error + Send + Sync> {
    format!("{operation}: {}", DisplayErrorContext(error)).into()
}

/// The stack's merchant API and its key, signing like a merchant (`domain::auth`).
struct Merchant {
    http: reqwest::Client,
    api: String,
    key_id: &'static str,
    secret: SecretString,
}

impl Merchant {
    fn of(stack: &LocalStack) -> BenchResult<Merchant> {
        let key = stack.merchant_key();
        let secret = std::fs::read_to_string(&key.secret_file)?;
        Ok(Merchant {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .no_proxy()
                .build()?,
            api: stack.api_url().to_owned(),
            key_id: key.key_id,
            secret: SecretString::from(secret.trim().to_owned()),
        })
    }

    /// One QR create; its latency.
    async fn create(&self, out_trade_no: &str) -> BenchResult<Duration> {
        let path = "/v1/payments";
        let body = json!({
            "out_trade_no": out_trade_no,
            "amount_fen": 1,
            "subject": "coffee",
            "scene": "qr",
        })
        .to_string();
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let nonce = format!("bench{}", ulid::Ulid::generate());
        let to_sign = RequestToSign {
            method: "POST",
            path,
            raw_query: "",
            body: body.as_bytes(),
        };
        let to_sign = string_to_sign(&to_sign, &timestamp, &nonce)
            .map_err(|e| failed("signing the request", e))?;
        let signature = sign(&self.secret, &to_sign);
        let sent = Instant::now();
        let response = self
            .http
            .post(format!("{}{path}", self.api))
            .header("x-key-id", self.key_id)
            .header("x-timestamp", timestamp)
            .header("x-nonce", nonce)
            .header("x-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let answer = response.text().await?;
        if status != reqwest::StatusCode::CREATED {
            return Err(format!("create {out_trade_no}: {status}: {answer}").into());
        }
        Ok(sent.elapsed())
    }
}

/// `count` creates from [`CLIENTS`] concurrent clients; each one's latency.
async fn creates(merchant: &Arc<Merchant>, count: usize, tag: &str) -> BenchResult<Vec<Duration>> {
    let run = ulid::Ulid::generate().to_string();
    let numbers = (0..count).map(|i| format!("B{tag}{}{i:06}", &run[16..]));
    let jobs = numbers
        .into_iter()
        .map(|no| {
            let merchant = Arc::clone(merchant);
            async move { merchant.create(&no).await }
        })
        .collect();
    concurrently(jobs).await
}

/// `count` conditional puts of fresh items from [`CLIENTS`] concurrent clients, shaped like the
/// nonce puts of the API (`attribute_not_exists(pk)`); the time they took.
async fn puts(dynamo: &Client, count: usize, tag: &str) -> BenchResult<Duration> {
    let run = ulid::Ulid::generate().to_string();
    let started = Instant::now();
    let jobs = (0..count)
        .map(|i| {
            let put = dynamo
                .put_item()
                .table_name(BENCH_TABLE)
                .item("pk", AttributeValue::S(format!("PUT#{tag}{run}#{i}")))
                .item("sk", AttributeValue::S("PUT".to_owned()))
                .item("ttl", AttributeValue::N(FAR_FUTURE.to_owned()))
                .condition_expression("attribute_not_exists(pk)");
            async move {
                put.send().await.map_err(|e| failed("PutItem", e))?;
                Ok(())
            }
        })
        .collect();
    concurrently(jobs).await?;
    Ok(started.elapsed())
}

/// Runs the jobs on [`CLIENTS`] tasks, each taking the next job when it is free; their
/// results in the jobs' order.
async fn concurrently<T, Job>(jobs: Vec<Job>) -> BenchResult<Vec<T>>
where
    T: Send + 'static,
    Job: Future<Output = BenchResult<T>> + Send + 'static,
{
    let count = jobs.len();
    let queue = Arc::new(Mutex::new(
        jobs.into_iter().enumerate().collect::<VecDeque<_>>(),
    ));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let queue = Arc::clone(&queue);
        workers.spawn(async move {
            let mut done = Vec::new();
            loop {
                let next = queue.lock().ok().and_then(|mut jobs| jobs.pop_front());
                let Some((index, job)) = next else { break };
                done.push((index, job.await));
            }
            done
        });
    }
    let mut results: Vec<Option<T>> = (0..count).map(|_| None).collect();
    while let Some(joined) = workers.join_next().await {
        for (index, result) in joined? {
            results[index] = Some(result?);
        }
    }
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| "a job did not run".into()))
        .collect()
}

/// Orders in the orders table (a scan of the order items, counted by moto).
async fn count_orders(dynamo: &Client) -> BenchResult<usize> {
    let mut count = 0;
    let mut start = None;
    loop {
        let page = dynamo
            .scan()
            .table_name(ORDERS_TABLE)
            .filter_expression("sk = :order")
            .expression_attribute_values(":order", AttributeValue::S("ORDER".to_owned()))
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| failed("Scan", e))?;
        count += usize::try_from(page.count).unwrap_or(0);
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(count);
        }
    }
}

/// A real order as the stack wrote it: the order item and its audit events.
struct Template {
    out_trade_no: String,
    order: Item,
    /// Oldest first: the claim's, then the QR code's.
    events: Vec<Item>,
}

impl Template {
    async fn of_one_order(dynamo: &Client) -> BenchResult<Template> {
        let page = dynamo
            .scan()
            .table_name(ORDERS_TABLE)
            .filter_expression("sk = :order")
            .expression_attribute_values(":order", AttributeValue::S("ORDER".to_owned()))
            .send()
            .await
            .map_err(|e| failed("Scan", e))?;
        let order = page
            .items
            .and_then(|items| items.into_iter().next())
            .ok_or("no order to copy")?;
        let out_trade_no = match order.get("out_trade_no") {
            Some(AttributeValue::S(no)) => no.clone(),
            _ => return Err("an order without out_trade_no".into()),
        };
        let pk = order.get("pk").cloned().ok_or("an order without pk")?;
        let events = dynamo
            .query()
            .table_name(ORDERS_TABLE)
            .key_condition_expression("pk = :pk AND begins_with(sk, :event)")
            .expression_attribute_values(":pk", pk)
            .expression_attribute_values(":event", AttributeValue::S("EVENT#".to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failed("Query", e))?
            .items
            .unwrap_or_default();
        if events.len() != 2 {
            return Err(format!("order {out_trade_no} has {} events, not 2", events.len()).into());
        }
        Ok(Template {
            out_trade_no,
            order,
            events,
        })
    }

    /// The template's items under another number (every string naming the template's number
    /// names the copy's: keys, index keys, fields): the order, then its events.
    fn copy(&self, out_trade_no: &str) -> Vec<Item> {
        std::iter::once(&self.order)
            .chain(&self.events)
            .map(|item| renamed_item(item, &self.out_trade_no, out_trade_no))
            .collect()
    }
}

/// What the stack sends the emulator for `count` creates, without the stack: the nonce's
/// conditional put, the claim and the QR code transactions (two puts each, with the stack's
/// conditions), the expiry message; from [`CLIENTS`] concurrent clients. The time it took.
async fn emulator_creates(
    emulator: &Emulator,
    template: &Template,
    count: usize,
    tag: &str,
) -> BenchResult<Duration> {
    let run = ulid::Ulid::generate().to_string();
    let status = template.order.get("status").cloned().ok_or("no status")?;
    let version = template.order.get("version").cloned().ok_or("no version")?;
    let started = Instant::now();
    let jobs = (0..count)
        .map(|i| {
            let no = format!("M{tag}{}{i:06}", &run[16..]);
            let copy = template.copy(&no);
            let (dynamo, sqs) = (emulator.dynamo.clone(), emulator.sqs.clone());
            let queue_url = emulator.queue_url.clone();
            let (status, version) = (status.clone(), version.clone());
            async move {
                let [order, claim_event, qr_event] = copy.as_slice() else {
                    return Err("a template copy is an order and two events".into());
                };
                dynamo
                    .put_item()
                    .table_name(BENCH_TABLE)
                    .item("pk", AttributeValue::S(format!("NONCE#bench#{no}")))
                    .item("sk", AttributeValue::S("NONCE".to_owned()))
                    .item("ttl", AttributeValue::N(FAR_FUTURE.to_owned()))
                    .condition_expression("attribute_not_exists(pk) OR #ttl < :now")
                    .expression_attribute_names("#ttl", "ttl")
                    .expression_attribute_values(":now", AttributeValue::N(NOW.to_owned()))
                    .send()
                    .await
                    .map_err(|e| failed("PutItem", e))?;
                let claim = order_put(order).condition_expression("attribute_not_exists(pk)");
                transact(&dynamo, claim, claim_event).await?;
                let qr = order_put(order)
                    .condition_expression("#status = :status AND #version = :version")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_values(":status", status)
                    .expression_attribute_values(":version", version);
                transact(&dynamo, qr, qr_event).await?;
                sqs.send_message()
                    .queue_url(queue_url)
                    .message_body(json!({ "out_trade_no": no }).to_string())
                    .delay_seconds(900)
                    .send()
                    .await
                    .map_err(|e| failed("SendMessage", e))?;
                Ok(())
            }
        })
        .collect();
    concurrently(jobs).await?;
    Ok(started.elapsed())
}

fn order_put(order: &Item) -> PutBuilder {
    Put::builder()
        .table_name(BENCH_TABLE)
        .set_item(Some(order.clone()))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
}

async fn transact(dynamo: &Client, order: PutBuilder, event: &Item) -> BenchResult<()> {
    let event = Put::builder()
        .table_name(BENCH_TABLE)
        .set_item(Some(event.clone()))
        .condition_expression("attribute_not_exists(pk)");
    dynamo
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().put(order.build()?).build())
        .transact_items(TransactWriteItem::builder().put(event.build()?).build())
        .send()
        .await
        .map_err(|e| failed("TransactWriteItems", e))?;
    Ok(())
}

/// `count` copies of the template order under new numbers, written with BatchWriteItem: the table then holds what as many creates would have left.
async fn preload(dynamo: &Client, template: &Template, count: usize) -> BenchResult<()> {
    let run = ulid::Ulid::generate().to_string();
    let requests: Vec<WriteRequest> = (0..count)
        .flat_map(|i| template.copy(&format!("P{}{i:06}", &run[16..])))
        .map(|item| {
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map(|put| WriteRequest::builder().put_request(put).build())
        })
        .collect::<Result<_, _>>()?;
    let jobs = requests
        .chunks(BATCH)
        .map(|batch| write_batch(dynamo.clone(), batch.to_vec()))
        .collect();
    concurrently(jobs).await?;
    Ok(())
}

async fn write_batch(dynamo: Client, mut batch: Vec<WriteRequest>) -> BenchResult<()> {
    for _ in 0..5 {
        let written = dynamo
            .batch_write_item()
            .request_items(ORDERS_TABLE, batch)
            .send()
            .await
            .map_err(|e| failed("BatchWriteItem", e))?;
        batch = written
            .unprocessed_items
            .and_then(|mut left| left.remove(ORDERS_TABLE))
            .unwrap_or_default();
        if batch.is_empty() {
            return Ok(());
        }
    }
    Err("BatchWriteItem left items unprocessed five times".into())
}

fn renamed_item(item: &Item, from: &str, to: &str) -> Item {
    item.iter()
        .map(|(name, value)| (name.clone(), renamed(value, from, to)))
        .collect()
}

fn renamed(value: &AttributeValue, from: &str, to: &str) -> AttributeValue {
    match value {
        AttributeValue::S(text) => AttributeValue::S(text.replace(from, to)),
        AttributeValue::M(map) => AttributeValue::M(renamed_item(map, from, to)),
        AttributeValue::L(list) => {
            AttributeValue::L(list.iter().map(|v| renamed(v, from, to)).collect())
        }
        other => other.clone(),
    }
}
