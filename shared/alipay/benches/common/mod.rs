//! Inputs and settings shared by the signing crate's benchmarks.

use std::time::Duration;

/// A `trade_status_sync` notification as Alipay sends it.
pub fn notification_params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("gmt_create", "2024-01-01 12:00:01"),
        ("charset", "utf-8"),
        ("seller_email", "payments@example.com"),
        ("subject", "Coffee order 静安寺店 #0123"),
        ("body", "1 x 拿铁 (大杯), 1 x croissant"),
        ("buyer_id", "2088102177846875"),
        ("invoice_amount", "88.88"),
        ("notify_id", "2024010100222120005046871234567890"),
        (
            "fund_bill_list",
            r#"[{"amount":"88.88","fundChannel":"ALIPAYACCOUNT"}]"#,
        ),
        ("notify_type", "trade_status_sync"),
        ("trade_status", "TRADE_SUCCESS"),
        ("receipt_amount", "88.88"),
        ("buyer_pay_amount", "88.88"),
        ("app_id", "2021004123456789"),
        ("seller_id", "2088721012345678"),
        ("gmt_payment", "2024-01-01 12:00:05"),
        ("notify_time", "2024-01-01 12:00:06"),
        ("version", "1.0"),
        ("out_trade_no", "20240101120000000123"),
        ("total_amount", "88.88"),
        ("trade_no", "2024010122001446871234567890"),
        ("auth_app_id", "2021004123456789"),
        ("buyer_logon_id", "159****5620"),
    ]
}

/// How long each case runs: `BENCH_SECONDS`, or `default_seconds`.
pub fn budget(default_seconds: f64) -> Result<Duration, Box<dyn std::error::Error>> {
    let seconds = match std::env::var("BENCH_SECONDS") {
        Ok(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
            .ok_or_else(|| {
                format!("BENCH_SECONDS={text:?} is not a number of seconds in (0, 3600]")
            })?,
        Err(std::env::VarError::NotPresent) => default_seconds,
        Err(e) => return Err(format!("BENCH_SECONDS: {e}").into()),
    };
    Ok(Duration::from_secs_f64(seconds))
}
