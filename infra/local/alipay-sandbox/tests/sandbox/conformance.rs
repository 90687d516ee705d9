//! Official-SDK conformance: the official Alipay Python SDK (`alipay-sdk-python`, installed
//! into `.local/venv` by `make test-deps`), pointed at the sandbox, signs requests the sandbox
//! accepts, verifies the sandbox's response signatures itself, and accepts its notifications
//! with the SDK's own signature check. Negative controls prove the SDK really checks: a
//! `bad_signature` fault makes the SDK call fail, and a bad or tampered notification does not
//! verify. The SDK is driven by `conformance/sdk_check.py`.

use crate::common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// `.local/venv/bin/python` of this checkout (or `$ALIPAY_SDK_PYTHON`).
fn python() -> TestResult<PathBuf> {
    let python = match std::env::var_os("ALIPAY_SDK_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../.local/venv/bin/python"),
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

/// The official SDK driven against one harness's sandbox.
struct Sdk<'a> {
    harness: &'a Harness,
    python: PathBuf,
    charset: &'static str,
}

/// What one script run printed: whether it exited 0, and its JSON.
struct Run {
    success: bool,
    json: Value,
}

impl<'a> Sdk<'a> {
    fn new(harness: &'a Harness) -> TestResult<Sdk<'a>> {
        Ok(Sdk {
            harness,
            python: python()?,
            charset: "utf-8",
        })
    }

    async fn run(&self, command: &[&str]) -> TestResult<Run> {
        let keys = &self.harness.running.sandbox().identity().keys_dir;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/sdk_check.py");
        let child = tokio::process::Command::new(&self.python)
            .arg(script)
            .arg("--gateway")
            .arg(self.harness.running.gateway_url())
            .arg("--app-id")
            .arg(&self.harness.app_id)
            .arg("--app-private-key")
            .arg(keys.join("app_private_key.pem"))
            .arg("--alipay-public-key")
            .arg(keys.join("alipay_public_key.pem"))
            .arg("--charset")
            .arg(self.charset)
            .args(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .map_err(|_| {
                err(format!(
                    "sdk_check.py {command:?} did not finish within 60 s"
                ))
            })??;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let json: Value = stdout
            .lines()
            .last()
            .and_then(|line| serde_json::from_str(line).ok())
            .ok_or_else(|| {
                err(format!(
                    "sdk_check.py {command:?} printed no JSON (exit {}): {stdout}\n{stderr}",
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

fn write_body(dir: &Path, name: &str, body: &[u8]) -> TestResult<String> {
    let path = dir.join(name);
    std::fs::write(&path, body)?;
    Ok(path.display().to_string())
}

#[tokio::test]
async fn official_python_sdk_precreates_queries_and_verifies_notifications() -> TestResult {
    let harness = Harness::start().await?;
    let receiver = Receiver::failing_first(0).await?;
    let sdk = Sdk::new(&harness)?;
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
            "SDK 咖啡 & <tea>",
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
    assert_eq!(trade.terms.subject, "SDK 咖啡 & <tea>");
    assert_eq!(trade.notify_url.as_deref(), Some(receiver.url.as_str()));

    // The same with charset=GBK: the SDK signs and verifies over GBK bytes.
    let gbk = Sdk {
        charset: "GBK",
        ..Sdk::new(&harness)?
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

    // The notification the sandbox delivered verifies with the SDK's own check…
    let received = receiver.wait_for(1).await?;
    let body = &received[0].body;
    verify_notification(&harness, body)?;
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
    let sdk = Sdk::new(&harness)?;
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
