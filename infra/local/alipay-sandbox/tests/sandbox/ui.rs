//! The web page: HTML over plain HTTP (escaping, links, buttons as forms that redirect back),
//! and one end-to-end run in headless Chromium: load a precreated order's page, see its QR
//! code, click Scan then Pay, and check the signed notification that payment sends.

use crate::common::*;
use alipay_sandbox::trade::Stage;
use serde_json::{Value, json};
use std::time::Duration;
use test_support::browser::{self, Browser};

/// A client that shows redirects instead of following them.
fn no_redirects() -> TestResult<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()?)
}

async fn get_page(http: &reqwest::Client, url: &str) -> TestResult<(u16, String, String)> {
    let response = http.get(url).send().await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((status, content_type, response.text().await?))
}

/// POSTs a button's form (empty urlencoded body, as a browser sends it); returns the
/// status and the `Location` of the redirect.
async fn press(http: &reqwest::Client, url: &str) -> TestResult<(u16, String)> {
    let response = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await?;
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((response.status().as_u16(), location))
}

async fn stage(harness: &Harness, out_trade_no: &str) -> TestResult<Stage> {
    harness
        .running
        .sandbox()
        .trade(out_trade_no)
        .await
        .map(|t| t.stage)
        .ok_or_else(|| err(format!("no trade {out_trade_no}")))
}

#[tokio::test]
async fn page_escapes_merchant_input_and_its_buttons_redirect_back() -> TestResult {
    // `&` in the subject needs the lenient subject rule.
    let harness = Harness::start_with(|c| c.rules.subject_special_chars = true).await?;
    let http = no_redirects()?;
    let subject = r#"<script>alert("x")</script> & '咖啡'"#;
    let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;咖啡&#39;";
    let node = harness
        .call(
            PRECREATE,
            json!({"out_trade_no": "UI_QR_1", "total_amount": "12.50", "subject": subject,
                   "body": "<img src=x onerror=alert(1)>"}),
        )
        .await?;
    assert_success(&node);
    let qr_code = node["qr_code"].as_str().unwrap_or_default().to_owned();
    harness
        .pay("UI_BAR_1", "3.00", &auth_code("00", 0))
        .await
        .map(|n| assert_success(&n))?;

    // The list: newest first, escaped, with links.
    let (status, content_type, html) = get_page(&http, &harness.url("/")).await?;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(html.contains(escaped), "{html}");
    assert!(
        !html.contains("<script>alert"),
        "unescaped subject in {html}"
    );
    assert!(html.contains(r#"href="/trades/UI_QR_1""#));
    assert!(html.contains("¥12.50") && html.contains("¥3.00"));
    assert!(html.contains("QR code (precreate)") && html.contains("bar_code (pay)"));
    let (newer, older) = (html.find("UI_BAR_1"), html.find("UI_QR_1"));
    assert!(newer.is_some() && newer < older, "newest first");
    assert!(html.contains("id=\"clock\"") && html.contains("id=\"time-scale\""));

    // One precreated order: QR code inline and as qr.svg, forms, escaped values.
    let page = harness.url("/trades/UI_QR_1");
    let (status, _, html) = get_page(&http, &page).await?;
    assert_eq!(status, 200);
    assert!(html.contains(escaped));
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!html.contains("<img src=x"));
    assert!(html.contains("<svg") && html.contains(&qr_code));
    for action in ["scan", "pay", "abandon"] {
        assert!(
            html.contains(&format!(
                r#"<form method="post" action="/trades/UI_QR_1/{action}" id="{action}-form">"#
            )),
            "{action} form"
        );
    }
    assert!(!html.contains("<script"), "the page needs no JavaScript");
    let svg = http
        .get(harness.url("/trades/UI_QR_1/qr.svg"))
        .send()
        .await?;
    assert_eq!(svg.status().as_u16(), 200);
    assert_eq!(
        svg.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/svg+xml")
    );
    assert!(svg.text().await?.contains("<svg"));

    // The buttons: POST, run the buyer logic, 303 back to the page.
    let scan = harness.url("/trades/UI_QR_1/scan");
    assert_eq!(
        press(&http, &scan).await?,
        (303, "/trades/UI_QR_1?done=scan".to_owned())
    );
    assert_eq!(stage(&harness, "UI_QR_1").await?, Stage::WaitBuyerPay);
    assert_eq!(
        press(&http, &scan).await?.0,
        303,
        "scanning again is harmless"
    );
    assert_eq!(
        press(&http, &harness.url("/trades/UI_QR_1/abandon")).await?,
        (303, "/trades/UI_QR_1?done=abandon".to_owned())
    );
    let trade = harness.running.sandbox().trade("UI_QR_1").await;
    assert!(trade.is_some_and(|t| t.abandoned));
    let pay = harness.url("/trades/UI_QR_1/pay");
    assert_eq!(
        press(&http, &pay).await?,
        (303, "/trades/UI_QR_1?done=pay".to_owned())
    );
    assert_eq!(stage(&harness, "UI_QR_1").await?, Stage::TradeSuccess);
    let (_, _, html) = get_page(&http, &format!("{page}?done=pay")).await?;
    assert!(html.contains("id=\"flash\" class=\"flash ok\">Paid."));

    // A refused step comes back as a message on the page.
    let (status, location) = press(&http, &pay).await?;
    assert_eq!(status, 303);
    assert!(location.starts_with("/trades/UI_QR_1?error="), "{location}");
    let (_, _, html) = get_page(&http, &harness.url(&location)).await?;
    assert!(
        html.contains("Not done: the trade is already paid"),
        "{html}"
    );
    // The message comes from the query string, so it is escaped like everything else.
    let (_, _, html) = get_page(
        &http,
        &format!("{page}?error=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E"),
    )
    .await?;
    assert!(html.contains("Not done: &lt;img src=x onerror=alert(1)&gt;"));

    // A barcode payment has no QR code; unknown orders are 404.
    let (status, _, html) = get_page(&http, &harness.url("/trades/UI_BAR_1")).await?;
    assert_eq!(status, 200);
    assert!(html.contains("no QR code to show") && !html.contains("<svg"));
    assert!(html.contains(r#"<button type="submit" id="pay-button" class="" disabled>"#));
    let svg = http
        .get(harness.url("/trades/UI_BAR_1/qr.svg"))
        .send()
        .await?;
    assert_eq!(svg.status().as_u16(), 404);
    let (status, _, html) = get_page(&http, &harness.url("/trades/NO_SUCH")).await?;
    assert_eq!(status, 404);
    assert!(html.contains("No order"));
    assert_eq!(
        press(&http, &harness.url("/trades/NO_SUCH/pay")).await?,
        (303, "/trades/NO_SUCH".to_owned())
    );
    harness.running.shutdown().await;
    Ok(())
}

/// What the trade page shows, read from the DOM Chromium rendered.
const PAGE_STATE: &str = r#"(() => {
    const svg = document.querySelector('#qr svg');
    const path = svg && svg.querySelector('path');
    const form = id => {
        const f = document.getElementById(id);
        return f && { method: f.method, action: f.getAttribute('action'),
                      disabled: f.querySelector('button').disabled };
    };
    const badge = document.querySelector('h1 [data-stage]');
    return {
        stage: badge && badge.dataset.stage,
        qr_width: svg ? svg.getBoundingClientRect().width : 0,
        qr_path: path ? path.getAttribute('d').length : 0,
        qr_text: (document.getElementById('qr-code') || {}).textContent,
        subject: (document.getElementById('subject') || {}).textContent,
        scripts: document.scripts.length,
        scan: form('scan-form'), pay: form('pay-form'), abandon: form('abandon-form'),
    };
})()"#;

fn stage_is(stage: &str, query: &str) -> String {
    format!(
        "document.readyState === 'complete' && location.search === '{query}' && \
         (document.querySelector('h1 [data-stage]') || {{dataset: {{}}}}).dataset.stage === '{stage}'"
    )
}

#[tokio::test]
async fn chromium_scans_and_pays_on_the_trade_page() -> TestResult {
    let started = std::time::Instant::now();
    let harness = Harness::start_with(|c| c.rules.subject_special_chars = true).await?;
    let receiver = Receiver::failing_first(0).await?;
    let out_trade_no = "UI_E2E_1";
    let subject = r#"拿铁 <b>大杯</b> & "oat""#;
    let node = harness
        .call_notify(
            PRECREATE,
            json!({"out_trade_no": out_trade_no, "total_amount": "25.80", "subject": subject}),
            &receiver.url,
        )
        .await?;
    assert_success(&node);
    let qr_code = node["qr_code"].as_str().unwrap_or_default().to_owned();
    let page = harness.url(&format!("/trades/{out_trade_no}"));
    let scratch = tempfile::tempdir()?;

    // One screenshot of the page as a person first sees it (kept only in the temp dir; set
    // SANDBOX_UI_SCREENSHOT=/some/file.png to keep a copy).
    let png = scratch.path().join("trade.png");
    browser::screenshot(&page, &png, scratch.path()).await?;
    assert!(
        std::fs::metadata(&png)?.len() > 10_000,
        "a blank screenshot?"
    );
    if let Some(keep) = std::env::var_os("SANDBOX_UI_SCREENSHOT") {
        std::fs::copy(&png, keep)?;
    }

    let mut chromium = Browser::launch(scratch.path()).await?;
    let driven = drive(
        &mut chromium,
        &harness,
        &page,
        out_trade_no,
        subject,
        &qr_code,
    )
    .await;
    let log = chromium.log_tail();
    chromium.close().await?;
    driven.map_err(|e| err(format!("{e}\n--- chromium log (tail) ---\n{log}")))?;

    // The scan and the payment sent their notifications; they verify with the sandbox's
    // Alipay public key.
    let received = receiver.wait_for(2).await?;
    let scanned = verify_notification(&harness, &received[0].body)?;
    assert_eq!(scanned["trade_status"], "WAIT_BUYER_PAY");
    let fields = verify_notification(&harness, &received[1].body)?;
    assert_eq!(fields["out_trade_no"], out_trade_no);
    assert_eq!(fields["trade_status"], "TRADE_SUCCESS");
    assert_eq!(fields["total_amount"], "25.80");
    assert_eq!(fields["subject"], subject);
    assert_eq!(stage(&harness, out_trade_no).await?, Stage::TradeSuccess);
    harness.running.shutdown().await;
    eprintln!("chromium end-to-end took {:?}", started.elapsed());
    Ok(())
}

async fn drive(
    chromium: &mut Browser,
    harness: &Harness,
    page: &str,
    out_trade_no: &str,
    subject: &str,
    qr_code: &str,
) -> TestResult {
    chromium.goto(page).await?;
    let shown = chromium.eval(PAGE_STATE).await?;
    assert_eq!(shown["stage"], "AWAITING_SCAN", "{shown}");
    assert!(
        shown["qr_width"].as_f64().unwrap_or(0.0) >= 200.0,
        "{shown}"
    );
    assert!(shown["qr_path"].as_u64().unwrap_or(0) > 200, "{shown}");
    assert_eq!(shown["qr_text"], qr_code);
    assert_eq!(shown["subject"], subject, "escaped in HTML, shown as typed");
    assert_eq!(shown["scripts"], 0, "{shown}");
    for action in ["scan", "pay", "abandon"] {
        assert_eq!(
            shown[action],
            json!({"method": "post", "action": format!("/trades/{out_trade_no}/{action}"),
                   "disabled": false}),
        );
    }

    let wait = Duration::from_secs(20);
    chromium.click("#scan-button").await?;
    chromium
        .wait_until(&stage_is("WAIT_BUYER_PAY", "?done=scan"), wait)
        .await?;
    let shown = chromium.eval(PAGE_STATE).await?;
    assert_eq!(shown["scan"]["disabled"], true, "{shown}");
    assert_eq!(shown["pay"]["disabled"], false, "{shown}");

    chromium.click("#pay-button").await?;
    chromium
        .wait_until(&stage_is("TRADE_SUCCESS", "?done=pay"), wait)
        .await?;
    let shown = chromium.eval(PAGE_STATE).await?;
    assert_eq!(shown["pay"]["disabled"], true, "{shown}");

    // Reloading shows both notifications (the scan's and the payment's) as delivered (the
    // receiver answered `success`).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        chromium.goto(page).await?;
        let delivered = chromium
            .eval("document.querySelectorAll('.notification[data-delivered=\"true\"]').length")
            .await?;
        if delivered == json!(2) {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(err("the page never showed the notifications as delivered"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let attempt = chromium
        .eval("document.querySelector('.notification table.attempts tbody tr').textContent")
        .await?;
    assert!(
        attempt
            .as_str()
            .is_some_and(|t| t.contains("200") && t.contains("success")),
        "{attempt}"
    );

    // The list links to the trade and shows it paid.
    chromium.goto(&harness.url("/")).await?;
    let row: Value = chromium
        .eval(&format!(
            "(() => {{ const r = document.querySelector('tr[data-out-trade-no=\"{out_trade_no}\"]'); \
             return r && {{ stage: r.querySelector('[data-stage]').dataset.stage, \
             href: r.querySelector('a').getAttribute('href') }}; }})()"
        ))
        .await?;
    assert_eq!(
        row,
        json!({"stage": "TRADE_SUCCESS", "href": format!("/trades/{out_trade_no}")})
    );
    Ok(())
}
