//! `POST /alipay/notify` against the AWS emulator and the Alipay sandbox: notifications the
//! sandbox delivers over HTTP, and crafted ones signed with real keys.

mod common;

use common::*;
use domain::anomaly::AnomalyKind;
use domain::notification::Verdict;
use domain::order::{EventKind, OrderStatus, PaymentSource};
use serde_json::json;

fn kinds(records: &[domain::anomaly::AnomalyRecord]) -> Vec<AnomalyKind> {
    records.iter().map(|r| r.latest.kind).collect()
}

#[tokio::test]
async fn a_paid_qr_order_becomes_paid_by_the_sandboxs_notifications_alone() -> TestResult {
    let s = Stack::start().await?;
    let no = s.create_qr(1234).await?;
    let (status, _) = s
        .env
        .sandbox_post(&format!("/sandbox/trades/{no}/scan"), json!({}))
        .await?;
    assert_eq!(status, 200);
    s.wait_for_deliveries(&no, 1).await?;
    let scanned = s.order(&no).await?;
    assert_eq!(scanned.status(), OrderStatus::Pending);
    assert!(scanned.scanned_at().is_some(), "the scan is recorded");

    s.env
        .sandbox_post(&format!("/sandbox/trades/{no}/pay"), json!({}))
        .await?;
    let paid = s.wait_for(&no, OrderStatus::Paid).await?;
    assert!(paid.alipay_trade_no().is_some());
    assert!(
        paid.buyer().open_id.is_some(),
        "OpenID apps get buyer_open_id"
    );
    assert!(paid.paid_at().is_some());
    let attempts = s.wait_for_deliveries(&no, 2).await?;
    assert!(
        attempts.iter().all(|a| a["success"] == true),
        "every delivery answered success: {attempts:?}"
    );

    let events = s.events(&no).await?;
    let paid_events: Vec<_> = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Paid {
                    source: PaymentSource::Notification,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(paid_events.len(), 1, "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Scanned { .. }))
    );
    let kept = s.kept(&no).await?;
    assert_eq!(kept.len(), 2, "both deliveries kept");
    assert!(kept.iter().all(|k| k.verdict == Verdict::Applied));
    assert!(
        kept.iter()
            .all(|k| k.body.as_deref().is_some_and(|b| b.contains("sign=")))
    );
    assert!(s.anomalies(&no).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn duplicate_late_out_of_order_and_gbk_notifications_converge_once() -> TestResult {
    let s = Stack::start().await?;
    let no = out_trade_no();
    s.env
        .sandbox_post(
            &format!("/sandbox/trades/{no}/notifications/switches"),
            json!({"duplicates": true, "out_of_order": true, "gbk": true, "trade_closed": true}),
        )
        .await?;
    s.create(
        json!({"out_trade_no": no, "amount_fen": 990, "subject": "咖啡 + 蛋糕", "scene": "qr"}),
    )
    .await?;
    // The scan's notifications are delivered before the payment's: with both sent at once
    // their order is the network's, and a WAIT_BUYER_PAY applied after TRADE_SUCCESS is (rightly)
    // no scan.
    s.env
        .sandbox_post(&format!("/sandbox/trades/{no}/scan"), json!({}))
        .await?;
    s.wait_until(&no, "scanned", |order| order.scanned_at().is_some())
        .await?;
    s.env
        .sandbox_post(&format!("/sandbox/trades/{no}/pay"), json!({}))
        .await?;
    s.wait_for(&no, OrderStatus::Paid).await?;
    // WAIT_BUYER_PAY and TRADE_SUCCESS, each twice, then each an older one again.
    let attempts = s.wait_for_deliveries(&no, 6).await?;
    assert!(
        attempts.iter().all(|a| a["success"] == true),
        "{attempts:?}"
    );
    let order = s.order(&no).await?;
    assert_eq!(order.status(), OrderStatus::Paid);
    let events = s.events(&no).await?;
    let paid = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Paid { .. }))
        .count();
    let scans = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Scanned { .. }))
        .count();
    assert_eq!((paid, scans), (1, 1), "{events:?}");
    let kept = s.kept(&no).await?;
    assert!(kept.len() >= 6, "{kept:?}");
    assert!(
        kept.iter()
            .all(|k| matches!(k.verdict, Verdict::Applied | Verdict::AlreadyKnown))
    );
    assert!(s.anomalies(&no).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn forged_notifications_change_nothing_are_recorded_and_not_sent_again() -> TestResult {
    let s = Stack::start().await?;
    let no = s.create_qr(500).await?;
    let order = s.order(&no).await?;
    let genuine = s.fields(&order, "2024010122001400001", "TRADE_SUCCESS");

    // The sandbox signs with a signature that does not match.
    s.env
        .sandbox_post(
            &format!("/sandbox/trades/{no}/notifications/switches"),
            json!({"bad_signature": true, "wait_buyer_pay": false}),
        )
        .await?;
    s.env
        .sandbox_post(&format!("/sandbox/trades/{no}/pay"), json!({}))
        .await?;
    let attempts = s.wait_for_deliveries(&no, 1).await?;
    assert_eq!(attempts[0]["success"], true, "a forgery is not sent again");

    // Tampered after signing: the amount raised.
    let signed = s.sign(&genuine, &s.alipay_key, encoding_rs::UTF_8)?;
    let tampered = signed.replace("total_amount=5.00", "total_amount=0.01");
    assert_ne!(tampered, signed);
    // Signed with another key than Alipay's.
    let wrong_key = s.sign(&genuine, &s.wrong_key, encoding_rs::UTF_8)?;
    // Not a notification at all.
    for body in [tampered.as_str(), wrong_key.as_str(), "hello", ""] {
        let (status, text) = s.post(body).await?;
        assert_eq!((status, text.as_str()), (200, "success"), "{body}");
    }

    // The sandbox's trade is paid, but nothing here moved: a query would find it.
    let order = s.order(&no).await?;
    assert_eq!(order.status(), OrderStatus::Pending);
    assert_eq!(s.events(&no).await?.len(), order.version() as usize);
    let anomalies = s.anomalies(&no).await?;
    assert_eq!(kinds(&anomalies), vec![AnomalyKind::UntrustedNotification]);
    assert_eq!(anomalies[0].occurrences, 3, "sandbox, tampered, wrong key");
    let kept = s.kept(&no).await?;
    assert_eq!(kept.len(), 3);
    assert!(kept.iter().all(|k| k.verdict == Verdict::Untrusted));
    Ok(())
}

#[tokio::test]
async fn notifications_for_another_app_seller_amount_or_order_are_anomalies() -> TestResult {
    let s = Stack::start().await?;
    let no = s.create_qr(500).await?;
    let order = s.order(&no).await?;
    let base = s.fields(&order, "2024010122001400002", "TRADE_SUCCESS");
    let variant = |key: &str, value: &str| {
        let mut fields = base.clone();
        fields.insert(key.to_owned(), value.to_owned());
        fields
    };
    let cases = [
        (
            variant("app_id", "2021999999999999"),
            AnomalyKind::ForeignNotification,
        ),
        (
            variant("seller_id", "2088999999999999"),
            AnomalyKind::ForeignNotification,
        ),
        (variant("total_amount", "5.01"), AnomalyKind::AmountMismatch),
    ];
    for (fields, _) in &cases {
        let body = s.sign(fields, &s.alipay_key, encoding_rs::UTF_8)?;
        assert_eq!(s.post(&body).await?, (200, "success".to_owned()));
    }
    let order_after = s.order(&no).await?;
    assert_eq!(order_after, order, "nothing changed");
    let mut expected: Vec<AnomalyKind> = cases.iter().map(|(_, k)| *k).collect();
    expected.sort();
    expected.dedup();
    let mut seen = kinds(&s.anomalies(&no).await?);
    seen.sort();
    assert_eq!(seen, expected);

    // An order this system never created.
    let ghost = out_trade_no();
    let mut fields = base.clone();
    fields.insert("out_trade_no".into(), ghost.clone());
    let body = s.sign(&fields, &s.alipay_key, encoding_rs::UTF_8)?;
    assert_eq!(s.post(&body).await?, (200, "success".to_owned()));
    assert_eq!(
        kinds(&s.anomalies(&ghost).await?),
        vec![AnomalyKind::UnknownOrder]
    );
    assert_eq!(s.kept(&ghost).await?[0].verdict, Verdict::UnknownOrder);
    Ok(())
}

#[tokio::test]
async fn plus_signs_and_gbk_bodies_verify_and_apply() -> TestResult {
    let s = Stack::start().await?;
    for (subject, encoding) in [
        ("1+1 = 2 %2B", encoding_rs::UTF_8),
        ("咖啡+蛋糕 套餐", encoding_rs::GBK),
    ] {
        let no = s.create_qr(700).await?;
        let order = s.order(&no).await?;
        let mut fields = s.fields(&order, &format!("2024{}", &no[..10]), "TRADE_SUCCESS");
        fields.insert("subject".into(), subject.into());
        fields.insert("body".into(), "a+b%2Bc".into());
        if encoding == encoding_rs::GBK {
            fields.insert("charset".into(), "gbk".into());
        }
        let body = s.sign(&fields, &s.alipay_key, encoding)?;
        assert!(body.contains("%2B"), "{body}");
        assert_eq!(s.post(&body).await?, (200, "success".to_owned()));
        assert_eq!(s.order(&no).await?.status(), OrderStatus::Paid, "{subject}");
    }
    Ok(())
}

#[tokio::test]
async fn a_payment_for_a_closed_order_or_a_second_trade_is_an_anomaly() -> TestResult {
    let s = Stack::start().await?;
    let no = s.create_qr(300).await?;
    let order = s.order(&no).await?;
    let closed = s.fields(&order, "2024010122001400003", "TRADE_CLOSED");
    let body = s.sign(&closed, &s.alipay_key, encoding_rs::UTF_8)?;
    assert_eq!(s.post(&body).await?, (200, "success".to_owned()));
    let order = s.wait_for(&no, OrderStatus::Closed).await?;
    let paid = s.fields(&order, "2024010122001400003", "TRADE_SUCCESS");
    let body = s.sign(&paid, &s.alipay_key, encoding_rs::UTF_8)?;
    assert_eq!(s.post(&body).await?, (200, "success".to_owned()));
    assert_eq!(
        s.order(&no).await?.status(),
        OrderStatus::Closed,
        "never reopened"
    );
    assert_eq!(
        kinds(&s.anomalies(&no).await?),
        vec![AnomalyKind::PaidAfterClose]
    );

    let other = s.create_qr(300).await?;
    let order = s.order(&other).await?;
    for trade_no in ["2024010122001400004", "2024010122001400005"] {
        let body = s.sign(
            &s.fields(&order, trade_no, "TRADE_SUCCESS"),
            &s.alipay_key,
            encoding_rs::UTF_8,
        )?;
        assert_eq!(s.post(&body).await?, (200, "success".to_owned()));
    }
    let paid = s.order(&other).await?;
    assert_eq!(paid.alipay_trade_no(), Some("2024010122001400004"));
    assert_eq!(
        kinds(&s.anomalies(&other).await?),
        vec![AnomalyKind::TradeNoMismatch]
    );
    Ok(())
}

#[tokio::test]
async fn a_refund_nobody_here_asked_for_is_an_anomaly_and_late_notifications_change_nothing()
-> TestResult {
    let s = Stack::start().await?;
    let no = s.create_qr(1000).await?;
    let order = s.order(&no).await?;
    let trade_no = "2024010122001400006";
    let paid = s.sign(
        &s.fields(&order, trade_no, "TRADE_SUCCESS"),
        &s.alipay_key,
        encoding_rs::UTF_8,
    )?;
    assert_eq!(s.post(&paid).await?, (200, "success".to_owned()));
    let order = s.wait_for(&no, OrderStatus::Paid).await?;
    // A late WAIT_BUYER_PAY, and the same TRADE_SUCCESS again.
    let late = s.sign(
        &s.fields(&order, trade_no, "WAIT_BUYER_PAY"),
        &s.alipay_key,
        encoding_rs::UTF_8,
    )?;
    assert_eq!(s.post(&late).await?, (200, "success".to_owned()));
    assert_eq!(s.post(&paid).await?, (200, "success".to_owned()));
    // A partial refund made elsewhere (Alipay's merchant portal): no refund here has it.
    let mut refund = s.fields(&order, trade_no, "TRADE_SUCCESS");
    refund.insert("refund_fee".into(), "2.50".into());
    refund.insert("gmt_refund".into(), "2024-01-01 12:00:00.123".into());
    refund.insert("out_biz_no".into(), "PORTAL_1".into());
    let refund = s.sign(&refund, &s.alipay_key, encoding_rs::UTF_8)?;
    assert_eq!(s.post(&refund).await?, (200, "success".to_owned()));

    assert_eq!(s.order(&no).await?, order, "nothing changed after PAID");
    let kept = s.kept(&no).await?;
    let verdicts: Vec<Verdict> = kept.iter().map(|k| k.verdict).collect();
    assert_eq!(
        verdicts,
        vec![
            Verdict::Applied,
            Verdict::AlreadyKnown,
            Verdict::AlreadyKnown,
            Verdict::Contradicts
        ]
    );
    let notice = kept[3]
        .refund
        .clone()
        .ok_or_else(|| err("no refund notice"))?;
    assert_eq!(
        (notice.refund_fee_fen, notice.out_biz_no.as_deref()),
        (250, Some("PORTAL_1"))
    );
    assert_eq!(
        kinds(&s.anomalies(&no).await?),
        vec![AnomalyKind::UnrequestedRefund]
    );
    Ok(())
}

/// A barcode order paid here whose trade Alipay then reports closed with the whole amount
/// refunded: the cancel sent while the payment was unclear refunded it (its answer was lost,
/// and the payment's late notification made the order PAID). The order follows the money.
#[tokio::test]
async fn a_cancel_s_refund_notified_after_the_payment_leaves_the_barcode_order_refunded()
-> TestResult {
    let s = Stack::start().await?;
    let code = auth_code("00", 0);
    let no = s
        .create(json!({
            "out_trade_no": out_trade_no(), "amount_fen": 2422,
            "subject": "tea", "scene": "barcode", "auth_code": code,
        }))
        .await?;
    let order = s.wait_for(&no, OrderStatus::Paid).await?;
    // The sandbox's own payment notification, already known from the pay answer.
    s.wait_for_deliveries(&no, 1).await?;
    let trade_no = order
        .alipay_trade_no()
        .ok_or_else(|| err("no trade_no"))?
        .to_owned();
    let mut cancelled = s.fields(&order, &trade_no, "TRADE_CLOSED");
    cancelled.insert("refund_fee".into(), "24.22".into());
    cancelled.insert("gmt_refund".into(), "2024-01-01 12:00:00".into());
    cancelled.insert("out_biz_no".into(), no.clone());
    let cancelled = s.sign(&cancelled, &s.alipay_key, encoding_rs::UTF_8)?;
    for _ in 0..2 {
        assert_eq!(s.post(&cancelled).await?, (200, "success".to_owned()));
    }

    let refunded = s.order(&no).await?;
    assert_eq!(refunded.status(), OrderStatus::Refunded);
    assert_eq!(refunded.refunded_fen(), 2422);
    let verdicts: Vec<Verdict> = s.kept(&no).await?.iter().map(|k| k.verdict).collect();
    assert_eq!(
        verdicts,
        vec![
            Verdict::AlreadyKnown,
            Verdict::Applied,
            Verdict::AlreadyKnown
        ]
    );
    assert_eq!(
        kinds(&s.anomalies(&no).await?),
        vec![AnomalyKind::RefundedByCancel]
    );
    let events = s.events(&no).await?;
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::RefundedByCancel { .. }))
            .count(),
        1,
        "{events:?}"
    );
    Ok(())
}

/// A refund whose answer was lost (its request left it PENDING) is settled by Alipay's refund
/// notification; the notification of a refund settled by its own answer changes nothing.
#[tokio::test]
async fn the_sandbox_s_refund_notifications_settle_a_pending_refund() -> TestResult {
    let s = Stack::start().await?;
    let no = s.paid_qr(1000).await?;
    s.env
        .sandbox_post(
            &format!("/sandbox/trades/{no}/notifications/switches"),
            json!({"refunds": true}),
        )
        .await?;
    // The refund happens at Alipay, but neither its answer nor a refund query gets through.
    s.env
        .fault(json!({"method": "alipay.trade.refund", "drop_connection": true, "apply": true}))
        .await?;
    s.env
        .fault(json!({"method": "alipay.trade.fastpay.refund.query", "drop_connection": true}))
        .await?;
    let (status, answer) = s.refund(&no, "R1", 300).await;
    // PENDING, unless the notification settled it before the request gave up.
    match status {
        202 => assert_eq!(answer["status"], "PENDING", "{answer}"),
        201 => assert_eq!(answer["status"], "SUCCEEDED", "{answer}"),
        other => return Err(err(format!("unexpected {other}: {answer}"))),
    }
    let order = s.wait_for(&no, OrderStatus::PartiallyRefunded).await?;
    let r1 = domain::OutRequestNo::parse("R1")?;
    let settled = order.refund(&r1).ok_or_else(|| err("no refund R1"))?;
    assert_eq!(
        settled.source(),
        Some(domain::order::RefundSource::Notification)
    );
    assert_eq!(order.refunded_fen(), 300);

    // A refund answered at once; its notification arrives after and is already known.
    let (status, done) = s.refund(&no, "R2", 700).await;
    assert_eq!(
        (status, done["status"].as_str()),
        (201, Some("SUCCEEDED")),
        "{done}"
    );
    s.wait_for(&no, OrderStatus::Refunded).await?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let verdicts = loop {
        let kept = s.kept(&no).await?;
        let refunds: Vec<Verdict> = kept
            .iter()
            .filter(|k| k.refund.is_some())
            .map(|k| k.verdict)
            .collect();
        if refunds.len() >= 2 || tokio::time::Instant::now() > deadline {
            break refunds;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // R1's settled it; R2's is already known, unless it overtook the refund's own answer.
    assert_eq!(verdicts.len(), 2, "{verdicts:?}");
    assert_eq!(verdicts[0], Verdict::Applied);
    assert!(matches!(
        verdicts[1],
        Verdict::AlreadyKnown | Verdict::Applied
    ));
    assert!(s.anomalies(&no).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_failure_of_ours_is_answered_so_that_alipay_sends_again() -> TestResult {
    let s = Stack::start().await?;
    let no = s.create_qr(100).await?;
    let order = s.order(&no).await?;
    let body = s.sign(
        &s.fields(&order, "2024010122001400007", "TRADE_SUCCESS"),
        &s.alipay_key,
        encoding_rs::UTF_8,
    )?;
    // The same function on a table that does not exist: every store call fails.
    let broken = Stack::notify_with(
        &s.env,
        aws_adapters::DynamoOrderStore::new(aws_sdk_dynamodb_client(&s.env), "no-such-table"),
    )
    .await?;
    let request = api_gateway_request("POST", "/alipay/notify", &Default::default(), &body);
    let response = broken.handle(request).await;
    assert_eq!(response.status().as_u16(), 500);
    assert_ne!(response.body().to_vec(), b"success".to_vec());
    assert_eq!(s.order(&no).await?, order, "nothing changed");
    // Alipay's retry lands once we are back.
    assert_eq!(s.post(&body).await?, (200, "success".to_owned()));
    assert_eq!(s.order(&no).await?.status(), OrderStatus::Paid);
    Ok(())
}

fn aws_sdk_dynamodb_client(env: &Env) -> aws_adapters::aws_sdk_dynamodb::Client {
    aws_adapters::aws_sdk_dynamodb::Client::new(&env.sdk())
}

#[tokio::test]
async fn a_notification_costs_one_read_and_one_write() -> TestResult {
    let s = Stack::start().await?;
    let no = s.create_qr(1500).await?;
    let order = s.order(&no).await?;
    let body = s.sign(
        &s.fields(&order, "2024010122001400008", "TRADE_SUCCESS"),
        &s.alipay_key,
        encoding_rs::UTF_8,
    )?;
    s.env.aws_calls.reset();
    assert_eq!(s.post(&body).await?, (200, "success".to_owned()));
    let paid = s.env.aws_calls.snapshot();
    s.env.aws_calls.reset();
    assert_eq!(s.post(&body).await?, (200, "success".to_owned()));
    let repeated = s.env.aws_calls.snapshot();
    println!("DynamoDB calls per notification: paid {paid:?}, repeated {repeated:?}");
    let calls = |pairs: &[(&str, u64)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    // The read finds the version the transaction's condition needs; the transaction holds
    // the order, its audit event and the kept notification.
    assert_eq!(
        paid,
        calls(&[("DynamoDB.GetItem", 1), ("DynamoDB.TransactWriteItems", 1)])
    );
    assert_eq!(
        repeated,
        calls(&[("DynamoDB.GetItem", 1), ("DynamoDB.PutItem", 1)])
    );
    Ok(())
}
