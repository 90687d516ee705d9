//! A generated script: what callers, buyers, Alipay's notifier, the expiry queue, the clock
//! and the scheduler of concurrent requests do, step by step. Indices are taken modulo what
//! exists when the step runs, so every script is valid and shrinking (dropping steps,
//! lowering numbers) keeps it so.

use crate::alipay::BarcodeBuyer;
use proptest::prelude::*;

/// How many order numbers a script plays with (few, so that requests meet).
pub const ORDERS: u8 = 2;
/// Refund numbers per order, each with its own amount ([`refund_fen`]).
pub const REFUNDS: u8 = 3;

/// The amount of refund `index` of an order of `amount_fen`.
pub fn refund_fen(index: u8, amount_fen: i64) -> i64 {
    match index % REFUNDS {
        0 => amount_fen * 2 / 5,
        1 => amount_fen * 3 / 5,
        _ => amount_fen,
    }
}

/// The amount of order `index`.
pub fn order_fen(index: u8) -> i64 {
    if index.is_multiple_of(ORDERS) {
        100
    } else {
        250
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scene {
    Qr,
    Barcode(BarcodeBuyer),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `POST /v1/payments` (again, for a number already used: the caller's retry).
    Create { order: u8, scene: Scene },
    /// `GET /v1/payments/{no}`.
    Get { order: u8 },
    /// `POST /v1/payments/{no}/refunds`.
    Refund { order: u8, refund: u8 },
    /// `GET /v1/payments/{no}/refunds/{req}`.
    RefundGet { order: u8, refund: u8 },
    /// The buyer scans the order's QR code.
    Scan { order: u8 },
    /// The buyer pays (or confirms a barcode payment).
    Pay { order: u8 },
    /// Alipay delivers one of its pending notifications; with `again`, it will deliver it
    /// once more later (a duplicate).
    Deliver { pick: u8, again: bool },
    /// The expiry queue delivers one of its messages (due or not).
    Expire { pick: u8 },
    /// A suspended request goes on (its store or Alipay call done with `fate`).
    Step { op: u8, fate: u8 },
    /// A suspended request's process dies; its Alipay call, if any, arrives or not.
    Crash { op: u8, fate: u8 },
    /// Time passes; what must be answered meanwhile is, with fates drawn from `fates`.
    Wait { seconds: u16, fates: u8 },
    /// The next morning: the bill of the day before is reconciled.
    NextMorning { fates: u8 },
}

fn scene() -> impl Strategy<Value = Scene> {
    prop_oneof![
        3 => Just(Scene::Qr),
        1 => Just(Scene::Barcode(BarcodeBuyer::PaysAtOnce)),
        2 => Just(Scene::Barcode(BarcodeBuyer::MustConfirm)),
        1 => Just(Scene::Barcode(BarcodeBuyer::Declined)),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    let order = 0..ORDERS;
    prop_oneof![
        6 => (order.clone(), scene()).prop_map(|(order, scene)| Action::Create { order, scene }),
        3 => order.clone().prop_map(|order| Action::Get { order }),
        5 => (order.clone(), 0..REFUNDS).prop_map(|(order, refund)| Action::Refund { order, refund }),
        1 => (order.clone(), 0..REFUNDS).prop_map(|(order, refund)| Action::RefundGet { order, refund }),
        2 => order.clone().prop_map(|order| Action::Scan { order }),
        6 => order.prop_map(|order| Action::Pay { order }),
        5 => (any::<u8>(), any::<bool>()).prop_map(|(pick, again)| Action::Deliver { pick, again }),
        3 => any::<u8>().prop_map(|pick| Action::Expire { pick }),
        24 => (any::<u8>(), any::<u8>()).prop_map(|(op, fate)| Action::Step { op, fate }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(op, fate)| Action::Crash { op, fate }),
        4 => (prop_oneof![Just(1u16), Just(3), Just(8), Just(16), Just(61), Just(200)], any::<u8>())
            .prop_map(|(seconds, fates)| Action::Wait { seconds, fates }),
        1 => any::<u8>().prop_map(|fates| Action::NextMorning { fates }),
    ]
}

/// A script of up to `max` steps.
pub fn script(max: usize) -> impl Strategy<Value = Vec<Action>> {
    proptest::collection::vec(action(), 1..=max)
}
