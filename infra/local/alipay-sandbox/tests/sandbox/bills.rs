//! `alipay.data.dataservice.bill.downloadurl.query` and the bill files: asked for and
//! downloaded with the real `alipay::client::AlipayClient`, read back with `alipay::bill`, and
//! checked byte by byte against Alipay's format (GBK entry names without the UTF-8 flag, GBK
//! CRLF content, `#` lines, the 25-column header, trailing tabs, negative refund rows, totals).

use crate::common::*;
use alipay::Fen;
use alipay::api::{BillDownloadUrlRequest, BillDownloadUrlResponse, BillType};
use alipay::bill::{BillArchive, Counted, RecordKind, Totals, parse_zip};
use alipay::client::{AlipayClient, BillDownloadError, ClientConfig};
use alipay::outcome::Outcome;
use alipay_sandbox::bill::synth::{SynthOptions, orders_path, synth_bill};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

const DETAIL_START: &str = "#-----------------------------------------业务明细列表----------------------------------------";
const DETAIL_END: &str = "#-----------------------------------------业务明细列表结束------------------------------------";
const SUMMARY_START: &str = "#-----------------------------------------业务汇总列表----------------------------------------";
/// One dash less before the text and one more after it than the detail file's end marker.
const SUMMARY_END: &str = "#----------------------------------------业务汇总列表结束-------------------------------------";
const SUMMARY_HEADER: &str = "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）";
const DETAIL_HEADER: &str = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注";

fn client(h: &Harness) -> TestResult<AlipayClient> {
    Ok(AlipayClient::new(ClientConfig::new(
        h.running.gateway_url(),
        &h.app_id,
        h.app_key.clone(),
        h.verifier.clone(),
    ))?)
}

fn beijing_day(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&alipay::time::beijing()).date_naive()
}

async fn sandbox_now(h: &Harness) -> TestResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(h.now_ms().await?).ok_or_else(|| err("bad clock"))
}

/// `day` at `h:m:s` Beijing time.
fn beijing_at(day: NaiveDate, h: u32, m: u32, s: u32) -> TestResult<DateTime<Utc>> {
    let local = day.and_hms_opt(h, m, s).ok_or_else(|| err("time"))?;
    Ok(local.and_utc() - TimeDelta::hours(8))
}

/// Moves the sandbox clock to `at` unless it is there already; returns the sandbox time.
async fn advance_to(h: &Harness, at: DateTime<Utc>) -> TestResult<DateTime<Utc>> {
    let now = sandbox_now(h).await?;
    if at > now {
        h.advance((at - now).num_milliseconds() as f64 / 1000.0)
            .await?;
    }
    sandbox_now(h).await
}

fn next_day(day: NaiveDate) -> TestResult<NaiveDate> {
    day.succ_opt().ok_or_else(|| err("date"))
}

/// Day `n` of the month after `day`'s.
fn day_of_next_month(day: NaiveDate, n: u32) -> TestResult<NaiveDate> {
    use chrono::Datelike;
    let (year, month) = match day.month() {
        12 => (day.year() + 1, 1),
        month => (day.year(), month + 1),
    };
    NaiveDate::from_ymd_opt(year, month, n).ok_or_else(|| err("date"))
}

/// Moves the sandbox clock to `hour`:00 (Beijing) of the next day; returns that day.
async fn advance_to_next_day(h: &Harness, hour: u32) -> TestResult<NaiveDate> {
    let today = beijing_day(sandbox_now(h).await?);
    let now = advance_to(h, beijing_at(next_day(today)?, hour, 0, 0)?).await?;
    Ok(beijing_day(now))
}

async fn bill_response(
    client: &AlipayClient,
    request: &BillDownloadUrlRequest,
) -> TestResult<BillDownloadUrlResponse> {
    match client.bill_download_url(request).await {
        Outcome::Success(response) => Ok(response),
        other => Err(err(format!("{request:?}: no bill URL: {other:?}"))),
    }
}

async fn bill_url(client: &AlipayClient, request: &BillDownloadUrlRequest) -> TestResult<String> {
    Ok(bill_response(client, request).await?.bill_download_url)
}

async fn assert_no_bill(
    client: &AlipayClient,
    request: &BillDownloadUrlRequest,
    sub_code: &str,
) -> TestResult {
    match client.bill_download_url(request).await {
        Outcome::Failed(failure) => {
            assert_eq!(failure.code, "40004", "{failure:?}");
            assert_eq!(
                failure.sub_code.as_deref(),
                Some(sub_code),
                "{request:?}: {failure:?}"
            );
            Ok(())
        }
        other => Err(err(format!(
            "{request:?}: expected {sub_code}, got {other:?}"
        ))),
    }
}

fn gbk(text: &str) -> Vec<u8> {
    encoding_rs::GBK.encode(text).0.into_owned()
}

fn u16_at(bytes: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> usize {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
}

/// Walks the raw central directory: `(name bytes, central flags, local flags)` per entry.
fn raw_entries(zip: &[u8]) -> TestResult<Vec<(Vec<u8>, usize, usize)>> {
    let eocd = zip
        .windows(4)
        .rposition(|w| w == b"PK\x05\x06")
        .ok_or_else(|| err("no end of central directory"))?;
    let count = u16_at(zip, eocd + 10);
    let mut at = u32_at(zip, eocd + 16);
    let mut entries = Vec::new();
    for _ in 0..count {
        assert_eq!(&zip[at..at + 4], b"PK\x01\x02");
        let flags = u16_at(zip, at + 8);
        let (name_len, extra_len, comment_len) = (
            u16_at(zip, at + 28),
            u16_at(zip, at + 30),
            u16_at(zip, at + 32),
        );
        let local = u32_at(zip, at + 42);
        assert_eq!(&zip[local..local + 4], b"PK\x03\x04");
        let local_flags = u16_at(zip, local + 6);
        let local_name_len = u16_at(zip, local + 26);
        let name = zip[at + 46..at + 46 + name_len].to_vec();
        assert_eq!(&zip[local + 30..local + 30 + local_name_len], &name[..]);
        entries.push((name, flags, local_flags));
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(entries)
}

/// The raw bytes of every entry, by index.
fn entry_bytes(zip: &[u8]) -> TestResult<Vec<Vec<u8>>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))?;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut bytes = Vec::new();
        archive.by_index(i)?.read_to_end(&mut bytes)?;
        out.push(bytes);
    }
    Ok(out)
}

fn strict_gbk(bytes: &[u8]) -> TestResult<String> {
    assert!(
        std::str::from_utf8(bytes).is_err(),
        "the file must be GBK, not UTF-8"
    );
    let (text, had_errors) = encoding_rs::GBK.decode_without_bom_handling(bytes);
    assert!(!had_errors, "not valid GBK");
    Ok(text.into_owned())
}

fn wire_time(at: DateTime<Utc>) -> String {
    alipay::time::format_beijing(at)
}

async fn trade(h: &Harness, out_trade_no: &str) -> TestResult<alipay_sandbox::trade::Trade> {
    h.running
        .sandbox()
        .trade(out_trade_no)
        .await
        .ok_or_else(|| err(format!("no trade {out_trade_no}")))
}

#[tokio::test]
async fn daily_bill_has_alipay_format_and_matches_the_trades() -> TestResult {
    let h = Harness::start().await?;
    let client = client(&h)?;
    let seller_id = h.running.sandbox().identity().seller_id.clone();
    // 01:00 Beijing: everything below happens on one day, whenever the test runs.
    let day = advance_to_next_day(&h, 1).await?;

    // A QR payment with store, operator, terminal and body.
    h.call(
        PRECREATE,
        json!({"out_trade_no": "bill_qr", "total_amount": "10.00", "subject": "咖啡",
               "body": "桌号3", "store_id": "S01", "operator_id": "op1", "terminal_id": "t1"}),
    )
    .await?;
    h.control("/sandbox/trades/bill_qr/pay", json!({})).await?;
    // A barcode payment whose subject has a comma.
    let node = h
        .call(
            PAY,
            json!({"out_trade_no": "bill_comma", "total_amount": "0.01", "subject": "牛奶,大杯",
                   "scene": "bar_code", "auth_code": auth_code("00", 0)}),
        )
        .await?;
    assert_success(&node);
    // A partial refund and a full one.
    h.pay("bill_partial", "5.00", &auth_code("00", 0)).await?;
    h.pay("bill_full", "3.00", &auth_code("00", 0)).await?;
    h.advance(60.0).await?;
    assert_success(
        &h.call(
            REFUND,
            json!({"out_trade_no": "bill_partial", "refund_amount": "2.00", "out_request_no": "r1"}),
        )
        .await?,
    );
    assert_success(
        &h.call(
            REFUND,
            json!({"out_trade_no": "bill_full", "refund_amount": "3.00"}),
        )
        .await?,
    );
    // Not in any bill: an unpaid trade and an unscanned QR order.
    h.pay("bill_waiting", "7.00", &auth_code("02", 0)).await?;
    h.call(
        PRECREATE,
        json!({"out_trade_no": "bill_unscanned", "total_amount": "1.00", "subject": "x"}),
    )
    .await?;

    // T+1: no bill for today.
    assert_no_bill(
        &client,
        &BillDownloadUrlRequest::trade_day(day),
        "isp.bill_not_exist",
    )
    .await?;
    advance_to_next_day(&h, 9).await?;

    let url = bill_url(&client, &BillDownloadUrlRequest::trade_day(day)).await?;
    let label = day.format("%Y%m%d").to_string();
    assert!(
        url.starts_with(&format!("{}/sandbox/bills/download?", h.running.base_url())),
        "{url}"
    );
    assert!(
        url.contains(&format!("downloadFileName={seller_id}0156_{label}.csv.zip")),
        "{url}"
    );
    assert!(url.contains("token="), "{url}");
    let zip = client.download_bill(&url).await?;

    // Entry names: GBK bytes, no UTF-8 flag (bit 11) in central or local headers.
    let detail_name = format!("{seller_id}0156_{label}_业务明细.csv");
    let summary_name = format!("{seller_id}0156_{label}_业务明细(汇总).csv");
    let entries = raw_entries(&zip)?;
    let names: Vec<Vec<u8>> = entries.iter().map(|e| e.0.clone()).collect();
    assert_eq!(names, vec![gbk(&detail_name), gbk(&summary_name)]);
    for (name, flags, local_flags) in &entries {
        assert!(
            std::str::from_utf8(name).is_err(),
            "a GBK name is not UTF-8"
        );
        assert_eq!(flags & 0x800, 0, "central UTF-8 flag set");
        assert_eq!(local_flags & 0x800, 0, "local UTF-8 flag set");
    }

    // The raw detail file.
    let files = entry_bytes(&zip)?;
    let detail = strict_gbk(&files[0])?;
    assert!(detail.ends_with("\r\n"));
    let lines: Vec<&str> = detail
        .strip_suffix("\r\n")
        .unwrap_or(&detail)
        .split("\r\n")
        .collect();
    assert!(
        lines.iter().all(|l| !l.contains('\n')),
        "every line ends CRLF"
    );
    let next_day = day.succ_opt().ok_or_else(|| err("date"))?;
    let chinese = |d: NaiveDate| d.format("%Y年%m月%d日").to_string();
    assert_eq!(lines[0], "#支付宝业务明细查询");
    assert_eq!(lines[1], format!("#账号：[{seller_id}0156]"));
    assert_eq!(
        lines[2],
        format!(
            "#起始日期：[{} 00:00:00]   终止日期：[{} 00:00:00]",
            chinese(day),
            chinese(next_day)
        )
    );
    assert_eq!(lines[3], DETAIL_START);
    assert_eq!(lines[4], DETAIL_HEADER);
    assert_eq!(lines[4].split(',').count(), 25);
    let data: Vec<&str> = lines[5..lines.len() - 4].to_vec();
    assert_eq!(data.len(), 6, "{data:#?}");
    let footer = &lines[lines.len() - 4..];
    assert_eq!(footer[0], DETAIL_END);
    assert_eq!(
        footer[1],
        "#交易合计：4笔，商家实收共18.01元，商家优惠共0.00元"
    );
    assert_eq!(
        footer[2],
        "#退款合计：2笔，商家实收退款共-5.00元，商家优惠退款共0.00元"
    );
    assert!(footer[3].starts_with("#导出时间：["), "{}", footer[3]);

    let qr = trade(&h, "bill_qr").await?;
    let qr_no = qr.trade_no.clone().unwrap_or_default();
    let qr_line = data
        .iter()
        .find(|l| l.starts_with(&qr_no))
        .ok_or_else(|| err("no bill_qr row"))?;
    let buyer = qr.buyer.clone().ok_or_else(|| err("no buyer"))?;
    assert_eq!(
        *qr_line,
        format!(
            "{qr_no}\t,bill_qr\t,交易\t,咖啡,{},{},S01\t,\t,op1\t,t1\t,*买家({})\t,10.00,10.00,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,\t,0.00,0.00,桌号3",
            wire_time(qr.gmt_create.ok_or_else(|| err("no gmt_create"))?),
            wire_time(qr.gmt_payment.ok_or_else(|| err("no gmt_payment"))?),
            buyer.logon_id,
        )
    );
    assert!(
        data.iter()
            .any(|l| l.contains(",bill_comma\t,交易\t,\"牛奶,大杯\",")),
        "the subject with a comma is quoted: {data:#?}"
    );
    let full_refund_line = data
        .iter()
        .find(|l| l.contains(",bill_full\t,退款\t,"))
        .ok_or_else(|| err("no refund row"))?;
    assert!(
        full_refund_line.contains(",-3.00,-3.00,")
            && full_refund_line.contains(",bill_full\t,0.00,0.00,"),
        "{full_refund_line}"
    );

    // Parsed with the client-side reader.
    let bill = parse_zip(&zip)?;
    assert_eq!(bill.detail_name, detail_name);
    assert_eq!(bill.summary_name.as_deref(), Some(summary_name.as_str()));
    assert_eq!(bill.header_lines.len(), 4);
    bill.check_totals()?;
    assert_eq!(bill.footer.payments.map(|t| t.count), Some(4));
    assert_eq!(bill.footer.refunds.map(|t| t.receipt), Some(Fen::new(-500)));
    let by_key: BTreeMap<(String, String), _> = bill
        .records
        .iter()
        .map(|r| {
            let kind = match r.kind {
                RecordKind::Payment => "pay".to_owned(),
                RecordKind::Refund => r.refund_request_no.clone().unwrap_or_default(),
                RecordKind::Other(ref other) => other.clone(),
            };
            ((r.out_trade_no.clone(), kind), r)
        })
        .collect();
    let expected = [
        ("bill_qr", "pay", 1000),
        ("bill_comma", "pay", 1),
        ("bill_partial", "pay", 500),
        ("bill_full", "pay", 300),
        ("bill_partial", "r1", -200),
        ("bill_full", "bill_full", -300),
    ];
    assert_eq!(by_key.len(), expected.len());
    for (out_trade_no, kind, fen) in expected {
        let record = by_key
            .get(&(out_trade_no.to_owned(), kind.to_owned()))
            .ok_or_else(|| err(format!("no row {out_trade_no} {kind}")))?;
        let t = trade(&h, out_trade_no).await?;
        assert_eq!(record.trade_no, t.trade_no.clone().unwrap_or_default());
        assert_eq!(record.amount, Fen::new(fen));
        assert_eq!(record.receipt, Fen::new(fen));
        assert_eq!(
            wire_time(record.created_at),
            wire_time(t.gmt_create.unwrap_or_default())
        );
        let finished = match kind {
            "pay" => t.gmt_payment,
            request => t.refund(request).map(|r| r.at),
        };
        assert_eq!(
            wire_time(record.finished_at),
            wire_time(finished.unwrap_or_default())
        );
        assert_eq!(record.subject, t.terms.subject);
        assert_eq!(record.remark, t.terms.body);
        assert_eq!(record.store_id, t.terms.store_id);
        let logon_id = t.buyer.as_ref().map(|b| b.logon_id.as_str()).unwrap_or("?");
        assert_eq!(
            record.buyer_account,
            Some(format!("*买家({logon_id})")),
            "{record:?}"
        );
    }
    // Rows are in completion order.
    assert!(
        bill.records
            .windows(2)
            .all(|w| w[0].finished_at <= w[1].finished_at)
    );

    // The summary file: per store and 合计.
    let summary_text = strict_gbk(&files[1])?;
    assert!(summary_text.starts_with("#支付宝业务汇总查询\r\n"));
    assert!(summary_text.contains(&format!("\r\n{SUMMARY_START}\r\n{SUMMARY_HEADER}\r\n")));
    assert!(summary_text.contains("\r\n合计,,4,2,13.01,13.01,0.00,0.00,0.00,0.00,0.00,13.01\r\n"));
    assert!(summary_text.contains(&format!("\r\n{SUMMARY_END}\r\n#导出时间：[")));
    let summary = bill.summary.ok_or_else(|| err("no summary"))?;
    let total = summary.total.ok_or_else(|| err("no 合计"))?;
    assert_eq!((total.payment_count, total.refund_count), (4, 2));
    assert_eq!(total.receipt, Fen::new(1301));
    let store = summary
        .rows
        .iter()
        .find(|r| r.store_id == "S01")
        .ok_or_else(|| err("no S01 row"))?;
    assert_eq!((store.payment_count, store.amount), (1, Fen::new(1000)));
    let rows_sum = summary
        .rows
        .iter()
        .fold(0, |sum, r| sum + r.net_receipt.get());
    assert_eq!(rows_sum, total.net_receipt.get());

    // A refund on the next day is in that day's bill, with the original creation time.
    let next = beijing_day(sandbox_now(&h).await?);
    assert_success(
        &h.call(
            REFUND,
            json!({"out_trade_no": "bill_partial", "refund_amount": "1.00", "out_request_no": "r2"}),
        )
        .await?,
    );
    advance_to_next_day(&h, 9).await?;
    let url = bill_url(&client, &BillDownloadUrlRequest::trade_day(next)).await?;
    let later = parse_zip(&client.download_bill(&url).await?)?;
    assert_eq!(later.records.len(), 1);
    let refund = &later.records[0];
    assert_eq!(refund.kind, RecordKind::Refund);
    assert_eq!(refund.refund_request_no.as_deref(), Some("r2"));
    assert_eq!(refund.amount, Fen::new(-100));
    assert_eq!(beijing_day(refund.created_at), day);
    assert_eq!(beijing_day(refund.finished_at), next);
    later.check_totals()?;
    Ok(())
}

#[tokio::test]
async fn no_bill_without_trades_for_today_or_later_or_other_types() -> TestResult {
    let h = Harness::start().await?;
    let client = client(&h)?;
    let today = beijing_day(sandbox_now(&h).await?);
    let yesterday = today.pred_opt().ok_or_else(|| err("date"))?;
    let tomorrow = today.succ_opt().ok_or_else(|| err("date"))?;
    for day in [yesterday, today, tomorrow] {
        assert_no_bill(
            &client,
            &BillDownloadUrlRequest::trade_day(day),
            "isp.bill_not_exist",
        )
        .await?;
    }
    // A paid trade today: still no bill for today (T+1), and none for a month not yet over.
    h.pay("nb_paid", "1.00", &auth_code("00", 0)).await?;
    assert_no_bill(
        &client,
        &BillDownloadUrlRequest::trade_day(today),
        "isp.bill_not_exist",
    )
    .await?;
    use chrono::Datelike;
    let this_month = BillDownloadUrlRequest::trade_month(today.year(), today.month());
    assert_no_bill(&client, &this_month, "isp.bill_not_exist").await?;
    // Once the month's bill is generated (09:00 on the 3rd of the next month), it has the
    // trade.
    advance_to(&h, beijing_at(day_of_next_month(today, 3)?, 9, 0, 0)?).await?;
    let url = bill_url(&client, &this_month).await?;
    let label = today.format("%Y%m").to_string();
    assert!(url.contains(&format!("0156_{label}.csv.zip")), "{url}");
    let month = parse_zip(&client.download_bill(&url).await?)?;
    assert_eq!(month.records.len(), 1);
    assert!(
        month
            .detail_name
            .ends_with(&format!("_{label}_业务明细.csv"))
    );

    // The account ledger is not kept; other types and bad dates are invalid parameters.
    assert_no_bill(
        &client,
        &BillDownloadUrlRequest::new(BillType::Signcustomer, yesterday.to_string()),
        "isp.bill_not_exist",
    )
    .await?;
    for (bill_type, bill_date) in [
        ("fund", "2019-09-16"),
        ("trade", "2019/09/16"),
        ("trade", "2019-02-30"),
        ("trade", ""),
    ] {
        let node = h
            .call(
                BILL,
                json!({"bill_type": bill_type, "bill_date": bill_date}),
            )
            .await?;
        assert_sub_code(&node, "40004", "ACQ.INVALID_PARAMETER");
    }
    Ok(())
}

#[tokio::test]
async fn bill_urls_expire() -> TestResult {
    let h = Harness::start_with(|config| config.bill_url_ttl = Duration::from_millis(700)).await?;
    let client = client(&h)?;
    h.pay("exp_paid", "1.00", &auth_code("00", 0)).await?;
    let day = beijing_day(sandbox_now(&h).await?);
    advance_to_next_day(&h, 9).await?;
    let url = bill_url(&client, &BillDownloadUrlRequest::trade_day(day)).await?;
    assert!(!client.download_bill(&url).await?.is_empty());
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        client.download_bill(&url).await,
        Err(BillDownloadError::HttpStatus(410))
    );
    let gone = h.http.get(&url).send().await?;
    assert_eq!(gone.status().as_u16(), 410);
    assert!(gone.text().await?.contains("expired"));
    // A fresh URL works again; an unknown token never did.
    let fresh = bill_url(&client, &BillDownloadUrlRequest::trade_day(day)).await?;
    assert!(!client.download_bill(&fresh).await?.is_empty());
    let unknown = h
        .http
        .get(h.url("/sandbox/bills/download?token=nope"))
        .send()
        .await?;
    assert_eq!(unknown.status().as_u16(), 404);
    Ok(())
}

#[tokio::test]
async fn a_day_bill_is_served_from_nine_beijing_of_the_next_day() -> TestResult {
    let h = Harness::start().await?;
    let client = client(&h)?;
    let day = advance_to_next_day(&h, 1).await?;
    h.pay("ready_paid", "1.00", &auth_code("00", 0)).await?;
    let request = BillDownloadUrlRequest::trade_day(day);
    let next = next_day(day)?;
    // The day is over, but Alipay has not generated its bill yet.
    for (hour, minute, second) in [(0, 0, 1), (8, 59, 0)] {
        advance_to(&h, beijing_at(next, hour, minute, second)?).await?;
        assert_no_bill(&client, &request, "isp.bill_not_exist").await?;
    }
    advance_to(&h, beijing_at(next, 9, 0, 0)?).await?;
    let response = bill_response(&client, &request).await?;
    assert_eq!(response.bill_file_code, None, "a bill with rows");
    let bill = parse_zip(&client.download_bill(&response.bill_download_url).await?)?;
    assert_eq!(bill.records.len(), 1);
    assert_eq!(bill.records[0].out_trade_no, "ready_paid");
    bill.check_totals()?;
    Ok(())
}

#[tokio::test]
async fn a_month_bill_is_served_from_nine_on_the_third_of_the_next_month() -> TestResult {
    use chrono::Datelike;
    let h = Harness::start().await?;
    let client = client(&h)?;
    let day = advance_to_next_day(&h, 1).await?;
    h.pay("month_paid", "2.00", &auth_code("00", 0)).await?;
    let request = BillDownloadUrlRequest::trade_month(day.year(), day.month());
    for (on, hour, minute) in [(1, 0, 1), (2, 12, 0), (3, 8, 59)] {
        advance_to(
            &h,
            beijing_at(day_of_next_month(day, on)?, hour, minute, 0)?,
        )
        .await?;
        assert_no_bill(&client, &request, "isp.bill_not_exist").await?;
    }
    advance_to(&h, beijing_at(day_of_next_month(day, 3)?, 9, 0, 0)?).await?;
    let bill = parse_zip(
        &client
            .download_bill(&bill_url(&client, &request).await?)
            .await?,
    )?;
    assert_eq!(bill.records.len(), 1);
    assert_eq!(bill.records[0].out_trade_no, "month_paid");
    Ok(())
}

#[tokio::test]
async fn ready_hour_zero_serves_bills_right_after_midnight() -> TestResult {
    use chrono::Datelike;
    let h = Harness::start().await?;
    let client = client(&h)?;
    let rules = h
        .control(
            "/sandbox/rules",
            json!({"bill_ready_hour": 0, "month_bill_ready_day": 1}),
        )
        .await?;
    assert_eq!(rules["bill_ready_hour"], 0);
    assert_eq!(rules["month_bill_ready_day"], 1);
    assert_eq!(rules["empty_bill"], "not_exist");
    for bad in [
        json!({"bill_ready_hour": 24}),
        json!({"month_bill_ready_day": 0}),
        json!({"empty_bill": "sometimes"}),
    ] {
        let (status, body) = h.control_post("/sandbox/rules", bad).await?;
        assert_eq!(status, 400, "{body}");
    }
    assert_eq!(h.control_get("/sandbox/rules").await?["bill_ready_hour"], 0);

    let day = advance_to_next_day(&h, 1).await?;
    h.pay("midnight_paid", "3.00", &auth_code("00", 0)).await?;
    let request = BillDownloadUrlRequest::trade_day(day);
    advance_to(&h, beijing_at(day, 23, 59, 0)?).await?;
    assert_no_bill(&client, &request, "isp.bill_not_exist").await?;
    advance_to(&h, beijing_at(next_day(day)?, 0, 0, 1)?).await?;
    let bill = parse_zip(
        &client
            .download_bill(&bill_url(&client, &request).await?)
            .await?,
    )?;
    assert_eq!(bill.records.len(), 1);
    // A month's bill too, as soon as the month is over.
    let month = BillDownloadUrlRequest::trade_month(day.year(), day.month());
    // (Unless `day` was the month's last day: then its month is over already.)
    if day_of_next_month(day, 1)? != next_day(day)? {
        assert_no_bill(&client, &month, "isp.bill_not_exist").await?;
    }
    advance_to(&h, beijing_at(day_of_next_month(day, 1)?, 0, 0, 1)?).await?;
    let bill = parse_zip(
        &client
            .download_bill(&bill_url(&client, &month).await?)
            .await?,
    )?;
    assert_eq!(bill.records.len(), 1);
    Ok(())
}

/// Checks an empty bill ZIP byte by byte and reads it with the product's streaming reader.
fn check_empty_zip(
    zip: &[u8],
    seller_id: &str,
    period: (&str, NaiveDate, NaiveDate),
) -> TestResult {
    let (label, first_day, end_day) = period;
    let detail_name = format!("{seller_id}0156_{label}_业务明细.csv");
    let summary_name = format!("{seller_id}0156_{label}_业务明细(汇总).csv");
    let entries = raw_entries(zip)?;
    let names: Vec<Vec<u8>> = entries.iter().map(|e| e.0.clone()).collect();
    assert_eq!(names, vec![gbk(&detail_name), gbk(&summary_name)]);
    for (_, flags, local_flags) in &entries {
        assert_eq!(
            (flags & 0x800, local_flags & 0x800),
            (0, 0),
            "UTF-8 flag set"
        );
    }
    let chinese = |d: NaiveDate| d.format("%Y年%m月%d日").to_string();
    let range = format!(
        "#起始日期：[{} 00:00:00]   终止日期：[{} 00:00:00]",
        chinese(first_day),
        chinese(end_day)
    );
    let account = format!("#账号：[{seller_id}0156]");
    let files = entry_bytes(zip)?;
    let lines_of = |bytes: &[u8]| -> TestResult<Vec<String>> {
        let text = strict_gbk(bytes)?;
        let body = text
            .strip_suffix("\r\n")
            .ok_or_else(|| err("no final CRLF"))?;
        Ok(body.split("\r\n").map(str::to_owned).collect())
    };
    let detail = lines_of(&files[0])?;
    assert_eq!(detail.len(), 9, "{detail:#?}");
    assert_eq!(
        detail[..8],
        [
            "#支付宝业务明细查询",
            account.as_str(),
            range.as_str(),
            DETAIL_START,
            DETAIL_HEADER,
            DETAIL_END,
            "#交易合计：0笔，商家实收共0.00元，商家优惠共0.00元",
            "#退款合计：0笔，商家实收退款共0.00元，商家优惠退款共0.00元",
        ]
    );
    assert!(detail[8].starts_with("#导出时间：["), "{}", detail[8]);
    let summary = lines_of(&files[1])?;
    assert_eq!(summary.len(), 8, "{summary:#?}");
    assert_eq!(
        summary[..7],
        [
            "#支付宝业务汇总查询",
            account.as_str(),
            range.as_str(),
            SUMMARY_START,
            SUMMARY_HEADER,
            "合计,,0,0,0.00,0.00,0.00,0.00,0.00,0.00,0.00,0.00",
            SUMMARY_END,
        ]
    );
    assert_eq!(summary[7], detail[8], "one export time");

    // The product's reader: no rows, totals present and consistent.
    let mut archive = BillArchive::new(std::io::Cursor::new(zip))?;
    assert_eq!(archive.detail_name(), detail_name);
    assert_eq!(archive.summary_name(), Some(summary_name.as_str()));
    let mut reader = archive.detail()?;
    let rows = reader.by_ref().collect::<Result<Vec<_>, _>>()?;
    assert!(rows.is_empty(), "{rows:?}");
    reader.check_totals()?;
    assert_eq!(reader.header_lines().len(), 4);
    assert!(reader.footer().ended);
    assert_eq!(reader.footer().payments, Some(Totals::default()));
    assert_eq!(reader.footer().refunds, Some(Totals::default()));
    assert_eq!(*reader.counted(), Counted::default());
    drop(reader);
    let summary = archive.summary()?.ok_or_else(|| err("no summary"))?;
    assert!(summary.rows.is_empty(), "{:?}", summary.rows);
    let total = summary.total.ok_or_else(|| err("no 合计"))?;
    assert_eq!(
        total,
        alipay::bill::SummaryRow {
            store_id: "合计".to_owned(),
            ..Default::default()
        }
    );
    Ok(())
}

#[tokio::test]
async fn an_empty_day_is_bill_not_exist_or_an_empty_file_by_rule() -> TestResult {
    use chrono::Datelike;
    let h = Harness::start().await?;
    let client = client(&h)?;
    let seller_id = h.running.sandbox().identity().seller_id.clone();
    // A day without any payment or refund, once its bill is ready.
    let day = advance_to_next_day(&h, 1).await?;
    let next = next_day(day)?;
    advance_to(&h, beijing_at(next, 9, 0, 0)?).await?;
    let request = BillDownloadUrlRequest::trade_day(day);
    assert_no_bill(&client, &request, "isp.bill_not_exist").await?;

    let rules = h
        .control("/sandbox/rules", json!({"empty_bill": "empty_file"}))
        .await?;
    assert_eq!(rules["empty_bill"], "empty_file");
    // A bill not generated yet is still `isp.bill_not_exist`.
    assert_no_bill(
        &client,
        &BillDownloadUrlRequest::trade_day(next),
        "isp.bill_not_exist",
    )
    .await?;
    let response = bill_response(&client, &request).await?;
    assert_eq!(
        response.bill_file_code.as_deref(),
        Some("EMPTY_DATA_WITH_BILL_FILE")
    );
    let label = day.format("%Y%m%d").to_string();
    assert!(
        response
            .bill_download_url
            .contains(&format!("downloadFileName={seller_id}0156_{label}.csv.zip")),
        "{}",
        response.bill_download_url
    );
    let zip = client.download_bill(&response.bill_download_url).await?;
    check_empty_zip(&zip, &seller_id, (&label, day, next))?;

    // An empty month likewise, once its bill is ready.
    advance_to(&h, beijing_at(day_of_next_month(day, 3)?, 9, 0, 0)?).await?;
    let month = BillDownloadUrlRequest::trade_month(day.year(), day.month());
    let response = bill_response(&client, &month).await?;
    assert_eq!(
        response.bill_file_code.as_deref(),
        Some("EMPTY_DATA_WITH_BILL_FILE")
    );
    let first = day.with_day(1).ok_or_else(|| err("date"))?;
    let zip = client.download_bill(&response.bill_download_url).await?;
    check_empty_zip(
        &zip,
        &seller_id,
        (
            &day.format("%Y%m").to_string(),
            first,
            day_of_next_month(day, 1)?,
        ),
    )?;

    // Back to the default.
    h.control("/sandbox/rules", json!({"empty_bill": "not_exist"}))
        .await?;
    assert_no_bill(&client, &request, "isp.bill_not_exist").await?;
    Ok(())
}

fn parse_rfc3339(value: &Value) -> TestResult<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(value.as_str().ok_or_else(|| err("not a time"))?)?.to_utc())
}

#[test]
fn synth_bill_parses_back_to_its_orders_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let date = NaiveDate::from_ymd_opt(2026, 11, 25).ok_or_else(|| err("date"))?;
    let options = SynthOptions {
        seed: 42,
        refund_percent: 10,
        ..SynthOptions::new(date, 1000, dir.path().join("a"))
    };
    let report = synth_bill(&options)?;
    assert_eq!(report.rows, 1000);
    assert_eq!(report.payments + report.refunds, 1000);
    assert!(report.refunds > 0);
    let zip = std::fs::read(&report.zip_path)?;
    assert_eq!(
        report.zip_path.file_name().and_then(|n| n.to_str()),
        Some("20880000000000010156_20261125.csv.zip")
    );
    for (_, flags, local_flags) in raw_entries(&zip)? {
        assert_eq!((flags & 0x800, local_flags & 0x800), (0, 0));
    }
    let bill = parse_zip(&zip)?;
    assert_eq!(bill.records.len(), 1000);
    bill.check_totals()?;
    assert!(bill.records.iter().any(|r| r.subject.contains(',')));

    // Every order in the orders file is in the bill exactly: its payment row and each refund.
    let mut rows: BTreeMap<(String, Option<String>), &alipay::bill::BillRecord> = BTreeMap::new();
    for record in &bill.records {
        assert_eq!(beijing_day(record.finished_at), date);
        let key = (
            record.out_trade_no.clone(),
            record.refund_request_no.clone(),
        );
        assert!(
            rows.insert(key, record).is_none(),
            "duplicate row {record:?}"
        );
    }
    let orders_text =
        std::fs::read_to_string(orders_path(&options.out_dir, &options.seller_id, date))?;
    let mut matched = 0;
    let mut orders = 0;
    for line in orders_text.lines() {
        let order: Value = serde_json::from_str(line)?;
        orders += 1;
        let out_trade_no = order["out_trade_no"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let payment = rows
            .get(&(out_trade_no.clone(), None))
            .ok_or_else(|| err(format!("no payment row for {out_trade_no}")))?;
        assert_eq!(payment.kind, RecordKind::Payment);
        assert_eq!(
            payment.trade_no,
            order["trade_no"].as_str().unwrap_or_default()
        );
        assert_eq!(Some(payment.amount.get()), order["amount_fen"].as_i64());
        assert_eq!(
            payment.subject,
            order["subject"].as_str().unwrap_or_default()
        );
        assert_eq!(payment.store_id.as_deref(), order["store_id"].as_str());
        assert_eq!(payment.finished_at, parse_rfc3339(&order["paid_at"])?);
        assert_eq!(payment.created_at, parse_rfc3339(&order["created_at"])?);
        matched += 1;
        let mut refunded = 0;
        for refund in order["refunds"].as_array().cloned().unwrap_or_default() {
            let request = refund["out_request_no"].as_str().map(str::to_owned);
            let row = rows
                .get(&(out_trade_no.clone(), request.clone()))
                .ok_or_else(|| err(format!("no refund row {request:?}")))?;
            assert_eq!(row.kind, RecordKind::Refund);
            assert_eq!(Some(-row.amount.get()), refund["amount_fen"].as_i64());
            assert_eq!(row.finished_at, parse_rfc3339(&refund["refunded_at"])?);
            assert_eq!(row.trade_no, payment.trade_no);
            refunded += refund["amount_fen"].as_i64().unwrap_or_default();
            matched += 1;
        }
        assert_eq!(Some(refunded), order["refunded_fen"].as_i64());
        let status = if Some(refunded) == order["amount_fen"].as_i64() {
            "TRADE_CLOSED"
        } else {
            "TRADE_SUCCESS"
        };
        assert_eq!(order["status"], status);
    }
    assert_eq!(orders, report.payments);
    assert_eq!(matched, 1000, "every row belongs to an order");

    // Deterministic: the same seed gives the same bytes.
    let again = synth_bill(&SynthOptions {
        out_dir: dir.path().join("b"),
        ..options.clone()
    })?;
    assert_eq!(std::fs::read(&again.zip_path)?, zip);
    assert_eq!(std::fs::read_to_string(&again.orders_path)?, orders_text);
    Ok(())
}

#[test]
fn synth_bill_subcommand_reports_speed_and_size() -> TestResult {
    let dir = tempfile::tempdir()?;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_alipay-sandbox"))
        .args([
            "synth-bill",
            "--date",
            "2026-01-02",
            "--rows",
            "300",
            "--seed",
            "7",
        ])
        .arg("--out")
        .arg(dir.path())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("synth-bill: 300 rows ("), "{stdout}");
    assert!(stdout.contains("rows/s"), "{stdout}");
    assert!(stdout.contains("MiB)"), "{stdout}");
    let zip = std::fs::read(dir.path().join("20880000000000010156_20260102.csv.zip"))?;
    assert_eq!(parse_zip(&zip)?.records.len(), 300);
    assert!(
        dir.path()
            .join("20880000000000010156_20260102.orders.jsonl")
            .exists()
    );
    Ok(())
}
