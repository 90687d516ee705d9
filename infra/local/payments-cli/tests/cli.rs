//! The CLI against the functions behind a local HTTP host that turns each request into an API
//! Gateway (payload v2) event, as API Gateway does: create, replay, get, and `sign` headers
//! that the functions accept when sent with another client.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use f2f_runtime::{Function, SystemClock};
use harness::*;
use pay::WiredPayApi;
use query::{Orders, QueryApi};
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
                let response = if uri.path() == "/v1/payments" {
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

fn tempfile_dir() -> TestResult<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("payments-cli-{}", out_trade_no()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
