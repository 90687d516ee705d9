//! Notification switches: global ones, and per-`out_trade_no` overrides (settable before the
//! trade exists, e.g. before a barcode payment that succeeds at once).

use serde::{Deserialize, Serialize};

/// The effective switches for one notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Switches {
    /// Notify WAIT_BUYER_PAY when a buyer scans a QR code. On by default: public captures
    /// show it, and a receiver must not take every notification for a payment.
    pub wait_buyer_pay: bool,
    /// Also notify TRADE_CLOSED (close, cancel, expiry, declined or failed payment). Off by
    /// default, as for face-to-face payments.
    pub trade_closed: bool,
    /// Also notify refunds (TRADE_SUCCESS with `refund_fee` for a partial refund, TRADE_CLOSED
    /// for a full one).
    pub refunds: bool,
    /// Send every attempt twice.
    pub duplicates: bool,
    /// After each notification, deliver an older one of the same trade (the previous
    /// notification again, or a stale WAIT_BUYER_PAY one if there was none).
    pub out_of_order: bool,
    /// `charset=GBK`: values GBK-encoded, percent-encoded as bytes and signed over GBK bytes.
    pub gbk: bool,
    /// Sign with a signature that does not match the body.
    pub bad_signature: bool,
    /// Delay the first attempt by this many sandbox seconds.
    pub late_seconds: u64,
}

impl Default for Switches {
    fn default() -> Switches {
        Switches {
            wait_buyer_pay: true,
            trade_closed: false,
            refunds: false,
            duplicates: false,
            out_of_order: false,
            gbk: false,
            bad_signature: false,
            late_seconds: 0,
        }
    }
}

/// A partial update: only the fields present change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwitchesPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_buyer_pay: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_closed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refunds: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicates: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_order: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gbk: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bad_signature: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late_seconds: Option<u64>,
}

impl Switches {
    pub fn apply(&mut self, patch: &SwitchesPatch) {
        let SwitchesPatch {
            wait_buyer_pay,
            trade_closed,
            refunds,
            duplicates,
            out_of_order,
            gbk,
            bad_signature,
            late_seconds,
        } = patch;
        set(&mut self.wait_buyer_pay, wait_buyer_pay);
        set(&mut self.trade_closed, trade_closed);
        set(&mut self.refunds, refunds);
        set(&mut self.duplicates, duplicates);
        set(&mut self.out_of_order, out_of_order);
        set(&mut self.gbk, gbk);
        set(&mut self.bad_signature, bad_signature);
        set(&mut self.late_seconds, late_seconds);
    }

    pub fn with(&self, patch: Option<&SwitchesPatch>) -> Switches {
        let mut effective = self.clone();
        if let Some(patch) = patch {
            effective.apply(patch);
        }
        effective
    }
}

impl SwitchesPatch {
    /// Layers `newer` over `self`.
    pub fn merge(&mut self, newer: &SwitchesPatch) {
        let pick = |old: &mut Option<bool>, new: &Option<bool>| {
            if new.is_some() {
                *old = *new;
            }
        };
        pick(&mut self.wait_buyer_pay, &newer.wait_buyer_pay);
        pick(&mut self.trade_closed, &newer.trade_closed);
        pick(&mut self.refunds, &newer.refunds);
        pick(&mut self.duplicates, &newer.duplicates);
        pick(&mut self.out_of_order, &newer.out_of_order);
        pick(&mut self.gbk, &newer.gbk);
        pick(&mut self.bad_signature, &newer.bad_signature);
        if newer.late_seconds.is_some() {
            self.late_seconds = newer.late_seconds;
        }
    }
}

fn set<T: Copy>(slot: &mut T, value: &Option<T>) {
    if let Some(value) = value {
        *slot = *value;
    }
}
