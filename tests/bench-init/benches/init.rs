//! Cold starts of every function (`make bench-init`), next to a bare `lambda_runtime`
//! hello-world measured in the same run.
//!
//! Each cold start execs a function's binary against a local Runtime API of its own
//! ([`bench_init::RuntimeApi`]), with the AWS emulator (moto) behind it and the Alipay gateway
//! on a closed local port (init must not depend on Alipay), and measures:
//!
//! - init: from the exec to the first `GET /runtime/invocation/next`;
//! - the first invocation: from the event handed out to its response (or error) posted back,
//!   for a representative event (a signed create that fails validation, a signed GET of an
//!   absent order, a notification with a bad signature, empty batches).
//!
//! Rounds are interleaved (every function, the hello-world included, once per round, in a
//! rotating order); medians are reported with init's ratio to the hello-world's. The Secrets
//! Manager round trips are reported on their own: as the functions log them at init, and timed
//! from here against the emulator (a fresh client, the two reads at once, as at init).
//!
//! `cargo bench` passes `--bench`: `BENCH_INIT_ROUNDS` rounds (default 15) of the release
//! binaries (built by `make bench-init`; `BENCH_INIT_BIN_DIR` names another folder). Without
//! it (`cargo test --all-targets`) one round of whatever binaries the build profile has, as a
//! smoke test.
//!
//! The processes start with an empty environment but for what each needs, so the functions
//! trust their bundled root certificates, as deployed. `BENCH_INIT_CERT_BUNDLE=<file>` gives
//! every process (the hello-world included) `SSL_CERT_FILE=<file>` and an empty
//! `SSL_CERT_DIR`: the functions then read that store at init instead, as one configured to
//! trust a store of its own would on Lambda's Amazon Linux 2023 (one bundle file; Debian also
//! keeps a folder of the same roots, which `SSL_CERT_DIR` would make them read twice).
//! `make bench-init` runs both ways.

use aws_adapters::{aws_sdk_dynamodb, aws_sdk_s3, aws_sdk_secretsmanager, aws_sdk_sqs};
use bench_init::{Answer, RuntimeApi};
use domain::auth::{RequestToSign, sign, string_to_sign};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use test_support::MotoServer;

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const ROUNDS_ENV: &str = "BENCH_INIT_ROUNDS";
const BIN_DIR_ENV: &str = "BENCH_INIT_BIN_DIR";
const CERT_BUNDLE_ENV: &str = "BENCH_INIT_CERT_BUNDLE";
const DEFAULT_ROUNDS: usize = 15;
const HELLO: &str = "hello-world";
const FUNCTIONS: [&str; 8] = [
    "pay",
    "query",
    "notify",
    "timeout-close",
    "bill-fetch",
    "reconcile",
    "publish-events",
    "admin",
];
const TABLE: &str = "bench-orders";
const BUCKET: &str = "bench-bills";
const APP_ID: &str = "2021000000000000";
const KEY_ID: &str = "bench-key";
const KEY_SECRET: &str = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz";
/// Debug builds (the smoke round) start slower than release ones.
const COLD_START_TIMEOUT: Duration = Duration::from_secs(60);
/// What the functions log once their secrets are read (see `f2f_runtime::wiring`).
const SECRETS_FIELD: &str = "secrets_ms=";

fn main() -> BenchResult<()> {
    let full = std::env::args().any(|arg| arg == "--bench");
    let rounds = if full {
        match std::env::var(ROUNDS_ENV) {
            Ok(text) => text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{ROUNDS_ENV} must be a positive integer"))?,
            Err(_) => DEFAULT_ROUNDS,
        }
    } else {
        1
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(full, rounds))
}

/// The first event of a sandbox (fresh for each: signed requests carry a nonce).
type Event = fn(&Fixture) -> Value;

/// One function to start: its binary, its environment and its first event.
struct Subject {
    name: &'static str,
    binary: PathBuf,
    env: Vec<(String, String)>,
    event: Event,
}

/// What the emulator holds for the functions.
struct Fixture {
    moto: MotoServer,
    private_key_arn: String,
    merchant_keys_arn: String,
    expiry_queue_url: String,
    events_queue_url: String,
    closed_gateway: String,
    alipay_public_key: String,
    /// `SSL_CERT_DIR` when only the bundle file is to be read.
    empty_dir: tempfile::TempDir,
}

#[derive(Default)]
struct Samples {
    init: Vec<Duration>,
    invocation: Vec<Duration>,
    secrets: Vec<f64>,
    answers: BTreeMap<String, usize>,
}

async fn run(full: bool, rounds: usize) -> BenchResult<()> {
    let bin_dir = binaries_dir()?;
    let hello = PathBuf::from(env!("CARGO_BIN_EXE_hello-world"));
    let mut missing = Vec::new();
    let mut found = Vec::new();
    for name in FUNCTIONS {
        let path = bin_dir.join(name);
        if path.is_file() {
            found.push((name, path));
        } else {
            missing.push(name);
        }
    }
    if full && !missing.is_empty() {
        return Err(format!(
            "no binary for {} in {}: `make bench-init` builds them (cargo build --release)",
            missing.join(", "),
            bin_dir.display()
        )
        .into());
    }
    let fixture = fixture().await?;
    let mut subjects = vec![Subject {
        name: HELLO,
        binary: hello,
        env: Vec::new(),
        event: |_| json!({"hello": "world"}),
    }];
    for (name, binary) in found {
        subjects.push(subject(name, binary, &fixture));
    }
    let base = base_env(&fixture);

    let mut samples: BTreeMap<&'static str, Samples> = BTreeMap::new();
    let mut secrets_direct = Vec::new();
    for round in 0..rounds {
        let count = subjects.len();
        for index in 0..count {
            let subject = &subjects[(index + round) % count];
            let (record, secrets_ms) = cold_start(subject, &base, &fixture).await?;
            let entry = samples.entry(subject.name).or_default();
            entry
                .init
                .push(record.first_next.saturating_duration_since(record.started));
            entry.invocation.push(record.invocation);
            if let Some(ms) = secrets_ms {
                entry.secrets.push(ms);
            }
            *entry.answers.entry(record.answer).or_default() += 1;
        }
        secrets_direct.push(secrets_round_trips(&fixture).await?);
    }
    report(full, rounds, &subjects, &samples, &secrets_direct, &missing)
}

/// `target/<profile>`: the folder of this bench's executable's folder (`deps`), unless
/// `BENCH_INIT_BIN_DIR` says otherwise.
fn binaries_dir() -> BenchResult<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe()?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("no profile folder above {}", exe.display()).into())
}

async fn fixture() -> BenchResult<Fixture> {
    let moto = MotoServer::start().await?;
    let sdk = moto.sdk_config();
    aws_adapters::dynamo::schema::create_table(&aws_sdk_dynamodb::Client::new(&sdk), TABLE).await?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mut queues = Vec::new();
    for name in ["bench-expiry", "bench-events"] {
        let created = sqs.create_queue().queue_name(name).send().await?;
        queues.push(created.queue_url.ok_or("no queue URL")?);
    }
    aws_adapters::S3Objects::new(aws_sdk_s3::Client::new(&sdk), BUCKET)
        .ensure_bucket()
        .await?;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let (_, private_key_pem) = alipay::PrivateKey::generate()?;
    let mut arns = Vec::new();
    for (name, value) in [
        ("bench/app-private-key", private_key_pem.to_string()),
        (
            "bench/merchant-api-keys",
            json!({ KEY_ID: KEY_SECRET }).to_string(),
        ),
    ] {
        let created = secrets
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await?;
        arns.push(created.arn.ok_or("no secret ARN")?);
    }
    // A port that nothing listens on: a call to Alipay fails at once (connection refused).
    let closed = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
    let env_json: Value = serde_json::from_str(&std::fs::read_to_string(
        test_support::workspace_root().join("infra/sam/env.json"),
    )?)?;
    let alipay_public_key = env_json["Parameters"]["ALIPAY_PUBLIC_KEY"]
        .as_str()
        .ok_or("infra/sam/env.json has no ALIPAY_PUBLIC_KEY")?
        .to_owned();
    let [private_key_arn, merchant_keys_arn] =
        <[String; 2]>::try_from(arns).map_err(|_| "two secrets expected")?;
    let [expiry_queue_url, events_queue_url] =
        <[String; 2]>::try_from(queues).map_err(|_| "two queues expected")?;
    Ok(Fixture {
        moto,
        private_key_arn,
        merchant_keys_arn,
        expiry_queue_url,
        events_queue_url,
        closed_gateway: format!("http://{closed}/gateway.do"),
        alipay_public_key,
        empty_dir: tempfile::tempdir()?,
    })
}

/// What Lambda and the emulator give every process (the function's own variables come on top).
fn base_env(fixture: &Fixture) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = fixture
        .moto
        .env()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    for (name, value) in [
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "2024/01/01/[$LATEST]bench"),
        ("AWS_DEFAULT_REGION", test_support::moto::REGION),
        ("TZ", ":UTC"),
    ] {
        env.push((name.to_owned(), value.to_owned()));
    }
    if let Some(bundle) = std::env::var_os(CERT_BUNDLE_ENV) {
        env.push((
            "SSL_CERT_FILE".to_owned(),
            bundle.to_string_lossy().into_owned(),
        ));
        env.push((
            "SSL_CERT_DIR".to_owned(),
            fixture.empty_dir.path().to_string_lossy().into_owned(),
        ));
    }
    env
}

fn subject(name: &'static str, binary: PathBuf, fixture: &Fixture) -> Subject {
    let var = |name: &str, value: &str| (name.to_owned(), value.to_owned());
    let table = var("ORDERS_TABLE", TABLE);
    let app_id = var("ALIPAY_APP_ID", APP_ID);
    let gateway = var("ALIPAY_GATEWAY_URL", &fixture.closed_gateway);
    let public_key = var("ALIPAY_PUBLIC_KEY", &fixture.alipay_public_key);
    let private_key = var(
        "ALIPAY_APP_PRIVATE_KEY_SECRET_ARN",
        &fixture.private_key_arn,
    );
    let merchant_keys = var("MERCHANT_API_KEYS_SECRET_ARN", &fixture.merchant_keys_arn);
    let expiry = var("EXPIRY_QUEUE_URL", &fixture.expiry_queue_url);
    let bucket = var("BILL_BUCKET", BUCKET);
    let (env, event): (Vec<(String, String)>, Event) = match name {
        "pay" => (
            vec![
                table,
                app_id,
                gateway,
                public_key,
                private_key,
                merchant_keys,
                expiry,
                var("ALIPAY_NOTIFY_URL", "https://pay.example.com/alipay/notify"),
            ],
            // Signed, then refused by validation: no Alipay call.
            |_| signed_request("POST", "/v1/payments", "{}"),
        ),
        "query" => (
            vec![
                table,
                app_id,
                gateway,
                public_key,
                private_key,
                merchant_keys,
            ],
            |_| {
                let path = format!("/v1/payments/BENCH{}", ulid::Ulid::generate());
                signed_request("GET", &path, "")
            },
        ),
        "notify" => (vec![table, app_id, public_key], |_| {
            let body = format!(
                "app_id={APP_ID}&out_trade_no=BENCH{}&trade_status=TRADE_SUCCESS&total_amount=1.00&sign_type=RSA2&sign=bm90LWEtc2lnbmF0dXJl",
                ulid::Ulid::generate()
            );
            api_gateway_event(
                "POST",
                "/alipay/notify",
                &BTreeMap::from([(
                    "content-type".to_owned(),
                    "application/x-www-form-urlencoded".to_owned(),
                )]),
                &body,
            )
        }),
        "timeout-close" => (
            vec![table, app_id, gateway, public_key, private_key, expiry],
            |_| json!({"Records": []}),
        ),
        // The bill download URL is asked of the closed gateway: a fast failure.
        "bill-fetch" => (
            vec![app_id, gateway, public_key, private_key, bucket],
            |_| json!({"date": "2024-01-01"}),
        ),
        "reconcile" => (vec![table, bucket], |_| json!({"Records": []})),
        "publish-events" => (
            vec![var("EVENTS_QUEUE_URL", &fixture.events_queue_url)],
            |_| json!({"Records": []}),
        ),
        // A viewer listing the open anomalies (one DynamoDB Query).
        "admin" => (vec![table, bucket, expiry], |_| {
            let mut event = api_gateway_event("GET", "/admin/anomalies", &BTreeMap::new(), "");
            event["rawQueryString"] = json!("status=open");
            event["requestContext"]["authorizer"] = json!({"jwt": {
                "claims": {"cognito:username": "viewer", "cognito:groups": "[viewer]"},
                "scopes": null
            }});
            event
        }),
        _ => (Vec::new(), |_| json!({})),
    };
    Subject {
        name,
        binary,
        env,
        event,
    }
}

/// An API Gateway HTTP API (payload v2) event signed with the merchant API key.
fn signed_request(method: &str, path: &str, body: &str) -> Value {
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let nonce = format!("n{}", ulid::Ulid::generate());
    let to_sign = RequestToSign {
        method,
        path,
        raw_query: "",
        body: body.as_bytes(),
    };
    let signature = string_to_sign(&to_sign, &timestamp, &nonce)
        .map(|text| sign(&SecretString::from(KEY_SECRET.to_owned()), &text))
        .unwrap_or_default();
    let headers = BTreeMap::from([
        ("x-key-id".to_owned(), KEY_ID.to_owned()),
        ("x-timestamp".to_owned(), timestamp),
        ("x-nonce".to_owned(), nonce),
        ("x-signature".to_owned(), signature),
        ("content-type".to_owned(), "application/json".to_owned()),
    ]);
    api_gateway_event(method, path, &headers, body)
}

fn api_gateway_event(
    method: &str,
    path: &str,
    headers: &BTreeMap<String, String>,
    body: &str,
) -> Value {
    let now = chrono::Utc::now();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "bench",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "bench-init"
            },
            "requestId": format!("req-{}", ulid::Ulid::generate()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis()
        },
        "body": body,
        "isBase64Encoded": false
    })
}

struct Run {
    started: Instant,
    first_next: Instant,
    invocation: Duration,
    answer: String,
}

/// Execs one sandbox and waits for its first event's answer; returns the times and the
/// Secrets Manager figure the function logged, if any.
async fn cold_start(
    subject: &Subject,
    base: &[(String, String)],
    fixture: &Fixture,
) -> BenchResult<(Run, Option<f64>)> {
    let api = RuntimeApi::start((subject.event)(fixture)).await?;
    let mut command = tokio::process::Command::new(&subject.binary);
    command
        .env_clear()
        .envs(base.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .envs(subject.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_FUNCTION_NAME", subject.name)
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = command.spawn()?;
    let waited = api.wait(COLD_START_TIMEOUT).await;
    // The sandbox would now wait for its next event: stop it.
    child.start_kill()?;
    let output = tokio::time::timeout(COLD_START_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("{}: the process did not end once killed", subject.name))??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let record = waited.map_err(|error| {
        format!(
            "{}: {error}\n{}{}",
            subject.name,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let answer = match &record.answer {
        Answer::Response(body) => format!("response {}", status_of(body)),
        Answer::Error(body) => format!("error {}", error_type(body)),
    };
    let secrets_ms = stdout.lines().find_map(|line| {
        let (_, rest) = line.split_once(SECRETS_FIELD)?;
        rest.split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()?
            .parse::<f64>()
            .ok()
    });
    Ok((
        Run {
            started,
            first_next: record.first_next,
            invocation: record.invocation(),
            answer,
        },
        secrets_ms,
    ))
}

/// An HTTP function's status code, or `-` for other functions' answers.
fn status_of(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|value| value.get("statusCode").and_then(Value::as_u64))
        .map_or_else(|| "-".to_owned(), |code| code.to_string())
}

fn error_type(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|value| {
            value
                .get("errorType")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

/// The two secrets read at once through a fresh client (a cold connection pool), as at init.
async fn secrets_round_trips(fixture: &Fixture) -> BenchResult<Duration> {
    let client = aws_sdk_secretsmanager::Client::new(&fixture.moto.sdk_config());
    let started = Instant::now();
    let read = |arn: &str| client.get_secret_value().secret_id(arn).send();
    let (a, b) = tokio::join!(
        read(&fixture.private_key_arn),
        read(&fixture.merchant_keys_arn)
    );
    let elapsed = started.elapsed();
    a?;
    b?;
    Ok(elapsed)
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn median_f64(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn report(
    full: bool,
    rounds: usize,
    subjects: &[Subject],
    samples: &BTreeMap<&'static str, Samples>,
    secrets_direct: &[Duration],
    missing: &[&str],
) -> BenchResult<()> {
    let hello_init = samples
        .get(HELLO)
        .map(|s| median(&s.init))
        .ok_or("no hello-world sample")?;
    println!(
        "cold starts: {rounds} interleaved round(s){}, medians; init = exec to the first `next`",
        if full {
            ""
        } else {
            " (smoke test: `cargo bench` for figures)"
        }
    );
    println!(
        "{:<16} {:>9} {:>10} {:>15} {:>17} {:>17}  first answer",
        "function", "init ms", "x hello", "secrets ms", "init-secrets ms", "1st invocation ms"
    );
    for subject in subjects {
        let Some(sample) = samples.get(subject.name) else {
            continue;
        };
        let init = median(&sample.init);
        let ratio = ms(init) / ms(hello_init).max(f64::MIN_POSITIVE);
        let secrets =
            median_f64(&sample.secrets).map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
        // Init without its Secrets Manager reads, round by round, with its ratio.
        let without_secrets = (sample.secrets.len() == sample.init.len())
            .then(|| {
                let rest: Vec<f64> = sample
                    .init
                    .iter()
                    .zip(&sample.secrets)
                    .map(|(init, secrets)| ms(*init) - secrets)
                    .collect();
                median_f64(&rest)
            })
            .flatten()
            .map_or_else(
                || "-".to_owned(),
                |rest| {
                    format!(
                        "{rest:.2} ({:.2}x)",
                        rest / ms(hello_init).max(f64::MIN_POSITIVE)
                    )
                },
            );
        let answers: Vec<String> = sample
            .answers
            .iter()
            .map(|(answer, n)| format!("{answer} x{n}"))
            .collect();
        println!(
            "{:<16} {:>9.2} {:>9.2}x {:>15} {:>17} {:>17.2}  {}",
            subject.name,
            ms(init),
            ratio,
            secrets,
            without_secrets,
            ms(median(&sample.invocation)),
            answers.join(", ")
        );
    }
    println!(
        "Secrets Manager at init (the functions' own figure above, `secrets ms`); from the bench, \
         a fresh client reading both secrets at once: {:.2} ms (median)",
        ms(median(secrets_direct))
    );
    if !missing.is_empty() {
        println!(
            "not measured (no binary in this build profile): {}",
            missing.join(", ")
        );
    }
    Ok(())
}
