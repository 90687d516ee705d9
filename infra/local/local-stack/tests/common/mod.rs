//! What the stack's integration tests share.

use aws_adapters::DynamoOrderStore;
use chrono::{Duration as Lease, Utc};
use domain::order::{NewOrder, Order};
use domain::ports::OrderStore;
use domain::{OrderAmount, OutTradeNo, Scene};

/// Claimed and created at Alipay: two public events (`order.created`,
/// `order.awaiting_payment`), four stream records.
pub async fn write_order(
    store: &DynamoOrderStore,
) -> Result<OutTradeNo, Box<dyn std::error::Error + Send + Sync>> {
    let no = OutTradeNo::generate();
    let now = Utc::now();
    let new = NewOrder {
        out_trade_no: no.clone(),
        amount: OrderAmount::from_fen(1)?,
        subject: "coffee".into(),
        scene: Scene::Qr,
        store_id: None,
        operator_id: None,
        terminal_id: None,
        request_hash: "h".into(),
        expires_at: now + Lease::minutes(15),
    };
    let (order, claim) = Order::claim(new, now, Lease::seconds(30));
    store.claim(&order, &claim).await?;
    store
        .apply(&order.created_at_alipay(Some("https://qr.alipay.com/x".into()), None, now)?)
        .await?;
    Ok(no)
}
