//! The real gateway client (`alipay::client::AlipayClient`) against an in-process
//! `alipay-sandbox`, configured only from the sandbox's keys directory (sandbox.json, the app
//! private key, the sandbox's Alipay public key), as a merchant deployment would be:
//! QR precreate → scan → pay → query → refunds → refund query, a barcode payment, then the
//! next day's bill downloaded, parsed with `alipay::bill`, and matched against the trades.

use alipay::api::{
    BillDownloadUrlRequest, PayRequest, PrecreateRequest, QueryRequest, RefundQueryRequest,
    RefundRequest, RefundStatus, TradeRef,
};
use alipay::bill::{RecordKind, parse_zip};
use alipay::client::{AlipayClient, ClientConfig};
use alipay::notify::TradeStatus;
use alipay::outcome::Outcome;
use alipay::{AlipayVerifier, Fen, PrivateKey, PublicKey};
use alipay_sandbox::{Config, RunningSandbox};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::{Value, json};
use std::fmt::Debug;
use std::path::Path;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn err(message: impl Into<String>) -> Box<dyn std::error::Error + Send + Sync> {
    message.into().into()
}

/// The sandbox and a client set up from its keys directory.
struct Setup {
    running: RunningSandbox,
    client: AlipayClient,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start() -> TestResult<Setup> {
        let dir = tempfile::tempdir()?;
        let keys = dir.path().join("keys");
        let running = alipay_sandbox::spawn(Config::new(&keys)).await?;
        let client = client_from_keys_dir(&keys)?;
        Ok(Setup {
            running,
            client,
            http: reqwest::Client::new(),
            _dir: dir,
        })
    }

    /// POST to the sandbox control API; must answer 200.
    async fn control(&self, path: &str, body: Value) -> TestResult<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.running.base_url()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            return Err(err(format!("POST {path}: {status} {text}")));
        }
        Ok(serde_json::from_str(&text)?)
    }

    fn now(&self) -> DateTime<Utc> {
        self.running.sandbox().now()
    }

    /// Moves the sandbox clock to `hour`:00 Beijing time of the next day; returns that day.
    async fn advance_to_next_day(&self, hour: i64) -> TestResult<NaiveDate> {
        let now = self.now();
        let target = beijing_day(now)
            .succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .ok_or_else(|| err("date out of range"))?
            .and_utc()
            - TimeDelta::hours(8)
            + TimeDelta::hours(hour);
        let seconds = (target - now).num_milliseconds() as f64 / 1000.0;
        self.control("/sandbox/clock/advance", json!({ "seconds": seconds }))
            .await?;
        Ok(beijing_day(self.now()))
    }
}

/// What a merchant configures: gateway URL and app id from sandbox.json, the app private key,
/// and "Alipay's public key" (the sandbox's).
fn client_from_keys_dir(keys: &Path) -> TestResult<AlipayClient> {
    let sandbox_json: Value =
        serde_json::from_str(&std::fs::read_to_string(keys.join("sandbox.json"))?)?;
    let text = |key: &str| -> TestResult<String> {
        Ok(sandbox_json[key]
            .as_str()
            .ok_or_else(|| err(format!("sandbox.json has no {key}")))?
            .to_owned())
    };
    let app_key = PrivateKey::parse(&std::fs::read_to_string(
        keys.join(text("app_private_key_file")?),
    )?)?;
    let alipay_key = PublicKey::parse(&std::fs::read_to_string(
        keys.join(text("alipay_public_key_file")?),
    )?)?;
    Ok(AlipayClient::new(ClientConfig::new(
        text("gateway_url")?,
        text("app_id")?,
        app_key,
        AlipayVerifier::PublicKey(alipay_key),
    ))?)
}

fn beijing_day(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&alipay::time::beijing()).date_naive()
}

fn success<T: Debug>(outcome: Outcome<T>) -> TestResult<T> {
    match outcome {
        Outcome::Success(value) => Ok(value),
        other => Err(err(format!("expected success, got {other:?}"))),
    }
}

fn order(out_trade_no: &str) -> TradeRef {
    TradeRef::OutTradeNo(out_trade_no.to_owned())
}

#[tokio::test]
async fn qr_and_barcode_payments_refunds_and_the_next_days_bill() -> TestResult {
    let setup = Setup::start().await?;
    let client = &setup.client;
    // 01:00 Beijing: the whole day's business happens on one calendar day.
    let day = setup.advance_to_next_day(1).await?;

    // QR code payment: precreate, nothing to query before the buyer scans.
    let mut precreate = PrecreateRequest::new("e2e_qr_1", Fen::new(1234), "端到端测试");
    precreate.store_id = Some("E2E_STORE".to_owned());
    precreate.body = Some("二号桌".to_owned());
    let qr = success(client.precreate(&precreate).await)?;
    assert_eq!(qr.out_trade_no, "e2e_qr_1");
    assert!(qr.qr_code.starts_with("https://qr.alipay.com/"), "{qr:?}");
    match client.query(&QueryRequest::new(order("e2e_qr_1"))).await {
        Outcome::Failed(failure) => assert!(failure.sub_code_is("ACQ.TRADE_NOT_EXIST")),
        other => panic!("expected TRADE_NOT_EXIST before the scan, got {other:?}"),
    }

    // The buyer scans, then pays.
    setup
        .control("/sandbox/trades/e2e_qr_1/scan", json!({}))
        .await?;
    let waiting = success(client.query(&QueryRequest::new(order("e2e_qr_1"))).await)?;
    assert_eq!(waiting.trade_status, TradeStatus::WaitBuyerPay);
    setup
        .control("/sandbox/trades/e2e_qr_1/pay", json!({}))
        .await?;
    let paid = success(client.query(&QueryRequest::new(order("e2e_qr_1"))).await)?;
    assert_eq!(paid.trade_status, TradeStatus::TradeSuccess);
    assert_eq!(paid.total_amount, Fen::new(1234));
    assert_eq!(paid.receipt_amount, Some(Fen::new(1234)));
    assert_eq!(paid.store_id.as_deref(), Some("E2E_STORE"));
    assert!(paid.send_pay_date.is_some());
    let qr_trade_no = paid.trade_no.clone();

    // A partial refund moves money once; the same request again does not.
    let refund = RefundRequest::new(order("e2e_qr_1"), Fen::new(234), "e2e_refund_1");
    let first = success(client.refund(&refund).await)?;
    assert!(first.fund_change);
    assert_eq!(first.refund_fee, Fen::new(234));
    assert_eq!(first.trade_no, qr_trade_no);
    let repeated = success(client.refund(&refund).await)?;
    assert!(!repeated.fund_change);
    assert_eq!(repeated.refund_fee, Fen::new(234));
    let refund_status = success(
        client
            .refund_query(&RefundQueryRequest::new(order("e2e_qr_1"), "e2e_refund_1"))
            .await,
    )?;
    assert_eq!(refund_status.refund_status, RefundStatus::Success);
    assert_eq!(refund_status.refund_amount, Some(Fen::new(234)));
    let still_paid = success(client.query(&QueryRequest::new(order("e2e_qr_1"))).await)?;
    assert_eq!(still_paid.trade_status, TradeStatus::TradeSuccess);

    // A barcode payment with a code that succeeds at once (`28` `00` …).
    let barcode = success(
        client
            .pay(&PayRequest::new(
                "e2e_bar_1",
                Fen::new(88),
                "条码支付",
                "280000000000000001",
            ))
            .await,
    )?;
    assert_eq!(barcode.total_amount, Some(Fen::new(88)));
    let bar_paid = success(client.query(&QueryRequest::new(order("e2e_bar_1"))).await)?;
    assert_eq!(bar_paid.trade_status, TradeStatus::TradeSuccess);
    assert_eq!(bar_paid.trade_no, barcode.trade_no);

    // After midnight (Beijing), the day's bill exists.
    match client
        .bill_download_url(&BillDownloadUrlRequest::trade_day(day))
        .await
    {
        Outcome::Failed(failure) => assert!(failure.sub_code_is("isp.bill_not_exist")),
        other => panic!("no bill before the day is over, got {other:?}"),
    }
    setup.advance_to_next_day(9).await?;
    let url = success(
        client
            .bill_download_url(&BillDownloadUrlRequest::trade_day(day))
            .await,
    )?
    .bill_download_url;
    let zip = client.download_bill(&url).await?;
    let bill = parse_zip(&zip)?;
    bill.check_totals()?;
    assert_eq!(bill.records.len(), 3, "{:#?}", bill.records);

    let qr_payment = bill
        .records
        .iter()
        .find(|r| r.out_trade_no == "e2e_qr_1" && r.kind == RecordKind::Payment)
        .ok_or_else(|| err("no QR payment row"))?;
    assert_eq!(qr_payment.trade_no, qr_trade_no);
    assert_eq!(qr_payment.amount, Fen::new(1234));
    assert_eq!(qr_payment.receipt, Fen::new(1234));
    assert_eq!(qr_payment.subject, "端到端测试");
    assert_eq!(qr_payment.store_id.as_deref(), Some("E2E_STORE"));
    assert_eq!(qr_payment.remark.as_deref(), Some("二号桌"));
    assert_eq!(
        Some(alipay::time::format_beijing(qr_payment.finished_at)),
        paid.send_pay_date
    );
    assert_eq!(beijing_day(qr_payment.finished_at), day);

    let qr_refund = bill
        .records
        .iter()
        .find(|r| r.kind == RecordKind::Refund)
        .ok_or_else(|| err("no refund row"))?;
    assert_eq!(qr_refund.out_trade_no, "e2e_qr_1");
    assert_eq!(qr_refund.trade_no, qr_trade_no);
    assert_eq!(qr_refund.refund_request_no.as_deref(), Some("e2e_refund_1"));
    assert_eq!(qr_refund.amount, Fen::new(-234));
    assert_eq!(qr_refund.receipt, Fen::new(-234));
    assert_eq!(qr_refund.created_at, qr_payment.created_at);
    // The refund's time as the refund answer gave it (a refund query returns it only when
    // asked through query_options).
    assert_eq!(
        Some(alipay::time::format_beijing(qr_refund.finished_at)),
        first.gmt_refund_pay
    );

    let bar_payment = bill
        .records
        .iter()
        .find(|r| r.out_trade_no == "e2e_bar_1")
        .ok_or_else(|| err("no barcode row"))?;
    assert_eq!(bar_payment.kind, RecordKind::Payment);
    assert_eq!(bar_payment.trade_no, barcode.trade_no);
    assert_eq!(bar_payment.amount, Fen::new(88));
    assert_eq!(
        bar_payment.finished_at.timestamp(),
        barcode
            .gmt_payment
            .as_deref()
            .and_then(|t| alipay::time::parse_beijing(t).ok())
            .map(|t| t.timestamp())
            .unwrap_or_default()
    );

    let payments = bill.footer.payments.ok_or_else(|| err("no 交易合计"))?;
    assert_eq!((payments.count, payments.receipt), (2, Fen::new(1234 + 88)));
    let refunds = bill.footer.refunds.ok_or_else(|| err("no 退款合计"))?;
    assert_eq!((refunds.count, refunds.receipt), (1, Fen::new(-234)));
    let total = bill
        .summary
        .and_then(|s| s.total)
        .ok_or_else(|| err("no summary total"))?;
    assert_eq!(total.net_receipt, Fen::new(1234 + 88 - 234));

    setup.running.shutdown().await;
    Ok(())
}
