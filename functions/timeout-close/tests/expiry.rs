//! The expiry function against the AWS emulator and the Alipay sandbox: orders created by the
//! pay function, messages as the expiry queue delivers them, Alipay's truth afterwards.

use alipay::api::{
    CancelRequest, CancelResponse, CloseRequest, CloseResponse, PayRequest, PayResponse,
    PrecreateRequest, PrecreateResponse, QueryRequest, QueryResponse, RefundQueryRequest,
    RefundQueryResponse, RefundRequest, RefundResponse,
};
use alipay::client::AlipayClient;
use alipay::outcome::Outcome;
use aws_adapters::{DynamoOrderStore, ExpiryMessage, SqsExpiryScheduler};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use domain::OutTradeNo;
use domain::fence::LeasePolicy;
use domain::order::OrderStatus;
use domain::ports::{ClaimRef, Clock, OrderStore, PaymentGateway};
use f2f_runtime::Function;
use harness::*;
use pay::WiredPayApi;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use timeout_close::{Expiries, Handled};

/// The system clock, moved forward: every order is due.
#[derive(Clone, Copy)]
struct Later(chrono::Duration);

impl Clock for Later {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.0
    }
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// The real client; counts the calls that move money, and can make the buyer pay at the
/// sandbox just before a close reaches it.
#[derive(Clone)]
struct Watched {
    inner: AlipayClient,
    sandbox_url: String,
    closes: Arc<AtomicU32>,
    cancels: Arc<AtomicU32>,
    pay_before_close: bool,
}

impl PaymentGateway for Watched {
    fn call_timeout(&self) -> Duration {
        self.inner.call_timeout()
    }
    async fn precreate(&self, request: &PrecreateRequest) -> Outcome<PrecreateResponse> {
        self.inner.precreate(request).await
    }
    async fn pay(&self, request: &PayRequest) -> Outcome<PayResponse> {
        self.inner.pay(request).await
    }
    async fn query(&self, request: &QueryRequest) -> Outcome<QueryResponse> {
        self.inner.query(request).await
    }
    async fn cancel(&self, request: &CancelRequest) -> Outcome<CancelResponse> {
        self.cancels.fetch_add(1, Ordering::SeqCst);
        self.inner.cancel(request).await
    }
    async fn close(&self, request: &CloseRequest) -> Outcome<CloseResponse> {
        self.closes.fetch_add(1, Ordering::SeqCst);
        if self.pay_before_close
            && let alipay::api::TradeRef::OutTradeNo(no) = &request.trade
        {
            let url = format!("{}/sandbox/trades/{no}/pay", self.sandbox_url);
            let _ = reqwest::Client::new()
                .post(url)
                .json(&json!({}))
                .send()
                .await;
        }
        self.inner.close(request).await
    }
    async fn refund(&self, request: &RefundRequest) -> Outcome<RefundResponse> {
        self.inner.refund(request).await
    }
    async fn refund_query(&self, request: &RefundQueryRequest) -> Outcome<RefundQueryResponse> {
        self.inner.refund_query(request).await
    }
}

type Subject = Expiries<DynamoOrderStore, SqsExpiryScheduler, Watched, Later>;

struct Fixture {
    env: Env,
    expiries: Subject,
    closes: Arc<AtomicU32>,
    cancels: Arc<AtomicU32>,
}

async fn fixture(later: chrono::Duration, pay_before_close: bool) -> TestResult<Fixture> {
    let env = Env::start().await?;
    let config = env.config(Function::Pay)?;
    let adapters = env.adapters(Function::Pay).await?;
    let closes = Arc::new(AtomicU32::new(0));
    let cancels = Arc::new(AtomicU32::new(0));
    let expiries = Expiries {
        store: adapters.orders,
        scheduler: adapters.expiry.ok_or_else(|| err("no scheduler"))?,
        gateway: Watched {
            inner: adapters.alipay,
            sandbox_url: env.sandbox_url.clone(),
            closes: closes.clone(),
            cancels: cancels.clone(),
            pay_before_close,
        },
        clock: Later(later),
        policy: LeasePolicy {
            lease: config.knobs.claim_lease,
            margin: LeasePolicy::DEFAULT_MARGIN,
        },
        refunds: config.refund_policy(),
    };
    Ok(Fixture {
        env,
        expiries,
        closes,
        cancels,
    })
}

/// Creates an order through the pay function; returns its number and the pay answer.
async fn create(env: &Env, body: Value) -> TestResult<(String, Value)> {
    let config = env.config(Function::Pay)?;
    let adapters = env.adapters(Function::Pay).await?;
    let api = WiredPayApi::wired(&config, adapters)?;
    let response = api
        .handle(env.signed("POST", "/v1/payments", &body.to_string()))
        .await;
    let answer = body_json(&response);
    let no = answer["out_trade_no"]
        .as_str()
        .ok_or_else(|| err(format!("create failed: {answer}")))?
        .to_owned();
    Ok((no, answer))
}

fn qr(no: &str) -> Value {
    json!({"out_trade_no": no, "amount_fen": 500, "subject": "tea", "scene": "qr", "timeout_seconds": 60})
}

fn due_now(no: &str) -> TestResult<ExpiryMessage> {
    Ok(ExpiryMessage {
        out_trade_no: OutTradeNo::parse(no)?,
        due_at: Utc::now(),
        claim: None,
    })
}

async fn status(f: &Fixture, no: &str) -> TestResult<OrderStatus> {
    Ok(f.expiries
        .store
        .get(&OutTradeNo::parse(no)?)
        .await?
        .ok_or_else(|| err("gone"))?
        .status())
}

async fn trade(env: &Env, no: &str) -> TestResult<Value> {
    env.sandbox_get(&format!("/sandbox/trades/{no}")).await
}

#[tokio::test]
async fn a_qr_code_never_scanned_is_closed_here_without_a_close_call() -> TestResult {
    let f = fixture(chrono::Duration::minutes(2), false).await?;
    let (no, _) = create(&f.env, qr(&out_trade_no())).await?;
    let handled = f.expiries.expire(&due_now(&no)?).await?;
    assert_eq!(handled, Handled::Settled(OrderStatus::Closed));
    assert_eq!(status(&f, &no).await?, OrderStatus::Closed);
    assert_eq!(f.closes.load(Ordering::SeqCst), 0);
    Ok(())
}

#[tokio::test]
async fn a_scanned_unpaid_qr_trade_is_closed_at_alipay_then_here() -> TestResult {
    let f = fixture(chrono::Duration::minutes(2), false).await?;
    let (no, _) = create(&f.env, qr(&out_trade_no())).await?;
    let (code, _) = f
        .env
        .sandbox_post(&format!("/sandbox/trades/{no}/scan"), json!({}))
        .await?;
    assert_eq!(code, 200);
    let handled = f.expiries.expire(&due_now(&no)?).await?;
    assert_eq!(handled, Handled::Settled(OrderStatus::Closed));
    assert_eq!(f.closes.load(Ordering::SeqCst), 1);
    assert_eq!(trade(&f.env, &no).await?["trade_status"], "TRADE_CLOSED");
    // Delivered again (SQS is at-least-once): nothing more happens.
    let again = f.expiries.expire(&due_now(&no)?).await?;
    assert_eq!(again, Handled::AlreadySettled(OrderStatus::Closed));
    assert_eq!(f.closes.load(Ordering::SeqCst), 1);
    Ok(())
}

#[tokio::test]
async fn a_payment_whose_notification_was_missed_is_recovered_as_paid() -> TestResult {
    let f = fixture(chrono::Duration::minutes(2), false).await?;
    let (no, _) = create(&f.env, qr(&out_trade_no())).await?;
    let (code, _) = f
        .env
        .sandbox_post(&format!("/sandbox/trades/{no}/pay"), json!({}))
        .await?;
    assert_eq!(code, 200);
    let handled = f.expiries.expire(&due_now(&no)?).await?;
    assert_eq!(handled, Handled::Settled(OrderStatus::Paid));
    assert_eq!(f.closes.load(Ordering::SeqCst), 0);
    Ok(())
}

#[tokio::test]
async fn a_buyer_who_pays_just_before_the_close_gets_a_paid_order() -> TestResult {
    let f = fixture(chrono::Duration::minutes(2), true).await?;
    let (no, _) = create(&f.env, qr(&out_trade_no())).await?;
    let (code, _) = f
        .env
        .sandbox_post(&format!("/sandbox/trades/{no}/scan"), json!({}))
        .await?;
    assert_eq!(code, 200);
    let handled = f.expiries.expire(&due_now(&no)?).await?;
    assert_eq!(handled, Handled::Settled(OrderStatus::Paid));
    assert_eq!(f.closes.load(Ordering::SeqCst), 1);
    assert_eq!(trade(&f.env, &no).await?["trade_status"], "TRADE_SUCCESS");
    Ok(())
}

#[tokio::test]
async fn a_barcode_payment_left_waiting_is_cancelled() -> TestResult {
    let f = fixture(chrono::Duration::minutes(2), false).await?;
    let no = out_trade_no();
    // The cancels of the pay request itself fail, so it leaves the order PENDING.
    f.env
        .fault(json!({"method": "alipay.trade.cancel", "code": "20000", "times": 3}))
        .await?;
    let (_, answer) = create(&f.env, json!({"out_trade_no": no, "amount_fen": 500, "subject": "tea", "scene": "barcode", "auth_code": auth_code("02", 0)})).await?;
    assert_eq!(answer["status"], "PENDING", "{answer}");
    let handled = f.expiries.expire(&due_now(&no)?).await?;
    assert_eq!(handled, Handled::Settled(OrderStatus::Closed));
    assert_eq!(f.cancels.load(Ordering::SeqCst), 1);
    assert_eq!(trade(&f.env, &no).await?["trade_status"], "TRADE_CLOSED");
    Ok(())
}

#[tokio::test]
async fn a_message_that_is_not_due_is_enqueued_again_and_nothing_else() -> TestResult {
    let f = fixture(chrono::Duration::zero(), false).await?;
    let (no, _) = create(&f.env, qr(&out_trade_no())).await?;
    let before = f.env.queued_expiries().await?;
    // A link of the chain for an order due in two hours (more than SQS's 900 s delay).
    let message = ExpiryMessage {
        out_trade_no: OutTradeNo::parse(&no)?,
        due_at: Utc::now() + chrono::Duration::hours(2),
        claim: None,
    };
    assert_eq!(f.expiries.expire(&message).await?, Handled::NotDue);
    assert_eq!(f.env.queued_expiries().await?, before + 1);
    assert_eq!(status(&f, &no).await?, OrderStatus::Pending);
    Ok(())
}

/// The stored order `no` (as the pay function claimed it).
async fn stored(f: &Fixture, no: &str) -> TestResult<domain::order::Order> {
    f.expiries
        .store
        .get(&OutTradeNo::parse(no)?)
        .await?
        .ok_or_else(|| err("gone"))
}

#[tokio::test]
async fn a_message_scheduled_before_its_claim_counts_only_for_that_claim() -> TestResult {
    let f = fixture(chrono::Duration::minutes(2), false).await?;
    let (no, _) = create(&f.env, qr(&out_trade_no())).await?;
    let order = stored(&f, &no).await?;
    let own = ClaimRef::of(&order);

    // A retry three seconds later scheduled for its own claim, which failed: dropped, and
    // neither the order nor Alipay hears of it.
    let mut retry = due_now(&no)?;
    retry.claim = Some(ClaimRef {
        claimed_at: own.claimed_at + chrono::Duration::seconds(3),
        request_hash: own.request_hash.clone(),
    });
    assert_eq!(f.expiries.expire(&retry).await?, Handled::NotThisClaim);
    // Another request's claim in the same second: not this order's either.
    retry.claim = Some(ClaimRef {
        claimed_at: own.claimed_at,
        request_hash: "another request".into(),
    });
    assert_eq!(f.expiries.expire(&retry).await?, Handled::NotThisClaim);
    assert_eq!(stored(&f, &no).await?, order, "nothing changed");
    assert_eq!(f.closes.load(Ordering::SeqCst), 0);

    // Not due yet, the order's own claim: the chain goes on without the claim (checked once).
    let before = f.env.queued_expiries().await?;
    let mut early = due_now(&no)?;
    early.due_at = Utc::now() + chrono::Duration::hours(3);
    early.claim = Some(own.clone());
    assert_eq!(f.expiries.expire(&early).await?, Handled::NotDue);
    assert_eq!(f.env.queued_expiries().await?, before + 1);

    // Due, the order's own claim: settled as any expiry.
    let mut due = due_now(&no)?;
    due.claim = Some(own);
    assert_eq!(
        f.expiries.expire(&due).await?,
        Handled::Settled(OrderStatus::Closed)
    );
    Ok(())
}

#[tokio::test]
async fn a_message_for_a_claim_never_stored_is_dropped_once_its_writer_is_done() -> TestResult {
    let f = fixture(chrono::Duration::zero(), false).await?;
    let no = out_trade_no();
    let mut message = due_now(&no)?;
    // Its writer may still be writing the claim: SQS is asked to deliver it again.
    message.claim = Some(ClaimRef {
        claimed_at: Utc::now(),
        request_hash: "h".into(),
    });
    assert!(matches!(
        f.expiries.expire(&message).await,
        Err(timeout_close::ExpiryError::ClaimNotStoredYet)
    ));
    // Past the claim's lease and margin: the claim was never written.
    message.claim = Some(ClaimRef {
        claimed_at: Utc::now() - chrono::Duration::minutes(2),
        request_hash: "h".into(),
    });
    assert_eq!(f.expiries.expire(&message).await?, Handled::NotThisClaim);
    assert!(
        f.expiries
            .store
            .get(&OutTradeNo::parse(&no)?)
            .await?
            .is_none()
    );
    Ok(())
}

#[tokio::test]
async fn a_batch_names_only_the_messages_that_must_come_back() -> TestResult {
    let mut f = fixture(chrono::Duration::minutes(2), false).await?;
    let (settled, _) = create(&f.env, qr(&out_trade_no())).await?;
    let (scanned, _) = create(&f.env, qr(&out_trade_no())).await?;
    f.env
        .sandbox_post(&format!("/sandbox/trades/{scanned}/scan"), json!({}))
        .await?;
    // The first is settled while Alipay is up; then Alipay goes away.
    f.expiries.expire(&due_now(&settled)?).await?;
    f.env.stop_sandbox().await;
    let record = |id: &str, body: String| {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.to_owned());
        message.body = Some(body);
        message
    };
    let mut event = SqsEvent::default();
    event.records = vec![
        record("m-settled", serde_json::to_string(&due_now(&settled)?)?),
        record("m-unknown", serde_json::to_string(&due_now(&scanned)?)?),
        record("m-garbage", "{\"not\":\"an expiry\"}".to_owned()),
    ];
    let response = f.expiries.handle_batch(event).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, ["m-unknown", "m-garbage"]);
    assert_eq!(status(&f, &scanned).await?, OrderStatus::Pending);
    let order = f
        .expiries
        .store
        .get(&OutTradeNo::parse(&scanned)?)
        .await?
        .ok_or_else(|| err("gone"))?;
    assert!(
        !order.lease_live(Utc::now() + chrono::Duration::minutes(2)),
        "released for the next delivery"
    );
    Ok(())
}

#[tokio::test]
async fn a_redelivered_message_changes_nothing_and_calls_nothing() -> TestResult {
    let f = fixture(chrono::Duration::minutes(2), false).await?;
    let (no, _) = create(&f.env, qr(&out_trade_no())).await?;
    f.env
        .sandbox_post(&format!("/sandbox/trades/{no}/scan"), json!({}))
        .await?;
    let message = due_now(&no)?;
    assert_eq!(
        f.expiries.expire(&message).await?,
        Handled::Settled(OrderStatus::Closed)
    );
    let events = f
        .expiries
        .store
        .events(&OutTradeNo::parse(&no)?)
        .await?
        .len();
    f.env.aws_calls.reset();
    // SQS delivers at least once: the same message again, twice.
    for _ in 0..2 {
        assert_eq!(
            f.expiries.expire(&message).await?,
            Handled::AlreadySettled(OrderStatus::Closed)
        );
    }
    assert_eq!(f.closes.load(Ordering::SeqCst), 1, "one close at Alipay");
    let calls = f.env.aws_calls.snapshot();
    let after = f
        .expiries
        .store
        .events(&OutTradeNo::parse(&no)?)
        .await?
        .len();
    assert_eq!(after, events, "no new event");
    assert_eq!(
        calls.keys().collect::<Vec<_>>(),
        ["DynamoDB.GetItem"],
        "a redelivery is one read each: {calls:?}"
    );
    Ok(())
}

#[tokio::test]
async fn what_an_expiry_costs_in_dynamodb_calls() -> TestResult {
    let f = fixture(chrono::Duration::minutes(2), false).await?;
    let (never_scanned, _) = create(&f.env, qr(&out_trade_no())).await?;
    let (scanned, _) = create(&f.env, qr(&out_trade_no())).await?;
    f.env
        .sandbox_post(&format!("/sandbox/trades/{scanned}/scan"), json!({}))
        .await?;
    let mut costs = Vec::new();
    for no in [&never_scanned, &scanned] {
        f.env.aws_calls.reset();
        assert_eq!(
            f.expiries.expire(&due_now(no)?).await?,
            Handled::Settled(OrderStatus::Closed)
        );
        costs.push(f.env.aws_calls.snapshot());
    }
    println!(
        "DynamoDB calls per expiry: never scanned {:?}, scanned {:?}",
        costs[0], costs[1]
    );
    let calls = |pairs: &[(&str, u64)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    // Read, take the lease, close (locally; or at Alipay, then here).
    assert_eq!(
        costs[0],
        calls(&[("DynamoDB.GetItem", 1), ("DynamoDB.TransactWriteItems", 2)])
    );
    assert_eq!(
        costs[1],
        calls(&[("DynamoDB.GetItem", 1), ("DynamoDB.TransactWriteItems", 2)])
    );
    Ok(())
}

/// Refunds through the pay function; returns (status, body).
async fn refund(
    env: &Env,
    no: &str,
    out_request_no: &str,
    amount_fen: i64,
) -> TestResult<(u16, Value)> {
    let config = env.config(Function::Pay)?;
    let adapters = env.adapters(Function::Pay).await?;
    let api = WiredPayApi::wired(&config, adapters)?;
    let body = json!({"out_request_no": out_request_no, "amount_fen": amount_fen});
    let response = api
        .handle(env.signed(
            "POST",
            &format!("/v1/payments/{no}/refunds"),
            &body.to_string(),
        ))
        .await;
    Ok((response.status().as_u16(), body_json(&response)))
}

/// How many refunds the sandbox holds for the trade.
async fn alipay_refunds(env: &Env, no: &str) -> TestResult<usize> {
    let trade = trade(env, no).await?;
    Ok(trade["refunds"].as_array().map_or(0, Vec::len))
}

/// A refund its request left PENDING (nothing reached Alipay) is finished by the re-check it
/// scheduled; one that stays unknown is scheduled again, never dropped.
#[tokio::test]
async fn the_re_check_finishes_a_pending_refund_and_never_drops_one() -> TestResult {
    // The expiry job's clock is a minute ahead: the refund requests' leases are over.
    let f = fixture(chrono::Duration::seconds(60), false).await?;
    let body = json!({"out_trade_no": out_trade_no(), "amount_fen": 1000, "subject": "tea", "scene": "barcode", "auth_code": auth_code("00", 0)});
    let (no, order) = create(&f.env, body).await?;
    assert_eq!(order["status"], "PAID", "{order}");
    f.env
        .fault(json!({"method": "alipay.trade.refund", "drop_connection": true, "times": 2}))
        .await?;
    let (answered, pending) = refund(&f.env, &no, "R1", 400).await?;
    assert_eq!(
        (answered, pending["status"].as_str()),
        (202, Some("PENDING")),
        "{pending}"
    );
    assert_eq!(alipay_refunds(&f.env, &no).await?, 0);
    let handled = f.expiries.expire(&due_now(&no)?).await?;
    assert_eq!(handled, Handled::RefundsSettled);
    assert_eq!(status(&f, &no).await?, OrderStatus::PartiallyRefunded);
    assert_eq!(alipay_refunds(&f.env, &no).await?, 1);

    // Unknown through the request and through the first re-check: checked again later.
    f.env
        .fault(json!({"method": "alipay.trade.refund", "drop_connection": true, "times": 4}))
        .await?;
    let (answered, _) = refund(&f.env, &no, "R2", 600).await?;
    assert_eq!(answered, 202);
    let queued = f.env.queued_expiries().await?;
    let handled = f.expiries.expire(&due_now(&no)?).await?;
    assert_eq!(handled, Handled::RefundsPending);
    assert_eq!(
        f.env.queued_expiries().await?,
        queued + 1,
        "scheduled again"
    );
    let handled = f.expiries.expire(&due_now(&no)?).await?;
    assert_eq!(handled, Handled::RefundsSettled);
    assert_eq!(status(&f, &no).await?, OrderStatus::Refunded);
    assert_eq!(alipay_refunds(&f.env, &no).await?, 2);
    // A late re-check finds nothing to do and calls nothing.
    let handled = f.expiries.expire(&due_now(&no)?).await?;
    assert_eq!(handled, Handled::AlreadySettled(OrderStatus::Refunded));
    Ok(())
}
