//! Official-SDK conformance: the official Alipay Python SDK (`alipay-sdk-python`, installed
//! into `.local/venv` by `make test-deps`) and Node.js SDK (`alipay-sdk`, installed into
//! `.local/node`), pointed at the sandbox, sign requests the sandbox accepts, verify the
//! sandbox's response signatures themselves, and accept its notifications with the SDKs' own
//! signature checks. Negative controls prove the SDKs really check: a `bad_signature` fault
//! makes the SDK call fail, and a bad or tampered notification does not verify. The SDKs are
//! driven by `conformance/sdk_check.py` and `conformance/sdk_check.cjs`. Both SDKs stamp
//! requests with the process's local time, so they run with `TZ=Asia/Shanghai`, as a merchant
//! must run them (Alipay expects Beijing time; the sandbox checks it).

use crate::common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The time zone Alipay's `timestamp` is in.
const BEIJING_TZ: &str = "Asia/Shanghai";

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// `.local/venv/bin/python` of this checkout (or `$ALIPAY_SDK_PYTHON`).
fn python() -> TestResult<PathBuf> {
    let python = match std::env::var_os("ALIPAY_SDK_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => checkout().join(".local/venv/bin/python"),
    };
    if !python.exists() {
        return Err(err(format!(
            "{} not found: run `make test-deps` (it installs the official Alipay SDK, \
             alipay-sdk-python, into .local/venv)",
            python.display()
        )));
    }
    Ok(python)
}

/// `.local/node/node_modules` with the official Node.js SDK (or `$ALIPAY_SDK_NODE_PATH`).
fn node_modules() -> TestResult<PathBuf> {
    let modules = match std::env::var_os("ALIPAY_SDK_NODE_PATH") {
        Some(path) => PathBuf::from(path),
        None => checkout().join(".local/node/node_modules"),
    };
    if !modules.join("alipay-sdk").exists() {
        return Err(err(format!(
            "{} has no alipay-sdk: run `make test-deps` (it installs the official Alipay \
             Node.js SDK, npm alipay-sdk, into .local/node)",
            modules.display()
        )));
    }
    Ok(modules)
}

/// Which official SDK runs.
enum Runtime {
    Python(PathBuf),
    /// `node` from PATH, with the SDK's `node_modules`.
    Node(PathBuf),
}

/// An official SDK driven against one harness's sandbox.
struct Sdk<'a> {
    harness: &'a Harness,
    runtime: Runtime,
    /// Python only: the SDK's `charset`.
    charset: &'static str,
    /// The time zone the SDK process runs in.
    tz: &'static str,
}

/// What one script run printed: whether it exited 0, and its JSON.
struct Run {
    success: bool,
    json: Value,
}

impl<'a> Sdk<'a> {
    fn python(harness: &'a Harness) -> TestResult<Sdk<'a>> {
        Ok(Sdk {
            harness,
            runtime: Runtime::Python(python()?),
            charset: "utf-8",
            tz: BEIJING_TZ,
        })
    }

    fn node(harness: &'a Harness) -> TestResult<Sdk<'a>> {
        Ok(Sdk {
            harness,
            runtime: Runtime::Node(node_modules()?),
            charset: "utf-8",
            tz: BEIJING_TZ,
        })
    }

    async fn run(&self, command: &[&str]) -> TestResult<Run> {
        let keys = &self.harness.running.sandbox().identity().keys_dir;
        let conformance = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance");
        let mut process = match &self.runtime {
            Runtime::Python(python) => {
                let mut process = tokio::process::Command::new(python);
                process
                    .arg(conformance.join("sdk_check.py"))
                    .arg("--charset")
                    .arg(self.charset);
                process
            }
            Runtime::Node(modules) => {
                let mut process = tokio::process::Command::new("node");
                process
                    .env("NODE_PATH", modules)
                    .arg(conformance.join("sdk_check.cjs"));
                process
            }
        };
        let child = process
            .env("TZ", self.tz)
            .arg("--gateway")
            .arg(self.harness.running.gateway_url())
            .arg("--app-id")
            .arg(&self.harness.app_id)
            .arg("--app-private-key")
            .arg(keys.join("app_private_key.pem"))
            .arg("--alipay-public-key")
            .arg(keys.join("alipay_public_key.pem"))
            .args(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .map_err(|_| err(format!("sdk_check {command:?} did not finish within 60 s")))??;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let json: Value = stdout
            .lines()
            .last()
            .and_then(|line| serde_json::from_str(line).ok())
            .ok_or_else(|| {
                err(format!(
                    "sdk_check {command:?} printed no JSON (exit {}): {stdout}\n{stderr}",
                    output.status
                ))
            })?;
        if json["error_kind"] == "setup" {
            return Err(err(format!("{json}")));
        }
        Ok(Run {
            success: output.status.success(),
            json,
        })
    }

    /// A run that must succeed.
    async fn ok(&self, command: &[&str]) -> TestResult<Value> {
        let run = self.run(command).await?;
        if !run.success || run.json["ok"] != true {
            return Err(err(format!("SDK {command:?} failed: {}", run.json)));
        }
        Ok(run.json)
    }

    /// A run that must fail.
    async fn fails(&self, command: &[&str]) -> TestResult<Value> {
        let run = self.run(command).await?;
        if run.success || run.json["ok"] != false {
            return Err(err(format!(
                "SDK {command:?} should have failed: {}",
                run.json
            )));
        }
        Ok(run.json)
    }
}

/// The first received notification with this `trade_status` (raw body).
fn notification_body(
    harness: &Harness,
    received: &[Received],
    trade_status: &str,
) -> TestResult<Vec<u8>> {
    for request in received {
        if verify_notification(harness, &request.body)?["trade_status"] == trade_status {
            return Ok(request.body.clone());
        }
    }
    Err(err(format!("no {trade_status} notification")))
}

fn write_body(dir: &Path, name: &str, body: &[u8]) -> TestResult<String> {
    let path = dir.join(name);
    std::fs::write(&path, body)?;
    Ok(path.display().to_string())
}

#[tokio::test]
async fn official_python_sdk_precreates_queries_and_verifies_notifications() -> TestResult {
    let harness = Harness::start().await?;
    let receiver = Receiver::failing_first(0).await?;
    let sdk = Sdk::python(&harness)?;
    let scratch = tempfile::tempdir()?;

    // precreate: signed by the SDK, accepted by the sandbox; the answer verified by the SDK.
    let precreate = sdk
        .ok(&[
            "precreate",
            "--out-trade-no",
            "SDK_1",
            "--amount",
            "8.80",
            "--subject",
            "SDK 咖啡 + <tea>?",
            "--notify-url",
            &receiver.url,
        ])
        .await?;
    assert_eq!(precreate["verified"], true);
    assert_eq!(precreate["code"], "10000");
    assert_eq!(precreate["out_trade_no"], "SDK_1");
    let qr_code = precreate["qr_code"].as_str().unwrap_or_default();
    assert!(qr_code.starts_with("https://qr.alipay.com/"), "{precreate}");
    let trade = harness.running.sandbox().trade("SDK_1").await;
    let trade = trade.ok_or_else(|| err("the sandbox has no SDK_1"))?;
    assert_eq!(trade.terms.subject, "SDK 咖啡 + <tea>?");
    assert_eq!(trade.notify_url.as_deref(), Some(receiver.url.as_str()));

    // The same with charset=GBK: the SDK signs and verifies over GBK bytes.
    let gbk = Sdk {
        charset: "GBK",
        ..Sdk::python(&harness)?
    };
    let answer = gbk
        .ok(&[
            "precreate",
            "--out-trade-no",
            "SDK_GBK",
            "--amount",
            "1.00",
            "--subject",
            "拿铁",
        ])
        .await?;
    assert_eq!(answer["code"], "10000");
    let trade = harness.running.sandbox().trade("SDK_GBK").await;
    assert_eq!(trade.map(|t| t.terms.subject), Some("拿铁".to_owned()));

    // The buyer scans and pays; the SDK's query sees TRADE_SUCCESS.
    harness
        .control("/sandbox/trades/SDK_1/scan", json!({}))
        .await?;
    harness
        .control("/sandbox/trades/SDK_1/pay", json!({}))
        .await?;
    let query = sdk.ok(&["query", "--out-trade-no", "SDK_1"]).await?;
    assert_eq!(query["trade_status"], "TRADE_SUCCESS", "{query}");
    assert_eq!(query["total_amount"], "8.80");
    assert_eq!(query["out_trade_no"], "SDK_1");
    assert_eq!(
        query["buyer_open_id"],
        buyer_open_id(&harness, "SDK_1").await?
    );

    // The notifications the sandbox delivered (the scan's, then the payment's) verify with
    // the SDK's own check…
    let received = receiver.wait_for(2).await?;
    let waiting = notification_body(&harness, &received, "WAIT_BUYER_PAY")?;
    let file = write_body(scratch.path(), "waiting.txt", &waiting)?;
    let verified = sdk
        .ok(&["verify-notification", "--body-file", &file])
        .await?;
    assert_eq!(verified["trade_status"], "WAIT_BUYER_PAY");
    let body = &notification_body(&harness, &received, "TRADE_SUCCESS")?;
    let file = write_body(scratch.path(), "notify.txt", body)?;
    let verified = sdk
        .ok(&["verify-notification", "--body-file", &file])
        .await?;
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["trade_status"], "TRADE_SUCCESS");
    assert_eq!(verified["out_trade_no"], "SDK_1");
    assert_eq!(verified["total_amount"], "8.80");
    assert_eq!(verified["app_id"], harness.app_id.as_str());

    // …and a tampered copy does not.
    let text = String::from_utf8(body.clone())?;
    assert!(text.contains("total_amount=8.80"), "{text}");
    let tampered = text.replace("total_amount=8.80", "total_amount=0.01");
    let file = write_body(scratch.path(), "tampered.txt", tampered.as_bytes())?;
    let refused = sdk
        .fails(&["verify-notification", "--body-file", &file])
        .await?;
    assert_eq!(refused["error_kind"], "notification", "{refused}");
    harness.running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn official_python_sdk_rejects_bad_signatures() -> TestResult {
    let harness = Harness::start().await?;
    let receiver = Receiver::failing_first(0).await?;
    let sdk = Sdk::python(&harness)?;
    let scratch = tempfile::tempdir()?;
    sdk.ok(&[
        "precreate",
        "--out-trade-no",
        "SDK_NEG",
        "--amount",
        "2.00",
        "--subject",
        "negative control",
        "--notify-url",
        &receiver.url,
    ])
    .await?;

    // A response signed over other bytes: the SDK itself refuses it.
    harness
        .control(
            "/sandbox/faults",
            json!({"method": "alipay.trade.query", "bad_signature": true}),
        )
        .await?;
    let refused = sdk.fails(&["query", "--out-trade-no", "SDK_NEG"]).await?;
    assert_eq!(refused["error_kind"], "sdk", "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("sign verify failed")),
        "{refused}"
    );
    // The fault is used up: the same call now verifies (a signed business answer: no trade
    // exists before a scan).
    let answer = sdk.fails(&["query", "--out-trade-no", "SDK_NEG"]).await?;
    assert_eq!(answer["error_kind"], "business", "{answer}");
    assert_eq!(answer["verified"], true);
    assert_eq!(answer["sub_code"], "ACQ.TRADE_NOT_EXIST");

    // The SDK on a server left in UTC stamps requests 8 hours off Beijing time: the gateway
    // refuses them (unsigned, which the SDK reports as an illegal shape, body included).
    let utc = Sdk {
        tz: "UTC",
        ..Sdk::python(&harness)?
    };
    let stale = utc.fails(&["query", "--out-trade-no", "SDK_NEG"]).await?;
    assert_eq!(stale["error_kind"], "sdk", "{stale}");
    assert!(
        stale["error"]
            .as_str()
            .is_some_and(|e| e.contains("isv.invalid-timestamp")),
        "{stale}"
    );

    // A notification with a bad signature (notification switch): the SDK's check refuses it.
    harness
        .control(
            "/sandbox/trades/SDK_NEG/notifications/switches",
            json!({"bad_signature": true}),
        )
        .await?;
    harness
        .control("/sandbox/trades/SDK_NEG/pay", json!({}))
        .await?;
    let received = receiver.wait_for(1).await?;
    let file = write_body(scratch.path(), "bad.txt", &received[0].body)?;
    let refused = sdk
        .fails(&["verify-notification", "--body-file", &file])
        .await?;
    assert_eq!(refused["error_kind"], "notification", "{refused}");
    harness.running.shutdown().await;
    Ok(())
}

/// The OpenID the sandbox gives the buyer of `out_trade_no`.
async fn buyer_open_id(harness: &Harness, out_trade_no: &str) -> TestResult<String> {
    let trade = harness.running.sandbox().trade(out_trade_no).await;
    let buyer = trade
        .and_then(|t| t.buyer)
        .ok_or_else(|| err(format!("{out_trade_no} has no buyer")))?;
    Ok(alipay_sandbox::ids::open_id(
        &harness.app_id,
        &buyer.user_id,
    ))
}

#[tokio::test]
async fn official_node_sdk_precreates_queries_and_verifies_notifications() -> TestResult {
    let harness = Harness::start().await?;
    let receiver = Receiver::failing_first(0).await?;
    let sdk = Sdk::node(&harness)?;
    let scratch = tempfile::tempdir()?;

    // precreate: signed by the SDK, accepted by the sandbox; the answer verified by the SDK.
    let precreate = sdk
        .ok(&[
            "precreate",
            "--out-trade-no",
            "NODE_1",
            "--amount",
            "6.60",
            "--subject",
            "Node 咖啡 + <tea>?",
            "--notify-url",
            &receiver.url,
        ])
        .await?;
    assert_eq!(precreate["verified"], true);
    assert_eq!(precreate["sdk"], "4.14.0");
    assert_eq!(precreate["out_trade_no"], "NODE_1");
    let qr_code = precreate["qr_code"].as_str().unwrap_or_default();
    assert!(qr_code.starts_with("https://qr.alipay.com/"), "{precreate}");
    let trade = harness.running.sandbox().trade("NODE_1").await;
    let trade = trade.ok_or_else(|| err("the sandbox has no NODE_1"))?;
    assert_eq!(trade.terms.subject, "Node 咖啡 + <tea>?");
    assert_eq!(trade.notify_url.as_deref(), Some(receiver.url.as_str()));

    // Before a scan Alipay has no trade: a verified business answer.
    let none = sdk.fails(&["query", "--out-trade-no", "NODE_1"]).await?;
    assert_eq!(none["error_kind"], "business", "{none}");
    assert_eq!(none["sub_code"], "ACQ.TRADE_NOT_EXIST");

    // The buyer scans and pays; the SDK's query sees TRADE_SUCCESS and the buyer's OpenID.
    harness
        .control("/sandbox/trades/NODE_1/pay", json!({}))
        .await?;
    let query = sdk.ok(&["query", "--out-trade-no", "NODE_1"]).await?;
    assert_eq!(query["trade_status"], "TRADE_SUCCESS", "{query}");
    assert_eq!(query["total_amount"], "6.60");
    assert_eq!(
        query["buyer_open_id"],
        buyer_open_id(&harness, "NODE_1").await?
    );

    // Both notifications verify with the SDK's checkNotifySignV2; a tampered copy does not.
    let received = receiver.wait_for(2).await?;
    for (status, name) in [
        ("WAIT_BUYER_PAY", "waiting.txt"),
        ("TRADE_SUCCESS", "paid.txt"),
    ] {
        let body = notification_body(&harness, &received, status)?;
        let file = write_body(scratch.path(), name, &body)?;
        let verified = sdk
            .ok(&["verify-notification", "--body-file", &file])
            .await?;
        assert_eq!(verified["trade_status"], status);
        assert_eq!(verified["out_trade_no"], "NODE_1");
        assert_eq!(verified["app_id"], harness.app_id.as_str());
        let notify_id = verified["notify_id"].as_str().unwrap_or_default();
        assert_eq!(notify_id.len(), 34, "{verified}");
    }
    let paid = String::from_utf8(notification_body(&harness, &received, "TRADE_SUCCESS")?)?;
    assert!(paid.contains("total_amount=6.60"), "{paid}");
    let tampered = paid.replace("total_amount=6.60", "total_amount=0.01");
    let file = write_body(scratch.path(), "tampered.txt", tampered.as_bytes())?;
    let refused = sdk
        .fails(&["verify-notification", "--body-file", &file])
        .await?;
    assert_eq!(refused["error_kind"], "notification", "{refused}");
    harness.running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn official_node_sdk_rejects_bad_signatures() -> TestResult {
    let harness = Harness::start().await?;
    let sdk = Sdk::node(&harness)?;
    let precreate = [
        "precreate",
        "--out-trade-no",
        "NODE_NEG",
        "--amount",
        "2.00",
        "--subject",
        "negative control",
    ];
    sdk.ok(&precreate).await?;

    // A response signed over other bytes: the SDK itself refuses it.
    harness
        .control(
            "/sandbox/faults",
            json!({"method": "alipay.trade.query", "bad_signature": true}),
        )
        .await?;
    let refused = sdk.fails(&["query", "--out-trade-no", "NODE_NEG"]).await?;
    assert_eq!(refused["error_kind"], "sdk", "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("验签失败")),
        "{refused}"
    );
    // The fault is used up: the same call now verifies.
    let answer = sdk.fails(&["query", "--out-trade-no", "NODE_NEG"]).await?;
    assert_eq!(answer["error_kind"], "business", "{answer}");
    assert_eq!(answer["sub_code"], "ACQ.TRADE_NOT_EXIST");

    harness.running.shutdown().await;
    Ok(())
}
