//! The `pay` function: `POST /v1/payments` creates a face-to-face payment, by QR code
//! (`alipay.trade.precreate`) or by the buyer's payment code (`alipay.trade.pay`).
//!
//! The logic is generic over the ports ([`OrderStore`], [`ExpiryScheduler`],
//! [`PaymentGateway`], [`Clock`]); `main.rs` only wires the real adapters.
//!
//! - [`validation`]: the strict request body.
//! - [`idempotency`]: the request hash; retry, mismatch, in-flight or abandoned claim.
//! - [`create`]: claim the number, schedule the expiry, run the scene's flow.
//! - [`recovery`]: a retry that takes over an abandoned claim asks Alipay first.
//! - [`qr`]: the precreate flow (identical re-sends on an unknown outcome).
//! - [`barcode`]: the pay flow (poll while the buyer confirms, cancel when unresolved).
//! - [`http`]: `lambda_http::Request` → response.
//!
//! Convergence with Alipay (`alipay.trade.query` → transition) is `domain::converge`.

pub mod barcode;
pub mod create;
pub mod http;
pub mod idempotency;
pub mod qr;
pub mod recovery;
pub mod validation;

#[cfg(test)]
pub(crate) mod fakes;

use domain::converge::settle;
use domain::order::{IllegalTransition, Order, OrderFailure, Transition};
use domain::ports::{
    Clock, ExpiryScheduler, OrderStore, PaymentGateway, ScheduleError, StoreError,
};
use std::time::Duration;

pub use http::PayApi;

/// The timing and identity knobs of the flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How long a claim is protected from take-over (covers the Alipay calls that must
    /// finish before the order leaves CREATING).
    pub lease: Duration,
    /// Identical precreates sent on an unknown outcome before answering 503.
    pub precreate_attempts: u32,
    pub poll_interval: Duration,
    pub poll_duration: Duration,
    pub cancel_attempts: u32,
    pub cancel_retry_delay: Duration,
    /// Sent with precreate when set.
    pub seller_id: Option<String>,
}

impl Settings {
    pub fn from_config(config: &f2f_runtime::Config) -> Self {
        Settings {
            lease: config.knobs.claim_lease,
            precreate_attempts: config.knobs.precreate_attempts,
            poll_interval: config.knobs.poll_interval,
            poll_duration: config.knobs.poll_duration,
            cancel_attempts: config.knobs.cancel_attempts,
            cancel_retry_delay: Duration::from_secs(1),
            seller_id: config.alipay.seller_id.clone(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lease: Duration::from_secs(15),
            precreate_attempts: 2,
            poll_interval: Duration::from_secs(3),
            poll_duration: Duration::from_secs(24),
            cancel_attempts: 3,
            cancel_retry_delay: Duration::from_secs(1),
            seller_id: None,
        }
    }
}

/// The create logic over its ports.
pub struct Payments<S, Q, G, C> {
    pub store: S,
    pub scheduler: Q,
    pub gateway: G,
    pub clock: C,
    pub settings: Settings,
}

/// A create request's answer: the order as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub order: Order,
    /// The order existed before this request and this request changed nothing.
    pub replayed: bool,
    /// Why the order is still PENDING although this request has finished with it.
    pub pending_reason: Option<&'static str>,
}

impl Created {
    fn new(order: Order) -> Self {
        Created {
            order,
            replayed: false,
            pending_reason: None,
        }
    }

    fn replayed(order: Order) -> Self {
        Created {
            order,
            replayed: true,
            pending_reason: None,
        }
    }

    fn pending_because(order: Order, reason: &'static str) -> Self {
        Created {
            order,
            replayed: false,
            pending_reason: Some(reason),
        }
    }
}

/// Why PENDING is the answer.
pub mod pending_reasons {
    /// The cancel of an unresolved barcode payment has no known outcome; the expiry job
    /// finishes the order.
    pub const CANCEL_OUTCOME_UNKNOWN: &str = "cancel_outcome_unknown";
    /// Alipay refused the cancel and the trade is still open.
    pub const CANCEL_REFUSED: &str = "cancel_refused";
    /// Alipay's trade does not match the order; someone has to look.
    pub const ALIPAY_MISMATCH: &str = "alipay_mismatch";
}

/// Why a create request could not be answered with an order.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("out_trade_no is already used by a different request")]
    Mismatch,
    #[error("the first request with this out_trade_no is still being processed")]
    InFlight { retry_after: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Scheduler(#[from] ScheduleError),
    /// Alipay's answer is unknown; the claim was released, the same request recovers.
    #[error("Alipay's answer is unknown ({0})")]
    AlipayUnavailable(String),
    /// Alipay refused the request itself (configuration: signature, app id, permissions).
    #[error("Alipay rejected the request ({0})")]
    AlipayRejected(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<IllegalTransition> for CreateError {
    fn from(error: IllegalTransition) -> Self {
        CreateError::Internal(error.to_string())
    }
}

/// The failure recorded on a FAILED order: Alipay's `sub_code` and `sub_msg`.
pub(crate) fn order_failure(failure: &alipay::outcome::Failure) -> OrderFailure {
    OrderFailure {
        code: failure
            .sub_code
            .clone()
            .unwrap_or_else(|| failure.code.clone()),
        message: failure
            .sub_msg
            .clone()
            .unwrap_or_else(|| failure.msg.clone()),
    }
}

/// Refusals that say the trade already exists in some state: learn which by a query
/// instead of recording a failure (the trade may be paid).
pub(crate) fn says_trade_exists(failure: &alipay::outcome::Failure) -> bool {
    [
        "ACQ.TRADE_HAS_SUCCESS",
        "ACQ.TRADE_HAS_CLOSE",
        "ACQ.TRADE_HAS_FINISHED",
        "ACQ.TRADE_STATUS_ERROR",
        "ACQ.CONTEXT_INCONSISTENT",
        "ACQ.TRADE_BUYER_NOT_MATCH",
    ]
    .iter()
    .any(|code| failure.sub_code_is(code))
}

impl<S, Q, G, C> Payments<S, Q, G, C>
where
    S: OrderStore,
    Q: ExpiryScheduler,
    G: PaymentGateway,
    C: Clock,
{
    pub fn new(store: S, scheduler: Q, gateway: G, clock: C, settings: Settings) -> Self {
        Payments {
            store,
            scheduler,
            gateway,
            clock,
            settings,
        }
    }

    pub(crate) fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.settings.lease).unwrap_or(chrono::Duration::seconds(15))
    }

    pub(crate) async fn settle(
        &self,
        transition: Result<Transition, IllegalTransition>,
    ) -> Result<Order, CreateError> {
        let transition = transition?;
        Ok(settle(&self.store, &transition).await?.order)
    }

    /// Gives up the claim without an answer from Alipay, so the caller's retry can take it
    /// over at once. Best effort: if this write fails, the lease simply runs out.
    pub(crate) async fn release(&self, order: &Order) {
        let Ok(transition) = order.release_lease(self.clock.now()) else {
            return;
        };
        if let Err(error) = self.store.apply(&transition).await {
            tracing::warn!(%error, "the claim could not be released; it expires with its lease");
        }
    }
}
