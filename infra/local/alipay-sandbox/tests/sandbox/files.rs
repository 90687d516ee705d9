//! Start-up contract: key files and sandbox.json, `--state-file`, reset, and the binary's ready
//! line and loopback rule.

use crate::common::*;
use alipay_sandbox::Config;
use serde_json::{Value, json};
use std::io::BufRead;
use std::process::{Command, Stdio};

fn read_json(path: &std::path::Path) -> TestResult<Value> {
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

#[tokio::test]
async fn key_files_are_created_once_and_reused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let keys = dir.path().join("keys");
    let first = alipay_sandbox::spawn(Config::new(&keys)).await?;
    let sandbox_json = read_json(&keys.join("sandbox.json"))?;
    let app_id = sandbox_json["app_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let seller_id = sandbox_json["seller_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(app_id.len(), 16);
    assert!(
        app_id.starts_with("2021") && app_id.bytes().all(|b| b.is_ascii_digit()),
        "{app_id}"
    );
    assert_eq!(seller_id.len(), 16);
    assert!(
        seller_id.starts_with("2088") && seller_id.bytes().all(|b| b.is_ascii_digit()),
        "{seller_id}"
    );
    assert_eq!(sandbox_json["gateway_url"], first.gateway_url().as_str());
    assert!(first.gateway_url().starts_with("http://127.0.0.1:"));

    let files = [
        "app_private_key.pem",
        "app_public_key.pem",
        "alipay_private_key.pem",
        "alipay_public_key.pem",
    ];
    let contents: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(keys.join(f)))
        .collect::<Result<_, _>>()?;
    assert!(contents[0].starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(contents[1].starts_with("-----BEGIN PUBLIC KEY-----"));
    assert!(contents[2].starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(contents[3].starts_with("-----BEGIN PUBLIC KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for private in ["app_private_key.pem", "alipay_private_key.pem"] {
            let mode = std::fs::metadata(keys.join(private))?.permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{private}");
        }
    }
    // The public keys match the private keys.
    let app_key = alipay::PrivateKey::parse(&contents[0])?;
    assert_eq!(app_key.public_key()?.to_pem(), contents[1]);
    let port = first.addr().port();
    first.shutdown().await;

    let second = alipay_sandbox::spawn(Config::new(&keys)).await?;
    assert_ne!(second.addr().port(), port);
    let again: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(keys.join(f)))
        .collect::<Result<_, _>>()?;
    assert_eq!(again, contents, "keys are reused");
    let sandbox_json = read_json(&keys.join("sandbox.json"))?;
    assert_eq!(sandbox_json["app_id"], app_id.as_str());
    assert_eq!(sandbox_json["seller_id"], seller_id.as_str());
    assert_eq!(
        sandbox_json["gateway_url"],
        second.gateway_url().as_str(),
        "gateway_url follows the port"
    );
    second.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn state_file_survives_a_restart() -> TestResult {
    let dir = tempfile::tempdir()?;
    let keys = dir.path().join("keys");
    let state_file = dir.path().join("state.json");
    let config = || {
        let mut config = Config::new(&keys);
        config.state_file = Some(state_file.clone());
        config
    };
    let h = Harness::start_in(tempfile::tempdir()?, config()).await?;
    let qr = h
        .call(
            PRECREATE,
            json!({"out_trade_no": "p_qr", "total_amount": "1.00", "subject": "s"}),
        )
        .await?["qr_code"]
        .clone();
    h.pay("p_paid", "5.00", &auth_code("00", 0)).await?;
    h.call(
        REFUND,
        json!({"out_trade_no": "p_paid", "refund_amount": "2.00", "out_request_no": "p_r1"}),
    )
    .await?;
    h.control(
        "/sandbox/faults",
        json!({"method": QUERY, "code": "40004", "times": 3}),
    )
    .await?;
    h.control("/sandbox/rules", json!({"buyer_id": "user_id"}))
        .await?;
    assert!(state_file.exists());
    h.running.shutdown().await;

    // The saved rules win over the configuration's.
    let h = Harness::start_in(tempfile::tempdir()?, config()).await?;
    assert_eq!(
        h.control_get("/sandbox/rules").await?["buyer_id"],
        "user_id"
    );
    let faults = h.control_get("/sandbox/faults").await?;
    assert_eq!(faults[0]["remaining"], 3);
    let response = h.http.delete(h.url("/sandbox/faults")).send().await?;
    assert!(response.status().is_success());
    let again = h
        .call(
            PRECREATE,
            json!({"out_trade_no": "p_qr", "total_amount": "1.00", "subject": "s"}),
        )
        .await?;
    assert_eq!(again["qr_code"], qr);
    let paid = h.query("p_paid").await?;
    assert_eq!(paid["trade_status"], "TRADE_SUCCESS");
    let refund = h
        .call(
            REFUND_QUERY,
            json!({"out_trade_no": "p_paid", "out_request_no": "p_r1"}),
        )
        .await?;
    assert_eq!(refund["refund_amount"], "2.00");
    assert_eq!(
        h.call(
            REFUND,
            json!({"out_trade_no": "p_paid", "refund_amount": "2.00", "out_request_no": "p_r1"})
        )
        .await?["fund_change"],
        "N"
    );
    Ok(())
}

#[tokio::test]
async fn reset_forgets_orders_but_keeps_the_identity() -> TestResult {
    let h = Harness::start().await?;
    h.pay("rs", "1.00", &auth_code("00", 0)).await?;
    h.control("/sandbox/rules", json!({"refund_window_days": 365}))
        .await?;
    h.control("/sandbox/reset", json!({})).await?;
    // Rules belong to the app, like its keys.
    assert_eq!(
        h.control_get("/sandbox/rules").await?["refund_window_days"],
        365
    );
    assert_sub_code(&h.query("rs").await?, "40004", "ACQ.TRADE_NOT_EXIST");
    assert_eq!(h.control_get("/sandbox/trades").await?, json!([]));
    let info = h.control_get("/sandbox").await?;
    assert_eq!(info["app_id"], h.app_id.as_str());
    assert_eq!(info["alipay_public_key"], h.alipay_public_key.to_base64());
    // The sandbox still answers with the same identity.
    assert_success(&h.pay("rs", "1.00", &auth_code("00", 0)).await?);
    Ok(())
}

#[tokio::test]
async fn binary_prints_its_ready_line_and_refuses_remote_listening() -> TestResult {
    let dir = tempfile::tempdir()?;
    let keys = dir.path().join("keys");
    let mut child = Command::new(env!("CARGO_BIN_EXE_alipay-sandbox"))
        .args(["--listen", "127.0.0.1:0", "--keys-dir"])
        .arg(&keys)
        .args(["--time-scale", "10", "--rules", r#"{"buyer_id":"user_id"}"#])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| err("no stdout"))?;
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    })
    .await??;
    let outcome = async {
        let base = line
            .trim()
            .strip_prefix("alipay-sandbox listening on ")
            .ok_or_else(|| err(format!("unexpected ready line {line:?}")))?
            .to_owned();
        let info: Value = serde_json::from_str(
            &reqwest::get(format!("{base}/sandbox"))
                .await?
                .text()
                .await?,
        )?;
        assert_eq!(info["gateway_url"], format!("{base}/gateway.do"));
        assert_eq!(info["time_scale"], 10.0);
        let rules: Value = serde_json::from_str(
            &reqwest::get(format!("{base}/sandbox/rules"))
                .await?
                .text()
                .await?,
        )?;
        assert_eq!(rules["buyer_id"], "user_id");
        assert_eq!(rules["refund_window_days"], 90);
        let sandbox_json = read_json(&keys.join("sandbox.json"))?;
        assert_eq!(sandbox_json["gateway_url"], format!("{base}/gateway.do"));
        TestResult::Ok(())
    }
    .await;
    child.kill()?;
    child.wait()?;
    outcome?;

    let refused = Command::new(env!("CARGO_BIN_EXE_alipay-sandbox"))
        .args(["--listen", "0.0.0.0:0", "--keys-dir"])
        .arg(&keys)
        .output()?;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--allow-remote"), "{stderr}");

    let bad_rules = Command::new(env!("CARGO_BIN_EXE_alipay-sandbox"))
        .args(["--keys-dir"])
        .arg(&keys)
        .args(["--rules", r#"{"buyer":"user_id"}"#])
        .output()?;
    assert!(!bad_rules.status.success());
    let stderr = String::from_utf8_lossy(&bad_rules.stderr);
    assert!(stderr.contains("--rules"), "{stderr}");
    Ok(())
}
