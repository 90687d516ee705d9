//! The notify function behind a real HTTP receiver (as API Gateway would call it), the pay
//! function to create orders, the AWS emulator and the Alipay sandbox, whose notifications are
//! delivered to the receiver over HTTP.

#![allow(dead_code)]

use alipay::PrivateKey;
use aws_adapters::DynamoOrderStore;
use chrono::Utc;
use domain::OutTradeNo;
use domain::anomaly::AnomalyRecord;
use domain::notification::ReceivedNotification;
use domain::order::{Order, OrderEvent, OrderStatus};
use domain::ports::OrderStore;
use f2f_runtime::{Function, NotifyConfig, SystemClock, wiring};
pub use harness::*;
use notify::Notifications;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub type Notify = Notifications<DynamoOrderStore, SystemClock>;
type Pay = pay::WiredPayApi;

pub struct Stack {
    pub env: Env,
    pub notify: Arc<Notify>,
    pub store: DynamoOrderStore,
    pub receiver_url: String,
    pub seller_id: String,
    /// The sandbox's "Alipay" key: signs genuine notifications.
    pub alipay_key: PrivateKey,
    /// The app's own key: a notification signed with it is not Alipay's.
    pub wrong_key: PrivateKey,
    pay: Pay,
    receiver: tokio::task::JoinHandle<()>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

impl Stack {
    pub async fn start() -> TestResult<Stack> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let receiver_url = format!("http://{}/alipay/notify", listener.local_addr()?);
        let mut env = Env::start().await?;
        env.set_var("ALIPAY_NOTIFY_URL", &receiver_url);
        let sandbox: Value =
            serde_json::from_str(&std::fs::read_to_string(env.keys_dir.join("sandbox.json"))?)?;
        let seller_id = sandbox["seller_id"]
            .as_str()
            .ok_or_else(|| err("sandbox.json has no seller_id"))?
            .to_owned();
        env.set_var("ALIPAY_SELLER_ID", &seller_id);
        let store = env.adapters(Function::Query).await?.orders;
        let notify = Arc::new(Stack::notify_with(&env, store.clone()).await?);
        let handler = notify.clone();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let handler = handler.clone();
            async move { serve(&handler, request).await }
        });
        let receiver = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let read_key = |name: &str| -> TestResult<PrivateKey> {
            Ok(PrivateKey::parse(&std::fs::read_to_string(
                env.keys_dir.join(name),
            )?)?)
        };
        let alipay_key = read_key("alipay_private_key.pem")?;
        let wrong_key = read_key("app_private_key.pem")?;
        let pay = Stack::pay(&env).await?;
        Ok(Stack {
            pay,
            env,
            notify,
            store,
            receiver_url,
            seller_id,
            alipay_key,
            wrong_key,
            receiver,
        })
    }

    /// The notify function as its `main` builds it, on `store`.
    pub async fn notify_with(env: &Env, store: DynamoOrderStore) -> TestResult<Notify> {
        let config = NotifyConfig::from_lookup(&|name| match name {
            "ORDERS_TABLE" => Some(env.table.clone()),
            "ALIPAY_APP_ID" => Some(env.app_id.clone()),
            "ALIPAY_PUBLIC_KEY_FILE" => Some(
                env.keys_dir
                    .join("alipay_public_key.pem")
                    .display()
                    .to_string(),
            ),
            "ALIPAY_SELLER_ID" => env.config(Function::Query).ok()?.alipay.seller_id,
            _ => None,
        })?;
        let adapters = wiring::build_notify(&config, &env.sdk()).await?;
        Ok(Notifications {
            store,
            clock: SystemClock,
            verifier: adapters.verifier,
            app_id: config.app_id,
            seller_id: config.seller_id,
        })
    }

    /// The pay function, as its `main` builds it.
    async fn pay(env: &Env) -> TestResult<Pay> {
        let config = env.config(Function::Pay)?;
        Ok(Pay::wired(&config, env.adapters(Function::Pay).await?)?)
    }

    /// Creates an order through the pay function; returns its number.
    pub async fn create(&self, body: Value) -> TestResult<String> {
        let response = self
            .pay
            .handle(self.env.signed("POST", "/v1/payments", &body.to_string()))
            .await;
        let answer = body_json(&response);
        Ok(answer["out_trade_no"]
            .as_str()
            .ok_or_else(|| err(format!("create failed: {answer}")))?
            .to_owned())
    }

    /// Refunds through the pay function; returns (status, body).
    pub async fn refund(&self, no: &str, out_request_no: &str, amount_fen: i64) -> (u16, Value) {
        let body = json!({"out_request_no": out_request_no, "amount_fen": amount_fen});
        let path = format!("/v1/payments/{no}/refunds");
        let response = self
            .pay
            .handle(self.env.signed("POST", &path, &body.to_string()))
            .await;
        (response.status().as_u16(), body_json(&response))
    }

    /// A QR order the sandbox's buyer scanned and paid, PAID here by the notification.
    pub async fn paid_qr(&self, amount_fen: i64) -> TestResult<String> {
        let no = self.create_qr(amount_fen).await?;
        for step in ["scan", "pay"] {
            self.env
                .sandbox_post(&format!("/sandbox/trades/{no}/{step}"), json!({}))
                .await?;
        }
        self.wait_for(&no, OrderStatus::Paid).await?;
        Ok(no)
    }

    pub async fn create_qr(&self, amount_fen: i64) -> TestResult<String> {
        let no = out_trade_no();
        self.create(
            json!({"out_trade_no": no, "amount_fen": amount_fen, "subject": "tea", "scene": "qr"}),
        )
        .await
    }

    pub async fn order(&self, no: &str) -> TestResult<Order> {
        self.store
            .get(&OutTradeNo::parse(no)?)
            .await?
            .ok_or_else(|| err(format!("order {no} is gone")))
    }

    /// Waits (bounded) until the order has `status`.
    pub async fn wait_for(&self, no: &str, status: OrderStatus) -> TestResult<Order> {
        self.wait_until(no, &format!("{status:?}"), |order| order.status() == status)
            .await
    }

    /// Waits (bounded) until the order is as `wanted` says (`what` names it in the error).
    pub async fn wait_until(
        &self,
        no: &str,
        what: &str,
        wanted: impl Fn(&Order) -> bool,
    ) -> TestResult<Order> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let order = self.order(no).await?;
            if wanted(&order) {
                return Ok(order);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(err(format!("order {no} is not {what}: {order:?}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded) until the sandbox has had `count` notification attempts of the order
    /// answered, and returns the delivery log.
    pub async fn wait_for_deliveries(&self, no: &str, count: usize) -> TestResult<Vec<Value>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = self
                .env
                .sandbox_get(&format!("/sandbox/notifications?out_trade_no={no}"))
                .await?;
            let attempts: Vec<Value> = log
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|n| n["attempts"].as_array().cloned().unwrap_or_default())
                .filter(|a| !a["http_status"].is_null() || !a["error"].is_null())
                .collect();
            if attempts.len() >= count {
                return Ok(attempts);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(err(format!(
                    "{} of {count} deliveries: {log}",
                    attempts.len()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn events(&self, no: &str) -> TestResult<Vec<OrderEvent>> {
        Ok(self.store.events(&OutTradeNo::parse(no)?).await?)
    }

    pub async fn anomalies(&self, no: &str) -> TestResult<Vec<AnomalyRecord>> {
        Ok(self
            .store
            .anomalies_of_order(&OutTradeNo::parse(no)?)
            .await?)
    }

    pub async fn kept(&self, no: &str) -> TestResult<Vec<ReceivedNotification>> {
        Ok(self
            .store
            .notifications_of_order(&OutTradeNo::parse(no)?)
            .await?)
    }

    /// The fields Alipay sends in a `trade_status_sync` for `order`, with `status`.
    pub fn fields(&self, order: &Order, trade_no: &str, status: &str) -> BTreeMap<String, String> {
        let now = alipay::time::format_beijing(Utc::now());
        let mut fields = BTreeMap::new();
        for (k, v) in [
            ("notify_time", now.clone()),
            ("notify_type", "trade_status_sync".to_owned()),
            ("notify_id", format!("2024010100222{:021}", rand_digits())),
            ("app_id", self.env.app_id.clone()),
            ("charset", "utf-8".to_owned()),
            ("version", "1.0".to_owned()),
            ("trade_no", trade_no.to_owned()),
            ("out_trade_no", order.out_trade_no().to_string()),
            ("trade_status", status.to_owned()),
            ("total_amount", order.amount().fen().to_yuan()),
            ("seller_id", self.seller_id.clone()),
            (
                "buyer_open_id",
                "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5".to_owned(),
            ),
            ("subject", "tea".to_owned()),
            ("gmt_create", now.clone()),
        ] {
            fields.insert(k.to_owned(), v);
        }
        if status == "TRADE_SUCCESS" || status == "TRADE_FINISHED" {
            fields.insert("gmt_payment".to_owned(), now.clone());
            fields.insert("receipt_amount".to_owned(), order.amount().fen().to_yuan());
        }
        fields
    }

    /// `fields` signed with `key` in `charset`, as a form body.
    pub fn sign(
        &self,
        fields: &BTreeMap<String, String>,
        key: &PrivateKey,
        encoding: &'static encoding_rs::Encoding,
    ) -> TestResult<String> {
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Ok(alipay::notify::sign_form(&pairs, encoding, key)?)
    }

    /// POSTs a body to the receiver: the status and the answer's text.
    pub async fn post(&self, body: &str) -> TestResult<(u16, String)> {
        let response = self
            .env
            .http
            .post(&self.receiver_url)
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body.to_owned())
            .send()
            .await?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = response.text().await?;
        if status == 200 {
            assert!(content_type.starts_with("text/plain"), "{content_type}");
        }
        Ok((status, text))
    }
}

fn rand_digits() -> u128 {
    ulid::Ulid::generate().random() % 10u128.pow(21)
}

/// An HTTP request as API Gateway (payload v2) hands it to the function.
async fn serve(notify: &Notify, request: axum::extract::Request) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let request = api_gateway_request(
        "POST",
        parts.uri.path(),
        &headers,
        &String::from_utf8_lossy(&bytes),
    );
    let response = notify.handle(request).await;
    let (parts, body) = response.into_parts();
    axum::response::Response::from_parts(parts, axum::body::Body::from(body.to_vec()))
}
