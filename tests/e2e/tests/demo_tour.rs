//! The tour of `make demo` (`payments_cli::demo`) against the whole local stack, started as
//! `make run` starts it (moto, the Alipay sandbox, the functions on their routes, the expiry
//! queue poller, the stream publisher, the bill bucket's delivery) on free ports of 127.0.0.1
//! with a temporary local directory, and driven over HTTP only, from its `stack.json`.
//!
//! Checked on the tour's result rather than its printed text: the final state of every order;
//! the business events actually published on the events queue (this test owns the stack, so
//! it consumes the queue), exactly one per public audit event of each order and each
//! transition once; the sandbox's records agree (paid, lapsed, refunded amounts); the expired
//! order went through the real queue path (its `order.closed`, as published, is
//! timeout-close's `expired_never_scanned`, and the tour never read the order before); the
//! day's report matched every row.

use local_stack::{LocalStack, Options};
use payments_cli::demo::{self, Tour};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test]
async fn the_demo_tour_against_the_local_stack() -> TestResult {
    let dir = tempfile::tempdir()?;
    let stack = LocalStack::start(Options {
        // As `make run` (main.rs): every GET of a pending order asks the sandbox.
        knobs: BTreeMap::from([("SYNC_AFTER_SECONDS".to_owned(), "0".to_owned())]),
        ..Options::on_free_ports(dir.path())
    })
    .await?;
    let outcome = tour_and_published(&stack).await;
    stack.shutdown().await;
    let (tour, published, printed) = outcome?;
    eprintln!("{printed}");
    check(&tour, &published, &printed);
    Ok(())
}

/// Runs the tour from the stack's file, then reads the events queue.
async fn tour_and_published(
    stack: &LocalStack,
) -> TestResult<(Tour, BTreeMap<String, Vec<Value>>, String)> {
    let file = stack.write_stack_file()?;
    let described = demo::Stack::from_file(&file)?;
    let mut printed = Vec::new();
    let tour = match demo::run(&described, &mut printed).await {
        Ok(tour) => tour,
        Err(error) => {
            return Err(format!("{}\n{error}", String::from_utf8_lossy(&printed)).into());
        }
    };
    let expected: BTreeMap<String, usize> = tour
        .events
        .iter()
        .map(|(no, events)| (no.clone(), events.len()))
        .collect();
    let published = consume_events(stack, &expected).await?;
    Ok((
        tour,
        published,
        String::from_utf8_lossy(&printed).into_owned(),
    ))
}

/// Consumes the events queue until every order has at least its expected number of events,
/// then a little longer (a duplicate would show), keyed by order.
async fn consume_events(
    stack: &LocalStack,
    expected: &BTreeMap<String, usize>,
) -> TestResult<BTreeMap<String, Vec<Value>>> {
    let sqs = aws_adapters::aws_sdk_sqs::Client::new(&stack.aws_sdk_config());
    let mut published: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet_rounds = 0;
    loop {
        let events = stack.events().take_published(&sqs).await?;
        let received = events.len();
        for event in events {
            let no = event["out_trade_no"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            published.entry(no).or_default().push(event);
        }
        let complete = expected
            .iter()
            .all(|(no, n)| published.get(no).map_or(0, Vec::len) >= *n);
        if complete && received == 0 {
            quiet_rounds += 1;
            if quiet_rounds >= 2 {
                return Ok(published);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("events published: {published:?}, expected {expected:?}").into());
        }
    }
}

fn check(tour: &Tour, published: &BTreeMap<String, Vec<Value>>, printed: &str) {
    let (qr, expiring, barcode) = (&tour.qr, &tour.expiring, &tour.barcode);

    // Final states.
    let order = &tour.orders[qr];
    assert_eq!(order["status"], "PARTIALLY_REFUNDED", "{order}");
    assert_eq!(order["amount_fen"], demo::QR_FEN, "{order}");
    assert_eq!(order["refunded_fen"], demo::REFUND_FEN, "{order}");
    assert_eq!(
        order["refundable_fen"],
        demo::QR_FEN - demo::REFUND_FEN,
        "{order}"
    );
    let refunds = order["refunds"].as_array().cloned().unwrap_or_default();
    assert_eq!(refunds.len(), 1, "{order}");
    assert_eq!(refunds[0]["out_request_no"], tour.refund_no.as_str());
    assert_eq!(refunds[0]["status"], "SUCCEEDED", "{order}");
    assert_eq!(tour.refund["status"], "SUCCEEDED", "{}", tour.refund);
    let order = &tour.orders[expiring];
    assert_eq!(order["status"], "CLOSED", "{order}");
    assert!(order["paid_at"].is_null(), "{order}");
    let order = &tour.orders[barcode];
    assert_eq!(order["status"], "PAID", "{order}");
    assert_eq!(order["amount_fen"], demo::BARCODE_FEN, "{order}");

    // The duplicate create: replayed, same order; another body refused.
    let duplicates = &tour.duplicates;
    assert_eq!(duplicates.replay_status, 200);
    assert!(duplicates.replayed_header);
    assert_eq!(duplicates.replay_order["out_trade_no"], qr.as_str());
    assert_eq!(
        (
            duplicates.mismatch_status,
            duplicates.mismatch_code.as_str()
        ),
        (422, "idempotency_mismatch")
    );

    // Exactly one published business event per public audit event, each transition once.
    for no in [qr, expiring, barcode] {
        let audit = &tour.events[no];
        let sent = published.get(no).cloned().unwrap_or_default();
        let sent_ids: Vec<&str> = sent
            .iter()
            .map(|e| e["event_id"].as_str().unwrap_or_default())
            .collect();
        let unique: BTreeSet<&str> = sent_ids.iter().copied().collect();
        assert_eq!(
            unique.len(),
            sent_ids.len(),
            "{no}: published twice: {sent_ids:?}"
        );
        let audit_ids: BTreeSet<&str> = audit.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(unique, audit_ids, "{no}: published vs audit trail");
        for event in &sent {
            let committed = audit
                .iter()
                .find(|a| event["event_id"] == a.event_id.as_str());
            assert!(
                committed.is_some_and(|a| event["type"] == a.event_type.as_str()
                    && event["cause"] == a.cause
                    && event["version"] == a.version),
                "{no}: {event} is not its audit event {committed:?}"
            );
            // Each event carries the order after the change.
            assert_eq!(event["order"]["out_trade_no"], no.as_str(), "{event}");
        }
        let kinds: Vec<&str> = sent
            .iter()
            .map(|e| e["type"].as_str().unwrap_or_default())
            .collect();
        let distinct: BTreeSet<&str> = kinds.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            kinds.len(),
            "{no}: a transition twice: {kinds:?}"
        );
        let versions: Vec<u64> = sent.iter().filter_map(|e| e["version"].as_u64()).collect();
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "{no}: out of order: {versions:?}"
        );
    }
    let kinds = |no: &str| -> Vec<String> {
        published[no]
            .iter()
            .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let qr_kinds = kinds(qr);
    for kind in [
        "order.created",
        "order.awaiting_payment",
        "order.paid",
        "refund.requested",
        "refund.succeeded",
    ] {
        assert!(qr_kinds.iter().any(|k| k == kind), "{qr}: {qr_kinds:?}");
    }
    assert!(
        qr_kinds
            .iter()
            .all(|k| k != "order.closed" && k != "order.failed" && k != "order.refunded"),
        "{qr_kinds:?}"
    );
    assert_eq!(
        kinds(expiring),
        ["order.created", "order.awaiting_payment", "order.closed"],
        "{expiring}"
    );
    let barcode_kinds = kinds(barcode);
    assert_eq!(
        barcode_kinds.first().map(String::as_str),
        Some("order.created")
    );
    assert_eq!(
        barcode_kinds.last().map(String::as_str),
        Some("order.paid"),
        "{barcode_kinds:?}"
    );
    let find = |no: &str, kind: &str| -> Value {
        published[no]
            .iter()
            .find(|e| e["type"] == kind)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        find(qr, "order.paid")["cause"]["source"],
        "notification",
        "the QR payment reached us through Alipay's notification"
    );
    assert_eq!(
        find(barcode, "order.paid")["cause"]["source"],
        "pay_response"
    );
    let succeeded = find(qr, "refund.succeeded");
    assert_eq!(succeeded["cause"]["refund_fen"], demo::REFUND_FEN);
    assert_eq!(
        succeeded["cause"]["out_request_no"],
        tour.refund_no.as_str()
    );
    assert_eq!(succeeded["order"]["status"], "PARTIALLY_REFUNDED");
    // The real queue path: only timeout-close closes an order for this reason.
    let closed = find(expiring, "order.closed");
    assert_eq!(
        closed["cause"]["reason"], "expired_never_scanned",
        "{closed}"
    );

    // The sandbox's records agree.
    let trade = &tour.trades[qr];
    assert_eq!(trade["stage"], "TRADE_SUCCESS", "{trade}");
    assert_eq!(
        (
            &trade["total_amount"],
            &trade["paid_amount"],
            &trade["refunded_amount"]
        ),
        (
            &Value::from("15.00"),
            &Value::from("15.00"),
            &Value::from("5.00")
        ),
        "{trade}"
    );
    assert_eq!(trade["trade_no"], tour.orders[qr]["alipay_trade_no"]);
    let sandbox_refunds = trade["refunds"].as_array().cloned().unwrap_or_default();
    assert_eq!(sandbox_refunds.len(), 1, "{trade}");
    assert!(
        sandbox_refunds[0].to_string().contains(&tour.refund_no),
        "{trade}"
    );
    let trade = &tour.trades[barcode];
    assert_eq!(trade["stage"], "TRADE_SUCCESS", "{trade}");
    assert_eq!(trade["paid_amount"], "20.00", "{trade}");
    assert_eq!(trade["refunded_amount"], "0.00", "{trade}");
    assert_eq!(trade["trade_no"], tour.orders[barcode]["alipay_trade_no"]);
    let trade = &tour.trades[expiring];
    assert_eq!(trade["stage"], "LAPSED", "{trade}");
    assert!(trade["trade_no"].is_null(), "never a trade: {trade}");
    assert_eq!(trade["paid_amount"], "0.00", "{trade}");

    // The day's reconciliation: every row matched.
    assert_eq!(tour.bill_fetch["outcome"], "stored", "{}", tour.bill_fetch);
    let report = &tour.report;
    assert_eq!(
        report["day"],
        tour.day.format("%Y-%m-%d").to_string(),
        "{report}"
    );
    assert_eq!(report["discrepancies"], 0, "{report}");
    assert_eq!(report["classes"]["matched"]["count"], 3, "{report}");
    assert_eq!(report["bill_totals"]["payments"]["count"], 2, "{report}");
    assert_eq!(
        report["bill_totals"]["payments"]["fen"],
        demo::QR_FEN + demo::BARCODE_FEN,
        "{report}"
    );
    assert_eq!(report["bill_totals"]["refunds"]["count"], 1, "{report}");
    assert_eq!(
        report["bill_totals"]["refunds"]["fen"],
        demo::REFUND_FEN,
        "{report}"
    );
    assert_eq!(report["actions"]["healed"], 0, "{report}");
    assert_eq!(report["actions"]["anomalies"], 0, "{report}");

    // The printed tour names every order and step.
    for needle in [
        qr.as_str(),
        expiring.as_str(),
        barcode.as_str(),
        "Step 6",
        "Idempotent-Replayed: true",
        "¥15.00",
    ] {
        assert!(printed.contains(needle), "{needle} not printed:\n{printed}");
    }
    // Quick besides the expiry wait.
    assert!(
        tour.elapsed < Duration::from_secs(u64::from(demo::EXPIRY_SECONDS) + 60),
        "{:?}",
        tour.elapsed
    );
}
