//! The whole stack on free ports with a temporary local directory, driven over HTTP like a
//! merchant: a signed QR payment, the buyer pays in the sandbox, the GET converges to PAID,
//! the sandbox's notification reaches the notify route; unsigned requests and unknown routes
//! are refused like API Gateway and the functions refuse them.

use domain::auth::{RequestToSign, sign, string_to_sign};
use local_stack::{LocalStack, Options};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn signed(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    path: &str,
    body: &str,
    key_id: &str,
    secret: &str,
) -> reqwest::RequestBuilder {
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let nonce = format!("n{}", ulid_like());
    let to_sign = RequestToSign {
        method: method.as_str(),
        path,
        raw_query: "",
        body: body.as_bytes(),
    };
    let signature = sign(
        &SecretString::from(secret.to_owned()),
        &string_to_sign(&to_sign, &timestamp, &nonce)
            .unwrap_or_else(|e| unreachable!("an empty query is canonical: {e}")),
    );
    http.request(method, format!("{url}{path}"))
        .header("x-key-id", key_id)
        .header("x-timestamp", timestamp)
        .header("x-nonce", nonce)
        .header("x-signature", signature)
        .header("content-type", "application/json")
        .body(body.to_owned())
}

fn ulid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos}x{}", N.fetch_add(1, Ordering::Relaxed))
}

#[tokio::test]
async fn a_qr_payment_end_to_end_over_http() -> TestResult {
    let dir = tempfile::tempdir()?;
    let stack = LocalStack::start(Options {
        knobs: BTreeMap::from([("SYNC_AFTER_SECONDS".to_owned(), "0".to_owned())]),
        ..Options::on_free_ports(dir.path())
    })
    .await?;
    let api = stack.api_url().to_owned();
    let sandbox = stack.sandbox_url().to_owned();
    let key = stack.merchant_key().clone();
    let secret = std::fs::read_to_string(&key.secret_file)?.trim().to_owned();
    let keys: Value = serde_json::from_str(&std::fs::read_to_string(&key.keys_file)?)?;
    assert_eq!(keys[key.key_id], secret.as_str());
    assert!(stack.banner().contains(&api));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .no_proxy()
        .build()?;

    // Create a QR payment.
    let out_trade_no = format!("T{}", chrono::Utc::now().timestamp_millis());
    let body = json!({
        "out_trade_no": out_trade_no,
        "amount_fen": 1,
        "subject": "coffee",
        "scene": "qr",
    })
    .to_string();
    let created = signed(
        &http,
        reqwest::Method::POST,
        &api,
        "/v1/payments",
        &body,
        key.key_id,
        &secret,
    )
    .send()
    .await?;
    assert_eq!(created.status(), 201);
    assert!(created.headers().contains_key("apigw-requestid"));
    let order: Value = created.json().await?;
    assert_eq!(order["status"], "PENDING", "{order}");

    // The buyer scans and pays in the sandbox.
    let paid = http
        .post(format!("{sandbox}/sandbox/trades/{out_trade_no}/pay"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await?;
    assert!(paid.status().is_success(), "{}", paid.text().await?);

    // The GET asks Alipay and converges.
    let path = format!("/v1/payments/{out_trade_no}");
    let got = signed(
        &http,
        reqwest::Method::GET,
        &api,
        &path,
        "",
        key.key_id,
        &secret,
    )
    .send()
    .await?;
    assert_eq!(got.status(), 200);
    let order: Value = got.json().await?;
    assert_eq!(order["status"], "PAID", "{order}");

    // The sandbox's notifications reached POST /alipay/notify and were answered `success`.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log: Value = http
            .get(format!(
                "{sandbox}/sandbox/notifications?out_trade_no={out_trade_no}"
            ))
            .send()
            .await?
            .json()
            .await?;
        let text = log.to_string();
        if text.contains("/alipay/notify\"")
            && text.contains("\"response_body\":\"success\"")
            && text.contains("TRADE_SUCCESS")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no notification attempt: {log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Unsigned: the function refuses it.
    let unsigned = http
        .post(format!("{api}/v1/payments"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await?;
    assert_eq!(unsigned.status(), 401);
    let refusal: Value = unsigned.json().await?;
    assert!(
        refusal["code"].as_str().unwrap_or("").starts_with("auth_"),
        "{refusal}"
    );

    // Wrong secret: refused as well.
    let forged = signed(
        &http,
        reqwest::Method::GET,
        &api,
        &path,
        "",
        key.key_id,
        "not-the-secret-not-the-secret-not-the-secret",
    )
    .send()
    .await?;
    assert_eq!(forged.status(), 401);

    // No route: API Gateway's own answer.
    for (method, route) in [
        (reqwest::Method::GET, "/nowhere"),
        (reqwest::Method::DELETE, "/v1/payments/T1"),
        (reqwest::Method::GET, "/v1/payments"),
    ] {
        let response = http
            .request(method.clone(), format!("{api}{route}"))
            .send()
            .await?;
        assert_eq!(response.status(), 404, "{method} {route}");
        let answer: Value = response.json().await?;
        assert_eq!(answer, json!({ "message": "Not Found" }));
    }

    stack.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_merchant_key_is_kept_between_runs() -> TestResult {
    let dir = tempfile::tempdir()?;
    let first = local_stack::keys::ensure(dir.path())?;
    let secret = std::fs::read_to_string(&first.secret_file)?;
    let second = local_stack::keys::ensure(dir.path())?;
    assert!(first.created && !second.created);
    assert_eq!(std::fs::read_to_string(&second.secret_file)?, secret);
    Ok(())
}

#[tokio::test]
async fn the_expiry_queue_is_consumed_by_timeout_close() -> TestResult {
    let dir = tempfile::tempdir()?;
    let stack = LocalStack::start(Options::on_free_ports(dir.path())).await?;
    let api = stack.api_url().to_owned();
    let key = stack.merchant_key().clone();
    let secret = std::fs::read_to_string(&key.secret_file)?.trim().to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .no_proxy()
        .build()?;
    let out_trade_no = format!("E{}", ulid_like().replace('x', "_"));
    let body =
        json!({"out_trade_no": out_trade_no, "amount_fen": 1, "subject": "tea", "scene": "qr"})
            .to_string();
    let created = signed(
        &http,
        reqwest::Method::POST,
        &api,
        "/v1/payments",
        &body,
        key.key_id,
        &secret,
    )
    .send()
    .await?;
    assert_eq!(created.status(), 201);

    // The order's own expiry is minutes away; a message due now stands in for it.
    let sqs = aws_adapters::aws_sdk_sqs::Client::new(&stack.aws_sdk_config());
    let queue_url = sqs
        .get_queue_url()
        .queue_name(local_stack::EXPIRY_QUEUE)
        .send()
        .await?
        .queue_url
        .ok_or("no queue url")?;
    let message = aws_adapters::ExpiryMessage {
        out_trade_no: domain::OutTradeNo::parse(&out_trade_no)?,
        due_at: chrono::Utc::now(),
    };
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body(serde_json::to_string(&message)?)
        .send()
        .await?;

    let path = format!("/v1/payments/{out_trade_no}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let order: Value = signed(
            &http,
            reqwest::Method::GET,
            &api,
            &path,
            "",
            key.key_id,
            &secret,
        )
        .send()
        .await?
        .json()
        .await?;
        if order["status"] == "CLOSED" {
            break;
        }
        assert!(Instant::now() < deadline, "not closed: {order}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stack.shutdown().await;
    Ok(())
}

/// The daily reconciliation as AWS runs it, over HTTP and S3 only: a payment whose
/// notification never verifies stays PENDING here; the scheduled (here: requested) bill-fetch
/// stores the sandbox's bill in S3, whose event runs reconcile: the order is healed to PAID,
/// its `order.paid` event (source `reconciliation`) is published, and the report is in S3.
#[tokio::test]
async fn a_missed_payment_is_healed_by_the_daily_reconciliation() -> TestResult {
    let dir = tempfile::tempdir()?;
    let stack = LocalStack::start(Options::on_free_ports(dir.path())).await?;
    let api = stack.api_url().to_owned();
    let sandbox = stack.sandbox_url().to_owned();
    let key = stack.merchant_key().clone();
    let secret = std::fs::read_to_string(&key.secret_file)?.trim().to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .no_proxy()
        .build()?;

    let out_trade_no = format!("T{}", chrono::Utc::now().timestamp_millis());
    // Its notifications arrive with a signature that does not verify: never applied.
    http.post(format!(
        "{sandbox}/sandbox/trades/{out_trade_no}/notifications/switches"
    ))
    .json(&json!({"bad_signature": true}))
    .send()
    .await?
    .error_for_status()?;
    let body =
        json!({"out_trade_no": out_trade_no, "amount_fen": 321, "subject": "tea", "scene": "qr"})
            .to_string();
    let created: Value = signed(
        &http,
        reqwest::Method::POST,
        &api,
        "/v1/payments",
        &body,
        key.key_id,
        &secret,
    )
    .send()
    .await?
    .json()
    .await?;
    assert_eq!(created["status"], "PENDING", "{created}");
    for step in ["scan", "pay"] {
        http.post(format!("{sandbox}/sandbox/trades/{out_trade_no}/{step}"))
            .json(&json!({}))
            .send()
            .await?
            .error_for_status()?;
    }

    // The next morning the bill is there; bill-fetch stores it, S3 tells reconcile.
    http.post(format!("{sandbox}/sandbox/clock/advance"))
        .json(&json!({"seconds": 34 * 3600}))
        .send()
        .await?
        .error_for_status()?;
    let day = domain::beijing_day(chrono::Utc::now())
        .format("%Y-%m-%d")
        .to_string();
    let fetched: Value = http
        .post(format!("{api}/_local/bill-fetch"))
        .json(&json!({"date": day}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(fetched["outcome"], "stored", "{fetched}");

    let s3 = aws_adapters::aws_sdk_s3::Client::new(&stack.aws_sdk_config());
    let deadline = Instant::now() + Duration::from_secs(30);
    let summary: Value = loop {
        let object = s3
            .get_object()
            .bucket(local_stack::bills::BILL_BUCKET)
            .key(format!("reports/{day}/summary.json"))
            .send()
            .await;
        if let Ok(object) = object {
            break serde_json::from_slice(&object.body.collect().await?.into_bytes())?;
        }
        assert!(Instant::now() < deadline, "no report");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        summary["classes"]["paid_there_not_here"]["count"], 1,
        "{summary}"
    );
    assert_eq!(summary["actions"]["healed"], 1, "{summary}");

    let path = format!("/v1/payments/{out_trade_no}");
    let order: Value = signed(
        &http,
        reqwest::Method::GET,
        &api,
        &path,
        "",
        key.key_id,
        &secret,
    )
    .send()
    .await?
    .json()
    .await?;
    assert_eq!(order["status"], "PAID", "{order}");

    // The business event says who healed it.
    let sqs = aws_adapters::aws_sdk_sqs::Client::new(&stack.aws_sdk_config());
    let deadline = Instant::now() + Duration::from_secs(20);
    let paid = loop {
        assert!(Instant::now() < deadline, "no order.paid event");
        let messages = sqs
            .receive_message()
            .queue_url(stack.events().queue_url())
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        let mut found = None;
        for message in &messages {
            // A FIFO group delivers its next message once this one is deleted.
            if let Some(handle) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(stack.events().queue_url())
                    .receipt_handle(handle)
                    .send()
                    .await?;
            }
            let body: Value = serde_json::from_str(message.body().unwrap_or_default())?;
            if body["type"] == "order.paid" && body["out_trade_no"] == out_trade_no.as_str() {
                found = Some(body);
            }
        }
        if let Some(event) = found {
            break event;
        }
    };
    assert_eq!(paid["cause"]["source"], "reconciliation", "{paid}");
    stack.shutdown().await;
    Ok(())
}
