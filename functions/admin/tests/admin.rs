//! The console's API against the AWS emulator: a day's orders page by page with filters, an
//! order's audit trail and anomalies, anomalies by status and kind, resolving them (dismiss,
//! accept a payment, refund it), a day's reconciliation report, and who may read and act.

use aws_adapters::DynamoOrderStore;
use aws_adapters::{aws_sdk_dynamodb, aws_sdk_s3, aws_sdk_sqs};
use chrono::{Duration, Utc};
use domain::anomaly::{AlipayFacts, Anomaly, AnomalyKind, FactSource};
use domain::order::{Buyer, NewOrder, Order, PaymentSource};
use domain::ports::{Applied, Claim, OrderStore};
use domain::{OrderAmount, OrderStatus, OutTradeNo, Scene};
use f2f_runtime::AdminConfig;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use test_support::moto::MotoServer;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Console {
    api: admin::WiredAdmin,
    /// The store as the payment functions write it (their audit events name them).
    store: DynamoOrderStore,
    bucket: String,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    _moto: std::sync::Arc<MotoServer>,
}

async fn console() -> TestResult<Console> {
    let moto = MotoServer::shared().await?;
    let sdk = moto.sdk_config();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let table = test_support::unique_name("console");
    aws_adapters::dynamo::schema::create_table(&dynamo, &table).await?;
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let bucket = test_support::unique_name("bills");
    s3.create_bucket().bucket(&bucket).send().await?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name(test_support::unique_name("expiry"))
        .send()
        .await?
        .queue_url
        .ok_or("no queue url")?;
    let config = AdminConfig {
        orders_table: table.clone(),
        bill_bucket: bucket.clone(),
        expiry_queue_url: queue_url.clone(),
    };
    Ok(Console {
        api: admin::wired(&sdk, &config),
        store: DynamoOrderStore::new(dynamo, table).acting_as("pay"),
        bucket,
        s3,
        sqs,
        queue_url,
        _moto: moto,
    })
}

/// A request as API Gateway's JWT authorizer passes it on: `groups` as the
/// `cognito:groups` claim renders, or no verified claims at all.
fn request(method: &str, path_and_query: &str, groups: Option<&str>) -> Request {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut context = json!({
        "accountId": "123456789012", "apiId": "local", "domainName": "localhost",
        "domainPrefix": "localhost", "requestId": format!("req-{}", ulid::Ulid::generate()),
        "routeKey": "$default", "stage": "$default", "time": "01/Jan/2024:00:00:00 +0000",
        "timeEpoch": 1_704_067_200_000_i64,
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                 "sourceIp": "127.0.0.1", "userAgent": "console-test"},
    });
    if let Some(groups) = groups {
        context["authorizer"] = json!({"jwt": {"claims": {
            "sub": "5e1f0c2a", "cognito:username": "li.na", "cognito:groups": groups,
        }, "scopes": null}});
    }
    let event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": {"authorization": "Bearer token"}, "requestContext": context,
        "isBase64Encoded": false,
    });
    lambda_http::request::from_str(&event.to_string()).unwrap_or_default()
}

fn body(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body()).unwrap_or(Value::Null)
}

async fn get(c: &Console, path: &str) -> (u16, Value) {
    let response = c.api.handle(request("GET", path, Some("[viewer]"))).await;
    (response.status().as_u16(), body(&response))
}

/// Stores an order created `minutes_ago`, PAID if asked.
async fn order(
    c: &Console,
    no: &str,
    store_id: &str,
    minutes_ago: i64,
    paid: bool,
) -> TestResult<Order> {
    let created = Utc::now() - Duration::minutes(minutes_ago);
    let new = NewOrder {
        out_trade_no: OutTradeNo::parse(no)?,
        amount: OrderAmount::from_fen(1234).map_err(|e| format!("{e:?}"))?,
        subject: "tea".into(),
        scene: Scene::Barcode,
        store_id: Some(store_id.into()),
        operator_id: None,
        terminal_id: None,
        request_hash: "h".into(),
        expires_at: created + Duration::minutes(5),
    };
    let (claimed, event) = Order::claim(new, created, Duration::seconds(30));
    assert_eq!(c.store.claim(&claimed, &event).await?, Claim::Claimed);
    if !paid {
        return Ok(claimed);
    }
    let transition = claimed.paid(
        format!("2026{no}"),
        created,
        PaymentSource::PayResponse,
        Buyer::default(),
        created,
    )?;
    match c.store.apply(&transition).await? {
        Applied::Applied(order) => Ok(order),
        Applied::Conflict(_) => Err("conflict".into()),
    }
}

fn numbers(page: &Value) -> Vec<String> {
    page["orders"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| o["out_trade_no"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn a_day_of_orders_pages_newest_first_with_filters() -> TestResult {
    let c = console().await?;
    let run = ulid::Ulid::generate().to_string();
    let mut expected = Vec::new();
    for i in 0..7 {
        let no = format!("C{run}{i}");
        order(&c, &no, if i % 2 == 0 { "S1" } else { "S2" }, 10 - i, i < 4).await?;
        expected.insert(0, no);
    }
    let today = domain::beijing_day(Utc::now() - Duration::minutes(10));
    if today != domain::beijing_day(Utc::now() - Duration::minutes(4)) {
        return Ok(()); // The orders straddle Beijing midnight: two days, checked another time.
    }
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/admin/orders?date={today}&limit=3");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = get(&c, &path).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["date"], today.to_string());
        listed.extend(numbers(&page));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "the pages never end");
    }
    assert_eq!(listed, expected, "every order once, newest first");
    assert!(pages >= 3, "pages of three: {pages}");

    let (_, paid) = get(
        &c,
        &format!("/admin/orders?date={today}&status=PAID&limit=100"),
    )
    .await;
    assert_eq!(numbers(&paid), expected[3..].to_vec());
    assert!(
        paid["orders"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|o| o["status"] == "PAID")
    );
    let (_, s2) = get(
        &c,
        &format!("/admin/orders?date={today}&store_id=S2&status=CREATING"),
    )
    .await;
    assert_eq!(
        numbers(&s2),
        vec![expected[1].clone()],
        "the one unpaid order of store S2"
    );
    let (_, other_day) = get(&c, "/admin/orders?date=2001-01-01").await;
    assert_eq!(numbers(&other_day), Vec::<String>::new());
    assert_eq!(other_day["next_cursor"], Value::Null);
    Ok(())
}

#[tokio::test]
async fn bad_listing_parameters_are_refused_with_the_field() -> TestResult {
    let c = console().await?;
    let run = ulid::Ulid::generate().to_string();
    for i in 0..3 {
        order(&c, &format!("B{run}{i}"), "S1", 3 - i, false).await?;
    }
    let today = domain::beijing_day(Utc::now());
    let (_, first) = get(&c, &format!("/admin/orders?date={today}&limit=1")).await;
    let cursor = first["next_cursor"].as_str().unwrap_or("").to_owned();
    assert!(!cursor.is_empty(), "{first}");
    for (path, code, field) in [
        ("/admin/orders".to_owned(), "missing_field", "date"),
        (
            "/admin/orders?date=2026-13-01".to_owned(),
            "invalid_field",
            "date",
        ),
        (
            format!("/admin/orders?date={today}&status=PAYED"),
            "invalid_field",
            "status",
        ),
        (
            format!("/admin/orders?date={today}&limit=0"),
            "invalid_field",
            "limit",
        ),
        (
            format!("/admin/orders?date={today}&limit=101"),
            "invalid_field",
            "limit",
        ),
        (
            format!("/admin/orders?date={today}&page=2"),
            "unknown_field",
            "page",
        ),
        (
            format!("/admin/orders?date={today}&date={today}"),
            "invalid_field",
            "date",
        ),
        // A cursor of another day, and one that is no cursor at all.
        (
            format!("/admin/orders?date=2001-01-01&cursor={cursor}"),
            "invalid_field",
            "cursor",
        ),
        (
            format!("/admin/orders?date={today}&cursor=e30"),
            "invalid_field",
            "cursor",
        ),
        (
            format!("/admin/anomalies?cursor={cursor}"),
            "invalid_field",
            "cursor",
        ),
        (
            "/admin/anomalies?status=closed".to_owned(),
            "invalid_field",
            "status",
        ),
        (
            "/admin/anomalies?kind=odd".to_owned(),
            "invalid_field",
            "kind",
        ),
        (
            "/admin/orders/no%20such".to_owned(),
            "invalid_field",
            "out_trade_no",
        ),
    ] {
        let (status, error) = get(&c, &path).await;
        assert_eq!(
            (status, error["code"].as_str(), error["field"].as_str()),
            (400, Some(code), Some(field)),
            "{path}: {error}"
        );
        assert!(error["message"].is_string());
    }
    Ok(())
}

fn anomaly(no: &OutTradeNo, kind: AnomalyKind) -> Anomaly {
    Anomaly {
        kind,
        out_trade_no: Some(no.clone()),
        order_status: Some(OrderStatus::Paid),
        order_amount_fen: Some(1234),
        facts: AlipayFacts::from(FactSource::Notification),
        detail: "seen in a test".into(),
        seen_at: Utc::now(),
    }
}

#[tokio::test]
async fn an_order_shows_its_audit_trail_and_anomalies() -> TestResult {
    let c = console().await?;
    let no = format!("H{}", ulid::Ulid::generate());
    let paid = order(&c, &no, "S1", 1, true).await?;
    c.store
        .record_anomaly(&anomaly(
            paid.out_trade_no(),
            AnomalyKind::UnrequestedRefund,
        ))
        .await?;

    let (status, detail) = get(&c, &format!("/admin/orders/{no}")).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["order"]["status"], "PAID");
    assert_eq!(detail["order"]["amount_fen"], 1234);
    let timeline = detail["timeline"].as_array().cloned().unwrap_or_default();
    let steps: Vec<(u64, &str, &str)> = timeline
        .iter()
        .map(|e| {
            (
                e["version"].as_u64().unwrap_or(0),
                e["kind"]["type"].as_str().unwrap_or(""),
                e["to"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(steps, vec![(1, "claimed", "CREATING"), (2, "paid", "PAID")]);
    let anomalies = detail["anomalies"].as_array().cloned().unwrap_or_default();
    assert_eq!(anomalies.len(), 1, "{detail}");
    assert_eq!(anomalies[0]["latest"]["kind"], "unrequested_refund");
    assert_eq!(anomalies[0]["status"], "OPEN");

    let (status, missing) = get(&c, "/admin/orders/NO_SUCH_ORDER").await;
    assert_eq!(
        (status, missing["code"].as_str()),
        (404, Some("order_not_found"))
    );
    Ok(())
}

#[tokio::test]
async fn anomalies_are_listed_by_status_and_kind_page_by_page() -> TestResult {
    let c = console().await?;
    let run = ulid::Ulid::generate().to_string();
    let kinds = [
        AnomalyKind::UnrequestedRefund,
        AnomalyKind::PaidAfterClose,
        AnomalyKind::UnrequestedRefund,
    ];
    for (i, kind) in kinds.iter().enumerate() {
        let paid = order(&c, &format!("A{run}{i}"), "S1", 1, true).await?;
        c.store
            .record_anomaly(&anomaly(paid.out_trade_no(), *kind))
            .await?;
    }
    let mut seen = Vec::new();
    let mut path = "/admin/anomalies?limit=2".to_owned();
    loop {
        let (status, page) = get(&c, &path).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["status"], "OPEN");
        for record in page["anomalies"].as_array().into_iter().flatten() {
            seen.push(record["latest"]["kind"].as_str().unwrap_or("").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => path = format!("/admin/anomalies?limit=2&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    let (_, refunds) = get(&c, "/admin/anomalies?status=open&kind=unrequested_refund").await;
    let listed = refunds["anomalies"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 2, "{refunds}");
    assert!(
        listed
            .iter()
            .all(|a| a["latest"]["kind"] == "unrequested_refund")
    );
    let (_, resolved) = get(&c, "/admin/anomalies?status=resolved").await;
    assert_eq!(resolved["anomalies"], json!([]));
    Ok(())
}

#[tokio::test]
async fn every_route_needs_a_verified_member_of_staff() -> TestResult {
    let c = console().await?;
    let today = domain::beijing_day(Utc::now());
    let reads = [
        format!("/admin/orders?date={today}"),
        "/admin/orders/T1".to_owned(),
        "/admin/anomalies".to_owned(),
        "/admin/reports/2026-12-01".to_owned(),
    ];
    for path in &reads {
        let response = c.api.handle(request("GET", path, None)).await;
        let error = body(&response);
        assert_eq!(
            (response.status().as_u16(), error["code"].as_str()),
            (401, Some("unauthenticated")),
            "{path}"
        );
        let response = c.api.handle(request("GET", path, Some("[finance]"))).await;
        let error = body(&response);
        assert_eq!(
            (response.status().as_u16(), error["code"].as_str()),
            (403, Some("forbidden")),
            "{path}"
        );
        for groups in ["[viewer]", "[operator]", "[viewer operator]"] {
            let response = c.api.handle(request("GET", path, Some(groups))).await;
            assert!(
                matches!(response.status().as_u16(), 200 | 404),
                "{path} as {groups}: {}",
                body(&response)
            );
        }
    }
    let response = c
        .api
        .handle(request("DELETE", "/admin/anomalies", Some("[operator]")))
        .await;
    assert_eq!(response.status().as_u16(), 405);
    let response = c
        .api
        .handle(request("GET", "/admin/other", Some("[operator]")))
        .await;
    assert_eq!(response.status().as_u16(), 404);
    Ok(())
}

async fn post(c: &Console, path: &str, groups: &str, json: Value) -> (u16, Value) {
    let mut request = request("POST", path, Some(groups));
    *request.body_mut() = Body::Text(json.to_string());
    let response = c.api.handle(request).await;
    (response.status().as_u16(), body(&response))
}

fn resolve_path(id: &str) -> String {
    format!("/admin/anomalies/{}/resolve", id.replace('/', "%2F"))
}

#[tokio::test]
async fn an_operator_dismisses_an_anomaly_once_and_a_viewer_cannot() -> TestResult {
    let c = console().await?;
    let paid = order(&c, &format!("D{}", ulid::Ulid::generate()), "S1", 1, true).await?;
    let no = paid.out_trade_no().clone();
    c.store
        .record_anomaly(&anomaly(&no, AnomalyKind::UnrequestedRefund))
        .await?;
    let id = format!("{no}/unrequested_refund");
    let path = resolve_path(&id);
    let note = json!({"note": "refunded in the merchant portal by finance"});

    let (status, refused) = post(&c, &path, "[viewer]", note.clone()).await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("forbidden")));
    for (body, code, field) in [
        (
            json!({"note": "x", "action": "refund"}),
            "invalid_field",
            "action",
        ),
        (
            json!({"note": "x", "action": "forgive"}),
            "invalid_field",
            "action",
        ),
        (json!({"action": "dismiss"}), "missing_field", "note"),
        (json!({"note": "   "}), "missing_field", "note"),
        (json!({"note": "y".repeat(501)}), "invalid_field", "note"),
    ] {
        let (status, error) = post(&c, &path, "[operator]", body.clone()).await;
        assert_eq!(
            (status, error["code"].as_str(), error["field"].as_str()),
            (400, Some(code), Some(field)),
            "{body}: {error}"
        );
    }
    let (status, error) = post(&c, &path, "[operator]", json!({"note": "x", "by": "me"})).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let (status, _) = get(&c, "/admin/anomalies?status=resolved").await;
    assert_eq!(status, 200);

    let (status, resolved) = post(&c, &path, "[operator]", note.clone()).await;
    assert_eq!(status, 200, "{resolved}");
    let record = &resolved["anomaly"];
    assert_eq!(record["status"], "RESOLVED");
    assert_eq!(record["resolution"]["by"], "li.na");
    assert_eq!(record["resolution"]["action"], "dismiss");
    assert_eq!(record["resolution"]["note"], note["note"]);
    // Listed as resolved, no longer as open; the order is untouched.
    let (_, open) = get(&c, "/admin/anomalies").await;
    assert_eq!(open["anomalies"], json!([]));
    let (_, done) = get(&c, "/admin/anomalies?status=resolved").await;
    assert_eq!(done["anomalies"][0]["id"], id.as_str());
    assert_eq!(
        c.store.get(&no).await?.map(|o| o.version()),
        Some(paid.version())
    );
    // The same resolution again is answered the same; another one is refused.
    let (status, again) = post(&c, &path, "[operator]", note.clone()).await;
    assert_eq!((status, &again["anomaly"]), (200, record));
    let (status, other) = post(&c, &path, "[operator]", json!({"note": "other"})).await;
    assert_eq!(
        (status, other["code"].as_str()),
        (409, Some("anomaly_resolved"))
    );
    let (status, missing) = post(
        &c,
        &resolve_path("T404/paid_after_close"),
        "[operator]",
        note,
    )
    .await;
    assert_eq!(
        (status, missing["code"].as_str()),
        (404, Some("anomaly_not_found"))
    );
    Ok(())
}

/// An order closed here although Alipay holds its payment, with its `paid_after_close`.
async fn paid_after_close(c: &Console) -> TestResult<(OutTradeNo, String)> {
    let open = order(c, &format!("P{}", ulid::Ulid::generate()), "S1", 1, false).await?;
    let closed = open.closed("expired", Utc::now())?;
    let Applied::Applied(closed) = c.store.apply(&closed).await? else {
        return Err("conflict".into());
    };
    let no = closed.out_trade_no().clone();
    let mut seen = anomaly(&no, AnomalyKind::PaidAfterClose);
    seen.order_status = Some(OrderStatus::Closed);
    seen.facts.trade_no = Some(format!("2026{no}"));
    c.store.record_anomaly(&seen).await?;
    Ok((no.clone(), format!("{no}/paid_after_close")))
}

#[tokio::test]
async fn accepting_a_payment_after_close_makes_the_order_paid_in_the_operator_s_name() -> TestResult
{
    let c = console().await?;
    let (no, id) = paid_after_close(&c).await?;
    let body = json!({"note": "goods handed over", "action": "accept_as_paid"});
    let (status, resolved) = post(&c, &resolve_path(&id), "[operator]", body.clone()).await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(
        resolved["anomaly"]["resolution"]["action"],
        "accept_as_paid"
    );
    let (_, detail) = get(&c, &format!("/admin/orders/{no}")).await;
    assert_eq!(detail["order"]["status"], "PAID");
    assert_eq!(detail["order"]["alipay_trade_no"], format!("2026{no}"));
    assert_eq!(detail["order"]["refundable_fen"], 1234);
    let trail: Vec<(&str, &str)> = detail["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["kind"]["type"].as_str().unwrap_or(""),
                e["actor"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        trail,
        vec![
            ("claimed", "pay"),
            ("closed", "pay"),
            ("accepted_as_paid", "operator:li.na")
        ]
    );
    // A retry changes nothing more.
    let (status, _) = post(&c, &resolve_path(&id), "[operator]", body).await;
    assert_eq!(status, 200);
    let (_, again) = get(&c, &format!("/admin/orders/{no}")).await;
    assert_eq!(again["timeline"].as_array().map(Vec::len), Some(3));
    Ok(())
}

#[tokio::test]
async fn refunding_a_payment_after_close_claims_a_full_refund_for_the_refund_flow() -> TestResult {
    let c = console().await?;
    let (no, id) = paid_after_close(&c).await?;
    let body = json!({"note": "customer left without goods", "action": "refund"});
    for _ in 0..2 {
        let (status, resolved) = post(&c, &resolve_path(&id), "[operator]", body.clone()).await;
        assert_eq!(status, 200, "{resolved}");
    }
    let (_, detail) = get(&c, &format!("/admin/orders/{no}")).await;
    let order = &detail["order"];
    assert_eq!(order["status"], "PAID");
    assert_eq!(order["refundable_fen"], 0, "the whole amount is reserved");
    let refunds = order["refunds"].as_array().cloned().unwrap_or_default();
    assert_eq!(refunds.len(), 1, "{order}");
    assert_eq!(refunds[0]["out_request_no"], "operator_refund");
    assert_eq!(refunds[0]["status"], "PENDING");
    assert_eq!(refunds[0]["amount_fen"], 1234);
    let last = detail["timeline"]
        .as_array()
        .and_then(|t| t.last())
        .cloned();
    assert_eq!(
        last.map(|e| (e["kind"]["type"].clone(), e["actor"].clone())),
        Some((json!("refund_requested"), json!("operator:li.na")))
    );
    // The refund flow's re-check is on the expiry queue for this order.
    let received = c
        .sqs
        .receive_message()
        .queue_url(&c.queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await?;
    let bodies: Vec<String> = received
        .messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.body)
        .collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(bodies[0].contains(no.as_str()), "{bodies:?}");
    Ok(())
}

#[tokio::test]
async fn a_day_s_reconciliation_report_is_shown_as_reconcile_wrote_it() -> TestResult {
    let c = console().await?;
    let put = |key: &'static str, body: &'static str| {
        c.s3.put_object()
            .bucket(&c.bucket)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
    };
    put(
        "reports/2026-12-01/summary.json",
        r#"{"day":"2026-12-01","rows":3,"discrepancies":1}"#,
    )
    .await?;
    put(
        "reports/2026-12-01/discrepancies.csv",
        "class,out_trade_no,amount_fen\npaid_there_not_here,T1,1234\n",
    )
    .await?;
    put(
        "reports/2026-12-02/rejected.json",
        r#"{"reason":"the bill's totals disagree with its rows"}"#,
    )
    .await?;
    let (status, report) = get(&c, "/admin/reports/2026-12-01").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["summary"]["discrepancies"], 1);
    assert_eq!(
        report["discrepancies"],
        json!([{"class": "paid_there_not_here", "out_trade_no": "T1", "amount_fen": "1234"}])
    );
    assert_eq!(report["rejected"], Value::Null);
    let (status, rejected) = get(&c, "/admin/reports/2026-12-02").await;
    assert_eq!(status, 200);
    assert_eq!(rejected["summary"], Value::Null);
    assert!(rejected["rejected"]["reason"].is_string());
    let (status, none) = get(&c, "/admin/reports/2026-12-03").await;
    assert_eq!(
        (status, none["code"].as_str()),
        (404, Some("report_not_found"))
    );
    let (status, bad) = get(&c, "/admin/reports/yesterday").await;
    assert_eq!((status, bad["field"].as_str()), (400, Some("date")));
    Ok(())
}
