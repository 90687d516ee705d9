//! The CLI against the functions behind a local HTTP host that turns each request into an API
//! Gateway (payload v2) event, as API Gateway does: create, replay, get, refund and read a
//! refund, and `sign` headers that the functions accept when sent with another client; and
//! `reconcile` of a bill file against the emulator's table.

use alipay_sandbox::bill::format::{BillWriter, Kind, Period, Row};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use chrono::NaiveDate;
use f2f_runtime::{Function, SystemClock};
use harness::*;
use pay::WiredPayApi;
use query::{Orders, QueryApi};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

async fn host(env: &Env) -> TestResult<String> {
    let pay_config = env.config(Function::Pay)?;
    let pay_adapters = env.adapters(Function::Pay).await?;
    let pay = Arc::new(WiredPayApi::wired(&pay_config, pay_adapters)?);
    let query_adapters = env.adapters(Function::Query).await?;
    let query = Arc::new(QueryApi {
        orders: Orders {
            store: query_adapters.orders,
            gateway: query_adapters.alipay,
            clock: SystemClock,
            sync_after: std::time::Duration::ZERO,
        },
        nonces: query_adapters.nonces,
        keys: query_adapters.merchant_keys,
    });
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (pay, query) = (pay.clone(), query.clone());
            async move {
                let headers: BTreeMap<String, String> = headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            v.to_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect();
                let path = uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/")
                    .to_owned();
                let request = api_gateway_request(
                    method.as_str(),
                    &path,
                    &headers,
                    &String::from_utf8_lossy(&body),
                );
                // The routes of template.yaml: every POST (create, refund) is the pay
                // function's, every GET (an order, a refund) the query function's.
                let response = if method == Method::POST {
                    pay.handle(request).await
                } else {
                    query.handle(request).await
                };
                let (parts, body) = response.into_parts();
                axum::http::Response::from_parts(parts, axum::body::Body::from(body.to_vec()))
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

async fn cli(args: &[&str]) -> TestResult<(i32, String)> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_payments-cli"))
        .args(args)
        .output()
        .await?;
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    ))
}

#[tokio::test]
async fn creates_replays_and_gets_a_payment() -> TestResult {
    let env = Env::start().await?;
    let api = host(&env).await?;
    let dir = tempfile_dir()?;
    let secret = dir.join("secret");
    std::fs::write(&secret, format!("{SECRET}\n"))?;
    let secret = secret.display().to_string();
    let no = out_trade_no();
    let base = [
        "--api",
        api.as_str(),
        "--key-id",
        KEY_ID,
        "--secret-file",
        secret.as_str(),
    ];
    let create = [
        &base[..],
        &[
            "create",
            "--amount-fen",
            "1",
            "--subject",
            "coffee",
            "--scene",
            "qr",
            "--out-trade-no",
            &no,
        ],
    ]
    .concat();
    let (code, out) = cli(&create).await?;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("HTTP 201"), "{out}");
    assert!(out.contains("\"status\": \"PENDING\""), "{out}");
    let (code, out) = cli(&create).await?;
    assert_eq!(code, 0);
    assert!(
        out.starts_with("HTTP 200\nidempotent-replayed: true"),
        "{out}"
    );
    let (code, out) = cli(&[&base[..], &["get", &no]].concat()).await?;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&no));
    let (code, out) = cli(&[&base[..], &["get", "NOPE"]].concat()).await?;
    assert_eq!(code, 1);
    assert!(out.contains("order_not_found"), "{out}");
    Ok(())
}

#[tokio::test]
async fn refunds_a_paid_payment_and_reads_the_refund() -> TestResult {
    let env = Env::start().await?;
    let api = host(&env).await?;
    let dir = tempfile_dir()?;
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET)?;
    let secret = secret.display().to_string();
    let no = out_trade_no();
    let base = [
        "--api",
        api.as_str(),
        "--key-id",
        KEY_ID,
        "--secret-file",
        secret.as_str(),
    ];
    let code = auth_code("00", 0);
    let (status, out) = cli(&[
        &base[..],
        &[
            "create",
            "--amount-fen",
            "300",
            "--subject",
            "tea",
            "--scene",
            "barcode",
            "--auth-code",
            &code,
            "--out-trade-no",
            &no,
        ],
    ]
    .concat())
    .await?;
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("\"status\": \"PAID\""), "{out}");
    let refund = |request_no: &'static str, amount: &'static str| {
        [
            &base[..],
            &[
                "refund",
                "--out-trade-no",
                &no,
                "--out-request-no",
                request_no,
                "--amount-fen",
                amount,
                "--reason",
                "cold tea",
            ],
        ]
        .concat()
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&args).await
    };

    let (status, out) = run(refund("R1", "100")).await?;
    assert_eq!(status, 0, "{out}");
    assert!(out.starts_with("HTTP 201"), "{out}");
    assert!(
        out.contains(&format!("location: /v1/payments/{no}/refunds/R1")),
        "{out}"
    );
    for expected in [
        "\"status\": \"SUCCEEDED\"",
        "\"order_status\": \"PARTIALLY_REFUNDED\"",
        "\"order_refunded_fen\": 100",
        "\"refundable_fen\": 200",
        "\"reason\": \"cold tea\"",
    ] {
        assert!(out.contains(expected), "{expected}: {out}");
    }
    // The identical request again: the same refund, never a second one.
    let (status, out) = run(refund("R1", "100")).await?;
    assert_eq!(status, 0, "{out}");
    assert!(
        out.starts_with("HTTP 200\nidempotent-replayed: true"),
        "{out}"
    );
    assert!(out.contains("\"refundable_fen\": 200"), "{out}");
    // The same number for another amount is refused, and so is more than what is left.
    let (status, out) = run(refund("R1", "150")).await?;
    assert_eq!(status, 1, "{out}");
    assert!(out.starts_with("HTTP 422"), "{out}");
    assert!(out.contains("idempotency_mismatch"), "{out}");
    let (status, out) = run(refund("R2", "250")).await?;
    assert_eq!(status, 1, "{out}");
    assert!(out.contains("refund_exceeds_paid"), "{out}");
    assert!(out.contains("\"refundable_fen\": 200"), "{out}");

    let status_of = |request_no: &str| {
        [
            &base[..],
            &[
                "refund-status",
                "--out-trade-no",
                &no,
                "--out-request-no",
                request_no,
            ],
        ]
        .concat()
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>()
    };
    let (status, out) = run(status_of("R1")).await?;
    assert_eq!(status, 0, "{out}");
    assert!(out.starts_with("HTTP 200"), "{out}");
    assert!(out.contains("\"status\": \"SUCCEEDED\""), "{out}");
    let (status, out) = run(status_of("R9")).await?;
    assert_eq!(status, 1, "{out}");
    assert!(out.contains("refund_not_found"), "{out}");

    // The rest of the amount: the order is REFUNDED and refuses any further refund.
    let (status, out) = run(refund("R2", "200")).await?;
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("\"order_status\": \"REFUNDED\""), "{out}");
    assert!(out.contains("\"refundable_fen\": 0"), "{out}");
    let (status, out) = run(refund("R3", "1")).await?;
    assert_eq!(status, 1, "{out}");
    assert!(out.starts_with("HTTP 409"), "{out}");
    assert!(out.contains("order_refunded"), "{out}");
    let (status, out) = cli(&[&base[..], &["get", &no]].concat()).await?;
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("\"status\": \"REFUNDED\""), "{out}");
    assert!(out.contains("\"refunded_fen\": 300"), "{out}");
    assert!(out.contains("R1") && out.contains("R2"), "{out}");
    Ok(())
}

#[tokio::test]
async fn signed_headers_work_from_another_client() -> TestResult {
    let env = Env::start().await?;
    let api = host(&env).await?;
    let dir = tempfile_dir()?;
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET)?;
    let body = format!(
        r#"{{"out_trade_no":"{}","amount_fen":5,"subject":"tea","scene":"qr"}}"#,
        out_trade_no()
    );
    let (code, out) = cli(&[
        "--key-id",
        KEY_ID,
        "--secret-file",
        &secret.display().to_string(),
        "sign",
        "--method",
        "POST",
        "--path",
        "/v1/payments",
        "--body",
        &body,
    ])
    .await?;
    assert_eq!(code, 0);
    let mut request = env.http.post(format!("{api}/v1/payments")).body(body);
    for line in out.lines() {
        let (name, value) = line.split_once(": ").ok_or_else(|| err(line.to_owned()))?;
        request = request.header(name, value);
    }
    let response = request.send().await?;
    assert_eq!(
        response.status().as_u16(),
        201,
        "{}",
        response.text().await?
    );
    Ok(())
}

/// `get`'s answer.
async fn order_status(base: &[&str], no: &str) -> TestResult<String> {
    let (code, out) = cli(&[base, &["get", no]].concat()).await?;
    assert_eq!(code, 0, "{out}");
    Ok(out)
}

/// The CLI with extra environment variables: exit code, stdout, stderr.
async fn cli_env(args: &[&str], vars: &[(&str, String)]) -> TestResult<(i32, String, String)> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_payments-cli"))
        .args(args)
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("PAYMENTS_KEY_ID")
        .env_remove("PAYMENTS_SECRET_FILE")
        .output()
        .await?;
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// A trade bill of `day` as Alipay ships it (GBK CSVs, GBK entry names
/// `<PID>0156_<yyyyMMdd>_业务明细.csv`), written by the sandbox's bill writer, with one payment
/// row per `(out_trade_no, fen)`.
fn write_bill(path: &std::path::Path, day: NaiveDate, payments: &[(&str, i64)]) -> TestResult {
    let period = Period::day(day).ok_or_else(|| err("no such day"))?;
    let now = chrono::Utc::now();
    let file = std::fs::File::create(path)?;
    let mut writer = BillWriter::new(file, "2088102177891234", period, now, 6, false)?;
    for (i, (no, fen)) in payments.iter().enumerate() {
        let trade_no = format!("2024{i:024}");
        writer.row(&Row {
            trade_no: &trade_no,
            out_trade_no: no,
            kind: Kind::Payment,
            subject: "咖啡",
            created_at: now,
            finished_at: now,
            store_id: None,
            store_name: None,
            operator_id: None,
            terminal_id: None,
            buyer_account: "*津水(602***@qq.com)",
            amount: alipay::Fen::new(*fen),
            receipt: alipay::Fen::new(*fen),
            refund_request_no: None,
            remark: None,
        })?;
    }
    writer.finish(now)?;
    Ok(())
}

#[tokio::test]
async fn reconciles_a_bill_file_and_heals_a_pending_order() -> TestResult {
    let env = Env::start().await?;
    let api = host(&env).await?;
    let dir = tempfile_dir()?;
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET)?;
    let secret = secret.display().to_string();
    let base = [
        "--api",
        api.as_str(),
        "--key-id",
        KEY_ID,
        "--secret-file",
        secret.as_str(),
    ];
    // A QR order the buyer paid at Alipay, whose payment never reached us: PENDING here.
    let no = out_trade_no();
    let (code, out) = cli(&[
        &base[..],
        &[
            "create",
            "--amount-fen",
            "1500",
            "--subject",
            "coffee",
            "--scene",
            "qr",
            "--out-trade-no",
            &no,
        ],
    ]
    .concat())
    .await?;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"status\": \"PENDING\""), "{out}");

    // The day's bill, named without its day: the entry names say it.
    let day = domain::beijing_day(chrono::Utc::now());
    let bill = dir.join("trade.zip");
    write_bill(&bill, day, &[(&no, 1500)])?;
    let bill = bill.display().to_string();
    let reports = dir.join("reports");
    let report_dir = reports.display().to_string();
    // The emulator's table, as the local stack points the CLI at it; no API key.
    let mut vars = env.moto.env();
    vars.push(("ORDERS_TABLE", env.table.clone()));
    let reconcile = ["reconcile", "--bill", &bill, "--report-dir", &report_dir];

    // A dry run reports what it would do and writes nothing to the table.
    let (code, out, err_out) = cli_env(&[&reconcile[..], &["--dry-run"]].concat(), &vars).await?;
    assert_eq!(code, 0, "{err_out}");
    let summary: Value = serde_json::from_str(&out)?;
    assert_eq!(summary["day"], day.format("%Y-%m-%d").to_string(), "{out}");
    assert_eq!(
        summary["classes"]["paid_there_not_here"]["count"], 1,
        "{out}"
    );
    assert_eq!(summary["actions"]["healed"], 1, "{out}");
    assert!(err_out.contains("nothing was written"), "{err_out}");
    assert!(reports.join("dry-run-summary.json").is_file());
    assert!(!reports.join("summary.json").exists());
    assert!(
        order_status(&base, &no)
            .await?
            .contains("\"status\": \"PENDING\"")
    );

    // The real run heals the order and writes the report.
    let (code, out, err_out) = cli_env(&reconcile, &vars).await?;
    assert_eq!(code, 0, "{err_out}");
    let summary: Value = serde_json::from_str(&out)?;
    assert_eq!(summary["rows"], 1, "{out}");
    assert_eq!(
        summary["classes"]["paid_there_not_here"]["count"], 1,
        "{out}"
    );
    assert_eq!(
        summary["classes"]["paid_there_not_here"]["fen"], 1500,
        "{out}"
    );
    assert_eq!(summary["discrepancies"], 1, "{out}");
    assert_eq!(summary["actions"]["healed"], 1, "{out}");
    assert_eq!(summary["actions"]["anomalies"], 0, "{out}");
    assert_eq!(summary["bill_totals"]["payments"]["fen"], 1500, "{out}");
    assert_eq!(
        summary["bill"]["key"],
        format!("bills/{}/trade.zip", day.format("%Y-%m-%d"))
    );
    let written: Value = serde_json::from_slice(&std::fs::read(reports.join("summary.json"))?)?;
    assert_eq!(written, summary);
    let csv = std::fs::read_to_string(reports.join("discrepancies.csv"))?;
    assert!(csv.starts_with("class,out_trade_no,trade_no,out_request_no,bill_fen,ledger_fen,status_here,line,finished_at\n"), "{csv}");
    assert!(csv.contains(&format!("paid_there_not_here,{no},")), "{csv}");
    let order = order_status(&base, &no).await?;
    assert!(order.contains("\"status\": \"PAID\""), "{order}");

    // The same bill again: its report stands, nothing is done.
    let (code, out, err_out) = cli_env(&reconcile, &vars).await?;
    assert_eq!(code, 0, "{err_out}");
    assert!(err_out.contains("reconciled before"), "{err_out}");
    assert_eq!(serde_json::from_str::<Value>(&out)?, summary);

    // A --date that contradicts the bill's entries is refused.
    let (code, _, err_out) =
        cli_env(&[&reconcile[..], &["--date", "2020-01-01"]].concat(), &vars).await?;
    assert_eq!(code, 2, "{err_out}");
    assert!(err_out.contains("not 2020-01-01"), "{err_out}");

    // A malformed bill: exit 1, why on stderr and in rejected.json, nothing applied.
    let broken = dir.join("broken.zip");
    std::fs::write(&broken, b"PK\x03\x04 not really a zip")?;
    let broken_reports = dir.join("broken-reports");
    let (code, out, err_out) = cli_env(
        &[
            "reconcile",
            "--bill",
            &broken.display().to_string(),
            "--date",
            &day.format("%Y-%m-%d").to_string(),
            "--report-dir",
            &broken_reports.display().to_string(),
        ],
        &vars,
    )
    .await?;
    assert_eq!(code, 1, "{out}{err_out}");
    assert!(err_out.contains("malformed bill"), "{err_out}");
    let rejected: Value =
        serde_json::from_slice(&std::fs::read(broken_reports.join("rejected.json"))?)?;
    assert!(
        rejected["rejected"].as_str().is_some_and(|r| !r.is_empty()),
        "{rejected}"
    );
    assert!(!broken_reports.join("summary.json").exists());
    Ok(())
}

fn tempfile_dir() -> TestResult<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("payments-cli-{}", out_trade_no()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
