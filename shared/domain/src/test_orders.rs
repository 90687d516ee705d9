//! Orders the unit tests of several modules start from.

use crate::order::{Buyer, NewOrder, Order, OrderEvent, PaymentSource};
use crate::{OrderAmount, OutTradeNo, Scene};
use chrono::{DateTime, TimeZone, Utc};

/// `seconds` after a fixed instant.
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + seconds, 0)
        .single()
        .unwrap_or_default()
}

/// Order `no` of `fen`, expiring at `at(900)`.
pub fn new_order(no: &str, fen: i64, scene: Scene) -> NewOrder {
    NewOrder {
        out_trade_no: OutTradeNo::parse(no).unwrap_or_else(|e| unreachable!("{e}")),
        amount: OrderAmount::from_fen(fen).unwrap_or_else(|_| unreachable!()),
        subject: "tea".into(),
        scene,
        store_id: None,
        operator_id: None,
        terminal_id: None,
        request_hash: "h".into(),
        expires_at: at(900),
    }
}

/// [`new_order`] claimed at `at(0)` with a lease of 15 s.
pub fn claimed(no: &str, fen: i64, scene: Scene) -> (Order, OrderEvent) {
    Order::claim(
        new_order(no, fen, scene),
        at(0),
        chrono::Duration::seconds(15),
    )
}

/// Order `T1` of 1.00 yuan, claimed at `at(0)`, PAID at `at(1)` as trade `2024T1`.
pub fn paid(scene: Scene) -> Order {
    claimed("T1", 100, scene)
        .0
        .paid(
            "2024T1".into(),
            at(1),
            PaymentSource::Query,
            Buyer::default(),
            at(1),
        )
        .unwrap_or_else(|e| unreachable!("{e}"))
        .next
}
