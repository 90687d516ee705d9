//! The operator console (`infra/console/`, served at `/console/`) in headless Chromium against
//! the whole local stack, started as `make run` starts it (its Cognito user pool in moto, the
//! JWT authorizer in front of the admin function) on free ports of 127.0.0.1.
//!
//! Payments are made over HTTP as the demo tour makes them (a barcode payment, a QR payment
//! the sandbox buyer pays); two QR orders are told closed, then paid, by Alipay's signed
//! notifications (signed with the sandbox's Alipay key, as the sandbox signs them), which
//! leaves one open `paid_after_close` anomaly each. Then, in the browser:
//!
//! - `operator` signs in (Cognito's `InitiateAuth` through the stack), finds the paid orders
//!   in today's list (and the store filter), opens the barcode order's timeline and checks it
//!   event by event against the admin API, resolves one anomaly (`dismiss`, with a note); the
//!   admin API then shows it RESOLVED by `operator` with that note;
//! - a token the authorizer refuses brings the sign-in form back with the 401's message;
//! - `viewer` signs in: the open anomaly is listed without resolve controls, and the admin API
//!   refuses the viewer's resolution with `403 forbidden`;
//! - after the day's reconciliation, the report page shows the report's figures, and
//!   "No report for this day." for a day without one.
//!
//! Every request the page made is same-origin; the page's weight (every response it loaded,
//! as received) is printed.

use alipay::PrivateKey;
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use local_stack::{LocalStack, Options};
use payments_cli::demo::yuan;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use test_support::browser::{Browser, Loaded};
use tokio::time::{Instant, sleep};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn err(message: impl Into<String>) -> Box<dyn std::error::Error + Send + Sync> {
    message.into().into()
}

/// How long a page change or a stack outcome may take to show.
const WAIT: Duration = Duration::from_secs(20);
const POLL_EVERY: Duration = Duration::from_millis(200);
/// The console's own files must stay small.
const MAX_PAGE_BYTES: u64 = 100 * 1024;
const BARCODE_FEN: i64 = 2000;
const QR_FEN: i64 = 1500;
/// A payment code of a sandbox buyer who pays at once.
const BARCODE_AUTH_CODE: &str = "280000001234567890";
/// Markup in a subject must reach the page as text.
const QR_SUBJECT: &str = "Latte <b>oat<i> 拿铁";
const NOTE: &str = "Checked in Alipay's portal: the buyer paid twice <b>by mistake</b>";

#[tokio::test]
async fn operators_resolve_anomalies_and_viewers_only_read_in_the_console() -> TestResult {
    let dir = tempfile::tempdir()?;
    let stack = LocalStack::start(Options {
        // As `make run` (main.rs): every GET of a pending order asks the sandbox.
        knobs: BTreeMap::from([("SYNC_AFTER_SECONDS".to_owned(), "0".to_owned())]),
        ..Options::on_free_ports(dir.path())
    })
    .await?;
    let outcome = tour(&stack, dir.path()).await;
    stack.shutdown().await;
    outcome
}

/// What the test needs of the stack's description (`stack.json`).
struct Stack {
    http: reqwest::Client,
    api: String,
    sandbox: String,
    console: String,
    cognito: String,
    client_id: String,
    key_id: String,
    secret: SecretString,
    /// The sandbox's Alipay key, app id and seller id: notifications as Alipay sends them.
    alipay_key: PrivateKey,
    app_id: String,
    seller_id: String,
    passwords: BTreeMap<String, String>,
}

fn text(value: &Value, what: &str) -> TestResult<String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| err(format!("no {what} in {value}")))
}

impl Stack {
    fn of(stack: &LocalStack) -> TestResult<Stack> {
        let described = stack.description();
        let sandbox_dir = Path::new(&text(&described["sandbox_dir"], "sandbox_dir")?).to_owned();
        let identity: Value =
            serde_json::from_str(&std::fs::read_to_string(sandbox_dir.join("sandbox.json"))?)?;
        let secret_file = text(
            &described["merchant_key"]["secret_file"],
            "merchant_key.secret_file",
        )?;
        let passwords = described["console_users"]
            .as_array()
            .ok_or_else(|| err(format!("no console_users in {described}")))?
            .iter()
            .map(|user| {
                Ok((
                    text(&user["username"], "username")?,
                    text(&user["password"], "password")?,
                ))
            })
            .collect::<TestResult<_>>()?;
        Ok(Stack {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .no_proxy()
                .build()?,
            api: text(&described["api_url"], "api_url")?,
            sandbox: text(&described["sandbox_url"], "sandbox_url")?,
            console: text(&described["console_url"], "console_url")?,
            cognito: text(&described["cognito"]["endpoint"], "cognito.endpoint")?,
            client_id: text(&described["cognito"]["client_id"], "cognito.client_id")?,
            key_id: text(&described["merchant_key"]["key_id"], "merchant_key.key_id")?,
            secret: SecretString::from(std::fs::read_to_string(secret_file)?.trim().to_owned()),
            alipay_key: PrivateKey::parse(&std::fs::read_to_string(
                sandbox_dir.join(alipay_sandbox::identity::ALIPAY_PRIVATE_KEY_FILE),
            )?)?,
            app_id: text(&identity["app_id"], "app_id")?,
            seller_id: text(&identity["seller_id"], "seller_id")?,
            passwords,
        })
    }

    /// A merchant API request, signed as `domain::auth` verifies it; answers status and body.
    async fn merchant(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> TestResult<(u16, Value)> {
        let bytes = body.map(Value::to_string).unwrap_or_default();
        let timestamp = Utc::now().timestamp().to_string();
        let nonce = format!("console-{}", Utc::now().timestamp_nanos_opt().unwrap_or(0));
        let request = domain::auth::RequestToSign {
            method: method.as_str(),
            path,
            raw_query: "",
            body: bytes.as_bytes(),
        };
        let to_sign = domain::auth::string_to_sign(&request, &timestamp, &nonce)?;
        let mut call = self
            .http
            .request(method, format!("{}{path}", self.api))
            .header("X-Key-Id", &self.key_id)
            .header("X-Timestamp", timestamp)
            .header("X-Nonce", nonce)
            .header("X-Signature", domain::auth::sign(&self.secret, &to_sign));
        if body.is_some() {
            call = call.header("content-type", "application/json").body(bytes);
        }
        answer(call).await
    }

    /// Alipay's notification about `out_trade_no`, signed with the sandbox's Alipay key.
    async fn notify(
        &self,
        out_trade_no: &str,
        amount: &str,
        trade_no: &str,
        status: &str,
    ) -> TestResult {
        let now = alipay::time::format_beijing(Utc::now());
        let notify_id = format!("console{}", Utc::now().timestamp_nanos_opt().unwrap_or(0));
        let mut fields = vec![
            ("notify_time", now.as_str()),
            ("notify_type", "trade_status_sync"),
            ("notify_id", notify_id.as_str()),
            ("app_id", self.app_id.as_str()),
            ("charset", "utf-8"),
            ("version", "1.0"),
            ("trade_no", trade_no),
            ("out_trade_no", out_trade_no),
            ("trade_status", status),
            ("total_amount", amount),
            ("seller_id", self.seller_id.as_str()),
            (
                "buyer_open_id",
                "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5",
            ),
            ("subject", "Tea"),
            ("gmt_create", now.as_str()),
        ];
        if status == "TRADE_SUCCESS" {
            fields.extend([("gmt_payment", now.as_str()), ("receipt_amount", amount)]);
        }
        let body = alipay::notify::sign_form(&fields, encoding_rs::UTF_8, &self.alipay_key)?;
        let response = self
            .http
            .post(format!("{}/alipay/notify", self.api))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await?;
        let status_code = response.status().as_u16();
        let reply = response.text().await?;
        if (status_code, reply.as_str()) != (200, "success") {
            return Err(err(format!(
                "{status} notification for {out_trade_no}: {status_code} {reply}"
            )));
        }
        Ok(())
    }

    /// A Cognito ID token for `username`, from `InitiateAuth` as the page asks for it.
    async fn id_token(&self, username: &str) -> TestResult<String> {
        let password = self
            .passwords
            .get(username)
            .ok_or_else(|| err(format!("no console user {username}")))?;
        let call = self
            .http
            .post(&self.cognito)
            .header(
                "X-Amz-Target",
                "AWSCognitoIdentityProviderService.InitiateAuth",
            )
            .header("content-type", "application/x-amz-json-1.1")
            .body(
                json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": self.client_id,
                       "AuthParameters": {"USERNAME": username, "PASSWORD": password}})
                .to_string(),
            );
        let (status, body) = answer(call).await?;
        if status != 200 {
            return Err(err(format!("InitiateAuth as {username}: {status} {body}")));
        }
        text(&body["AuthenticationResult"]["IdToken"], "IdToken")
    }

    /// An admin API request with `token`.
    async fn admin(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> TestResult<(u16, Value)> {
        let mut call = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(token);
        if let Some(body) = body {
            call = call
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        answer(call).await
    }

    /// A sandbox control request; `body` makes it a POST.
    async fn sandbox(&self, path: &str, body: Option<Value>) -> TestResult<Value> {
        let url = format!("{}{path}", self.sandbox);
        let call = match body {
            Some(body) => self
                .http
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string()),
            None => self.http.get(url),
        };
        let (status, body) = answer(call).await?;
        if status != 200 {
            return Err(err(format!("the sandbox {path}: {status} {body}")));
        }
        Ok(body)
    }
}

async fn answer(call: reqwest::RequestBuilder) -> TestResult<(u16, Value)> {
    let response = call.send().await?;
    let status = response.status().as_u16();
    let raw = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&raw).unwrap_or(Value::String(raw)),
    ))
}

/// An RFC 3339 time as the console shows it.
fn beijing(at: &str) -> TestResult<String> {
    let offset = FixedOffset::east_opt(8 * 3600).ok_or_else(|| err("UTC+8"))?;
    Ok(DateTime::parse_from_rfc3339(at)?
        .with_timezone(&offset)
        .format("%Y-%m-%d %H:%M:%S (UTC+8)")
        .to_string())
}

fn beijing_today() -> NaiveDate {
    domain::beijing_day(Utc::now())
}

/// The orders and anomalies the tour works on.
struct Made {
    barcode: String,
    qr: String,
    /// The open `paid_after_close` anomalies: the operator resolves the first.
    anomalies: [String; 2],
}

/// The payments and the anomalies, over HTTP only.
async fn make_payments(stack: &Stack) -> TestResult<Made> {
    let prefix = format!("CON{}", Utc::now().timestamp_millis());
    let barcode = format!("{prefix}_BAR");
    let (status, order) = stack
        .merchant(
            reqwest::Method::POST,
            "/v1/payments",
            Some(
                &json!({"out_trade_no": barcode, "amount_fen": BARCODE_FEN, "subject": "Croissant",
                         "scene": "barcode", "auth_code": BARCODE_AUTH_CODE, "store_id": "SH-001",
                         "operator_id": "cashier-7", "terminal_id": "till-2"}),
            ),
        )
        .await?;
    assert_eq!((status, &order["status"]), (201, &json!("PAID")), "{order}");

    let qr = format!("{prefix}_QR");
    let (status, order) = stack
        .merchant(
            reqwest::Method::POST,
            "/v1/payments",
            Some(
                &json!({"out_trade_no": qr, "amount_fen": QR_FEN, "subject": QR_SUBJECT,
                         "scene": "qr", "store_id": "BJ-002"}),
            ),
        )
        .await?;
    assert_eq!(
        (status, &order["status"]),
        (201, &json!("PENDING")),
        "{order}"
    );
    stack
        .sandbox(&format!("/sandbox/trades/{qr}/pay"), Some(json!({})))
        .await?;
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, order) = stack
            .merchant(reqwest::Method::GET, &format!("/v1/payments/{qr}"), None)
            .await?;
        if order["status"] == "PAID" {
            break;
        }
        if Instant::now() > deadline {
            return Err(err(format!("{qr} not PAID within {WAIT:?}: {order}")));
        }
        sleep(POLL_EVERY).await;
    }

    // Given up here (Alipay said closed), then paid at Alipay after all.
    let day = beijing_today().format("%Y%m%d");
    let mut anomalies = Vec::new();
    for (n, fen) in [(1, 800), (2, 900)] {
        let no = format!("{prefix}_CLOSED{n}");
        let (status, order) = stack
            .merchant(
                reqwest::Method::POST,
                "/v1/payments",
                Some(&json!({"out_trade_no": no, "amount_fen": fen, "subject": "Tea", "scene": "qr"})),
            )
            .await?;
        assert_eq!(status, 201, "{order}");
        let amount = yuan(fen).replace('¥', "");
        let trade_no = format!("{day}22001{:015}", Utc::now().timestamp_millis() + n);
        stack
            .notify(&no, &amount, &trade_no, "TRADE_CLOSED")
            .await?;
        stack
            .notify(&no, &amount, &trade_no, "TRADE_SUCCESS")
            .await?;
        anomalies.push(format!("{no}/paid_after_close"));
    }
    let anomalies: [String; 2] = anomalies
        .try_into()
        .map_err(|_| err("two anomalies expected"))?;
    Ok(Made {
        barcode,
        qr,
        anomalies,
    })
}

async fn tour(local: &LocalStack, scratch: &Path) -> TestResult {
    let stack = Stack::of(local)?;
    let made = make_payments(&stack).await?;
    let operator = stack.id_token("operator").await?;
    let (status, page) = stack
        .admin(
            &operator,
            reqwest::Method::GET,
            "/admin/anomalies?kind=paid_after_close",
            None,
        )
        .await?;
    for id in &made.anomalies {
        let listed = page["anomalies"]
            .as_array()
            .is_some_and(|all| all.iter().any(|a| a["id"] == id.as_str()));
        assert!(status == 200 && listed, "{id} not open: {status} {page}");
    }

    let mut chromium = Browser::launch(scratch).await?;
    let driven = drive(&mut chromium, &stack, &made).await;
    let log = chromium.log_tail();
    chromium.close().await?;
    driven.map_err(|e| err(format!("{e}\n--- chromium log (tail) ---\n{log}")))
}

async fn drive(chromium: &mut Browser, stack: &Stack, made: &Made) -> TestResult {
    chromium.record_network().await?;
    chromium.goto(&stack.console).await?;
    chromium
        .wait_until(
            "document.body.dataset.ready === 'true' && document.body.dataset.view === 'login'",
            WAIT,
        )
        .await?;
    let first_load = chromium.take_network_log().await?;
    let mut everything = first_load.clone();
    let page_bytes = weight(&first_load);
    let loaded: Vec<&str> = first_load
        .iter()
        .filter_map(|request| request.urls.first().map(String::as_str))
        .collect();
    for file in ["", "console.css", "console.js", "config.json"] {
        let url = format!("{}{file}", stack.console);
        assert!(loaded.contains(&url.as_str()), "{url} in {loaded:?}");
    }
    assert!(
        first_load.iter().all(|request| request.status == Some(200)),
        "{first_load:?}"
    );
    assert!(
        page_bytes < MAX_PAGE_BYTES,
        "the console weighs {page_bytes} bytes"
    );
    // The formatting rules on what the stack's data does not reach: negative and large fen,
    // digit strings (the report's CSV fields), a time at the turn of the Beijing year.
    let formatted = chromium
        .eval(
            "[consoleFormat.yuan(-1234), consoleFormat.yuan(-5), consoleFormat.yuan(0), \
             consoleFormat.yuan(Number.MAX_SAFE_INTEGER), consoleFormat.yuan('1500'), \
             consoleFormat.yuan('-007'), consoleFormat.beijingTime('2026-12-31T16:00:00Z'), \
             consoleFormat.beijingDay(new Date('2026-12-07T16:00:00Z'))]",
        )
        .await?;
    assert_eq!(
        formatted,
        json!([
            "-¥12.34",
            "-¥0.05",
            "¥0.00",
            "¥90071992547409.91",
            "¥15.00",
            "-¥0.07",
            "2027-01-01 00:00:00 (UTC+8)",
            "2026-12-08"
        ])
    );

    as_operator(chromium, stack, made).await?;
    refused_token(chromium, stack).await?;
    as_viewer(chromium, stack, made).await?;
    everything.extend(chromium.take_network_log().await?);

    // Nothing leaves the stack's origin.
    let origin = format!("{}/", stack.api);
    for request in &everything {
        for url in &request.urls {
            assert!(
                url.starts_with(&origin) || url.starts_with("data:"),
                "a request off the stack: {url}"
            );
        }
        assert!(request.failed.is_none(), "{request:?}");
        assert!(request.status.is_some_and(|s| s < 500), "{request:?}");
    }
    eprintln!(
        "console page weight: {page_bytes} bytes in {} responses at first load (HTML, CSS, JS, config.json); \
         {} bytes in {} responses over the whole session (API answers included)",
        first_load.len(),
        weight(&everything),
        everything.len()
    );
    Ok(())
}

fn weight(requests: &[Loaded]) -> u64 {
    requests.iter().map(|request| request.bytes).sum()
}

/// Signs in through the form and waits for `view`.
async fn sign_in(chromium: &mut Browser, stack: &Stack, username: &str) -> TestResult {
    let password = stack
        .passwords
        .get(username)
        .ok_or_else(|| err(format!("no console user {username}")))?;
    chromium.fill("#username", username).await?;
    chromium.fill("#password", password).await?;
    chromium.click("#login-submit").await?;
    chromium
        .wait_until(
            &format!(
                "document.body.dataset.view !== 'login' && \
                 document.getElementById('whoami').textContent === '{username}'"
            ),
            WAIT,
        )
        .await
}

async fn sign_out(chromium: &mut Browser) -> TestResult {
    chromium.click("#sign-out").await?;
    chromium
        .wait_until(
            "document.body.dataset.view === 'login' && sessionStorage.length === 0 && \
             document.querySelectorAll('#orders-body tr, #anomalies-body tr').length === 0",
            WAIT,
        )
        .await
}

/// The order rows shown: number → (status, amount text, subject text, markup inside).
const ORDER_ROWS: &str = r#"Object.fromEntries([...document.querySelectorAll('#orders-body tr')].map(r =>
    [r.dataset.outTradeNo, [r.dataset.status, r.querySelector('[data-col=amount]').textContent,
     r.cells[5].textContent, r.cells[5].children.length]]))"#;

async fn as_operator(chromium: &mut Browser, stack: &Stack, made: &Made) -> TestResult {
    sign_in(chromium, stack, "operator").await?;
    let session = chromium
        .eval("[document.getElementById('role').textContent, document.getElementById('orders-date').value]")
        .await?;
    assert_eq!(
        session,
        json!(["operator", beijing_today().format("%Y-%m-%d").to_string()])
    );

    // Today's list: every order of the tour, the paid ones PAID, markup shown as typed.
    let all_there = format!(
        "document.querySelector('#orders-body tr[data-out-trade-no=\"{}\"]') !== null && \
         document.querySelector('#orders-body tr[data-out-trade-no=\"{}\"]') !== null",
        made.barcode, made.qr
    );
    chromium.wait_until(&all_there, WAIT).await?;
    let rows = chromium.eval(ORDER_ROWS).await?;
    assert_eq!(
        rows[&made.barcode],
        json!(["PAID", yuan(BARCODE_FEN), "Croissant", 0])
    );
    assert_eq!(rows[&made.qr], json!(["PAID", yuan(QR_FEN), QR_SUBJECT, 0]));
    assert_eq!(rows.as_object().map(|rows| rows.len()), Some(4), "{rows}");
    assert_eq!(
        chromium
            .eval("document.querySelectorAll('#orders-body b, #orders-body i').length")
            .await?,
        json!(0)
    );

    // The store filter.
    chromium.fill("#orders-store", "BJ-002").await?;
    chromium.click("#orders-load").await?;
    chromium
        .wait_until(
            "document.querySelectorAll('#orders-body tr').length === 1",
            WAIT,
        )
        .await?;
    let rows = chromium.eval(ORDER_ROWS).await?;
    assert!(rows.get(&made.qr).is_some(), "{rows}");
    chromium.fill("#orders-store", "").await?;
    chromium.fill("#orders-status", "PAID").await?;
    chromium.click("#orders-load").await?;
    chromium
        .wait_until(
            "[...document.querySelectorAll('#orders-body tr')].every(r => r.dataset.status === 'PAID') && \
             document.querySelectorAll('#orders-body tr').length === 2",
            WAIT,
        )
        .await?;

    // The barcode order's timeline, event by event as the admin API has it.
    chromium
        .click(&format!(
            "#orders-body tr[data-out-trade-no=\"{}\"] a",
            made.barcode
        ))
        .await?;
    let operator = stack.id_token("operator").await?;
    let (status, detail) = stack
        .admin(
            &operator,
            reqwest::Method::GET,
            &format!("/admin/orders/{}", made.barcode),
            None,
        )
        .await?;
    assert_eq!(status, 200, "{detail}");
    let timeline = detail["timeline"].as_array().cloned().unwrap_or_default();
    assert!(
        timeline.iter().any(|e| e["kind"]["type"] == "paid"),
        "{detail}"
    );
    chromium
        .wait_until(
            &format!(
                "document.body.dataset.view === 'order' && \
                 document.querySelectorAll('#timeline tbody tr[data-testid=event]').length === {}",
                timeline.len()
            ),
            WAIT,
        )
        .await?;
    let shown = chromium
        .eval(
            "[...document.querySelectorAll('#timeline tbody tr')].map(r => ({type: r.dataset.type, \
             at: r.querySelector('[data-col=at]').textContent, \
             transition: r.querySelector('[data-col=transition]').textContent, \
             what: r.querySelector('[data-col=what]').textContent, \
             actor: r.querySelector('[data-col=actor]').textContent}))",
        )
        .await?;
    for (n, event) in timeline.iter().enumerate() {
        let row = &shown[n];
        assert_eq!(row["type"], event["kind"]["type"], "{row} vs {event}");
        assert_eq!(row["at"], beijing(&text(&event["at"], "at")?)?.as_str());
        let from = event["from"].as_str().unwrap_or("—");
        let to = text(&event["to"], "to")?;
        assert_eq!(row["transition"], format!("{from} → {to}").as_str());
        assert_eq!(row["actor"], event["actor"].as_str().unwrap_or("—"));
        let what = text(&row["what"], "what")?;
        for (name, value) in event["kind"].as_object().into_iter().flatten() {
            let shown_value = match value {
                Value::String(s) => s.clone(),
                Value::Number(fen) if name.ends_with("_fen") => yuan(fen.as_i64().unwrap_or(0)),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            let expected = if name == "type" {
                shown_value
            } else {
                format!("{name}: {shown_value}")
            };
            assert!(what.contains(&expected), "{expected} in {what}");
        }
    }
    let paid = shown
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["type"] == "paid"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(paid["actor"], "pay", "{paid}");
    assert!(
        paid["transition"]
            .as_str()
            .is_some_and(|t| t.ends_with("→ PAID")),
        "{paid}"
    );
    let fields = chromium
        .eval(
            "Object.fromEntries([...document.querySelectorAll('#order-details dd')].map(d => \
             [d.dataset.field, d.textContent]))",
        )
        .await?;
    assert_eq!(fields["amount_fen"], yuan(BARCODE_FEN).as_str(), "{fields}");
    assert_eq!(fields["store_id"], "SH-001", "{fields}");
    assert_eq!(fields["terminal_id"], "till-2", "{fields}");
    assert_eq!(
        fields["paid_at"],
        beijing(&text(&detail["order"]["paid_at"], "paid_at")?)?.as_str()
    );

    // The open anomalies; the first resolved with a note.
    let [resolved, left_open] = &made.anomalies;
    chromium.click("#tab-anomalies").await?;
    let row = |id: &str| format!("#anomalies-body tr[data-anomaly-id=\"{id}\"]");
    chromium
        .wait_until(
            &format!(
                "document.body.dataset.view === 'anomalies' && \
                 document.querySelector('{}') !== null && document.querySelector('{}') !== null",
                row(resolved),
                row(left_open)
            ),
            WAIT,
        )
        .await?;
    chromium
        .click(&format!("{} [data-testid=resolve-open]", row(resolved)))
        .await?;
    chromium
        .wait_until("!document.getElementById('resolve-form').hidden", WAIT)
        .await?;
    let offered = chromium
        .eval(
            "[document.getElementById('resolve-id').textContent, \
             [...document.querySelectorAll('#resolve-action option')].map(o => o.value)]",
        )
        .await?;
    assert_eq!(
        offered,
        json!([resolved, ["", "accept_as_paid", "refund", "dismiss"]])
    );
    chromium.fill("#resolve-action", "dismiss").await?;
    chromium.fill("#resolve-note", NOTE).await?;
    chromium.click("#resolve-submit").await?;
    chromium
        .wait_until(
            &format!(
                "document.getElementById('resolve-form').hidden && \
                 !document.getElementById('notice').hidden && \
                 document.querySelector('{}') === null && document.querySelector('{}') !== null",
                row(resolved),
                row(left_open)
            ),
            WAIT,
        )
        .await?;
    let notice = chromium
        .eval("document.getElementById('notice').textContent")
        .await?;
    assert_eq!(notice, format!("Resolved {resolved} (dismiss).").as_str());

    // The record, as the admin API has it.
    let (status, page) = stack
        .admin(
            &operator,
            reqwest::Method::GET,
            "/admin/anomalies?status=resolved&kind=paid_after_close",
            None,
        )
        .await?;
    assert_eq!(status, 200, "{page}");
    let record = page["anomalies"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["id"] == resolved.as_str()))
        .cloned()
        .ok_or_else(|| err(format!("{resolved} not among the resolved: {page}")))?;
    assert_eq!(record["status"], "RESOLVED", "{record}");
    assert_eq!(record["resolution"]["by"], "operator", "{record}");
    assert_eq!(record["resolution"]["note"], NOTE, "{record}");
    assert_eq!(record["resolution"]["action"], "dismiss", "{record}");

    // Shown as resolved, the note as text.
    chromium.fill("#anomalies-status", "resolved").await?;
    chromium.click("#anomalies-load").await?;
    chromium
        .wait_until(
            &format!(
                "document.querySelector('{} [data-testid=resolution]') !== null",
                row(resolved)
            ),
            WAIT,
        )
        .await?;
    let shown = chromium
        .eval(&format!(
            "document.querySelector('{} [data-testid=resolution]').textContent",
            row(resolved)
        ))
        .await?;
    let shown = text(&shown, "resolution")?;
    assert!(
        shown.contains("dismiss by operator") && shown.contains(NOTE),
        "{shown}"
    );
    sign_out(chromium).await
}

/// A token the authorizer refuses (its signature altered) signs the page out with the 401.
async fn refused_token(chromium: &mut Browser, stack: &Stack) -> TestResult {
    let viewer = stack.id_token("viewer").await?;
    let (head, signature) = viewer
        .rsplit_once('.')
        .ok_or_else(|| err("an ID token is three parts"))?;
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let forged = format!("{head}.{flipped}{}", signature.get(1..).unwrap_or_default());
    let forged_js = serde_json::to_string(&forged)?;
    // The tab's storage outlives its pages: the console finds the token when it loads.
    chromium
        .eval(&format!(
            "sessionStorage.setItem('console.id_token', {forged_js})"
        ))
        .await?;
    chromium.goto("about:blank").await?;
    chromium
        .goto(&format!("{}#anomalies", stack.console))
        .await?;
    chromium
        .wait_until(
            "document.readyState === 'complete' && document.body.dataset.ready === 'true' && \
             document.body.dataset.view === 'login' && \
             document.getElementById('login-message').textContent.includes('Unauthorized')",
            WAIT,
        )
        .await?;
    let message = chromium
        .eval("document.getElementById('login-message').textContent")
        .await?;
    assert_eq!(
        message,
        "Signed out: unauthorized: Unauthorized. Sign in again."
    );
    Ok(())
}

async fn as_viewer(chromium: &mut Browser, stack: &Stack, made: &Made) -> TestResult {
    let [resolved, left_open] = &made.anomalies;
    // Back on `#anomalies` from the refused token: the list opens at once.
    sign_in(chromium, stack, "viewer").await?;
    chromium
        .wait_until(
            &format!(
                "document.body.dataset.view === 'anomalies' && \
                 document.querySelector('#anomalies-body tr[data-anomaly-id=\"{left_open}\"]') !== null"
            ),
            WAIT,
        )
        .await?;
    let controls = chromium
        .eval(
            "[document.getElementById('role').textContent, \
             document.querySelectorAll('[data-testid=resolve-open]').length, \
             document.getElementById('resolve-form').hidden]",
        )
        .await?;
    assert_eq!(controls, json!(["viewer", 0, true]));

    // The API refuses the viewer's resolution, and the record stays open.
    let viewer = stack.id_token("viewer").await?;
    let path = format!("/admin/anomalies/{}/resolve", left_open.replace('/', "%2F"));
    let (status, refused) = stack
        .admin(
            &viewer,
            reqwest::Method::POST,
            &path,
            Some(&json!({"note": "viewers may not", "action": "dismiss"})),
        )
        .await?;
    assert_eq!(
        (status, &refused["code"]),
        (403, &json!("forbidden")),
        "{refused}"
    );
    let (_, page) = stack
        .admin(&viewer, reqwest::Method::GET, "/admin/anomalies", None)
        .await?;
    let open: Vec<&str> = page["anomalies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert!(
        open.contains(&left_open.as_str()) && !open.contains(&resolved.as_str()),
        "{page}"
    );

    reconciliation(chromium, stack, &viewer).await?;
    sign_out(chromium).await
}

/// The day's report, once reconcile wrote it, and a day without one.
async fn reconciliation(chromium: &mut Browser, stack: &Stack, viewer: &str) -> TestResult {
    let day = beijing_today();
    // Alipay's bill of a day is out the next morning: the sandbox's clock goes there.
    let clock = stack.sandbox("/sandbox/clock", None).await?;
    let rules = stack.sandbox("/sandbox/rules", None).await?;
    let now = clock["now_ms"]
        .as_i64()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .ok_or_else(|| err(format!("the sandbox's clock: {clock}")))?;
    let ready_at = day
        .succ_opt()
        .and_then(|next| next.and_hms_opt(0, 0, 1))
        .map(|midnight| {
            midnight.and_utc() - chrono::TimeDelta::hours(8)
                + chrono::TimeDelta::hours(rules["bill_ready_hour"].as_i64().unwrap_or(9))
        })
        .ok_or_else(|| err(format!("no day after {day}")))?;
    let seconds = (ready_at - now).num_seconds().max(0);
    stack
        .sandbox("/sandbox/clock/advance", Some(json!({"seconds": seconds})))
        .await?;
    let date = day.format("%Y-%m-%d").to_string();
    let (status, fetched) = answer(
        stack
            .http
            .post(format!("{}/_local/bill-fetch", stack.api))
            .header("content-type", "application/json")
            .body(json!({"date": date}).to_string()),
    )
    .await?;
    assert_eq!(
        (status, &fetched["outcome"]),
        (200, &json!("stored")),
        "{fetched}"
    );
    let deadline = Instant::now() + WAIT;
    let report = loop {
        let (status, report) = stack
            .admin(
                viewer,
                reqwest::Method::GET,
                &format!("/admin/reports/{date}"),
                None,
            )
            .await?;
        if status == 200 {
            break report;
        }
        if Instant::now() > deadline {
            return Err(err(format!(
                "no report of {date} within {WAIT:?}: {report}"
            )));
        }
        sleep(POLL_EVERY).await;
    };

    // The page opens on yesterday, which has no report.
    chromium.click("#tab-report").await?;
    chromium
        .wait_until(
            "document.body.dataset.view === 'report' && \
             !document.getElementById('report-missing').hidden",
            WAIT,
        )
        .await?;
    let yesterday = day.pred_opt().ok_or_else(|| err("no day before"))?;
    assert_eq!(
        chromium
            .eval("document.getElementById('report-date').value")
            .await?,
        yesterday.format("%Y-%m-%d").to_string().as_str()
    );
    chromium.fill("#report-date", &date).await?;
    chromium.click("#report-load").await?;
    chromium
        .wait_until(
            "!document.getElementById('report-content').hidden && \
             document.getElementById('report-missing').hidden",
            WAIT,
        )
        .await?;
    let shown = chromium
        .eval(
            "({fields: Object.fromEntries([...document.querySelectorAll('#report-summary dd')].map(d => \
             [d.dataset.field, d.textContent])), \
             payments: [...document.querySelectorAll('#report-totals tr[data-kind=payments] td')].map(c => c.textContent), \
             discrepancies: document.querySelectorAll('#report-discrepancies tbody tr').length})",
        )
        .await?;
    let summary = &report["summary"];
    let fields = &shown["fields"];
    assert_eq!(fields["date"], date.as_str(), "{shown}");
    for name in ["rows", "orders", "discrepancies"] {
        assert_eq!(
            fields[name],
            summary[name].to_string().as_str(),
            "{name}: {shown}"
        );
    }
    let fen = |totals: &str| yuan(summary[totals]["payments"]["fen"].as_i64().unwrap_or(-1));
    assert_eq!(
        shown["payments"],
        json!([
            summary["bill_totals"]["payments"]["count"].to_string(),
            fen("bill_totals"),
            summary["ledger_totals"]["payments"]["count"].to_string(),
            fen("ledger_totals"),
        ]),
        "{shown} vs {summary}"
    );
    assert_eq!(
        shown["discrepancies"],
        json!(report["discrepancies"].as_array().map_or(0, Vec::len))
    );
    Ok(())
}
