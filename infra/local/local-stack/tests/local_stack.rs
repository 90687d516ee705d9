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
        claim: None,
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

/// `stack.json` of a started stack names live services: the API and the emulator answer, the
/// table, the queues and the bucket exist, the secret file holds the key's secret (which is
/// not in the file itself); removed when the stack stops.
#[tokio::test]
async fn the_stack_file_points_at_live_services() -> TestResult {
    let dir = tempfile::tempdir()?;
    let stack = LocalStack::start(Options::on_free_ports(dir.path())).await?;
    let path = stack.write_stack_file()?;
    assert_eq!(path, dir.path().join(local_stack::STACK_FILE));
    let text = std::fs::read_to_string(&path)?;
    let file: Value = serde_json::from_str(&text)?;
    assert_eq!(file["pid"], std::process::id());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()?;

    let api = file["api_url"].as_str().ok_or("no api_url")?;
    let unknown = http.get(format!("{api}/nowhere")).send().await?;
    assert_eq!(unknown.status(), 404, "the merchant API answers at {api}");
    let sandbox = file["sandbox_url"].as_str().ok_or("no sandbox_url")?;
    assert!(
        http.get(format!("{sandbox}/"))
            .send()
            .await?
            .status()
            .is_success()
    );
    let endpoint = file["emulator_endpoint"]
        .as_str()
        .ok_or("no emulator_endpoint")?;
    assert!(
        http.get(format!("{endpoint}/moto-api/"))
            .send()
            .await?
            .status()
            .is_success()
    );

    // The emulator, reached from the file's values alone.
    let sdk = aws_adapters::aws_sdk_dynamodb::config::Builder::new()
        .behavior_version_latest()
        .endpoint_url(endpoint)
        .region(aws_adapters::aws_sdk_dynamodb::config::Region::new(
            file["region"].as_str().ok_or("no region")?.to_owned(),
        ))
        .credentials_provider(aws_adapters::aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    let dynamo = aws_adapters::aws_sdk_dynamodb::Client::from_conf(sdk);
    let table = file["table"].as_str().ok_or("no table")?;
    dynamo.describe_table().table_name(table).send().await?;
    let sqs = aws_adapters::aws_sdk_sqs::Client::new(&stack.aws_sdk_config());
    for queue in [
        "expiry_queue_url",
        "expiry_dead_letter_queue_url",
        "events_queue_url",
        "events_failure_queue_url",
    ] {
        let url = file[queue].as_str().ok_or(queue)?;
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_adapters::aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await?;
        assert!(attributes.attributes.is_some(), "{queue} {url}");
    }
    assert!(
        file["events_queue_url"]
            .as_str()
            .unwrap_or_default()
            .ends_with(file["events_queue"].as_str().ok_or("no events_queue")?)
    );
    let s3 = aws_adapters::aws_sdk_s3::Client::new(&stack.aws_sdk_config());
    s3.head_bucket()
        .bucket(file["bill_bucket"].as_str().ok_or("no bill_bucket")?)
        .send()
        .await?;

    // The key: its id and the file holding its secret, never the secret.
    let key = stack.merchant_key();
    assert_eq!(file["merchant_key"]["key_id"], key.key_id);
    let secret_file = file["merchant_key"]["secret_file"]
        .as_str()
        .ok_or("no secret_file")?;
    let secret = std::fs::read_to_string(secret_file)?.trim().to_owned();
    assert_eq!(secret, std::fs::read_to_string(&key.secret_file)?.trim());
    assert!(!text.contains(&secret), "stack.json holds the secret");

    // The expiry queue as created is the one the drift test compares with the template.
    let expiry = sqs
        .get_queue_attributes()
        .queue_url(file["expiry_queue_url"].as_str().unwrap_or_default())
        .attribute_names(aws_adapters::aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    for (name, value) in local_stack::expiry::queue_attributes("") {
        if name.as_str() == "RedrivePolicy" {
            let policy: Value = serde_json::from_str(expiry.get(&name).ok_or("no redrive")?)?;
            assert_eq!(
                policy["maxReceiveCount"].to_string().trim_matches('"'),
                local_stack::expiry::MAX_RECEIVE_COUNT.to_string()
            );
        } else {
            assert_eq!(expiry.get(&name), Some(&value), "{name}");
        }
    }

    stack.remove_stack_file();
    assert!(!path.exists());
    stack.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The binary, as `make run` runs it: SIGINT and SIGTERM stop it and its children.

#[cfg(unix)]
mod signals {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};
    use std::path::Path;
    use std::process::{Child, Command, Stdio};

    const START_TIMEOUT: Duration = Duration::from_secs(60);
    const STOP_TIMEOUT: Duration = Duration::from_secs(20);

    /// The processes whose parent is `pid`.
    fn children(pid: u32) -> Vec<u32> {
        let mut found = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return found;
        };
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // `pid (comm) state ppid ...`; comm may hold spaces, so read after the last ')'.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse::<u32>().ok());
            if parent == Some(pid) {
                found.push(child);
            }
        }
        found
    }

    fn alive(pid: u32) -> bool {
        // A zombie is gone for our purposes only once reaped: its /proc entry stays until then.
        Path::new(&format!("/proc/{pid}")).exists()
    }

    fn port_of(url: &str) -> Result<u16, String> {
        url.rsplit(':')
            .next()
            .and_then(|port| port.trim_end_matches('/').parse().ok())
            .ok_or_else(|| format!("no port in {url}"))
    }

    fn port_is_free(port: u16) -> bool {
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
    }

    struct Running {
        child: Child,
        file: Value,
    }

    impl Drop for Running {
        fn drop(&mut self) {
            // A failed test must not leave the stack running.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Starts the binary on the given ports (0: free ones) and waits for its stack.json.
    async fn start(
        dir: &Path,
        ports: [u16; 3],
    ) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
        let [api, sandbox, moto] = ports;
        let child = Command::new(env!("CARGO_BIN_EXE_local-stack"))
            .args(["--port", &api.to_string()])
            .args(["--sandbox-port", &sandbox.to_string()])
            .args(["--moto-port", &moto.to_string()])
            .arg("--local-dir")
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut running = Running {
            child,
            file: Value::Null,
        };
        let path = dir.join(local_stack::STACK_FILE);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = running.child.try_wait()? {
                return Err(format!(
                    "local-stack exited ({status}) before writing {}",
                    path.display()
                )
                .into());
            }
            if let Ok(text) = std::fs::read_to_string(&path) {
                running.file = serde_json::from_str(&text)?;
                return Ok(running);
            }
            if Instant::now() >= deadline {
                return Err(format!("no {} within {START_TIMEOUT:?}", path.display()).into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends `signal` and checks that the stack, moto and every other child stop, the ports are
    /// free and stack.json is gone; answers the ports.
    async fn stop(
        mut running: Running,
        dir: &Path,
        signal: &str,
    ) -> Result<[u16; 3], Box<dyn std::error::Error + Send + Sync>> {
        let pid = running.child.id();
        assert_eq!(running.file["pid"], pid);
        let url = |name: &str| running.file[name].as_str().unwrap_or_default().to_owned();
        let ports = [
            port_of(&url("api_url"))?,
            port_of(&url("sandbox_url"))?,
            port_of(&url("emulator_endpoint"))?,
        ];
        let spawned = children(pid);
        assert!(!spawned.is_empty(), "moto is not a child of local-stack");
        for port in ports {
            assert!(!port_is_free(port), "nothing listens on {port}");
        }

        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()?;
        assert!(sent.success(), "kill -{signal} {pid}");
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(status) = running.child.try_wait()? {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "local-stack still running {STOP_TIMEOUT:?} after SIG{signal}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            status.success(),
            "local-stack stopped by SIG{signal}: {status}"
        );
        for child in spawned {
            assert!(!alive(child), "child {child} still runs after SIG{signal}");
        }
        for port in ports {
            assert!(
                port_is_free(port),
                "port {port} still bound after SIG{signal}"
            );
        }
        assert!(
            !dir.join(local_stack::STACK_FILE).exists(),
            "stack.json left after SIG{signal}"
        );
        Ok(ports)
    }

    /// SIGINT (Ctrl-C) stops the stack and moto and frees the ports; a second run on the same
    /// ports starts cleanly, and SIGTERM stops it the same way.
    #[tokio::test]
    async fn sigint_and_sigterm_stop_every_child_and_free_the_ports() -> TestResult {
        let dir = tempfile::tempdir()?;
        let first = start(dir.path(), [0, 0, 0]).await?;
        let ports = stop(first, dir.path(), "INT").await?;
        let second = start(dir.path(), ports).await?;
        let again = stop(second, dir.path(), "TERM").await?;
        assert_eq!(again, ports);
        Ok(())
    }
}
