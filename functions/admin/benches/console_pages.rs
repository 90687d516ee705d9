//! The console's day listing at 10 000 orders: every page of one Beijing day read through the
//! admin function (`GET /admin/orders?date=…&limit=100`, JSON answer included), next to the
//! same pages read with bare DynamoDB Queries of the day index in the same run (the
//! baseline: what the emulator itself costs), with the read units DynamoDB would bill a page
//! (from the items' sizes, as DynamoDB counts them).
//!
//! `cargo bench -p admin --bench console_pages` (ORDERS=… for the day's size, ROUNDS=… for
//! how many times every page is read, default 3). The orders are written by the store's own
//! claims, eight at a time, before anything is timed.

use aws_adapters::{DynamoOrderStore, aws_sdk_dynamodb, aws_sdk_s3, aws_sdk_sqs};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use chrono::{Duration, TimeZone, Utc};
use domain::order::{NewOrder, Order};
use domain::ports::OrderStore;
use domain::{OrderAmount, OutTradeNo, Scene};
use f2f_runtime::AdminConfig;
use serde_json::{Value, json};
use std::time::Instant;
use test_support::moto::MotoServer;

type BenchResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const PAGE: u32 = 100;

#[tokio::main]
async fn main() -> BenchResult {
    let orders: usize = std::env::var("ORDERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let moto = MotoServer::shared().await?;
    let sdk = moto.sdk_config();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let table = test_support::unique_name("console-bench");
    aws_adapters::dynamo::schema::create_table(&dynamo, &table).await?;
    let bucket = test_support::unique_name("bills");
    aws_sdk_s3::Client::new(&sdk)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await?;
    let queue_url = aws_sdk_sqs::Client::new(&sdk)
        .create_queue()
        .queue_name(test_support::unique_name("expiry"))
        .send()
        .await?
        .queue_url
        .unwrap_or_default();
    let store = DynamoOrderStore::new(dynamo.clone(), &table).acting_as("pay");

    // Noon in Beijing, one order a second going back: one Beijing day at most 10 000 orders.
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).ok_or("a date")?;
    let noon = Utc
        .with_ymd_and_hms(2026, 12, 1, 4, 0, 0)
        .single()
        .ok_or("a time")?;
    let started = Instant::now();
    let chunks: Vec<Vec<usize>> = (0..orders)
        .collect::<Vec<_>>()
        .chunks(orders.div_ceil(8).max(1))
        .map(<[usize]>::to_vec)
        .collect();
    let mut writers = Vec::new();
    for chunk in chunks {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in chunk {
                let created = noon - Duration::seconds(i as i64 % 40_000);
                let new = NewOrder {
                    out_trade_no: OutTradeNo::parse(&format!("B{i:06}"))?,
                    amount: OrderAmount::from_fen(100 + i as i64 % 10_000)
                        .map_err(|e| format!("{e:?}"))?,
                    subject: "咖啡 coffee".into(),
                    scene: if i % 2 == 0 {
                        Scene::Qr
                    } else {
                        Scene::Barcode
                    },
                    store_id: Some(format!("S{}", i % 7)),
                    operator_id: None,
                    terminal_id: None,
                    request_hash: "h".into(),
                    expires_at: created + Duration::minutes(5),
                };
                let (order, event) = Order::claim(new, created, Duration::seconds(30));
                store.claim(&order, &event).await?;
            }
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    println!(
        "seeded {orders} orders of {day} in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let admin = admin::wired(
        &sdk,
        &AdminConfig {
            orders_table: table.clone(),
            bill_bucket: bucket,
            expiry_queue_url: queue_url,
        },
    );
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    for round in 1..=rounds {
        let (raw_seconds, raw_pages, units, billed) = raw_pages(&dynamo, &table, day).await?;
        let (console_seconds, pages, listed) = console_pages(&admin, day).await?;
        assert_eq!(listed, orders, "every order listed once");
        assert_eq!(pages, raw_pages);
        println!(
            "round {round}: {pages} pages of {PAGE}: console {:.2} s ({:.1} ms a page), bare Query {:.2} s ({:.1} ms a page), ratio {:.2}; DynamoDB read units {:.1} a page (items of {} B on average), {:.1} in all (the emulator reports {} a page)",
            console_seconds,
            console_seconds * 1000.0 / pages as f64,
            raw_seconds,
            raw_seconds * 1000.0 / raw_pages as f64,
            console_seconds / raw_seconds,
            billed.units / raw_pages as f64,
            billed.mean_item,
            billed.units,
            units.map_or("nothing".to_owned(), |u| format!(
                "{:.1}",
                u / raw_pages as f64
            )),
        );
    }
    Ok(())
}

/// Every page through the admin function, as the console's "load more" reads them.
async fn console_pages(
    admin: &admin::WiredAdmin,
    day: chrono::NaiveDate,
) -> BenchResult<(f64, usize, usize)> {
    let started = Instant::now();
    let (mut pages, mut listed) = (0, 0);
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/admin/orders?date={day}&limit={PAGE}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let response = admin.handle(request(&path)).await;
        let page: Value = serde_json::from_slice(response.body())?;
        if response.status() != 200 {
            return Err(format!("{path}: {page}").into());
        }
        pages += 1;
        listed += page["orders"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    Ok((started.elapsed().as_secs_f64(), pages, listed))
}

/// The same pages as bare Queries of the day index: the emulator's own cost.
async fn raw_pages(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    day: chrono::NaiveDate,
) -> BenchResult<(f64, usize, Option<f64>, Billed)> {
    let started = Instant::now();
    let mut pages = 0;
    let mut units: Option<f64> = None;
    let (mut billed, mut item_bytes, mut items) = (0.0, 0, 0);
    let mut start = None;
    loop {
        let page = dynamo
            .query()
            .table_name(table)
            .index_name(aws_adapters::dynamo::schema::DAY_INDEX)
            .key_condition_expression("gsi1pk = :day")
            .expression_attribute_values(":day", AttributeValue::S(format!("DAY#{day}")))
            .scan_index_forward(false)
            .limit(PAGE as i32)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .set_exclusive_start_key(start.take())
            .send()
            .await?;
        pages += 1;
        if let Some(consumed) = page
            .consumed_capacity
            .as_ref()
            .and_then(|c| c.capacity_units)
        {
            *units.get_or_insert(0.0) += consumed;
        }
        let bytes: usize = page.items().iter().map(item_size).sum();
        billed += read_units(bytes);
        item_bytes += bytes;
        items += page.items().len();
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => break,
        }
    }
    Ok((
        started.elapsed().as_secs_f64(),
        pages,
        units,
        Billed {
            units: billed,
            mean_item: item_bytes / items.max(1),
        },
    ))
}

/// What DynamoDB would bill for the pages: a Query reads the items' total size in 4 KB units,
/// half a unit each when eventually consistent (the emulator's own figure is not DynamoDB's).
struct Billed {
    units: f64,
    mean_item: usize,
}

fn read_units(bytes: usize) -> f64 {
    bytes.div_ceil(4096) as f64 * 0.5
}

/// An item's size as DynamoDB counts it: attribute names plus values (strings and binaries
/// their length, numbers about one byte per two digits plus one, maps and lists three bytes
/// plus one per element plus their contents).
fn item_size(item: &std::collections::HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::N(number) => number.len().div_ceil(2) + 1,
        AttributeValue::B(bytes) => bytes.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(name, value)| 1 + name.len() + value_size(value))
                .sum::<usize>()
        }
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

fn request(path_and_query: &str) -> lambda_http::Request {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": {}, "isBase64Encoded": false,
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "localhost",
            "domainPrefix": "localhost", "requestId": "bench", "routeKey": "$default",
            "stage": "$default", "time": "01/Jan/2024:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "authorizer": {"jwt": {"claims": {"sub": "b", "cognito:groups": "[viewer]"},
                                   "scopes": null}},
        },
    });
    lambda_http::request::from_str(&event.to_string()).unwrap_or_default()
}
