//! Fencing: a side-effecting Alipay call (`precreate`, `pay`, `cancel`, `close`, `refund`) is
//! sent only by the holder of the order's lease, and only while the lease covers the call's
//! whole timeout plus a margin for clock differences between functions. Before each such call the
//! holder asks [`cover`]: if the stored lease does not reach far enough, one conditional write
//! (status and version) extends it; if that write finds the order changed by someone else
//! (taken over, settled), the holder stops and answers from the order as stored now.
//!
//! Every function that calls Alipay with an effect goes through here; the lease itself is part
//! of the order (`Order::take_over_lease`, `Order::take_over_refund`, `Order::claim_refund`,
//! `Order::extend_lease`, `Order::release_lease`).

use crate::converge::{Plan, Settled, apply_planned};
use crate::order::{IllegalTransition, Order, Transition};
use crate::ports::{Applied, Clock, OrderStore, StoreError};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// How long leases last and the safety margin of each fenced call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeasePolicy {
    /// The length of a lease when it is taken or extended.
    pub lease: Duration,
    /// Added to a call's timeout: the lease must outlast the call by this much, so that a
    /// function whose clock runs a little behind never acts while the call may still land.
    pub margin: Duration,
}

impl LeasePolicy {
    pub const DEFAULT_MARGIN: Duration = Duration::from_secs(2);

    /// A lease must cover the longest fenced call with its margin, or every call would need
    /// an extension it can never get.
    pub fn check(&self, call_timeout: Duration) -> Result<(), String> {
        let needed = call_timeout + self.margin;
        if self.lease > needed {
            Ok(())
        } else {
            Err(format!(
                "a lease of {} ms does not cover an Alipay call of {} ms plus the {} ms margin",
                self.lease.as_millis(),
                call_timeout.as_millis(),
                self.margin.as_millis()
            ))
        }
    }

    pub fn lease_chrono(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::seconds(15))
    }
}

/// Whether the holder may send its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fenced {
    /// The lease covers the call: the order as stored now (the version may have moved).
    Held(Order),
    /// Someone else has the order now (taken over, or settled): the order as stored now.
    Lost(Order),
}

/// Attempts at extending when the version moved under the same holder (a sync or a recorded
/// scan by someone else) before giving up.
const EXTEND_ATTEMPTS: usize = 4;

/// Makes sure `held` (the holder's copy of the order) is leased for `work` (the time until
/// the fenced call may still land: its timeout, plus any wait before it) from now.
pub async fn cover<S: OrderStore, C: Clock>(
    store: &S,
    clock: &C,
    policy: &LeasePolicy,
    held: &Order,
    work: Duration,
) -> Result<Fenced, StoreError> {
    let needed = work + policy.margin;
    let needed_chrono = chrono::Duration::from_std(needed).unwrap_or(chrono::Duration::MAX);
    let mut current = held.clone();
    for _ in 0..EXTEND_ATTEMPTS {
        // A settled payment or refund ends its lease (no holder): lost as well.
        if !current.same_holder(held) {
            return Ok(Fenced::Lost(current));
        }
        let now = clock.now();
        if current
            .lease_until()
            .is_some_and(|until| until >= now + needed_chrono)
        {
            return Ok(Fenced::Held(current));
        }
        let length =
            chrono::Duration::from_std(policy.lease.max(needed)).unwrap_or(chrono::Duration::MAX);
        let extension = current
            .extend_lease(now, length)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        match Box::pin(store.apply(&extension)).await? {
            Applied::Applied(order) => return Ok(Fenced::Held(order)),
            Applied::Conflict(Some(order)) => current = order,
            Applied::Conflict(None) => {
                return Err(StoreError::Corrupt(format!(
                    "order {} vanished while its lease was extended",
                    held.out_trade_no()
                )));
            }
        }
    }
    Ok(Fenced::Lost(current))
}

/// Writes a transition of the holder of `held`, planned against the order as stored (so a
/// sync or a recorded scan by someone else in between does not stop it); if someone else has
/// the order now, nothing is written and `applied` is false.
pub async fn apply_as_holder<S: OrderStore, C: Clock>(
    store: &S,
    clock: &C,
    held: &Order,
    transition: impl Fn(&Order, DateTime<Utc>) -> Result<Transition, IllegalTransition>,
) -> Result<Settled, StoreError> {
    apply_planned(store, clock, held, |current, now| {
        if current.same_holder(held) {
            Plan::transition(transition(current, now).ok())
        } else {
            Plan::nothing()
        }
    })
    .await
}

/// The holder stops without an answer from Alipay: its lease ends now, so a retry (or the
/// expiry job) can take the order over at once. Best effort: if this write fails, the lease
/// simply runs out.
pub async fn release<S: OrderStore, C: Clock>(store: &S, clock: &C, held: &Order) {
    if let Err(error) = apply_as_holder(store, clock, held, |current, now| {
        current.release_lease(now)
    })
    .await
    {
        tracing::warn!(%error, "the lease could not be released; it runs out by itself");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_must_outlast_a_call_and_its_margin() {
        let policy = LeasePolicy {
            lease: Duration::from_secs(8),
            margin: Duration::from_secs(2),
        };
        assert!(policy.check(Duration::from_secs(5)).is_ok());
        assert!(policy.check(Duration::from_secs(6)).is_err());
        assert!(policy.check(Duration::from_secs(7)).is_err());
    }
}
