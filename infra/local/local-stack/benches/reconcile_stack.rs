//! Reconciliation in the local stack of `make run` (moto, the sandbox and the real handlers,
//! started in this process as `make run` starts them): what reading a day's ledger costs in
//! DynamoDB read units, and how long a whole day takes from the bill's upload to its report.
//!
//! **Read units per 1,000 orders matched.** A synthetic day (`alipay_sandbox::bill::synth`)
//! with exactly 1,000 orders is written through `DynamoOrderStore::claim` and `apply`, each
//! order by the transitions production applies to a QR order (`synth_ledger`): claimed, given
//! its QR code, paid, and refunded for about 5 % of the rows. Then the day index is read as
//! `orders_of_day` reads it (a paged Query on `gsi1`), every order is checked to come back as
//! written, and the bill is matched against them in this process (every row must be
//! `matched`). Moto answers `ConsumedCapacity` with a fixed figure per request (1 for a Query
//! page, 0.5 for a GetItem, whatever was read), which is printed but is not a measure: the
//! read units are computed from the items the Query returned, by DynamoDB's rule (an
//! attribute's size is its name's bytes plus its value's, numbers a byte per two significant
//! digits plus one, maps and lists 3 bytes plus a byte per element; a Query page, at most 1 MB
//! of items, costs its items' total size rounded up to 4 KB, halved for an eventually
//! consistent read, which a GSI read always is). A row whose order was created on another day
//! costs one strongly consistent read of that order (`each_order_numbered`, BatchGetItem of
//! up to 100, which DynamoDB charges item by item as GetItem): its item size rounded up to
//! 4 KB, one unit per 4 KB (measured here on a GetItem of each order).
//!
//! **A 100,000-row day end to end.** The day's orders (about 95,000) are loaded into the
//! stack's table with BatchWriteItem (25 items a request, 8 clients): each order item exactly as
//! `DynamoOrderStore` writes it (the same `serde_dynamo` mapping, keys and `gsi1` keys; the
//! first part checks item for item that this bench's mapping equals what `claim`/`apply`
//! stored), without the audit events, which the day index does not read. Going through
//! `claim`/`apply` instead (`BENCH_LOAD=transactions`) takes about twice as many transactions
//! as orders; its rate is measured in the first part and the time it would take is printed.
//! Then the bill goes to `bills/<day>/trade.zip` in the stack's bill bucket, the stack's
//! bucket poller (every second) runs reconcile on it, and the bench waits for
//! `reports/<day>/summary.json`, whose counts must show every row matched. In the same run,
//! as the baseline, a process of its own does what the function does between the download and
//! the first write: the day index read page by page into the matcher's ledger
//! (`each_order_of_day`, a page of whole orders at a time), then the bill parsed and matched
//! (timed apart); end to end over the sum of the two says what the rest (the download, the S3
//! writes, the poll's wait) adds. That process also reports its resident memory (its own,
//! unlike the stack's process, which holds the bench's data too): what the ledger takes once
//! the day is read, the peak while reading it (VmHWM) and while matching (VmHWM reset through
//! `/proc/self/clear_refs`), and that peak scaled to a day of 1,000,000 rows. The day's read
//! units are computed from its items too.
//!
//! `cargo bench -p local-stack --bench reconcile_stack` (or `make bench-stack`).
//! `BENCH_RECONCILE_ROWS` sets the day's rows (default 100 000), `BENCH_LOAD` `batch`
//! (default) or `transactions`, `BENCH_RECONCILE_TIMEOUT` the seconds to wait for the report
//! (default 3600). Without `--bench` on the command line (`cargo test --all-targets` runs
//! bench targets that way) it runs on 50 orders and 500 rows, as a smoke test. The process
//! exits non-zero only when a result is wrong (an order stored otherwise than written, a row
//! not matched, a report missing).

#[allow(dead_code)] // Some of it is for the reconcile crate's own benchmark.
#[path = "../../../../functions/reconcile/benches/synth_ledger/mod.rs"]
mod synth_ledger;

use alipay_sandbox::bill::synth::{SynthOptions, SynthReport, synth_bill};
use aws_adapters::aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_adapters::aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_adapters::aws_sdk_dynamodb::types::{
    AttributeValue, PutRequest, ReturnConsumedCapacity, WriteRequest,
};
use aws_adapters::aws_sdk_dynamodb::{self, Client};
use aws_adapters::dynamo::orders::{day_pk, order_pk};
use aws_adapters::dynamo::schema::DAY_INDEX;
use aws_adapters::{DynamoOrderStore, S3Objects, aws_sdk_s3};
use chrono::{NaiveDate, SecondsFormat};
use domain::bills::BillKey;
use domain::order::Order;
use domain::ports::{Applied, Claim, ObjectStore, OrderStore};
use local_stack::bills::BILL_BUCKET;
use local_stack::{LocalStack, ORDERS_TABLE, Options};
use reconcile::matching::{Class, Matched, Matcher};
use serde_json::Value;
use std::collections::HashMap;
use std::error::Error;
use std::future::Future;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use synth_ledger::{Made, made_of_line, order_of_line};

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;
type Item = HashMap<String, AttributeValue>;

const CLIENTS: usize = 8;
/// DynamoDB's limit of items per BatchWriteItem.
const BATCH: usize = 25;
/// Orders made and written at a time while loading the day.
const LOAD_CHUNK: usize = 2_000;
const DEFAULT_ROWS: u64 = 100_000;
const READ_UNITS_ORDERS: u64 = 1_000;
const DEFAULT_TIMEOUT_SECONDS: u64 = 3600;
const POLL: Duration = Duration::from_millis(100);
/// A read unit reads 4 KB; a Query page holds at most 1 MB of items.
const READ_UNIT_BYTES: u64 = 4096;
const PAGE_BYTES: u64 = 1 << 20;
/// The attributes of the day index's keys (`aws_adapters::dynamo::schema`).
const GSI1PK: &str = "gsi1pk";
const GSI1SK: &str = "gsi1sk";

/// Set in the environment of the process that reads and matches the day as the function
/// does (the baseline): moto's URL, the day, the bill.
const CHILD_MOTO: &str = "RECONCILE_STACK_MOTO";
const CHILD_DAY: &str = "RECONCILE_STACK_DAY";
const CHILD_BILL: &str = "RECONCILE_STACK_BILL";
/// The line that process ends with.
const RESULT_TAG: &str = "result:";

fn main() -> BenchResult<()> {
    if let (Ok(moto), Ok(day), Ok(bill)) = (
        std::env::var(CHILD_MOTO),
        std::env::var(CHILD_DAY),
        std::env::var(CHILD_BILL),
    ) {
        let day = NaiveDate::parse_from_str(&day, "%Y-%m-%d")?;
        return tokio::runtime::Runtime::new()?.block_on(read_and_match(
            &moto,
            day,
            Path::new(&bill),
        ));
    }
    let full = std::env::args().any(|arg| arg == "--bench");
    let sizes = Sizes {
        read_units_orders: if full { READ_UNITS_ORDERS } else { 50 },
        rows: env_number(
            "BENCH_RECONCILE_ROWS",
            if full { DEFAULT_ROWS } else { 500 },
        )?,
        transactions: match std::env::var("BENCH_LOAD").as_deref() {
            Err(_) | Ok("batch") => false,
            Ok("transactions") => true,
            Ok(other) => {
                return Err(format!("BENCH_LOAD={other}: batch or transactions").into());
            }
        },
        timeout: Duration::from_secs(env_number(
            "BENCH_RECONCILE_TIMEOUT",
            DEFAULT_TIMEOUT_SECONDS,
        )?),
    };
    tokio::runtime::Runtime::new()?.block_on(run(sizes))
}

#[derive(Debug, Clone, Copy)]
struct Sizes {
    read_units_orders: u64,
    rows: u64,
    transactions: bool,
    timeout: Duration,
}

fn env_number(name: &str, default: u64) -> BenchResult<u64> {
    match std::env::var(name) {
        Ok(text) => Ok(text
            .replace('_', "")
            .parse()
            .map_err(|e| format!("{name}={text}: not a number: {e}"))?),
        Err(_) => Ok(default),
    }
}

fn failed(operation: &str, error: impl Error) -> Box<dyn Error + Send + Sync> {
    format!("{operation}: {}", DisplayErrorContext(error)).into()
}

fn date(y: i32, m: u32, d: u32) -> BenchResult<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| "bad date".into())
}

/// The stack's clients.
struct Aws {
    moto_url: String,
    dynamo: Client,
    store: DynamoOrderStore,
    objects: S3Objects,
}

async fn run(sizes: Sizes) -> BenchResult<()> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let stack = LocalStack::start(Options {
        knobs: Options::knobs_from_env(),
        ..Options::on_free_ports(dir.path())
    })
    .await?;
    let sdk = stack.aws_sdk_config();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let aws = Aws {
        moto_url: stack.moto_url(),
        store: DynamoOrderStore::new(dynamo.clone(), ORDERS_TABLE),
        dynamo,
        objects: S3Objects::new(aws_sdk_s3::Client::new(&sdk), BILL_BUCKET),
    };
    println!(
        "local stack (moto, the sandbox and the handlers in this process); {CLIENTS} clients for \
         every load; load average {}",
        load_average()
    );
    let transactions_rate = read_units(
        &aws,
        sizes.read_units_orders,
        &dir.path().join("read-units"),
    )
    .await?;
    end_to_end(&aws, sizes, transactions_rate, &dir.path().join("day")).await?;
    println!("(whole run {:.0} s)", started.elapsed().as_secs_f64());
    stack.shutdown().await;
    Ok(())
}

/// A synthetic day with exactly `orders` orders (the synthesiser is told rows, not orders;
/// more rows never mean fewer orders).
fn synth_orders(day: NaiveDate, orders: u64, dir: &Path) -> BenchResult<SynthReport> {
    for rows in orders..orders * 2 {
        let synth = synth_bill(&SynthOptions::new(day, rows, dir))?;
        if synth.payments == orders {
            return Ok(synth);
        }
    }
    Err(format!("no synthetic day has exactly {orders} orders").into())
}

fn lines(path: &Path) -> BenchResult<Vec<String>> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    Ok(file.lines().collect::<Result<_, _>>()?)
}

/// Part one; returns the rate of orders written through `claim` and `apply`.
async fn read_units(aws: &Aws, orders: u64, dir: &Path) -> BenchResult<f64> {
    let day = date(2026, 11, 24)?;
    let synth = synth_orders(day, orders, dir)?;
    let made: Vec<Made> = lines(&synth.orders_path)?
        .iter()
        .map(|line| made_of_line(line))
        .collect::<Result<_, _>>()?;
    let transactions: usize = made.iter().map(|m| 1 + m.transitions.len()).sum();

    // Written as production writes them.
    let t = Instant::now();
    let made = Arc::new(made);
    let jobs = (0..made.len())
        .map(|i| {
            let (made, store) = (Arc::clone(&made), aws.store.clone());
            async move { write_order(&store, &made[i]).await }
        })
        .collect();
    concurrently(jobs).await?;
    let written = t.elapsed();
    let rate = made.len() as f64 / written.as_secs_f64();
    println!(
        "read units: {} orders of {day} ({} rows: {} payments, {} refunds) written through \
         DynamoOrderStore::claim + apply in {:.1} s: {rate:.0} orders/s, {:.0} transactions/s",
        made.len(),
        synth.rows,
        synth.payments,
        synth.refunds,
        written.as_secs_f64(),
        transactions as f64 / written.as_secs_f64(),
    );

    // Every order item as stored, next to this bench's mapping of the same order.
    let jobs = (0..made.len())
        .map(|i| {
            let (made, dynamo) = (Arc::clone(&made), aws.dynamo.clone());
            async move { stored_item(&dynamo, made[i].order()).await }
        })
        .collect();
    let stored: Vec<(Item, Option<f64>)> = concurrently(jobs).await?;
    for (m, (item, _)) in made.iter().zip(&stored) {
        let mapped = order_item(m.order())?;
        if *item != mapped {
            return Err(format!(
                "order {}: this bench's item differs from the stored one in {}",
                m.order().out_trade_no(),
                differing(item, &mapped).join(", ")
            )
            .into());
        }
    }
    let get_sizes: Vec<u64> = stored.iter().map(|(item, _)| item_bytes(item)).collect();
    let moto_get = stored.first().and_then(|(_, units)| *units);

    // The day index, read as orders_of_day reads it.
    let query = query_day(&aws.dynamo, day).await?;
    let by_number: HashMap<&str, &Order> = made
        .iter()
        .map(|m| (m.order().out_trade_no().as_str(), m.order()))
        .collect();
    let day_orders = aws.store.orders_of_day(day).await?;
    let same = day_orders
        .iter()
        .filter(|o| by_number.get(o.out_trade_no().as_str()) == Some(o))
        .count();
    if day_orders.len() != made.len() || same != made.len() || query.sizes.len() != made.len() {
        return Err(format!(
            "orders_of_day read {} orders ({same} as written), the Query {} items, of {} written",
            day_orders.len(),
            query.sizes.len(),
            made.len()
        )
        .into());
    }
    let (matched, rows) = match_in_process(&synth.zip_path, day, &day_orders)?;
    check(&matched, rows)?;

    let units = query_read_units(&query.sizes);
    let per_thousand = units * 1000.0 / made.len() as f64;
    let total: u64 = query.sizes.iter().sum();
    println!(
        "read units, the day's orders (orders_of_day: Query on {DAY_INDEX}, eventually \
         consistent): {} orders in {} page(s) of ≤ 1 MB, {:.1} KB of items (mean {:.0} B, max {} \
         B): {units:.1} RCU by DynamoDB's rule = {per_thousand:.1} RCU per 1,000 orders \
         matched ({rows} rows, all matched); moto reported {:.1} for {} request(s) (a fixed \
         figure per request)",
        made.len(),
        pages(&query.sizes).len(),
        total as f64 / 1024.0,
        total as f64 / made.len() as f64,
        query.sizes.iter().max().copied().unwrap_or(0),
        query.moto_units,
        query.requests,
    );
    let get_units: u64 = get_sizes.iter().map(|b| b.div_ceil(READ_UNIT_BYTES)).sum();
    println!(
        "read units, rows of orders created on other days: one strongly consistent read per \
         such order (BatchGetItem, charged item by item), ⌈item / 4 KB⌉ each: {:.2} RCU per \
         order here (items of \
         {}-{} B) = {:.0} RCU per 1,000 such orders; moto reported {} per GetItem (fixed); this \
         synthetic day has no such row",
        get_units as f64 / made.len() as f64,
        get_sizes.iter().min().copied().unwrap_or(0),
        get_sizes.iter().max().copied().unwrap_or(0),
        get_units as f64 * 1000.0 / made.len() as f64,
        moto_get.map_or_else(|| "nothing".to_owned(), |u| format!("{u}")),
    );
    Ok(rate)
}

async fn write_order(store: &DynamoOrderStore, made: &Made) -> BenchResult<()> {
    let no = made.claimed.out_trade_no();
    match Box::pin(store.claim(&made.claimed, &made.claim_event)).await? {
        Claim::Claimed => {}
        Claim::Exists(_) => return Err(format!("order {no} exists").into()),
    }
    for transition in &made.transitions {
        match Box::pin(store.apply(transition)).await? {
            Applied::Applied(_) => {}
            Applied::Conflict(_) => return Err(format!("order {no}: a conflict").into()),
        }
    }
    Ok(())
}

/// The stored order item (a strongly consistent GetItem, as `OrderStore::get` reads it) and
/// the units moto says it consumed.
async fn stored_item(dynamo: &Client, order: &Order) -> BenchResult<(Item, Option<f64>)> {
    let got = dynamo
        .get_item()
        .table_name(ORDERS_TABLE)
        .key("pk", AttributeValue::S(order_pk(order.out_trade_no())))
        .key("sk", AttributeValue::S("ORDER".to_owned()))
        .consistent_read(true)
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .map_err(|e| failed("GetItem", e))?;
    let units = got.consumed_capacity().and_then(|c| c.capacity_units());
    let item = got
        .item
        .ok_or_else(|| format!("order {} is not stored", order.out_trade_no()))?;
    Ok((item, units))
}

fn differing(a: &Item, b: &Item) -> Vec<String> {
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|name| a.get(*name) != b.get(*name))
        .map(|name| {
            format!(
                "{name} ({:?} stored, {:?} mapped)",
                a.get(name),
                b.get(name)
            )
        })
        .collect()
}

/// The day index's items, in the order a Query returns them, and what moto said they cost.
struct DayQuery {
    sizes: Vec<u64>,
    moto_units: f64,
    requests: u32,
}

async fn query_day(dynamo: &Client, day: NaiveDate) -> BenchResult<DayQuery> {
    let mut query = DayQuery {
        sizes: Vec::new(),
        moto_units: 0.0,
        requests: 0,
    };
    let mut start: Option<Item> = None;
    loop {
        let page = dynamo
            .query()
            .table_name(ORDERS_TABLE)
            .index_name(DAY_INDEX)
            .key_condition_expression("gsi1pk = :day")
            .expression_attribute_values(":day", AttributeValue::S(day_pk(day)))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| failed("Query", e))?;
        query.requests += 1;
        query.moto_units += page
            .consumed_capacity()
            .and_then(|c| c.capacity_units())
            .unwrap_or(0.0);
        query.sizes.extend(page.items().iter().map(item_bytes));
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(query),
        }
    }
}

/// The items' sizes split into DynamoDB's Query pages (each at most 1 MB of items).
fn pages(sizes: &[u64]) -> Vec<u64> {
    let mut pages = vec![0u64];
    for size in sizes {
        if let Some(last) = pages.last_mut()
            && *last + size <= PAGE_BYTES
        {
            *last += size;
        } else {
            pages.push(*size);
        }
    }
    pages
}

/// Read units of an eventually consistent Query returning items of these sizes.
fn query_read_units(sizes: &[u64]) -> f64 {
    pages(sizes)
        .iter()
        .map(|bytes| bytes.div_ceil(READ_UNIT_BYTES) as f64 * 0.5)
        .sum()
}

/// An item's size as DynamoDB counts it.
fn item_bytes(item: &Item) -> u64 {
    item.iter()
        .map(|(name, value)| name.len() as u64 + value_bytes(value))
        .sum()
}

fn value_bytes(value: &AttributeValue) -> u64 {
    match value {
        AttributeValue::S(text) => text.len() as u64,
        AttributeValue::N(number) => number_bytes(number),
        AttributeValue::B(blob) => blob.as_ref().len() as u64,
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(name, value)| name.len() as u64 + value_bytes(value) + 1)
                .sum::<u64>()
        }
        AttributeValue::L(list) => 3 + list.iter().map(|v| value_bytes(v) + 1).sum::<u64>(),
        AttributeValue::Ss(texts) => texts.iter().map(|t| t.len() as u64).sum(),
        AttributeValue::Ns(numbers) => numbers.iter().map(|n| number_bytes(n)).sum(),
        AttributeValue::Bs(blobs) => blobs.iter().map(|b| b.as_ref().len() as u64).sum(),
        _ => 0,
    }
}

/// A byte per two significant digits, plus one.
fn number_bytes(number: &str) -> u64 {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len() as u64;
    1 + significant.div_ceil(2)
}

/// The order item as `DynamoOrderStore` writes it: the order's serde fields mapped as
/// `serde_dynamo` maps them (strings S, numbers N, absent options NULL, booleans BOOL, structs
/// and tagged enums M, sequences L), its keys and the day index's keys.
fn order_item(order: &Order) -> BenchResult<Item> {
    let Value::Object(fields) = serde_json::to_value(order)? else {
        return Err("an order is not a JSON object".into());
    };
    let mut item: Item = fields
        .into_iter()
        .map(|(name, value)| (name, attribute(value)))
        .collect();
    let no = order.out_trade_no();
    let created_at = order.created_at();
    for (name, value) in [
        ("pk", AttributeValue::S(order_pk(no))),
        ("sk", AttributeValue::S("ORDER".to_owned())),
        (
            "status",
            AttributeValue::S(order.status().as_str().to_owned()),
        ),
        ("version", AttributeValue::N(order.version().to_string())),
        (
            GSI1PK,
            AttributeValue::S(day_pk(domain::beijing_day(created_at))),
        ),
        (
            GSI1SK,
            AttributeValue::S(format!(
                "{}#{no}",
                created_at.to_rfc3339_opts(SecondsFormat::Micros, true)
            )),
        ),
    ] {
        item.insert(name.to_owned(), value);
    }
    Ok(item)
}

fn attribute(value: Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s),
        Value::Array(values) => AttributeValue::L(values.into_iter().map(attribute).collect()),
        Value::Object(fields) => AttributeValue::M(
            fields
                .into_iter()
                .map(|(name, value)| (name, attribute(value)))
                .collect(),
        ),
    }
}

/// The bill matched against `orders` in this process, as `Reconciler::reconcile` matches it.
fn match_in_process(zip: &Path, day: NaiveDate, orders: &[Order]) -> BenchResult<(Matched, u64)> {
    let mut matcher = Matcher::new(day);
    for order in orders {
        matcher.add_order(order);
    }
    let key = BillKey::parse(&BillKey::trade(day)).ok_or("not a bill key")?;
    let read = reconcile::bill::read(&key, zip, &mut matcher, None)?;
    if !matcher.aside_numbers().is_empty() {
        return Err("a synthetic day has no row of another day's order".into());
    }
    matcher.classify_aside();
    Ok((matcher.finish(), read.rows))
}

fn check(matched: &Matched, rows: u64) -> BenchResult<()> {
    let count = matched.classes.get(&Class::Matched).map_or(0, |t| t.count);
    if matched.discrepancies() != 0 || count != rows || matched.bill != matched.ledger {
        return Err(format!(
            "a synthetic day must match row for row: {rows} rows, {count} matched, {} \
             discrepancies; bill {:?}, ledger {:?}",
            matched.discrepancies(),
            matched.bill,
            matched.ledger
        )
        .into());
    }
    Ok(())
}

/// Part two.
async fn end_to_end(
    aws: &Aws,
    sizes: Sizes,
    transactions_rate: f64,
    dir: &Path,
) -> BenchResult<()> {
    let day = date(2026, 11, 25)?;
    let synth = synth_bill(&SynthOptions::new(day, sizes.rows, dir))?;
    let lines = lines(&synth.orders_path)?;
    let orders = lines.len();
    let zip_mb = synth.zip_bytes as f64 / 1e6;

    let t = Instant::now();
    for chunk in lines.chunks(LOAD_CHUNK) {
        if sizes.transactions {
            let made: Arc<Vec<Made>> = Arc::new(
                chunk
                    .iter()
                    .map(|line| made_of_line(line))
                    .collect::<Result<_, _>>()?,
            );
            let jobs = (0..made.len())
                .map(|i| {
                    let (made, store) = (Arc::clone(&made), aws.store.clone());
                    async move { write_order(&store, &made[i]).await }
                })
                .collect();
            concurrently(jobs).await?;
        } else {
            let requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|line| {
                    let item = order_item(&order_of_line(line)?)?;
                    let put = PutRequest::builder().set_item(Some(item)).build()?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<BenchResult<_>>()?;
            let jobs = requests
                .chunks(BATCH)
                .map(|batch| write_batch(aws.dynamo.clone(), batch.to_vec()))
                .collect();
            concurrently(jobs).await?;
        }
    }
    let loaded = t.elapsed();
    let how = if sizes.transactions {
        "DynamoOrderStore::claim + apply".to_owned()
    } else {
        format!(
            "BatchWriteItem of order items; through claim + apply at the rate measured above it \
             would take about {:.0} s",
            orders as f64 / transactions_rate
        )
    };
    println!(
        "end to end, {} rows ({orders} orders, {} refunds, {zip_mb:.1} MB ZIP) of {day}: orders \
         loaded in {:.1} s ({:.0} orders/s; {how})",
        synth.rows,
        synth.refunds,
        loaded.as_secs_f64(),
        orders as f64 / loaded.as_secs_f64(),
    );

    drop(lines);
    let bill = std::fs::read(&synth.zip_path)?;
    let key = BillKey::trade(day);
    let t = Instant::now();
    aws.objects
        .put(&key, bill, "application/zip", &[])
        .await
        .map_err(|e| format!("putting the bill: {e}"))?;
    let put = t.elapsed();
    let summary_key = reconcile::report::summary_key(day);
    let rejected_key = reconcile::report::rejected_key(day);
    let t = Instant::now();
    loop {
        if aws.objects.exists(&summary_key).await? {
            break;
        }
        if aws.objects.exists(&rejected_key).await? {
            let why = aws.objects.read(&rejected_key).await?.unwrap_or_default();
            return Err(format!("the bill was rejected: {}", String::from_utf8_lossy(&why)).into());
        }
        if t.elapsed() > sizes.timeout {
            return Err(format!("no {summary_key} after {:?}", sizes.timeout).into());
        }
        tokio::time::sleep(POLL).await;
    }
    let reconciled = t.elapsed();
    let summary: Value = serde_json::from_slice(
        &aws.objects
            .read(&summary_key)
            .await?
            .ok_or("the summary vanished")?,
    )?;
    let matched_rows = summary["classes"]["matched"]["count"].as_u64();
    if summary["rows"].as_u64() != Some(synth.rows)
        || summary["orders"].as_u64() != Some(orders as u64)
        || summary["discrepancies"].as_u64() != Some(0)
        || matched_rows != Some(synth.rows)
    {
        return Err(format!("the report does not show every row matched: {summary}").into());
    }
    println!(
        "end to end: bill put in {:.2} s; put → {summary_key} in {:.1} s ({:.0} rows/s); the \
         report: {} rows, {} orders, {} matched, {} discrepancies",
        put.as_secs_f64(),
        reconciled.as_secs_f64(),
        synth.rows as f64 / reconciled.as_secs_f64(),
        summary["rows"],
        summary["orders"],
        summary["classes"]["matched"]["count"],
        summary["discrepancies"],
    );

    // The baseline, in the same run: the day read and matched as the function does it, without
    // S3 and the bucket's poll, in a fresh process (so that its memory is its own).
    let exe = std::env::current_exe()?;
    let output = tokio::process::Command::new(exe)
        .env(CHILD_MOTO, &aws.moto_url)
        .env(CHILD_DAY, day.format("%Y-%m-%d").to_string())
        .env(CHILD_BILL, &synth.zip_path)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "reading and matching the day failed ({}): {stdout}",
            output.status
        )
        .into());
    }
    let result = stdout
        .lines()
        .find_map(|line| line.strip_prefix(RESULT_TAG))
        .ok_or_else(|| format!("no result from reading and matching the day: {stdout}"))?;
    let baseline = Baseline::parse(result)?;
    if baseline.orders != orders as u64 || baseline.rows != synth.rows {
        return Err(format!(
            "reading and matching the day saw {} orders and {} rows",
            baseline.orders, baseline.rows
        )
        .into());
    }
    let both = baseline.queried + baseline.matching;
    let mb = |kb: u64| kb as f64 * 1024.0 / 1e6;
    let per_order = |kb: u64| kb as f64 * 1024.0 / orders as f64;
    let grown = |kb: u64| kb.saturating_sub(baseline.rss_start_kb);
    let peak = baseline.hwm_query_kb.max(baseline.hwm_match_kb);
    println!(
        "end to end, in the same run, the day read and matched as the function does it, in a \
         process of its own: each_order_of_day into the ledger {:.1} s ({:.0} orders/s), \
         parse+match {:.2} s ({:.2} M rows/s); end to end ÷ (query + match) = {:.2}x, the rest \
         {:.1} s (bill download, report writes, up to 1 s of the bucket poll); this day's Query \
         costs {:.0} RCU by DynamoDB's rule ({:.1} per 1,000 orders)",
        baseline.queried,
        orders as f64 / baseline.queried,
        baseline.matching,
        synth.rows as f64 / baseline.matching / 1e6,
        reconciled.as_secs_f64() / both,
        (reconciled.as_secs_f64() - both).max(0.0),
        baseline.units,
        baseline.units * 1000.0 / orders as f64,
    );
    println!(
        "end to end, memory of that process: {:.1} MB with its client ready; the ledger of the \
         {orders} orders holds {:.1} MB ({:.0} B per order), peak {:.1} MB while reading them \
         page by page ({:.0} B per order above the start); peak {:.1} MB while matching; scaled to a \
         1,000,000-row day (950,945 orders), a peak of about {:.0} MB",
        mb(baseline.rss_start_kb),
        mb(grown(baseline.rss_held_kb)),
        per_order(grown(baseline.rss_held_kb)),
        mb(baseline.hwm_query_kb),
        per_order(grown(baseline.hwm_query_kb)),
        mb(baseline.hwm_match_kb),
        mb(baseline.rss_start_kb) + per_order(grown(peak)) * 950_945.0 / 1e6,
    );
    Ok(())
}

/// What the process that reads and matches the day hands back.
struct Baseline {
    orders: u64,
    rows: u64,
    queried: f64,
    matching: f64,
    units: f64,
    rss_start_kb: u64,
    rss_held_kb: u64,
    hwm_query_kb: u64,
    hwm_match_kb: u64,
}

impl Baseline {
    fn line(&self) -> String {
        format!(
            "{RESULT_TAG}{} {} {} {} {} {} {} {} {}",
            self.orders,
            self.rows,
            self.queried,
            self.matching,
            self.units,
            self.rss_start_kb,
            self.rss_held_kb,
            self.hwm_query_kb,
            self.hwm_match_kb
        )
    }

    fn parse(text: &str) -> BenchResult<Baseline> {
        let fields: Vec<f64> = text
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("a result line {text:?}: {e}"))?;
        let [
            orders,
            rows,
            queried,
            matching,
            units,
            start,
            held,
            query,
            matched,
        ] = fields.as_slice()
        else {
            return Err(format!("a result line {text:?}").into());
        };
        Ok(Baseline {
            orders: *orders as u64,
            rows: *rows as u64,
            queried: *queried,
            matching: *matching,
            units: *units,
            rss_start_kb: *start as u64,
            rss_held_kb: *held as u64,
            hwm_query_kb: *query as u64,
            hwm_match_kb: *matched as u64,
        })
    }
}

/// The day read and matched as `Reconciler::reconcile` does it (the day index page by page
/// into the matcher's compact ledger, then every row of the bill); prints a [`Baseline`].
async fn read_and_match(moto: &str, day: NaiveDate, bill: &Path) -> BenchResult<()> {
    let credentials = Credentials::new("testing", "testing", None, None, "bench");
    let dynamo = Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(credentials)
            .endpoint_url(moto)
            .build(),
    );
    let store = DynamoOrderStore::new(dynamo, ORDERS_TABLE);
    // The client's own memory (connections, runtime) first: a day without orders.
    let empty = store
        .each_order_of_day(day - chrono::Days::new(365), &mut |_| {})
        .await?;
    if empty != 0 {
        return Err("the warm-up day has orders".into());
    }
    let rss_start_kb = status_kb("VmRSS:").ok_or("no VmRSS in /proc/self/status")?;
    let mut matcher = Matcher::new(day);
    // The items' sizes as the Query returned them (this bench's mapping is checked against
    // the stored items in the first part), for their read units; computed aside, not timed.
    let mut sizes: Vec<u64> = Vec::new();
    let mut sizing = Duration::ZERO;
    let mut mapping: Option<String> = None;
    let t = Instant::now();
    let count = store
        .each_order_of_day(day, &mut |order| {
            let sized = Instant::now();
            match order_item(&order) {
                Ok(item) => sizes.push(item_bytes(&item)),
                Err(e) => mapping = Some(e.to_string()),
            }
            sizing += sized.elapsed();
            matcher.add_order(&order);
        })
        .await?;
    let queried = (t.elapsed() - sizing).as_secs_f64();
    if let Some(e) = mapping {
        return Err(e.into());
    }
    let units = query_read_units(&sizes);
    drop(sizes);
    let rss_held_kb = status_kb("VmRSS:").unwrap_or(0);
    let hwm_query_kb = status_kb("VmHWM:").unwrap_or(0);
    // From here, the peak of matching (VmHWM reset to the present).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let t = Instant::now();
    let key = BillKey::parse(&BillKey::trade(day)).ok_or("not a bill key")?;
    let read = reconcile::bill::read(&key, bill, &mut matcher, None)?;
    if !matcher.aside_numbers().is_empty() {
        return Err("a synthetic day has no row of another day's order".into());
    }
    matcher.classify_aside();
    let matched = matcher.finish();
    let matching = t.elapsed().as_secs_f64();
    check(&matched, read.rows)?;
    let hwm_match_kb = if reset {
        status_kb("VmHWM:").unwrap_or(0)
    } else {
        hwm_query_kb
    };
    let baseline = Baseline {
        orders: count,
        rows: read.rows,
        queried,
        matching,
        units,
        rss_start_kb,
        rss_held_kb,
        hwm_query_kb,
        hwm_match_kb,
    };
    println!("{}", baseline.line());
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

/// Runs the jobs, at most [`CLIENTS`] at a time; their results in the jobs' order.
async fn concurrently<T, Job>(jobs: Vec<Job>) -> BenchResult<Vec<T>>
where
    T: Send + 'static,
    Job: Future<Output = BenchResult<T>> + Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(CLIENTS));
    let mut running = tokio::task::JoinSet::new();
    let count = jobs.len();
    for (index, job) in jobs.into_iter().enumerate() {
        let permits = Arc::clone(&permits);
        running.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            Ok::<_, Box<dyn Error + Send + Sync>>((index, job.await?))
        });
    }
    let mut results: Vec<Option<T>> = (0..count).map(|_| None).collect();
    while let Some(joined) = running.join_next().await {
        let (index, result) = joined??;
        results[index] = Some(result);
    }
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| "a job did not run".into()))
        .collect()
}

fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}
