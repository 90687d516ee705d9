//! The daily reconciliation end to end over HTTP and S3: orders made through the pay function
//! and directly at the Alipay sandbox, the sandbox's real bill fetched by bill-fetch into the
//! emulator's S3, reconciled against the emulator's table: healed orders, anomalies, the
//! report, and a second run that changes nothing.

use alipay::api::{PrecreateRequest, RefundRequest, TradeRef};
use aws_adapters::{DynamoOrderStore, S3Objects, aws_sdk_s3};
use bill_fetch::{BillFetcher, Fetched, Schedule};
use chrono::{Duration, NaiveDate, Utc};
use domain::anomaly::AnomalyKind;
use domain::order::{Buyer, NewOrder, Order, OrderStatus, PaymentSource};
use domain::ports::{Applied, Claim, ObjectStore, OrderStore};
use domain::{Fen, OrderAmount, OutTradeNo, Scene};
use f2f_runtime::{Function, SystemClock};
use harness::*;
use pay::WiredPayApi;
use reconcile::matching::Class;
use reconcile::{ReconcileError, Reconciled, Reconciler};
use serde_json::{Value, json};

struct Setup {
    env: Env,
    pay: WiredPayApi,
    store: DynamoOrderStore,
    objects: S3Objects,
    alipay: alipay::client::AlipayClient,
}

async fn setup() -> TestResult<Setup> {
    let mut env = Env::start().await?;
    let bucket = unique_bucket();
    env.set_var("BILL_BUCKET", &bucket);
    let objects = S3Objects::new(aws_sdk_s3::Client::new(&env.sdk()), bucket);
    objects.ensure_bucket().await?;
    let config = env.config(Function::Pay)?;
    let adapters = env.adapters(Function::Pay).await?;
    let store = adapters.orders.clone();
    let alipay = adapters.alipay.clone();
    let pay = WiredPayApi::wired(&config, adapters)?;
    Ok(Setup {
        env,
        pay,
        store,
        objects,
        alipay,
    })
}

fn unique_bucket() -> String {
    format!(
        "bills-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    )
}

impl Setup {
    async fn post(&self, path: &str, body: Value) -> Value {
        // Boxed: the pay function's future is large for a test thread's stack.
        let response = Box::pin(
            self.pay
                .handle(self.env.signed("POST", path, &body.to_string())),
        )
        .await;
        body_json(&response)
    }

    /// A barcode payment the buyer pays at once.
    async fn paid(&self, amount_fen: i64) -> TestResult<String> {
        let no = out_trade_no();
        let order = self
            .post(
                "/v1/payments",
                json!({"out_trade_no": no, "amount_fen": amount_fen, "subject": "tea", "scene": "barcode", "auth_code": auth_code("00", 0)}),
            )
            .await;
        assert_eq!(order["status"], "PAID", "{order}");
        Ok(no)
    }

    /// A QR order the buyer pays at the sandbox without the notification reaching us.
    async fn paid_unnoticed(&self, amount_fen: i64) -> TestResult<String> {
        let no = out_trade_no();
        let order = self
            .post(
                "/v1/payments",
                json!({"out_trade_no": no, "amount_fen": amount_fen, "subject": "tea", "scene": "qr"}),
            )
            .await;
        assert_eq!(order["status"], "PENDING", "{order}");
        self.buyer_pays(&no).await?;
        Ok(no)
    }

    async fn buyer_pays(&self, no: &str) -> TestResult {
        for step in ["scan", "pay"] {
            let (status, body) = self
                .env
                .sandbox_post(&format!("/sandbox/trades/{no}/{step}"), json!({}))
                .await?;
            assert_eq!(status, 200, "{step}: {body}");
        }
        Ok(())
    }

    async fn order(&self, no: &str) -> TestResult<Order> {
        self.store
            .get(&OutTradeNo::parse(no)?)
            .await?
            .ok_or_else(|| err("no order"))
    }

    /// An order written straight into the table, created at `created_at`.
    async fn claimed(
        &self,
        amount_fen: i64,
        created_at: chrono::DateTime<Utc>,
    ) -> TestResult<Order> {
        let new = NewOrder {
            out_trade_no: OutTradeNo::generate(),
            amount: OrderAmount::from_fen(amount_fen)?,
            subject: "tea".into(),
            scene: Scene::Qr,
            store_id: None,
            operator_id: None,
            terminal_id: None,
            request_hash: "h".into(),
            expires_at: created_at + Duration::minutes(15),
        };
        let (order, event) = Order::claim(new, created_at, Duration::seconds(1));
        assert_eq!(self.store.claim(&order, &event).await?, Claim::Claimed);
        Ok(order)
    }

    async fn applied(&self, transition: domain::order::Transition) -> TestResult<Order> {
        match self.store.apply(&transition).await? {
            Applied::Applied(order) => Ok(order),
            other => Err(err(format!("not applied: {other:?}"))),
        }
    }

    fn fetcher(
        &self,
        clock_ahead: Duration,
    ) -> BillFetcher<alipay::client::AlipayClient, S3Objects, Ahead> {
        BillFetcher {
            alipay: self.alipay.clone(),
            objects: self.objects.clone(),
            clock: Ahead(clock_ahead),
            schedule: Schedule { deadline_hour: 12 },
        }
    }

    fn reconciler(&self) -> Reconciler<DynamoOrderStore, S3Objects, SystemClock> {
        Reconciler {
            store: self.store.clone(),
            objects: self.objects.clone(),
            clock: SystemClock,
            scratch: std::env::temp_dir(),
            progress: None,
        }
    }

    async fn advance_sandbox(&self, seconds: i64) -> TestResult {
        let (status, body) = self
            .env
            .sandbox_post("/sandbox/clock/advance", json!({"seconds": seconds}))
            .await?;
        assert_eq!(status, 200, "{body}");
        Ok(())
    }
}

/// A clock `ahead` of real time (the fetcher's "now" against its deadline).
struct Ahead(Duration);

impl domain::ports::Clock for Ahead {
    fn now(&self) -> chrono::DateTime<Utc> {
        Utc::now() + self.0
    }
    async fn sleep(&self, duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

fn today() -> NaiveDate {
    domain::beijing_day(Utc::now())
}

/// The audit events and anomaly records in the table: what any write here adds to.
async fn written(env: &Env) -> TestResult<(usize, usize)> {
    Ok((env.items("EVENT#").await?, env.items("ANOMALY#").await?))
}

/// The day's `rejected.json`.
async fn rejection(objects: &S3Objects, day: NaiveDate) -> TestResult<Value> {
    let key = reconcile::report::rejected_key(day);
    let body = objects
        .read(&key)
        .await?
        .ok_or_else(|| err(format!("no rejection report {key}")))?;
    Ok(serde_json::from_slice(&body)?)
}

fn tally(summary: &reconcile::report::Summary, class: Class) -> u64 {
    summary.classes.get(&class).map_or(0, |t| t.count)
}

#[tokio::test]
async fn a_day_is_fetched_reconciled_healed_and_reported_once() -> TestResult {
    let s = setup().await?;
    let day = today();

    // Before the bill exists (the sandbox's 09:00 next-day rule): not yet, nothing stored.
    let early = s.fetcher(Duration::zero()).fetch(day).await?;
    assert_eq!(early, Fetched::NotYet);

    // The day's trades.
    let matched = s.paid(1000).await?;
    let partly = s.paid(800).await?;
    let answer = s
        .post(
            &format!("/v1/payments/{partly}/refunds"),
            json!({"out_request_no": "R1", "amount_fen": 300}),
        )
        .await;
    assert_eq!(answer["status"], "SUCCEEDED", "{answer}");
    let fully = s.paid(500).await?;
    let answer = s
        .post(
            &format!("/v1/payments/{fully}/refunds"),
            json!({"out_request_no": "R1", "amount_fen": 500}),
        )
        .await;
    assert_eq!(answer["order_status"], "REFUNDED", "{answer}");
    let unnoticed = s.paid_unnoticed(700).await?;
    // Closed here (say, by a wrong expiry), paid at Alipay.
    let closed = s.paid_unnoticed(600).await?;
    let order = s.order(&closed).await?;
    s.applied(order.closed("expired", Utc::now())?).await?;
    // Created here yesterday (just before midnight), paid today: not in today's index.
    let yesterday = s.claimed(400, Utc::now() - Duration::days(1)).await?;
    let request = PrecreateRequest::new(yesterday.out_trade_no().as_str(), Fen::new(400), "tea");
    assert!(
        s.alipay.precreate(&request).await.map(|_| ()) == alipay::outcome::Outcome::Success(())
    );
    s.buyer_pays(yesterday.out_trade_no().as_str()).await?;
    // PAID here, never paid at Alipay.
    let phantom = s.claimed(300, Utc::now()).await?;
    let phantom = s
        .applied(phantom.paid(
            "2088PHANTOM".into(),
            Utc::now(),
            PaymentSource::Query,
            Buyer::default(),
            Utc::now(),
        )?)
        .await?;
    // A refund made outside this system (Alipay's merchant portal).
    let portal = s.paid(900).await?;
    let mut refund = RefundRequest::new(TradeRef::out_trade_no(&portal), Fen::new(100), "PORTAL_1");
    refund.refund_reason = Some("portal".into());
    assert!(s.alipay.refund(&refund).await.map(|_| ()) == alipay::outcome::Outcome::Success(()));
    // A trade of another system sharing the app.
    let foreign = format!("OTHER_{}", out_trade_no());
    let request = PrecreateRequest::new(&foreign, Fen::new(200), "tea");
    assert!(
        s.alipay.precreate(&request).await.map(|_| ()) == alipay::outcome::Outcome::Success(())
    );
    s.buyer_pays(&foreign).await?;

    // The bill is ready from 09:00 Beijing of the next day.
    s.advance_sandbox(34 * 3600).await?;
    let fetched = s.fetcher(Duration::hours(34)).fetch(day).await?;
    let Fetched::Stored { key, bytes } = fetched else {
        return Err(err(format!("not stored: {fetched:?}")));
    };
    assert!(bytes > 0);
    assert_eq!(key, format!("bills/{}/trade.zip", day.format("%Y-%m-%d")));
    assert_eq!(
        s.fetcher(Duration::hours(34)).fetch(day).await?,
        Fetched::AlreadyStored { key: key.clone() },
        "a second run fetches nothing"
    );

    let Reconciled::Done(summary) = Box::pin(s.reconciler().reconcile(&key)).await? else {
        return Err(err("not reconciled"));
    };
    println!("{}", serde_json::to_string_pretty(&*summary)?);
    assert_eq!(
        tally(&summary, Class::PaidThereNotHere),
        2,
        "unnoticed + yesterday's"
    );
    assert_eq!(tally(&summary, Class::StatusMismatch), 1);
    assert_eq!(tally(&summary, Class::PaidHereMissingFromBill), 1);
    assert_eq!(tally(&summary, Class::RefundThereNoneHere), 1);
    assert_eq!(tally(&summary, Class::UnknownOutTradeNo), 1);
    assert_eq!(tally(&summary, Class::AmountMismatch), 0);
    // matched: 4 payments (matched, partly, fully, portal) + 2 refunds (partly R1, fully R1).
    assert_eq!(tally(&summary, Class::Matched), 6);
    assert_eq!(summary.discrepancies, 6);
    assert_eq!(summary.actions.healed, 2);
    assert_eq!(summary.actions.anomalies, 4);
    assert_eq!(summary.bill_totals.payments.count, 8);
    assert_eq!(summary.bill_totals.refunds.count, 3);

    // Healed through the ordinary transitions, with their events.
    for no in [unnoticed.as_str(), yesterday.out_trade_no().as_str()] {
        let order = s.order(no).await?;
        assert_eq!(order.status(), OrderStatus::Paid, "{no}");
        assert_eq!(order.payment_source(), Some(PaymentSource::Reconciliation));
    }
    assert_eq!(
        s.order(&closed).await?.status(),
        OrderStatus::Closed,
        "never reopened"
    );
    let kinds = |records: Vec<domain::anomaly::AnomalyRecord>| {
        records
            .into_iter()
            .map(|r| r.latest.kind)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(
            s.store
                .anomalies_of_order(&OutTradeNo::parse(&closed)?)
                .await?
        ),
        vec![AnomalyKind::PaidAfterClose]
    );
    assert_eq!(
        kinds(s.store.anomalies_of_order(phantom.out_trade_no()).await?),
        vec![AnomalyKind::MissingFromBill]
    );
    assert_eq!(
        kinds(
            s.store
                .anomalies_of_order(&OutTradeNo::parse(&portal)?)
                .await?
        ),
        vec![AnomalyKind::UnrequestedRefund]
    );
    let _ = matched;

    // The report.
    let csv = s
        .objects
        .read(&format!(
            "reports/{}/discrepancies.csv",
            day.format("%Y-%m-%d")
        ))
        .await?
        .ok_or_else(|| err("no CSV"))?;
    let csv = String::from_utf8(csv)?;
    assert_eq!(csv.lines().count(), 1 + 6, "{csv}");
    assert!(csv.contains(&foreign));

    // The same bill again: its report stands, nothing is done.
    let before = written(&s.env).await?;
    assert_eq!(
        Box::pin(s.reconciler().reconcile(&key)).await?,
        Reconciled::AlreadyDone { day }
    );
    assert_eq!(written(&s.env).await?, before, "nothing written");
    Ok(())
}

#[tokio::test]
async fn a_malformed_bill_is_rejected_with_a_report_and_changes_nothing() -> TestResult {
    let s = setup().await?;
    let day = NaiveDate::from_ymd_opt(2024, 1, 2).ok_or_else(|| err("day"))?;
    let key = format!("bills/{}/trade.zip", day.format("%Y-%m-%d"));
    s.objects
        .put(
            &key,
            b"PK\x03\x04 not really a zip".to_vec(),
            "application/zip",
            &[],
        )
        .await?;
    let before = written(&s.env).await?;
    let refused = Box::pin(s.reconciler().reconcile(&key)).await;
    assert!(
        matches!(refused, Err(ReconcileError::Malformed { .. })),
        "{refused:?}"
    );
    let rejected = rejection(&s.objects, day).await?;
    assert!(
        rejected["rejected"].as_str().is_some_and(|r| !r.is_empty()),
        "{rejected}"
    );
    assert_eq!(
        s.objects.read("reports/2024-01-02/summary.json").await?,
        None
    );
    assert_eq!(written(&s.env).await?, before);
    // Delivered as S3's event: the rejection ends the invocation without an error, so Lambda
    // does not retry the same bytes; the rejection is written (again) and nothing else.
    s.objects
        .put(
            &reconcile::report::rejected_key(day),
            b"{}".to_vec(),
            "application/json",
            &[],
        )
        .await?;
    let mut event: Value =
        serde_json::from_str(include_str!("../../../tests/events/s3-bill-stored.json"))?;
    event["Records"][0]["s3"]["bucket"]["name"] = json!(s.objects.bucket());
    event["Records"][0]["s3"]["object"]["key"] = json!(key);
    let event: aws_lambda_events::event::s3::S3Event = serde_json::from_value(event)?;
    reconcile::handle_event(&s.reconciler(), &event).await?;
    let rewritten = rejection(&s.objects, day).await?;
    assert_eq!(rewritten["rejected"], rejected["rejected"], "{rewritten}");
    assert_eq!(written(&s.env).await?, before);
    // Not a bill at all: ignored.
    assert!(matches!(
        s.reconciler()
            .reconcile("reports/2024-01-02/summary.json")
            .await,
        Err(ReconcileError::NotABill(_))
    ));
    Ok(())
}

#[tokio::test]
async fn a_day_without_trades_is_an_empty_day_after_the_deadline() -> TestResult {
    let s = setup().await?;
    let day = today();
    // Past 09:00 of the next day, before the deadline: Alipay has no bill (no trades) — not yet.
    s.advance_sandbox(34 * 3600).await?;
    let deadline = s.fetcher(Duration::zero()).deadline(day);
    let before_deadline = deadline - Utc::now() - Duration::minutes(1);
    assert_eq!(
        s.fetcher(before_deadline).fetch(day).await?,
        Fetched::NotYet
    );
    let after = deadline - Utc::now() + Duration::minutes(1);
    let fetched = s.fetcher(after).fetch(day).await?;
    let Fetched::EmptyDay { key } = fetched else {
        return Err(err(format!("not an empty day: {fetched:?}")));
    };
    let Reconciled::Done(summary) = Box::pin(s.reconciler().reconcile(&key)).await? else {
        return Err(err("not reconciled"));
    };
    assert_eq!(summary.rows, 0);
    assert!(!summary.bill.has_file);
    assert_eq!(summary.discrepancies, 0);
    Ok(())
}
