//! `payments-cli demo`: a scripted tour of a running local stack (`make run`), over HTTP only,
//! printing each step and what proves it. [`run`] answers a [`Tour`] (the final states of the
//! orders, their business events, the sandbox's records, the reconciliation report) for the
//! end-to-end test that runs the same tour; the command line prints it and exits non-zero
//! with the step that went wrong.
//!
//! The tour, with order numbers `DEMO<unix ms>_QR`, `_EXP` and `_BAR`:
//!
//! 1. A QR payment: created, paid by the sandbox buyer (`/sandbox/trades/{no}/pay`), Alipay's
//!    notification delivered to `/alipay/notify` (the sandbox's delivery log shows it
//!    answered `success`), then `GET` shows `PAID` and the `order.paid` event says the
//!    notification told us.
//! 2. A QR order left to expire: created first with the API's shortest expiry
//!    ([`EXPIRY_SECONDS`]) and never scanned. Its expiry message waits on the expiry queue
//!    (its delay), the queue poller hands it to timeout-close, which finds no trade at Alipay
//!    and closes the order (`order.closed`, reason `expired_never_scanned`, a reason only
//!    timeout-close writes). The tour never reads the order before that (a `GET` of a pending
//!    order asks Alipay and could close it itself); it watches the order's audit trail.
//! 3. A barcode payment with a sandbox buyer's payment code that pays at once: `201 PAID`.
//! 4. The first QR request sent again: `200` with `Idempotent-Replayed: true` and the same
//!    order; the same number with another amount: `422 idempotency_mismatch`.
//! 5. A partial refund of the QR order: `SUCCEEDED`, the order `PARTIALLY_REFUNDED`,
//!    `refund.succeeded`.
//! 6. The day's reconciliation. Alipay's bills are T+1 (the sandbox serves none for the
//!    current day, whatever its rules), so the sandbox's clock is moved forward to the time
//!    the day's bill is ready (rule `bill_ready_hour` of the next day); then bill-fetch runs
//!    for the day (`POST /_local/bill-fetch`), the bill lands in the bucket, reconcile runs on
//!    it and writes `reports/<day>/summary.json`, whose counts are printed. The sandbox's
//!    clock cannot go back: afterwards the sandbox runs ahead of real time and refuses new
//!    orders' expiry times, so the stack must be restarted before further payments (the tour
//!    says so, and refuses to start on a sandbox whose clock is ahead).
//!
//! Business events: SQS cannot be read without taking messages from the queue's consumers
//! (a received message is hidden from them, and a FIFO message group is blocked while one of
//! its messages is out), so the tour reads each order's audit trail instead: the audit events
//! committed with every change, which are the outbox the publisher reads from the table's
//! stream, rendered as the business events it publishes
//! ([`domain::business_event::BusinessEvent::of_order_event`]).

use aws_adapters::{DynamoOrderStore, aws_sdk_dynamodb, aws_sdk_s3};
use chrono::{DateTime, NaiveDate, Utc};
use domain::auth::{RequestToSign, sign, string_to_sign};
use domain::business_event::BusinessEvent;
use domain::ports::ObjectStore;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The shortest expiry the API accepts (`timeout_seconds` minimum).
pub const EXPIRY_SECONDS: u32 = 60;
/// How long after its expiry the expired order may take to be closed.
const CLOSE_GRACE: Duration = Duration::from_secs(45);
/// How long any other outcome may take to show (a notification, an event, a report).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How far the sandbox's clock may be ahead of real time for new orders to be accepted.
const MAX_CLOCK_LEAD: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
const POLL_EVERY: Duration = Duration::from_millis(250);

/// A payment code of a sandbox buyer that pays at once (`28` `00` `0000` + buyer digits).
pub const BARCODE_AUTH_CODE: &str = "280000001234567890";
pub const QR_FEN: i64 = 1500;
pub const EXPIRING_FEN: i64 = 800;
pub const BARCODE_FEN: i64 = 2000;
pub const REFUND_FEN: i64 = 500;

/// Why the tour stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// `stack.json` is missing or unreadable: no stack was started from this directory.
    #[error(
        "{path}: {reason}. Start the stack first: `make run` (in another shell), then run the demo again"
    )]
    StackFile { path: PathBuf, reason: String },
    /// The file names a stack that does not answer.
    #[error(
        "the stack described by {path} does not answer ({reason}). It was probably stopped or killed: start it with `make run`"
    )]
    NotRunning { path: PathBuf, reason: String },
    /// A service could not be reached or answered something unreadable.
    #[error("step {step}: {what}")]
    Transport { step: &'static str, what: String },
    /// An outcome other than the expected one.
    #[error("step {step}: {what}")]
    Unexpected { step: &'static str, what: String },
    /// The sandbox's clock is ahead of real time (an earlier tour moved it).
    #[error(
        "the Alipay sandbox's clock reads {sandbox}, {hours:.1} h ahead of real time (an earlier demo moved it to get the day's bill): it would refuse every new order's expiry time. Restart the stack (Ctrl-C `make run`, then `make run`) and run the demo again"
    )]
    SandboxAhead { sandbox: String, hours: f64 },
    #[error("cannot print: {0}")]
    Output(#[from] std::io::Error),
}

fn unexpected(step: &'static str, what: impl Into<String>) -> DemoError {
    DemoError::Unexpected {
        step,
        what: what.into(),
    }
}

fn transport(step: &'static str, what: impl std::fmt::Display) -> DemoError {
    DemoError::Transport {
        step,
        what: what.to_string(),
    }
}

/// What the tour needs of `stack.json` (see `LocalStack::description`).
pub struct Stack {
    pub file: PathBuf,
    pub api_url: String,
    pub sandbox_url: String,
    pub emulator_endpoint: String,
    pub region: String,
    pub key_id: String,
    secret: SecretString,
    pub table: String,
    pub bill_bucket: String,
}

impl Stack {
    /// Reads `stack.json` and the merchant key's secret file it names.
    pub fn from_file(path: &Path) -> Result<Stack, DemoError> {
        let failed = |reason: String| DemoError::StackFile {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            failed(if e.kind() == std::io::ErrorKind::NotFound {
                "not found: the local stack is not running".to_owned()
            } else {
                format!("cannot be read: {e}")
            })
        })?;
        let file: Value =
            serde_json::from_str(&text).map_err(|e| failed(format!("not JSON: {e}")))?;
        let field = |name: &str| -> Result<String, DemoError> {
            let mut value = &file;
            for part in name.split('.') {
                value = &value[part];
            }
            value
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| failed(format!("no `{name}`")))
        };
        let secret_file = field("merchant_key.secret_file")?;
        let secret = std::fs::read_to_string(&secret_file)
            .map_err(|e| failed(format!("the merchant key's secret {secret_file}: {e}")))?;
        Ok(Stack {
            file: path.to_owned(),
            api_url: field("api_url")?.trim_end_matches('/').to_owned(),
            sandbox_url: field("sandbox_url")?.trim_end_matches('/').to_owned(),
            emulator_endpoint: field("emulator_endpoint")?,
            region: field("region")?,
            key_id: field("merchant_key.key_id")?,
            secret: SecretString::from(secret.trim().to_owned()),
            table: field("table")?,
            bill_bucket: field("bill_bucket")?,
        })
    }
}

/// One order's business event, as the publisher renders it (without the order snapshot).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub event_type: String,
    pub version: u64,
    pub cause: Value,
}

/// The resend of the first request, and the same number with another body.
#[derive(Debug, Clone, PartialEq)]
pub struct Duplicates {
    pub replay_status: u16,
    pub replayed_header: bool,
    pub replay_order: Value,
    pub mismatch_status: u16,
    pub mismatch_code: String,
}

/// What the tour did and found.
#[derive(Debug, Clone)]
pub struct Tour {
    /// The Beijing day of the orders, the one reconciled.
    pub day: NaiveDate,
    pub qr: String,
    pub expiring: String,
    pub barcode: String,
    pub refund_no: String,
    /// Every order as `GET /v1/payments/{no}` shows it at the end.
    pub orders: BTreeMap<String, Value>,
    /// Every order's business events (from its audit trail), oldest first.
    pub events: BTreeMap<String, Vec<Event>>,
    /// Every order as the sandbox records it at the end (`GET /sandbox/trades/{no}`).
    pub trades: BTreeMap<String, Value>,
    pub duplicates: Duplicates,
    /// The refund's answer.
    pub refund: Value,
    /// `POST /_local/bill-fetch`'s answer.
    pub bill_fetch: Value,
    /// `reports/<day>/summary.json`.
    pub report: Value,
    pub elapsed: Duration,
}

/// An answer of the merchant API.
struct Answer {
    status: u16,
    replayed: bool,
    body: Value,
}

/// The HTTP side of the tour and its printing.
struct Guide<'a> {
    stack: &'a Stack,
    http: reqwest::Client,
    orders: DynamoOrderStore,
    s3: aws_sdk_s3::Client,
    out: &'a mut dyn Write,
    started: Instant,
}

/// `1500` → `¥15.00`.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let fen = fen.unsigned_abs();
    format!("{sign}¥{}.{:02}", fen / 100, fen % 100)
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

impl Guide<'_> {
    fn say(&mut self, line: &str) -> Result<(), DemoError> {
        let seconds = self.started.elapsed().as_secs_f64();
        writeln!(self.out, "[{seconds:6.1}s] {line}")?;
        self.out.flush()?;
        Ok(())
    }

    fn heading(&mut self, line: &str) -> Result<(), DemoError> {
        writeln!(self.out)?;
        writeln!(self.out, "{line}")?;
        Ok(())
    }

    /// A signed merchant API request (`domain::auth`, as the functions verify it).
    async fn api(
        &self,
        step: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> Result<Answer, DemoError> {
        let bytes = body.unwrap_or("");
        let timestamp = Utc::now().timestamp().to_string();
        let nonce = format!("n{}", ulid::Ulid::generate());
        let request = RequestToSign {
            method: method.as_str(),
            path,
            raw_query: "",
            body: bytes.as_bytes(),
        };
        let to_sign =
            string_to_sign(&request, &timestamp, &nonce).map_err(|e| transport(step, e))?;
        let signature = sign(&self.stack.secret, &to_sign);
        let mut builder = self
            .http
            .request(method, format!("{}{path}", self.stack.api_url))
            .header("X-Key-Id", &self.stack.key_id)
            .header("X-Timestamp", timestamp)
            .header("X-Nonce", nonce)
            .header("X-Signature", signature);
        if let Some(body) = body {
            builder = builder
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = builder
            .send()
            .await
            .map_err(|e| transport(step, format!("the merchant API: {e}")))?;
        let status = response.status().as_u16();
        let replayed = response
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok())
            == Some("true");
        let raw = response
            .text()
            .await
            .map_err(|e| transport(step, format!("the merchant API: {e}")))?;
        let body = serde_json::from_str(&raw).unwrap_or(Value::String(raw));
        Ok(Answer {
            status,
            replayed,
            body,
        })
    }

    async fn get_order(&self, step: &'static str, no: &str) -> Result<Value, DemoError> {
        let answer = self
            .api(
                step,
                reqwest::Method::GET,
                &format!("/v1/payments/{no}"),
                None,
            )
            .await?;
        if answer.status != 200 {
            return Err(unexpected(
                step,
                format!("GET {no}: HTTP {} {}", answer.status, answer.body),
            ));
        }
        Ok(answer.body)
    }

    /// A sandbox control request; `body` makes it a POST.
    async fn sandbox(
        &self,
        step: &'static str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, DemoError> {
        let url = format!("{}{path}", self.stack.sandbox_url);
        let request = match body {
            Some(body) => self
                .http
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string()),
            None => self.http.get(url),
        };
        let response = request
            .send()
            .await
            .map_err(|e| transport(step, format!("the Alipay sandbox: {e}")))?;
        let status = response.status();
        let value: Value = read_json(response)
            .await
            .map_err(|e| transport(step, format!("the Alipay sandbox {path}: {e}")))?;
        if !status.is_success() {
            return Err(unexpected(
                step,
                format!(
                    "the Alipay sandbox {path}: HTTP {} {value}",
                    status.as_u16()
                ),
            ));
        }
        Ok(value)
    }

    /// The order's business events, from its audit trail (see the module's documentation).
    async fn events(&self, step: &'static str, no: &str) -> Result<Vec<Event>, DemoError> {
        let number = domain::OutTradeNo::parse(no).map_err(|e| transport(step, e))?;
        let audit = self
            .orders
            .events(&number)
            .await
            .map_err(|e| transport(step, format!("the orders table: {e}")))?;
        let mut events = Vec::new();
        for entry in &audit {
            let Some(event) = BusinessEvent::of_order_event(entry, Value::Null) else {
                continue;
            };
            let value = serde_json::to_value(&event).map_err(|e| transport(step, e))?;
            events.push(Event {
                event_id: event.event_id,
                event_type: text(&value["type"]).to_owned(),
                version: event.version.unwrap_or_default(),
                cause: value["cause"].clone(),
            });
        }
        Ok(events)
    }

    /// Waits for the order's first event of `event_type`.
    async fn event(
        &self,
        step: &'static str,
        no: &str,
        event_type: &str,
        within: Duration,
    ) -> Result<Event, DemoError> {
        let deadline = Instant::now() + within;
        loop {
            let events = self.events(step, no).await?;
            if let Some(found) = events.into_iter().find(|e| e.event_type == event_type) {
                return Ok(found);
            }
            if Instant::now() > deadline {
                return Err(unexpected(
                    step,
                    format!(
                        "no {event_type} event for {no} within {} s",
                        within.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    async fn create(&self, step: &'static str, body: &Value) -> Result<Answer, DemoError> {
        self.api(
            step,
            reqwest::Method::POST,
            "/v1/payments",
            Some(&body.to_string()),
        )
        .await
    }

    fn say_event(&mut self, event: &Event) -> Result<(), DemoError> {
        let line = format!(
            "  business event {} ({}), cause {}",
            event.event_type, event.event_id, event.cause
        );
        self.say(&line)
    }
}

/// A response's body as JSON.
async fn read_json(response: reqwest::Response) -> Result<Value, String> {
    let text = response.text().await.map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
}

fn expect_status(
    step: &'static str,
    what: &str,
    answer: &Answer,
    http: u16,
    status: &str,
) -> Result<(), DemoError> {
    if answer.status != http || answer.body["status"] != status {
        return Err(unexpected(
            step,
            format!(
                "{what}: expected HTTP {http} {status}, got HTTP {} {}",
                answer.status, answer.body
            ),
        ));
    }
    Ok(())
}

/// Sandbox clock check: its Beijing day and now.
async fn sandbox_now(guide: &Guide<'_>, step: &'static str) -> Result<DateTime<Utc>, DemoError> {
    let clock = guide.sandbox(step, "/sandbox/clock", None).await?;
    clock["now_ms"]
        .as_i64()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .ok_or_else(|| unexpected(step, format!("the sandbox's clock: {clock}")))
}

/// Runs the tour against `stack`, printing each step to `out`.
pub async fn run(stack: &Stack, out: &mut dyn Write) -> Result<Tour, DemoError> {
    let started = Instant::now();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(70))
        .no_proxy()
        .build()
        .map_err(|e| transport("setup", e))?;
    let credentials =
        aws_sdk_dynamodb::config::Credentials::new("local", "local", None, None, "local-stack");
    let dynamo = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new(stack.region.clone()))
        .credentials_provider(credentials.clone())
        .endpoint_url(&stack.emulator_endpoint)
        .build();
    let s3 = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(stack.region.clone()))
        .credentials_provider(credentials)
        .endpoint_url(&stack.emulator_endpoint)
        .force_path_style(true)
        .build();
    let mut guide = Guide {
        stack,
        http,
        orders: DynamoOrderStore::new(aws_sdk_dynamodb::Client::from_conf(dynamo), &stack.table),
        s3: aws_sdk_s3::Client::from_conf(s3),
        out,
        started,
    };

    // Is it there? An unknown route is API Gateway's 404.
    if let Err(error) = guide
        .http
        .get(format!("{}/", stack.api_url))
        .timeout(Duration::from_secs(5))
        .send()
        .await
    {
        return Err(DemoError::NotRunning {
            path: stack.file.clone(),
            reason: format!("{}: {error}", stack.api_url),
        });
    }
    let now = sandbox_now(&guide, "setup").await?;
    let lead = now - Utc::now();
    if lead > MAX_CLOCK_LEAD {
        return Err(DemoError::SandboxAhead {
            sandbox: now.to_rfc3339(),
            hours: lead.num_seconds() as f64 / 3600.0,
        });
    }
    let day = domain::beijing_day(now);
    let prefix = format!("DEMO{}", Utc::now().timestamp_millis());
    let qr = format!("{prefix}_QR");
    let expiring = format!("{prefix}_EXP");
    let barcode = format!("{prefix}_BAR");
    let refund_no = format!("{qr}_R1");
    writeln!(
        guide.out,
        "A tour of the local stack: merchant API {}, Alipay sandbox {} (its web page shows every trade).\nOrders {prefix}_*, Beijing day {day}.",
        stack.api_url, stack.sandbox_url
    )?;

    // Step 2 first: it takes a minute, the other steps run meanwhile.
    guide.heading(&format!(
        "Step 2 (started first: it takes {EXPIRY_SECONDS} s) - an order left to expire"
    ))?;
    let step = "2 (expiry)";
    let body = json!({"out_trade_no": expiring, "amount_fen": EXPIRING_FEN, "subject": "Tea left on the counter", "scene": "qr", "timeout_seconds": EXPIRY_SECONDS});
    let created = guide.create(step, &body).await?;
    expect_status(step, "create", &created, 201, "PENDING")?;
    let expires_at = created.body["expires_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| unexpected(step, format!("no expires_at: {}", created.body)))?;
    guide.say(&format!(
        "POST /v1/payments {expiring} {} scene qr timeout_seconds {EXPIRY_SECONDS} (the API's minimum) -> {} {}, expires at {}",
        yuan(EXPIRING_FEN),
        created.status,
        text(&created.body["status"]),
        expires_at.to_rfc3339(),
    ))?;
    guide.say(&format!(
        "  nobody scans its QR code. Its expiry message waits {EXPIRY_SECONDS} s on the expiry queue; we come back to it after step 5"
    ))?;

    // Step 1: a QR payment.
    guide.heading("Step 1 - a QR payment, paid by the sandbox buyer")?;
    let step = "1 (QR payment)";
    let qr_body =
        json!({"out_trade_no": qr, "amount_fen": QR_FEN, "subject": "Latte", "scene": "qr"});
    let created = guide.create(step, &qr_body).await?;
    expect_status(step, "create", &created, 201, "PENDING")?;
    guide.say(&format!(
        "POST /v1/payments {qr} {} \"Latte\" scene qr -> {} {}, qr_code {}",
        yuan(QR_FEN),
        created.status,
        text(&created.body["status"]),
        text(&created.body["qr_code"]),
    ))?;
    let trade = guide
        .sandbox(step, &format!("/sandbox/trades/{qr}/pay"), Some(json!({})))
        .await?;
    guide.say(&format!(
        "the sandbox buyer scans and pays (POST /sandbox/trades/{qr}/pay) -> {} at Alipay, trade_no {}",
        text(&trade["trade_status"]),
        text(&trade["trade_no"]),
    ))?;
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let delivery = loop {
        let log = guide
            .sandbox(
                step,
                &format!("/sandbox/notifications?out_trade_no={qr}"),
                None,
            )
            .await?;
        let delivered = log.as_array().and_then(|all| {
            all.iter()
                .find(|n| n["trade_status"] == "TRADE_SUCCESS" && n["delivered"] == true)
                .cloned()
        });
        if let Some(found) = delivered {
            break found;
        }
        if Instant::now() > deadline {
            return Err(unexpected(
                step,
                format!("Alipay's TRADE_SUCCESS notification was not delivered: {log}"),
            ));
        }
        tokio::time::sleep(POLL_EVERY).await;
    };
    let attempt = delivery["attempts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["success"] == true))
        .cloned()
        .unwrap_or_default();
    guide.say(&format!(
        "Alipay's notification TRADE_SUCCESS (notify_id {}) reached {} -> HTTP {} \"{}\"",
        text(&delivery["notify_id"]),
        text(&attempt["url"]),
        attempt["http_status"],
        text(&attempt["response_body"]),
    ))?;
    let order = guide.get_order(step, &qr).await?;
    if order["status"] != "PAID" {
        return Err(unexpected(
            step,
            format!("GET {qr}: expected PAID: {order}"),
        ));
    }
    guide.say(&format!(
        "GET /v1/payments/{qr} -> PAID, paid_at {}, refundable {}",
        text(&order["paid_at"]),
        yuan(order["refundable_fen"].as_i64().unwrap_or_default()),
    ))?;
    let paid = guide.event(step, &qr, "order.paid", SETTLE_TIMEOUT).await?;
    if paid.cause["source"] != "notification" {
        return Err(unexpected(
            step,
            format!("order.paid should come from the notification: {paid:?}"),
        ));
    }
    guide.say_event(&paid)?;

    // Step 3: a barcode payment.
    guide.heading("Step 3 - a barcode payment")?;
    let step = "3 (barcode payment)";
    let body = json!({"out_trade_no": barcode, "amount_fen": BARCODE_FEN, "subject": "Croissant", "scene": "barcode", "auth_code": BARCODE_AUTH_CODE});
    let created = guide.create(step, &body).await?;
    expect_status(step, "create", &created, 201, "PAID")?;
    guide.say(&format!(
        "POST /v1/payments {barcode} {} scene barcode, the buyer's payment code {BARCODE_AUTH_CODE} (a sandbox buyer who pays at once) -> {} {}, trade_no {}",
        yuan(BARCODE_FEN),
        created.status,
        text(&created.body["status"]),
        text(&created.body["alipay_trade_no"]),
    ))?;
    let paid = guide
        .event(step, &barcode, "order.paid", SETTLE_TIMEOUT)
        .await?;
    guide.say_event(&paid)?;

    // Step 4: the same request again, and the same number with another body.
    guide.heading("Step 4 - a duplicate create")?;
    let step = "4 (duplicate create)";
    let replay = guide.create(step, &qr_body).await?;
    if replay.status != 200 || !replay.replayed || replay.body["out_trade_no"] != qr.as_str() {
        return Err(unexpected(
            step,
            format!(
                "the identical request: expected 200 with Idempotent-Replayed: true and order {qr}, got HTTP {} (replayed: {}) {}",
                replay.status, replay.replayed, replay.body
            ),
        ));
    }
    guide.say(&format!(
        "the first request of step 1 again -> HTTP {}, Idempotent-Replayed: true, the same order {qr} as it is now: {}",
        replay.status,
        text(&replay.body["status"]),
    ))?;
    let mut other = qr_body.clone();
    other["amount_fen"] = json!(QR_FEN + 100);
    let mismatch = guide.create(step, &other).await?;
    let mismatch_code = text(&mismatch.body["code"]).to_owned();
    if mismatch.status != 422 || mismatch_code != "idempotency_mismatch" {
        return Err(unexpected(
            step,
            format!(
                "the same number with another amount: expected 422 idempotency_mismatch, got HTTP {} {}",
                mismatch.status, mismatch.body
            ),
        ));
    }
    guide.say(&format!(
        "the same number with {} instead of {} -> HTTP {} {}: nothing changed",
        yuan(QR_FEN + 100),
        yuan(QR_FEN),
        mismatch.status,
        mismatch_code,
    ))?;
    let duplicates = Duplicates {
        replay_status: replay.status,
        replayed_header: replay.replayed,
        replay_order: replay.body,
        mismatch_status: mismatch.status,
        mismatch_code,
    };

    // Step 5: a partial refund.
    guide.heading("Step 5 - a partial refund of the QR payment")?;
    let step = "5 (refund)";
    let body =
        json!({"out_request_no": refund_no, "amount_fen": REFUND_FEN, "reason": "one cup short"});
    let refunded = guide
        .api(
            step,
            reqwest::Method::POST,
            &format!("/v1/payments/{qr}/refunds"),
            Some(&body.to_string()),
        )
        .await?;
    if refunded.status != 201
        || refunded.body["status"] != "SUCCEEDED"
        || refunded.body["order_status"] != "PARTIALLY_REFUNDED"
    {
        return Err(unexpected(
            step,
            format!(
                "expected 201 SUCCEEDED, order PARTIALLY_REFUNDED, got HTTP {} {}",
                refunded.status, refunded.body
            ),
        ));
    }
    guide.say(&format!(
        "POST /v1/payments/{qr}/refunds {refund_no} {} -> {} {}, order {}, refunded {}, still refundable {}",
        yuan(REFUND_FEN),
        refunded.status,
        text(&refunded.body["status"]),
        text(&refunded.body["order_status"]),
        yuan(refunded.body["order_refunded_fen"].as_i64().unwrap_or_default()),
        yuan(refunded.body["refundable_fen"].as_i64().unwrap_or_default()),
    ))?;
    let succeeded = guide
        .event(step, &qr, "refund.succeeded", SETTLE_TIMEOUT)
        .await?;
    guide.say_event(&succeeded)?;

    // Back to step 2: the real expiry path.
    guide.heading("Step 2 (continued) - timeout-close closes the expired order")?;
    let step = "2 (expiry)";
    let left = (expires_at - Utc::now()).to_std().unwrap_or_default();
    guide.say(&format!(
        "waiting for {expiring} to expire ({} s left) and for the expiry queue to deliver it to timeout-close",
        left.as_secs()
    ))?;
    let closed = guide
        .event(step, &expiring, "order.closed", left + CLOSE_GRACE)
        .await?;
    if closed.cause["reason"] != "expired_never_scanned" {
        return Err(unexpected(
            step,
            format!(
                "order.closed should be timeout-close's (reason expired_never_scanned): {closed:?}"
            ),
        ));
    }
    guide.say(&format!(
        "timeout-close took the expiry message, asked Alipay (no trade: the code was never scanned) and closed the order, {} s after its expiry",
        (Utc::now() - expires_at).num_seconds()
    ))?;
    guide.say_event(&closed)?;
    let order = guide.get_order(step, &expiring).await?;
    if order["status"] != "CLOSED" {
        return Err(unexpected(
            step,
            format!("GET {expiring}: expected CLOSED: {order}"),
        ));
    }
    guide.say(&format!(
        "GET /v1/payments/{expiring} -> CLOSED, closed_at {}",
        text(&order["closed_at"])
    ))?;
    let trade = guide
        .sandbox(step, &format!("/sandbox/trades/{expiring}"), None)
        .await?;
    if trade["stage"] != "LAPSED" && trade["trade_status"] != "TRADE_CLOSED" {
        return Err(unexpected(
            step,
            format!("the sandbox should show the order lapsed or closed: {trade}"),
        ));
    }
    guide.say(&format!(
        "the sandbox: {expiring} {} (its QR code can no longer be paid)",
        text(&trade["stage"])
    ))?;

    // Step 6: the day's reconciliation.
    guide.heading("Step 6 - the day's reconciliation")?;
    let step = "6 (reconciliation)";
    let now = sandbox_now(&guide, step).await?;
    if domain::beijing_day(now) != day {
        return Err(unexpected(
            step,
            format!(
                "the tour crossed midnight (Beijing time): its orders are not all of {day}. Restart the stack and run the demo again"
            ),
        ));
    }
    let rules = guide.sandbox(step, "/sandbox/rules", None).await?;
    let ready_hour = rules["bill_ready_hour"].as_i64().unwrap_or(9);
    let ready_at = day
        .succ_opt()
        .and_then(|next| next.and_hms_opt(0, 0, 0))
        .map(|midnight| {
            midnight.and_utc() - chrono::TimeDelta::hours(8)
                + chrono::TimeDelta::hours(ready_hour)
                + chrono::TimeDelta::seconds(1)
        })
        .ok_or_else(|| unexpected(step, format!("no day after {day}")))?;
    let advance = (ready_at - now).num_milliseconds().max(0) as f64 / 1000.0;
    guide.say(&format!(
        "Alipay's bills are T+1: the bill of {day} exists from {ready_hour:02}:00 Beijing time the next day (sandbox rule bill_ready_hour). Moving the sandbox's clock {:.1} h forward (POST /sandbox/clock/advance)",
        advance / 3600.0
    ))?;
    guide
        .sandbox(
            step,
            "/sandbox/clock/advance",
            Some(json!({"seconds": advance})),
        )
        .await?;
    let fetch = guide
        .http
        .post(format!("{}/_local/bill-fetch", stack.api_url))
        .header("content-type", "application/json")
        .body(json!({"date": day.format("%Y-%m-%d").to_string()}).to_string())
        .send()
        .await
        .map_err(|e| transport(step, format!("bill-fetch: {e}")))?;
    let bill_fetch: Value = read_json(fetch)
        .await
        .map_err(|e| transport(step, format!("bill-fetch: {e}")))?;
    if bill_fetch["outcome"] != "stored" {
        return Err(unexpected(
            step,
            format!("bill-fetch for {day}: expected the bill stored, got {bill_fetch}"),
        ));
    }
    guide.say(&format!(
        "POST /_local/bill-fetch {{\"date\":\"{day}\"}} -> {} (bills/{day}/trade.zip in the bucket {}); the bucket's notification runs reconcile",
        text(&bill_fetch["outcome"]),
        stack.bill_bucket,
    ))?;
    // The bucket read as the functions read it.
    let bucket = aws_adapters::S3Objects::new(guide.s3.clone(), &stack.bill_bucket);
    let key = format!("reports/{day}/summary.json");
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let report: Value = loop {
        let found = bucket
            .read(&key)
            .await
            .map_err(|e| transport(step, e.to_string()))?;
        if let Some(bytes) = found {
            break serde_json::from_slice(&bytes)
                .map_err(|e| transport(step, format!("{key}: {e}")))?;
        }
        if Instant::now() > deadline {
            return Err(unexpected(
                step,
                format!(
                    "no {key} in the bucket within {} s",
                    SETTLE_TIMEOUT.as_secs()
                ),
            ));
        }
        tokio::time::sleep(POLL_EVERY).await;
    };
    let count = |class: &str| report["classes"][class]["count"].as_i64().unwrap_or(0);
    let discrepancies = report["discrepancies"].as_i64().unwrap_or(0);
    guide.say(&format!(
        "{key}: {} bill rows, {} matched, {discrepancies} discrepancies; bill payments {} ({}), refunds {} ({}); healed {}, anomalies {}",
        report["rows"],
        count("matched"),
        report["bill_totals"]["payments"]["count"],
        yuan(report["bill_totals"]["payments"]["fen"].as_i64().unwrap_or(0)),
        report["bill_totals"]["refunds"]["count"],
        yuan(report["bill_totals"]["refunds"]["fen"].as_i64().unwrap_or(0)),
        report["actions"]["healed"],
        report["actions"]["anomalies"],
    ))?;
    if discrepancies > 0 {
        // Other orders of the day may differ; the tour's own must all match.
        let csv_key = format!("reports/{day}/discrepancies.csv");
        let csv = bucket
            .read(&csv_key)
            .await
            .map_err(|e| transport(step, e.to_string()))?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        if csv.contains(&prefix) || csv.is_empty() {
            return Err(unexpected(
                step,
                format!("the tour's orders should all match the bill: {report}\n{csv}"),
            ));
        }
        guide.say(&format!(
            "  the discrepancies are other orders of {day} (see {csv_key}); the tour's orders all matched"
        ))?;
    } else {
        guide.say("  every row matched an order or refund here")?;
    }

    // The final picture.
    let mut orders = BTreeMap::new();
    let mut events = BTreeMap::new();
    let mut trades = BTreeMap::new();
    let step = "summary";
    for no in [&qr, &expiring, &barcode] {
        orders.insert(no.clone(), guide.get_order(step, no).await?);
        events.insert(no.clone(), guide.events(step, no).await?);
        trades.insert(
            no.clone(),
            guide
                .sandbox(step, &format!("/sandbox/trades/{no}"), None)
                .await?,
        );
    }
    guide.heading("Where it ended")?;
    for no in [&qr, &expiring, &barcode] {
        let order = &orders[no];
        let trade = &trades[no];
        let kinds: Vec<&str> = events[no].iter().map(|e| e.event_type.as_str()).collect();
        writeln!(
            guide.out,
            "  {no}: {} {} (refunded {}); Alipay {} paid {} refunded {}; events {}",
            text(&order["status"]),
            yuan(order["amount_fen"].as_i64().unwrap_or_default()),
            yuan(order["refunded_fen"].as_i64().unwrap_or_default()),
            text(&trade["stage"]),
            text(&trade["paid_amount"]),
            text(&trade["refunded_amount"]),
            kinds.join(", "),
        )?;
    }
    let elapsed = started.elapsed();
    writeln!(
        guide.out,
        "\nTour done in {:.1} s. The sandbox's clock now reads the next day (for the bill): restart `make run` before taking more payments.",
        elapsed.as_secs_f64()
    )?;
    Ok(Tour {
        day,
        qr,
        expiring,
        barcode,
        refund_no,
        orders,
        events,
        trades,
        duplicates,
        refund: refunded.body,
        bill_fetch,
        report,
        elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_print_in_yuan() {
        assert_eq!(yuan(1500), "¥15.00");
        assert_eq!(yuan(1), "¥0.01");
        assert_eq!(yuan(-500), "-¥5.00");
        assert_eq!(yuan(0), "¥0.00");
    }

    #[test]
    fn a_missing_stack_file_says_to_start_the_stack() {
        let missing = std::env::temp_dir().join(format!("no-stack-{}.json", std::process::id()));
        let error = Stack::from_file(&missing).err().map(|e| e.to_string());
        let error = error.unwrap_or_default();
        assert!(
            error.contains("not running") && error.contains("make run"),
            "{error}"
        );
    }

    #[test]
    fn the_barcode_code_pays_at_once_in_the_sandbox() {
        // `28` `00` (pays at once) `0000` and ten buyer digits.
        assert_eq!(BARCODE_AUTH_CODE.len(), 18);
        assert!(BARCODE_AUTH_CODE.starts_with("2800"));
        assert!(BARCODE_AUTH_CODE.bytes().all(|b| b.is_ascii_digit()));
    }
}
