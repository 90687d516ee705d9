//! Writes the seed corpora of the fuzz targets, `corpus/<target>/<seed>`, from the project's
//! fixtures: Alipay's published signed notification and `alipay.trade.pay` answer, bills made by
//! the sandbox's bill writer, and the merchant API's documented request shapes. The output is
//! the same on every run (no keys are made, no clock is read), so the committed corpora can be
//! regenerated and compared:
//!
//! ```sh
//! cargo run --manifest-path shared/fuzz/Cargo.toml --features seeds --bin seeds -- shared/fuzz/corpus
//! ```

use alipay::Fen;
use alipay::api::{ApiRequest, PayRequest, PrecreateRequest};
use alipay_f2f_fuzz::METHODS;
use alipay_f2f_fuzz::auth_input::{self, NOW, NOW_SECONDS, SIGN};
use alipay_f2f_fuzz::fixtures::{NOTIFY_PARAMS, PAY_NODE, PAY_SIGN};
use alipay_f2f_fuzz::signed_response::{ERROR_NODE, SIGN_UNESCAPED};
use alipay_sandbox::bill::format::{BillWriter, Kind, Period, Row};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use std::error::Error;
use std::fs;
use std::io::{Cursor, Read, Write};
use std::path::PathBuf;
use zip::write::SimpleFileOptions;

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

/// A target's seeds: file name and content.
type Seeds = Vec<(String, Vec<u8>)>;

fn main() -> Result<()> {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        return Err("usage: seeds <corpus directory>".into());
    };
    let corpora: [(&str, Seeds); 8] = [
        ("notify_verify", notify_verify()?),
        ("notify_signed", notify_signed()?),
        ("response_verify", response_verify()),
        ("response_signed", response_signed()),
        ("bill_zip", bill_zip()?),
        ("bill_csv", bill_csv()?),
        ("merchant_body", merchant_body()),
        ("merchant_auth", merchant_auth()),
    ];
    for (target, seeds) in corpora {
        let dir = out.join(target);
        fs::create_dir_all(&dir)?;
        for (name, bytes) in &seeds {
            fs::write(dir.join(name), bytes)?;
        }
        println!("{target}: {} seeds", seeds.len());
    }
    Ok(())
}

fn seed(name: &str, bytes: impl Into<Vec<u8>>) -> (String, Vec<u8>) {
    (name.to_owned(), bytes.into())
}

/// The published notification's parameters, `sign` and `sign_type` included.
fn published_params() -> Result<Vec<(String, String)>> {
    Ok(serde_json::from_str(NOTIFY_PARAMS)?)
}

/// A form body as Alipay sends it (`+` for spaces).
fn form(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            let k: String = form_urlencoded::byte_serialize(k.as_bytes()).collect();
            let v: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The published parameters with `name` set to `value` (added when absent).
fn with(params: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    let mut params = params.to_vec();
    match params.iter_mut().find(|(k, _)| k == name) {
        Some(pair) => pair.1 = value.to_owned(),
        None => params.push((name.to_owned(), value.to_owned())),
    }
    params
}

fn without(params: &[(String, String)], name: &str) -> Vec<(String, String)> {
    params.iter().filter(|(k, _)| k != name).cloned().collect()
}

fn notify_verify() -> Result<Seeds> {
    let params = published_params()?;
    let published = form(&params);
    let mut reversed = params.clone();
    reversed.reverse();
    let many: Vec<String> = (0..=256).map(|i| format!("k{i}=v")).collect();
    // 语雀 in GBK, percent-encoded as Alipay sends a GBK notification.
    let gbk_subject = format!(
        "{}&subject=%D3%EF%C8%B8",
        form(&with(&without(&params, "subject"), "charset", "gbk"))
    );
    Ok(vec![
        seed("published", published.clone()),
        seed("published-percent-20", published.replace('+', "%20")),
        seed("published-reversed", form(&reversed)),
        seed(
            "published-repeated",
            format!("{published}&trade_status=TRADE_SUCCESS"),
        ),
        seed("published-empty-pairs", format!("&&{published}&&")),
        seed("no-sign", form(&without(&params, "sign"))),
        seed("sign-type-rsa", form(&with(&params, "sign_type", "RSA"))),
        seed("charset-gbk", form(&with(&params, "charset", "gbk"))),
        seed("charset-latin1", form(&with(&params, "charset", "latin1"))),
        seed("gbk-subject", gbk_subject),
        seed(
            "tampered-amount",
            form(&with(&params, "total_amount", "0.01")),
        ),
        seed(
            "refund-fields",
            form(&with(
                &with(
                    &with(&params, "refund_fee", "0.05"),
                    "gmt_refund",
                    "2019-08-15 16:00:00.123",
                ),
                "out_biz_no",
                "R1",
            )),
        ),
        seed("too-many-parameters", many.join("&")),
        seed("undecodable", "sign=%zz&%FF=%FE&a&=&b=%2"),
    ])
}

fn notify_signed() -> Result<Seeds> {
    let params = without(&without(&published_params()?, "sign"), "sign_type");
    let lines = |params: &[(String, String)]| {
        params
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect::<String>()
    };
    let minimal = |status: &str| {
        format!(
            "notify_id=n1\napp_id=2021000000000001\nout_trade_no=T1\ntrade_no=2024010122001\ntrade_status={status}\ntotal_amount=0.10\n"
        )
    };
    Ok(vec![
        seed("published", lines(&params)),
        seed("published-gbk", lines(&with(&params, "charset", "gbk"))),
        seed(
            "published-gb2312-emoji",
            lines(&with(
                &with(&params, "charset", "gb2312"),
                "subject",
                "语雀 😀",
            )),
        ),
        seed(
            "refund",
            lines(&with(
                &with(
                    &with(&params, "refund_fee", "0.05"),
                    "gmt_refund",
                    "2019-08-15 16:00:00.123",
                ),
                "out_biz_no",
                "R1",
            )),
        ),
        seed("wait-buyer-pay", minimal("WAIT_BUYER_PAY")),
        seed("trade-closed", minimal("TRADE_CLOSED")),
        seed(
            "trade-finished-open-id",
            minimal("TRADE_FINISHED")
                + "buyer_open_id=074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5\n",
        ),
        seed("unknown-status", minimal("TRADE_PENDING")),
        seed(
            "amounts",
            minimal("TRADE_SUCCESS").replace("0.10", "99999999999.99")
                + "receipt_amount=0.001\nrefund_fee=-1.00\n",
        ),
        seed(
            "empty-values",
            "notify_id=\napp_id\n=\nbody=\ncharset=utf-8\n",
        ),
    ])
}

fn with_selector(selector: usize, body: &str) -> Vec<u8> {
    let mut input = vec![u8::try_from(selector).unwrap_or_default()];
    input.extend_from_slice(body.as_bytes());
    input
}

/// A representative node of each method's answer, in [`METHODS`] order.
const NODES: [&str; 8] = [
    r#"{"code":"10000","msg":"Success","out_trade_no":"T1","qr_code":"https:\/\/qr.alipay.com\/bax03431ljhokirwl38f00a7"}"#,
    r#"{"code":"10003","msg":" order success pay inprocess","out_trade_no":"B1","trade_no":"2024010122001","buyer_logon_id":"159****5620","total_amount":"88.88"}"#,
    r#"{"code":"10000","msg":"Success","trade_no":"2024010122001","out_trade_no":"T1","trade_status":"TRADE_SUCCESS","total_amount":"88.88","receipt_amount":"88.88","buyer_user_id":"2088101117955611","send_pay_date":"2024-01-01 12:00:00","store_id":"S-01"}"#,
    r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在"}"#,
    r#"{"code":"10000","msg":"Success","trade_no":"2024010122001","out_trade_no":"B1","retry_flag":"N","action":"refund"}"#,
    r#"{"code":"10000","msg":"Success","trade_no":"2024010122001","out_trade_no":"T1","buyer_logon_id":"159****5620","fund_change":"Y","refund_fee":"88.88","gmt_refund_pay":"2024-01-01 12:30:00"}"#,
    r#"{"code":"10000","msg":"Success","trade_no":"2024010122001","out_trade_no":"T1","out_request_no":"R1","refund_amount":"1.00","total_amount":"88.88","refund_status":"REFUND_SUCCESS"}"#,
    r#"{"code":"10000","msg":"Success","bill_download_url":"https:\/\/dwbillcenter.alipay.com\/downloadBillFile.resource?bizType=trade&fileId=X&timestamp=1","bill_file_code":"X"}"#,
];

const GATEWAY_ERROR: &str = r#"{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature","sub_msg":"验签出错"}"#;
const SYSTEM_ERROR: &str = r#"{"code":"20000","msg":"Service Currently Unavailable","sub_code":"ACQ.SYSTEM_ERROR","sub_msg":"系统错误"}"#;

fn method_index(method: &str) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or_default()
}

fn response_verify() -> Seeds {
    let pay = method_index(PayRequest::METHOD);
    let sign = PAY_SIGN.trim();
    let published = format!(r#"{{"alipay_trade_pay_response":{PAY_NODE},"sign":"{sign}"}}"#);
    let mut seeds = vec![
        seed("published", with_selector(pay, &published)),
        seed(
            "published-cert-sn",
            with_selector(
                pay,
                &format!(
                    r#"{{"alipay_trade_pay_response":{PAY_NODE},"alipay_cert_sn":"6bc29aa3b4d406c43483ffea81e08d22","sign":"{sign}"}}"#
                ),
            ),
        ),
        seed(
            "published-sign-first-spaced",
            with_selector(
                pay,
                &format!(
                    "{{\n  \"sign\" : \"{sign}\",\n  \"alipay_trade_pay_response\" : {PAY_NODE}\n}}\n"
                ),
            ),
        ),
        seed(
            "repeated-root-node",
            with_selector(
                pay,
                &format!(
                    r#"{{"alipay_trade_pay_response":{PAY_NODE},"sign":"{sign}","alipay_trade_pay_response":{{"code":"10000","total_amount":"9999.00"}}}}"#
                ),
            ),
        ),
        seed(
            "repeated-sign",
            with_selector(
                pay,
                &format!(
                    r#"{{"alipay_trade_pay_response":{PAY_NODE},"sign":"{sign}","sign":"{sign}"}}"#
                ),
            ),
        ),
        seed(
            "error-response-unsigned",
            with_selector(pay, &format!(r#"{{"error_response":{GATEWAY_ERROR}}}"#)),
        ),
        seed(
            "error-response-signed",
            with_selector(
                pay,
                &format!(r#"{{"error_response":{GATEWAY_ERROR},"sign":"{sign}"}}"#),
            ),
        ),
        seed(
            "system-error-unsigned",
            with_selector(
                pay,
                &format!(r#"{{"alipay_trade_pay_response":{SYSTEM_ERROR}}}"#),
            ),
        ),
        seed(
            "node-not-object",
            with_selector(
                pay,
                &format!(r#"{{"alipay_trade_pay_response":"ENCRYPTED","sign":"{sign}"}}"#),
            ),
        ),
        seed(
            "escaped-slashes",
            with_selector(
                pay,
                &format!(
                    r#"{{"alipay_trade_pay_response":{},"sign":"{sign}"}}"#,
                    PAY_NODE.replace("854***@qq.com", "854***\\/qq.com")
                ),
            ),
        ),
        seed(
            "not-json",
            with_selector(pay, "<html>502 Bad Gateway</html>"),
        ),
    ];
    for (index, (method, node)) in METHODS.iter().zip(NODES).enumerate() {
        let name = alipay::response::node_name(method);
        seeds.push(seed(
            &format!("unsigned-{}", method.replace('.', "-")),
            with_selector(index, &format!(r#"{{"{name}":{node}}}"#)),
        ));
    }
    seeds
}

fn response_signed() -> Seeds {
    let input = |selector: usize, flags: u8, node: &str| {
        let mut input = vec![u8::try_from(selector).unwrap_or_default(), flags];
        input.extend_from_slice(node.as_bytes());
        input
    };
    let mut seeds = vec![
        seed(
            "published-pay",
            input(method_index(PayRequest::METHOD), 0, PAY_NODE),
        ),
        seed(
            "precreate-signed-unescaped",
            input(
                method_index(PrecreateRequest::METHOD),
                SIGN_UNESCAPED,
                NODES[0],
            ),
        ),
        seed("error-response", input(0, ERROR_NODE, GATEWAY_ERROR)),
        seed(
            "system-error",
            input(method_index(PayRequest::METHOD), 0, SYSTEM_ERROR),
        ),
        seed(
            "trade-not-exist",
            input(
                2,
                0,
                r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST"}"#,
            ),
        ),
        seed(
            "missing-fields",
            input(2, 0, r#"{"code":"10000","msg":"Success"}"#),
        ),
    ];
    for (index, (method, node)) in METHODS.iter().zip(NODES).enumerate() {
        seeds.push(seed(&method.replace('.', "-"), input(index, 0, node)));
    }
    seeds
}

fn at(text: &str) -> Result<DateTime<Utc>> {
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")?;
    Ok(alipay::time::beijing()
        .from_local_datetime(&naive)
        .single()
        .ok_or("an ambiguous time")?
        .with_timezone(&Utc))
}

/// A bill made by the sandbox's writer, deflated at `level` (the stored copies of
/// [`stored_zip`] keep the CSV bytes visible to the fuzzer's mutations).
fn written_bill(period: Period, level: i64, rows: &[Row<'_>]) -> Result<Vec<u8>> {
    let exported = at("2024-03-06 05:46:49")?;
    let mut writer = BillWriter::new(
        Cursor::new(Vec::new()),
        "2088123456789012",
        period,
        exported,
        level,
        false,
    )?;
    for row in rows {
        writer.row(row)?;
    }
    let (out, _) = writer.finish(exported)?;
    Ok(out.into_inner())
}

fn day() -> Result<Period> {
    NaiveDate::from_ymd_opt(2024, 3, 5)
        .and_then(Period::day)
        .ok_or_else(|| "no such day".into())
}

fn rows() -> Result<Vec<Row<'static>>> {
    let row = |trade_no,
               out_trade_no,
               kind,
               subject,
               finished: &str,
               store,
               fen,
               refund_no,
               remark|
     -> Result<Row<'static>> {
        Ok(Row {
            trade_no,
            out_trade_no,
            kind,
            subject,
            created_at: at("2024-03-05 10:55:16")?,
            finished_at: at(finished)?,
            store_id: store,
            store_name: store.map(|_| "徐汇店"),
            operator_id: Some("op_1"),
            terminal_id: Some("t.1"),
            buyer_account: "*津水(602***@qq.com)",
            amount: Fen::new(fen),
            receipt: Fen::new(fen),
            refund_request_no: refund_no,
            remark,
        })
    };
    Ok(vec![
        row(
            "2024030522001458860515315453",
            "T1",
            Kind::Payment,
            "咖啡",
            "2024-03-05 10:55:26",
            Some("S-01"),
            1_800,
            None,
            None,
        )?,
        row(
            "2024030522001458860515315454",
            "T2",
            Kind::Payment,
            "\"咖啡,大杯\" 😀",
            "2024-03-05 11:00:05",
            None,
            10,
            None,
            Some("a, \"quoted\" remark"),
        )?,
        row(
            "2024030522001458860515315453",
            "T1",
            Kind::Refund,
            "咖啡",
            "2024-03-05 12:00:00",
            Some("S-01"),
            -300,
            Some("T1_R1"),
            None,
        )?,
        row(
            "2024030522001458860515315455",
            "T3",
            Kind::Payment,
            "茶",
            "2024-03-05 23:59:59",
            Some("S-02"),
            99_999_999,
            None,
            None,
        )?,
    ])
}

/// The entries of a ZIP, in order, as `(raw name, inflated bytes)`.
fn entries(zip: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip))?;
    let mut entries = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index)?;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        entries.push((entry.name_raw().to_vec(), bytes));
    }
    Ok(entries)
}

/// A ZIP of stored (uncompressed) entries.
fn stored_zip(entries: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .name(name.as_slice());
        zip.start_file_with_options(options)?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}

fn bill_zip() -> Result<Seeds> {
    let rows = rows()?;
    let deflated = written_bill(day()?, 6, &rows)?;
    let parts = entries(&deflated)?;
    let unnamed: Vec<_> = parts
        .iter()
        .enumerate()
        .map(|(i, (_, bytes))| (format!("{i}.csv").into_bytes(), bytes.clone()))
        .collect();
    let month = Period::month(2024, 3).ok_or("no such month")?;
    Ok(vec![
        seed("day-deflated", deflated),
        seed("day-level-1", written_bill(day()?, 1, &rows)?),
        seed("empty-day", written_bill(day()?, 1, &[])?),
        seed("month", written_bill(month, 1, &rows[..2])?),
        seed("stored", stored_zip(&parts)?),
        seed("stored-detail-only", stored_zip(&parts[..1])?),
        seed("stored-unnamed", stored_zip(&unnamed)?),
    ])
}

fn bill_csv() -> Result<Seeds> {
    let parts = entries(&written_bill(day()?, 1, &rows()?)?)?;
    let [(_, detail), (_, summary)] = parts.as_slice() else {
        return Err("a bill has two entries".into());
    };
    let empty = entries(&written_bill(day()?, 1, &[])?)?;
    let input = |selector: u8, gbk: &[u8]| [&[selector][..], gbk].concat();
    let replace = |gbk: &[u8], from: &str, to: &str| {
        let (from, to) = (
            encoding_rs::GBK.encode(from).0,
            encoding_rs::GBK.encode(to).0,
        );
        let mut out = Vec::new();
        let mut rest = gbk;
        while let Some(at) = rest.windows(from.len()).position(|w| w == from.as_ref()) {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(&to);
            rest = &rest[at + from.len()..];
        }
        out.extend_from_slice(rest);
        out
    };
    let lf: Vec<u8> = detail.iter().copied().filter(|&b| b != b'\r').collect();
    let truncated = &detail[..detail.len() * 2 / 3];
    Ok(vec![
        seed("detail-read-1", input(0, detail)),
        seed("detail-read-7", input(3, detail)),
        seed("detail-read-4096", input(6, detail)),
        seed("detail-lf", input(4, &lf)),
        seed(
            "detail-old-refund-header",
            input(5, &replace(detail, "退款批次号/请求号", "退款批次号")),
        ),
        seed(
            "detail-totals-mismatch",
            input(2, &replace(detail, "#交易合计：3笔", "#交易合计：4笔")),
        ),
        seed("detail-truncated", input(1, truncated)),
        seed("detail-empty-day", input(7, &empty[0].1)),
        seed("summary-read-2", input(1, summary)),
        seed("summary-read-64", input(4, summary)),
        seed("summary-empty-day", input(7, &empty[1].1)),
    ])
}

fn merchant_body() -> Seeds {
    let face = format!("fp{}b", "a1".repeat(16));
    vec![
        seed(
            "qr-minimal",
            r#"{"amount_fen":1,"subject":"coffee","scene":"qr"}"#,
        ),
        seed(
            "qr-full",
            r#"{"out_trade_no":"T20240101_0001","amount_fen":1800,"subject":"\u5496\u5561 x2","scene":"qr","store_id":"S-01","operator_id":"op_1","terminal_id":"t.1","timeout_seconds":7200}"#,
        ),
        seed(
            "barcode",
            r#"{"out_trade_no":"B1","amount_fen":10000000000,"subject":"咖啡","scene":"barcode","auth_code":"280000000000000001","timeout_seconds":60}"#,
        ),
        seed(
            "barcode-face",
            format!(
                r#"{{"out_trade_no":"B2","amount_fen":1,"subject":"s","scene":"barcode","auth_code":"{face}"}}"#
            ),
        ),
        seed(
            "refund-full",
            r#"{"out_request_no":"T1_R1","amount_fen":300,"reason":"退货","store_id":"S-01","operator_id":"op_1","terminal_id":"t.1"}"#,
        ),
        seed(
            "refund-minimal",
            r#"{"out_request_no":"R1","amount_fen":1}"#,
        ),
        seed(
            "nulls",
            r#"{"out_request_no":"R1","amount_fen":1,"reason":null,"subject":"s","scene":"qr","store_id":null}"#,
        ),
        seed(
            "duplicate-key",
            r#"{"amount_fen":1,"amount_fen":2,"subject":"s","scene":"qr"}"#,
        ),
        seed(
            "float-amount",
            r#"{"amount_fen":1.0,"subject":"s","scene":"qr"}"#,
        ),
        seed(
            "string-amount",
            r#"{"amount_fen":"100","subject":"s","scene":"qr"}"#,
        ),
        seed(
            "huge-amount",
            r#"{"amount_fen":18446744073709551616,"subject":"s","scene":"qr","timeout_seconds":-1}"#,
        ),
        seed(
            "unknown-field",
            r#"{"amount_fen":1,"subject":"s","scene":"qr","amount":"1.00"}"#,
        ),
        seed("not-an-object", r#"[{"amount_fen":1}]"#),
        seed(
            "subject-refused",
            "{\"amount_fen\":1,\"subject\":\"a/b=c&d\\u0007\",\"scene\":\"qr\"}",
        ),
    ]
}

fn merchant_auth() -> Seeds {
    let old = (NOW_SECONDS - 301).to_string();
    let nonce = "0123456789abcdef-_XYZ";
    let qr = r#"{"out_trade_no":"T1","amount_fen":1,"subject":"coffee","scene":"qr"}"#;
    let refund = r#"{"out_request_no":"T1_R1","amount_fen":1}"#;
    let signed = SIGN | NOW;
    let input = auth_input::encode;
    vec![
        seed(
            "create",
            input(
                signed,
                ["POST", "/v1/payments", "", "pos-1", "", nonce, ""],
                qr.as_bytes(),
            ),
        ),
        seed(
            "get",
            input(
                signed,
                ["GET", "/v1/payments/T1", "", "pos-2", "", nonce, ""],
                b"",
            ),
        ),
        seed(
            "get-query",
            input(
                signed,
                [
                    "GET",
                    "/v1/payments/T1",
                    "b=2&a=1&a=%E4%B8%AD&c=x+y&d",
                    "pos-1",
                    "",
                    nonce,
                    "",
                ],
                b"",
            ),
        ),
        seed(
            "refund",
            input(
                signed,
                [
                    "POST",
                    "/v1/payments/T1/refunds",
                    "",
                    "pos-1",
                    "",
                    nonce,
                    "",
                ],
                refund.as_bytes(),
            ),
        ),
        seed(
            "binary-body",
            input(
                signed,
                ["POST", "/v1/payments", "", "pos-1", "", nonce, ""],
                &[0xFF, 0x00, 0x81],
            ),
        ),
        seed(
            "unknown-key",
            input(
                signed,
                ["GET", "/v1/payments/T1", "", "pos-9", "", nonce, ""],
                b"",
            ),
        ),
        seed(
            "stale",
            input(
                SIGN,
                ["GET", "/v1/payments/T1", "", "pos-1", &old, nonce, ""],
                b"",
            ),
        ),
        seed(
            "short-nonce",
            input(
                signed,
                ["GET", "/v1/payments/T1", "", "pos-1", "", "abc", ""],
                b"",
            ),
        ),
        seed(
            "undecodable-query",
            input(
                signed,
                ["GET", "/v1/payments", "a=%FF", "pos-1", "", nonce, ""],
                b"",
            ),
        ),
        seed(
            "forged",
            input(
                NOW,
                [
                    "POST",
                    "/v1/payments",
                    "",
                    "pos-1",
                    "",
                    nonce,
                    "c2lnbmF0dXJl",
                ],
                qr.as_bytes(),
            ),
        ),
        seed(
            "headers-missing",
            b"\x03GET\n/v1/payments/T1\n\npos-1".to_vec(),
        ),
    ]
}
