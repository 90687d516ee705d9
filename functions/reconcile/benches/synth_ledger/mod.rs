//! The merchant's side of a synthetic day (`alipay_sandbox::bill::synth`) as the reconciler
//! sees it: every line of the orders file made into a domain [`Order`] by the transitions
//! production applies to a QR order, so the ledger holds what a real day's would.
//!
//! - claimed at its `created_at` (QR scene, 15-minute expiry, the request's SHA-256 as its
//!   hash), given its QR code by Alipay 300 ms later (PENDING), paid at `paid_at` as the
//!   notification says a second later (PAID, a buyer OpenID, Alipay's `trade_no`);
//! - each refund claimed a second before its `refunded_at` and settled by the refund's answer
//!   at `refunded_at` (PARTIALLY_REFUNDED, or REFUNDED once the whole amount is back).
//!
//! Each order is checked against its line (status, refunded total), so a change in the domain
//! or in the synthesiser that would make the ledger disagree with the bill shows here.
//!
//! Shared by the reconcile benchmark and the local stack's reconcile benchmark (included by
//! path: it needs only `domain`, `chrono` and `serde_json`).

use chrono::{DateTime, Duration, Utc};
use domain::order::{
    Buyer, NewOrder, NewRefund, Order, OrderEvent, OrderStatus, PaymentSource, RefundSource, Scene,
    Transition,
};
use domain::{OrderAmount, OutRequestNo, OutTradeNo};
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;

pub type LedgerError = Box<dyn std::error::Error + Send + Sync>;

/// The claim's lease, as the pay function takes it.
const LEASE: Duration = Duration::seconds(15);
/// A QR order's validity.
const EXPIRES: Duration = Duration::minutes(15);

/// An order as its writes made it: the claim, then each transition.
pub struct Made {
    pub claimed: Order,
    pub claim_event: OrderEvent,
    pub transitions: Vec<Transition>,
}

impl Made {
    /// The order once every transition is applied.
    pub fn order(&self) -> &Order {
        self.transitions.last().map_or(&self.claimed, |t| &t.next)
    }

    pub fn into_order(mut self) -> Order {
        self.transitions.pop().map_or(self.claimed, |t| t.next)
    }
}

/// The domain order of one line of the orders file.
pub fn order_of_line(line: &str) -> Result<Order, LedgerError> {
    made_of_line(line).map(Made::into_order)
}

/// The claim and the transitions that make the order of one line of the orders file.
pub fn made_of_line(line: &str) -> Result<Made, LedgerError> {
    let v: Value = serde_json::from_str(line)?;
    let text = |name: &str| -> Result<&str, LedgerError> {
        v[name]
            .as_str()
            .ok_or_else(|| format!("orders file: no {name} in {line}").into())
    };
    let fen = |v: &Value, name: &str| -> Result<i64, LedgerError> {
        v[name]
            .as_i64()
            .ok_or_else(|| format!("orders file: no {name} in {line}").into())
    };
    let out_trade_no = OutTradeNo::parse(text("out_trade_no")?)?;
    let amount_fen = fen(&v, "amount_fen")?;
    let created_at = instant(text("created_at")?)?;
    let paid_at = instant(text("paid_at")?)?;
    let seed = mix(out_trade_no.as_str().as_bytes());
    let new = NewOrder {
        amount: OrderAmount::from_fen(amount_fen)?,
        subject: text("subject")?.to_owned(),
        scene: Scene::Qr,
        store_id: v["store_id"].as_str().map(str::to_owned),
        operator_id: None,
        terminal_id: None,
        request_hash: hex(seed, 64),
        expires_at: created_at + EXPIRES,
        out_trade_no,
    };
    let (claimed, claim_event) = Order::claim(new, created_at, LEASE);
    let qr_code = format!("https://qr.alipay.com/bax0{}", alphanumeric(seed ^ 1, 20));
    let mut transitions = Vec::with_capacity(2);
    transitions.push(claimed.created_at_alipay(
        Some(qr_code),
        None,
        created_at + Duration::milliseconds(300),
    )?);
    let buyer = Buyer::new(None, Some(format!("0{}", alphanumeric(seed ^ 2, 46))));
    let paid = last(&transitions)?.paid(
        text("trade_no")?.to_owned(),
        paid_at,
        PaymentSource::Notification,
        buyer,
        paid_at + Duration::seconds(1),
    )?;
    transitions.push(paid);
    for refund in v["refunds"].as_array().into_iter().flatten() {
        let no_text = refund["out_request_no"]
            .as_str()
            .ok_or_else(|| format!("orders file: a refund without out_request_no in {line}"))?;
        let no = OutRequestNo::parse(no_text)?;
        let refunded_at = instant(
            refund["refunded_at"]
                .as_str()
                .ok_or_else(|| format!("orders file: a refund without refunded_at in {line}"))?,
        )?;
        let claim = NewRefund {
            out_request_no: no.clone(),
            amount_fen: fen(refund, "amount_fen")?,
            reason: None,
            store_id: v["store_id"].as_str().map(str::to_owned),
            operator_id: None,
            terminal_id: None,
            request_hash: hex(mix(no_text.as_bytes()), 64),
        };
        let claimed =
            last(&transitions)?.claim_refund(claim, refunded_at - Duration::seconds(1), LEASE)?;
        transitions.push(claimed);
        let settled = last(&transitions)?.refund_succeeded(
            &no,
            refunded_at,
            RefundSource::RefundResponse,
            refunded_at,
        )?;
        transitions.push(settled);
    }
    let made = Made {
        claimed,
        claim_event,
        transitions,
    };
    let order = made.order();
    let status = text("status")?;
    let expected = if status == "TRADE_CLOSED" {
        OrderStatus::Refunded
    } else if order.refunds().is_empty() {
        OrderStatus::Paid
    } else {
        OrderStatus::PartiallyRefunded
    };
    if order.status() != expected || order.refunded_fen() != fen(&v, "refunded_fen")? {
        return Err(format!(
            "order {} became {} with {} fen refunded, but the orders file says {status} with {} \
             fen refunded",
            order.out_trade_no(),
            order.status().as_str(),
            order.refunded_fen(),
            v["refunded_fen"]
        )
        .into());
    }
    Ok(made)
}

/// The orders file's lines, as orders, in chunks of at most `chunk` (so that a million of
/// them never need to be held at once).
pub struct Orders {
    lines: std::io::Lines<std::io::BufReader<std::fs::File>>,
    chunk: usize,
}

impl Orders {
    pub fn open(path: &Path, chunk: usize) -> Result<Orders, LedgerError> {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("orders file {}: {e}", path.display()))?;
        Ok(Orders {
            lines: std::io::BufReader::with_capacity(1 << 16, file).lines(),
            chunk: chunk.max(1),
        })
    }

    /// The next chunk, empty at the end.
    pub fn next_chunk(&mut self, into: &mut Vec<Order>) -> Result<(), LedgerError> {
        into.clear();
        while into.len() < self.chunk {
            match self.lines.next() {
                None => break,
                Some(line) => into.push(order_of_line(&line?)?),
            }
        }
        Ok(())
    }
}

/// Every order of the file (for the smaller days only).
pub fn all_orders(path: &Path) -> Result<Vec<Order>, LedgerError> {
    let mut orders = Orders::open(path, usize::MAX)?;
    let mut all = Vec::new();
    orders.next_chunk(&mut all)?;
    Ok(all)
}

/// The order after the last transition.
fn last(transitions: &[Transition]) -> Result<&Order, LedgerError> {
    Ok(&transitions.last().ok_or("no transition")?.next)
}

fn instant(text: &str) -> Result<DateTime<Utc>, LedgerError> {
    Ok(DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("orders file: {text:?}: {e}"))?
        .with_timezone(&Utc))
}

/// FNV-1a, then SplitMix64's finaliser: a stable seed per order number.
fn mix(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    splitmix(h)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `len` characters drawn from `alphabet`, deterministic for `seed`.
fn draw(seed: u64, len: usize, alphabet: &[u8]) -> String {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = splitmix(state);
            char::from(alphabet[(state % alphabet.len() as u64) as usize])
        })
        .collect()
}

fn hex(seed: u64, len: usize) -> String {
    draw(seed, len, b"0123456789abcdef")
}

fn alphanumeric(seed: u64, len: usize) -> String {
    draw(
        seed,
        len,
        b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    )
}
