//! An operator's refund reaches the buyer: a payment Alipay (the sandbox) took for an order
//! closed here is resolved with `refund` through the console's API, and the refund flow's
//! re-check in the real timeout-close handler, brought by the expiry queue, sends it.

use alipay::Fen;
use alipay::api::PayRequest;
use alipay::outcome::Outcome;
use aws_adapters::ExpiryMessage;
use chrono::{Duration, Utc};
use domain::anomaly::{AlipayFacts, Anomaly, AnomalyKind, FactSource};
use domain::fence::LeasePolicy;
use domain::order::{NewOrder, Order};
use domain::ports::{Applied, Claim, OrderStore};
use domain::{OrderAmount, OrderStatus, OutTradeNo, Scene};
use f2f_runtime::{AdminConfig, Function, SystemClock};
use harness::{Env, TestResult, auth_code, err, out_trade_no};
use lambda_http::Body;
use serde_json::{Value, json};
use timeout_close::{Expiries, Handled};

/// The resolve request as API Gateway passes it on for an operator.
fn resolve_request(id: &str, body: &Value) -> lambda_http::Request {
    let path = format!("/admin/anomalies/{}/resolve", id.replace('/', "%2F"));
    let event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "localhost",
            "domainPrefix": "localhost", "requestId": "req-operator-refund",
            "routeKey": "$default", "stage": "$default", "time": "01/Jan/2024:00:00:00 +0000",
            "timeEpoch": 1_704_067_200_000_i64,
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "operator-refund-test"},
            "authorizer": {"jwt": {"claims": {"sub": "5e1f", "cognito:username": "wang.fang",
                                              "cognito:groups": "[operator]"}, "scopes": null}},
        },
        "body": body.to_string(), "isBase64Encoded": false,
    });
    lambda_http::request::from_str(&event.to_string()).unwrap_or_default()
}

#[tokio::test]
async fn an_operator_s_refund_of_a_payment_after_close_reaches_the_buyer() -> TestResult {
    let env = Env::start().await?;
    let config = env.config(Function::Pay)?;
    let adapters = env.adapters(Function::Pay).await?;
    let store = adapters.orders.clone();

    // The order, given up here (closed) ...
    let no = out_trade_no();
    let now = Utc::now();
    let new = NewOrder {
        out_trade_no: OutTradeNo::parse(&no)?,
        amount: OrderAmount::from_fen(2500).map_err(|e| err(format!("{e:?}")))?,
        subject: "tea".into(),
        scene: Scene::Barcode,
        store_id: None,
        operator_id: None,
        terminal_id: None,
        request_hash: "h".into(),
        expires_at: now + Duration::minutes(5),
    };
    let (claimed, event) = Order::claim(new, now, Duration::seconds(30));
    assert_eq!(store.claim(&claimed, &event).await?, Claim::Claimed);
    let Applied::Applied(_) = store.apply(&claimed.closed("expired", now)?).await? else {
        return Err(err("the close lost a race"));
    };
    // ... while Alipay took the buyer's payment for it.
    let paid = adapters
        .alipay
        .pay(&PayRequest::new(
            &no,
            Fen::new(2500),
            "tea",
            auth_code("00", 0),
        ))
        .await;
    let Outcome::Success(paid) = paid else {
        return Err(err(format!(
            "the sandbox did not take the payment: {paid:?}"
        )));
    };
    let mut facts = AlipayFacts::from(FactSource::Query);
    facts.trade_no = Some(paid.trade_no.clone());
    store
        .record_anomaly(&Anomaly {
            kind: AnomalyKind::PaidAfterClose,
            out_trade_no: Some(OutTradeNo::parse(&no)?),
            order_status: Some(OrderStatus::Closed),
            order_amount_fen: Some(2500),
            facts,
            detail: "paid after close".into(),
            seen_at: now,
        })
        .await?;

    // The operator refunds it.
    let admin = admin::wired(
        &env.sdk(),
        &AdminConfig {
            orders_table: config.orders_table.clone(),
            bill_bucket: "reports-unused".into(),
            expiry_queue_url: config.expiry_queue_url.clone().unwrap_or_default(),
        },
    );
    let id = format!("{no}/paid_after_close");
    let body = json!({"note": "the customer left without the goods", "action": "refund"});
    let response = admin.handle(resolve_request(&id, &body)).await;
    let answer: Value = match response.body() {
        Body::Text(text) => serde_json::from_str(text)?,
        _ => Value::Null,
    };
    assert_eq!(response.status().as_u16(), 200, "{answer}");

    // The expiry queue brings the order to the refund flow's re-check (timeout-close).
    let expiries = Expiries {
        store: store.clone(),
        scheduler: adapters.expiry.clone().ok_or_else(|| err("no scheduler"))?,
        gateway: adapters.alipay.clone(),
        clock: SystemClock,
        policy: LeasePolicy {
            lease: config.knobs.claim_lease,
            margin: LeasePolicy::DEFAULT_MARGIN,
        },
        refunds: config.refund_policy(),
    };
    let queue_url = config.expiry_queue_url.clone().unwrap_or_default();
    let received = aws_adapters::aws_sdk_sqs::Client::new(&env.sdk())
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(2)
        .send()
        .await?;
    let message = received
        .messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.body)
        .find(|body| body.contains(&no))
        .ok_or_else(|| err("no expiry message for the operator's refund"))?;
    let handled = expiries.expire(&ExpiryMessage::parse(&message)?).await?;
    assert_eq!(handled, Handled::RefundsSettled);

    let order = store
        .get(&OutTradeNo::parse(&no)?)
        .await?
        .ok_or_else(|| err("no order"))?;
    assert_eq!(order.status(), OrderStatus::Refunded);
    assert_eq!(order.refunded_fen(), 2500);
    let trade = env.sandbox_get(&format!("/sandbox/trades/{no}")).await?;
    assert_eq!(trade["refunded_amount"], "25.00", "{trade}");
    assert_eq!(trade["refunds"][0]["out_request_no"], "operator_refund");
    Ok(())
}
