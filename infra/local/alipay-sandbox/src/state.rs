//! Everything the sandbox remembers, and the only places where a trade changes stage. Each
//! transition also queues the notification it causes; timers (expiry, delayed buyer actions,
//! notification retries) are evaluated against the sandbox clock whenever the state is touched
//! and by the scheduler. Pure data and rules: no I/O and no locks here.

use crate::biz::TradeReference;
use crate::faults::Fault;
use crate::identity::Identity;
use crate::ids;
use crate::notify::compose::{self, Event};
use crate::notify::delivery::{self, DeliveryJob};
use crate::notify::{Attempt, Notification, Switches, SwitchesPatch};
use crate::rules::Rules;
use crate::trade::{Buyer, BuyerAction, CloseReason, Refund, Stage, Trade};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The `late_seconds` switch is capped at this.
const MAX_LATENESS: TimeDelta = TimeDelta::days(365);

/// What a rule needs besides the state: the sandbox time of the call and who we are.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub now: DateTime<Utc>,
    pub identity: &'a Identity,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Every order, keyed by `out_trade_no` (one app per sandbox).
    pub trades: BTreeMap<String, Trade>,
    /// `out_trade_no`s cancelled before Alipay ever saw them: they can never be paid.
    pub voided_out_trade_nos: BTreeSet<String>,
    /// Every notification, oldest first.
    pub notifications: Vec<Notification>,
    pub faults: Vec<Fault>,
    /// Global notification switches.
    pub switches: Switches,
    /// Per-`out_trade_no` overrides of `switches`.
    pub trade_switches: BTreeMap<String, SwitchesPatch>,
    /// The app's rules (kept by a reset, like the keys).
    pub rules: Rules,
    next_id: u64,
}

/// A timer that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    QrLapsed,
    Buyer(BuyerAction),
    Expired,
    RefundWindowOver,
}

impl State {
    /// An empty state with these rules.
    pub fn new(rules: Rules) -> State {
        State {
            rules,
            ..State::default()
        }
    }

    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The key of the order `reference` names (both parts must agree when both are given).
    pub fn find(&self, reference: &TradeReference) -> Option<String> {
        match (&reference.out_trade_no, &reference.trade_no) {
            (Some(out), trade_no) => self
                .trades
                .get(out)
                .filter(|t| trade_no.is_none() || t.trade_no == *trade_no)
                .map(|t| t.out_trade_no.clone()),
            (None, Some(trade_no)) => self
                .trades
                .values()
                .find(|t| t.trade_no.as_deref() == Some(trade_no.as_str()))
                .map(|t| t.out_trade_no.clone()),
            (None, None) => None,
        }
    }

    /// The trade `reference` names, if it exists at Alipay (scanned or paid by barcode).
    pub fn find_existing(&self, reference: &TradeReference) -> Option<String> {
        self.find(reference)
            .filter(|key| self.trades.get(key).is_some_and(Trade::exists))
    }

    pub fn switches_for(&self, out_trade_no: &str) -> Switches {
        self.switches.with(self.trade_switches.get(out_trade_no))
    }

    /// Forgets every order, notification, fault and switch (keys, identity and rules stay).
    pub fn reset(&mut self) {
        let next_id = self.next_id;
        *self = State::new(std::mem::take(&mut self.rules));
        self.next_id = next_id;
    }

    /// After loading from a file, nothing can still be in flight.
    pub fn after_load(&mut self) {
        for notification in &mut self.notifications {
            if notification.in_flight {
                notification.in_flight = false;
                if notification.next_attempt_at.is_none()
                    && !notification.delivered
                    && !notification.gave_up
                {
                    notification.next_attempt_at = Some(notification.created_at);
                }
            }
        }
    }

    // ----- transitions -------------------------------------------------------------------

    /// The trade comes to exist at Alipay: WAIT_BUYER_PAY with a trade number and a buyer.
    pub fn open_trade(&mut self, key: &str, ctx: &Ctx<'_>, buyer: Buyer) {
        let sequence = self.next_id();
        if let Some(trade) = self.trades.get_mut(key) {
            trade.trade_no = Some(ids::trade_no(ctx.now, sequence));
            trade.stage = Stage::WaitBuyerPay;
            trade.gmt_create = Some(ctx.now);
            trade.buyer = Some(buyer);
        }
    }

    /// A buyer scanned a precreated QR code: the trade exists, and the WAIT_BUYER_PAY
    /// notification (switch `wait_buyer_pay`).
    pub fn scan_trade(&mut self, key: &str, ctx: &Ctx<'_>, buyer: Buyer) {
        self.open_trade(key, ctx, buyer);
        self.notify(key, ctx, Event::Scanned);
    }

    /// The buyer paid: TRADE_SUCCESS, and the TRADE_SUCCESS notification.
    pub fn complete_payment(&mut self, key: &str, ctx: &Ctx<'_>) {
        let Some(trade) = self.trades.get_mut(key) else {
            return;
        };
        if trade.stage != Stage::WaitBuyerPay {
            return;
        }
        trade.stage = Stage::TradeSuccess;
        trade.gmt_payment = Some(ctx.now);
        trade.pending = None;
        self.notify(key, ctx, Event::Paid);
    }

    /// An unpaid trade closes (TRADE_CLOSED notification when that switch is on).
    pub fn close_trade(&mut self, key: &str, ctx: &Ctx<'_>, reason: CloseReason) {
        let Some(trade) = self.trades.get_mut(key) else {
            return;
        };
        if trade.stage != Stage::WaitBuyerPay {
            return;
        }
        trade.stage = Stage::TradeClosed;
        trade.gmt_close = Some(ctx.now);
        trade.close_reason = Some(reason);
        trade.pending = None;
        self.notify(key, ctx, Event::Closed);
    }

    /// Records a refund of a paid trade; a full refund closes it.
    pub fn add_refund(&mut self, key: &str, ctx: &Ctx<'_>, refund: Refund) {
        let Some(trade) = self.trades.get_mut(key) else {
            return;
        };
        trade.refunds.push(refund.clone());
        if trade.refunded_amount() >= trade.total_amount() {
            trade.stage = Stage::TradeClosed;
            trade.gmt_close = Some(ctx.now);
            trade.close_reason = Some(if refund.by_cancel {
                CloseReason::CancelledByMerchant
            } else {
                CloseReason::FullyRefunded
            });
        }
        self.notify(key, ctx, Event::Refunded(refund));
    }

    /// Queues the notification for `event` if the trade has a `notify_url` and the switches
    /// ask for it; with `out_of_order`, also queues an older one to arrive after it.
    fn notify(&mut self, key: &str, ctx: &Ctx<'_>, event: Event) {
        let switches = self.switches_for(key);
        let wanted = match event {
            Event::Paid => true,
            Event::Scanned => switches.wait_buyer_pay,
            Event::Closed => switches.trade_closed,
            Event::Refunded(_) => switches.refunds,
            Event::StaleWaiting => false,
        };
        let Some(trade) = self.trades.get(key) else {
            return;
        };
        let Some(url) = trade.notify_url.clone().filter(|u| !u.is_empty()) else {
            return;
        };
        if !wanted {
            return;
        }
        let buyer_id = self.rules.buyer_id;
        let notify_id = ids::notify_id(ctx.now);
        let (status, fields) = compose::fields(trade, ctx.identity, &notify_id, &event, buyer_id);
        // With out_of_order: the previous notification of this trade, or a stale waiting one.
        let stale_parts = switches.out_of_order.then(|| {
            self.notifications
                .iter()
                .rev()
                .find(|n| n.out_trade_no == key && !n.stale)
                .map(|n| {
                    (
                        n.notify_id.clone(),
                        n.trade_status.clone(),
                        n.fields.clone(),
                    )
                })
                .unwrap_or_else(|| {
                    let stale_id = ids::notify_id(ctx.now);
                    let (status, fields) = compose::fields(
                        trade,
                        ctx.identity,
                        &stale_id,
                        &Event::StaleWaiting,
                        buyer_id,
                    );
                    (stale_id, status.as_str().to_owned(), fields)
                })
        });

        let template = Notification {
            id: 0,
            notify_id,
            out_trade_no: key.to_owned(),
            trade_status: status.as_str().to_owned(),
            url,
            fields,
            gbk: switches.gbk,
            bad_signature: switches.bad_signature,
            duplicates: switches.duplicates,
            stale: false,
            follow_up: None,
            created_at: ctx.now,
            next_attempt_at: None,
            in_flight: false,
            delivered: false,
            gave_up: false,
            rounds: 0,
            attempts: Vec::new(),
        };
        let stale = stale_parts.map(|(notify_id, trade_status, fields)| Notification {
            id: self.next_id(),
            notify_id,
            trade_status,
            fields,
            stale: true,
            ..template.clone()
        });
        let late = i64::try_from(switches.late_seconds)
            .ok()
            .and_then(TimeDelta::try_seconds)
            .unwrap_or(MAX_LATENESS)
            .min(MAX_LATENESS);
        let notification = Notification {
            id: self.next_id(),
            follow_up: stale.as_ref().map(|s| s.id),
            next_attempt_at: Some(ctx.now + late),
            ..template
        };
        tracing::info!(
            out_trade_no = key,
            trade_status = notification.trade_status,
            notify_id = notification.notify_id,
            "notification queued"
        );
        self.notifications.push(notification);
        self.notifications.extend(stale);
    }

    // ----- timers ------------------------------------------------------------------------

    /// Applies every timer that is due at `ctx.now`, oldest first.
    pub fn run_timers(&mut self, ctx: &Ctx<'_>) {
        let now = ctx.now;
        let refund_window = self.rules.refund_window();
        let mut due: Vec<(DateTime<Utc>, Timer, String)> = Vec::new();
        for (key, trade) in &self.trades {
            match trade.stage {
                Stage::AwaitingScan => {
                    if let Some(at) = trade.qr_expires_at.filter(|at| *at <= now) {
                        due.push((at, Timer::QrLapsed, key.clone()));
                    }
                }
                Stage::WaitBuyerPay => match trade.pending {
                    Some(p) if p.due_at <= now && p.due_at < trade.expires_at => {
                        due.push((p.due_at, Timer::Buyer(p.action), key.clone()));
                    }
                    _ if trade.expires_at <= now => {
                        due.push((trade.expires_at, Timer::Expired, key.clone()));
                    }
                    _ => {}
                },
                Stage::TradeSuccess => {
                    if let Some(at) = finishes_at(trade, refund_window).filter(|at| *at <= now) {
                        due.push((at, Timer::RefundWindowOver, key.clone()));
                    }
                }
                _ => {}
            }
        }
        due.sort();
        for (at, timer, key) in due {
            let at_ctx = Ctx { now: at, ..*ctx };
            match timer {
                Timer::QrLapsed => {
                    if let Some(trade) = self.trades.get_mut(&key)
                        && trade.stage == Stage::AwaitingScan
                    {
                        trade.stage = Stage::Lapsed;
                    }
                }
                Timer::Buyer(BuyerAction::Pay) => self.complete_payment(&key, &at_ctx),
                Timer::Buyer(BuyerAction::Decline) => {
                    self.close_trade(&key, &at_ctx, CloseReason::BuyerDeclined);
                }
                Timer::Expired => self.close_trade(&key, &at_ctx, CloseReason::Expired),
                Timer::RefundWindowOver => {
                    if let Some(trade) = self.trades.get_mut(&key)
                        && trade.stage == Stage::TradeSuccess
                    {
                        trade.stage = Stage::TradeFinished;
                    }
                }
            }
        }
    }

    /// The earliest sandbox instant at which something becomes due.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        let refund_window = self.rules.refund_window();
        let trade_deadlines = self.trades.values().flat_map(|t| match t.stage {
            Stage::AwaitingScan => vec![t.qr_expires_at],
            Stage::WaitBuyerPay => vec![Some(t.expires_at), t.pending.map(|p| p.due_at)],
            Stage::TradeSuccess => vec![finishes_at(t, refund_window)],
            _ => vec![],
        });
        let notification_deadlines = self
            .notifications
            .iter()
            .filter(|n| !n.in_flight && !n.delivered && !n.gave_up)
            .map(|n| n.next_attempt_at);
        trade_deadlines
            .chain(notification_deadlines)
            .flatten()
            .min()
    }

    // ----- deliveries --------------------------------------------------------------------

    /// Marks every due notification in flight and prepares its signed attempt.
    pub fn take_due_deliveries(&mut self, ctx: &Ctx<'_>) -> Vec<DeliveryJob> {
        let due: Vec<u64> = self
            .notifications
            .iter()
            .filter(|n| n.is_due(ctx.now))
            .map(|n| n.id)
            .collect();
        let notify_time = alipay::time::format_beijing(ctx.now);
        let key = &ctx.identity.alipay_private_key;
        let mut jobs = Vec::new();
        for id in due {
            let Some(notification) = self.notifications.iter_mut().find(|n| n.id == id) else {
                continue;
            };
            notification.in_flight = true;
            let mut job = DeliveryJob {
                steps: vec![delivery::prepare(notification, &notify_time, key)],
            };
            let first_round = notification.rounds == 0;
            if let Some(stale_id) = notification.follow_up.filter(|_| first_round)
                && let Some(stale) = self
                    .notifications
                    .iter_mut()
                    .find(|n| n.id == stale_id && n.rounds == 0 && !n.in_flight)
            {
                stale.in_flight = true;
                job.steps.push(delivery::prepare(stale, &notify_time, key));
            }
            jobs.push(job);
        }
        jobs
    }

    /// Records one finished attempt round and plans the next one (or stops).
    pub fn finish_round(&mut self, id: u64, attempts: Vec<Attempt>, schedule: &[Duration]) {
        let Some(notification) = self.notifications.iter_mut().find(|n| n.id == id) else {
            return;
        };
        notification.in_flight = false;
        notification.rounds += 1;
        let Some(started) = attempts.first().map(|a| a.at) else {
            return;
        };
        let success = attempts.iter().any(|a| a.success);
        notification.attempts.extend(attempts);
        if success {
            notification.delivered = true;
            notification.next_attempt_at = None;
            return;
        }
        match schedule.get(notification.rounds - 1) {
            Some(gap) => {
                let gap = TimeDelta::from_std(*gap).unwrap_or(TimeDelta::MAX);
                notification.next_attempt_at = started.checked_add_signed(gap);
            }
            None => {
                notification.gave_up = true;
                notification.next_attempt_at = None;
            }
        }
    }
}

/// When a paid trade's refund window ends.
fn finishes_at(trade: &Trade, refund_window: TimeDelta) -> Option<DateTime<Utc>> {
    trade.gmt_payment?.checked_add_signed(refund_window)
}
