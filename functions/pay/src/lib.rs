//! The `pay` function: `POST /v1/payments` creates a face-to-face payment, by QR code
//! (`alipay.trade.precreate`) or by the buyer's payment code (`alipay.trade.pay`);
//! `POST /v1/payments/{out_trade_no}/refunds` refunds a paid one (`alipay.trade.refund`).
//!
//! The logic is generic over the ports ([`OrderStore`], [`ExpiryScheduler`],
//! [`PaymentGateway`], [`Clock`]); `main.rs` only wires the real adapters.
//!
//! - [`validation`]: the strict request body.
//! - [`idempotency`]: the request hash; retry, mismatch, in-flight or abandoned order.
//! - [`create`]: claim the number, schedule the expiry, run the scene's flow.
//! - [`recovery`]: a retry that takes over an abandoned order asks Alipay first.
//! - [`qr`]: the precreate flow (identical re-sends on an unknown outcome).
//! - [`barcode`]: the pay flow (poll while the buyer confirms, cancel when unresolved).
//! - [`refunds`]: `POST /v1/payments/{out_trade_no}/refunds`, over `domain::refunding`.
//! - [`http`]: `lambda_http::Request` → response, by route.
//!
//! The flow steps (`qr`, `barcode`, `poll`, `cancel`, `recover`, ...) call each other through
//! boxed futures: nested inline, their states made the request future too deep for a 2 MiB
//! worker stack in debug builds.
//!
//! Every side-effecting Alipay call is fenced (`domain::fence`): the request holds the
//! order's lease, and extends it to cover the call before sending it; a request that finds
//! the order taken over stops and answers with the order as stored. Convergence with Alipay
//! (`alipay.trade.query` → transition, anomalies) is `domain::converge`.

pub mod barcode;
pub mod create;
pub mod http;
pub mod idempotency;
pub mod qr;
pub mod recovery;
pub mod refunds;
pub mod validation;
pub mod wired;

#[cfg(test)]
pub(crate) mod fakes;

use domain::converge::Settled;
use domain::fence::{Fenced, LeasePolicy, apply_as_holder, cover, release};
use domain::order::{IllegalTransition, Order, OrderFailure, Transition};
use domain::ports::{
    Clock, ExpiryScheduler, OrderStore, PaymentGateway, ScheduleError, StoreError,
};
use domain::refunding::RefundPolicy;
use f2f_runtime::telemetry::count;
use std::time::Duration;

pub use http::PayApi;
pub use wired::WiredPayApi;

/// The timing and identity knobs of the flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How long a lease lasts when taken or extended; it must outlast one Alipay call plus
    /// the margin (checked at init).
    pub lease: Duration,
    /// How much longer than a fenced call a lease must reach.
    pub lease_margin: Duration,
    /// Identical precreates sent on an unknown outcome before answering 503.
    pub precreate_attempts: u32,
    pub poll_interval: Duration,
    pub poll_duration: Duration,
    pub cancel_attempts: u32,
    pub cancel_retry_delay: Duration,
    /// Sent with precreate when set.
    pub seller_id: Option<String>,
    /// The refund flow's knobs (`domain::refunding`).
    pub refunds: RefundPolicy,
}

impl Settings {
    pub fn from_config(config: &f2f_runtime::Config) -> Self {
        Settings {
            lease: config.knobs.claim_lease,
            lease_margin: LeasePolicy::DEFAULT_MARGIN,
            precreate_attempts: config.knobs.precreate_attempts,
            poll_interval: config.knobs.poll_interval,
            poll_duration: config.knobs.poll_duration,
            cancel_attempts: config.knobs.cancel_attempts,
            cancel_retry_delay: Duration::from_secs(1),
            seller_id: config.alipay.seller_id.clone(),
            refunds: config.refund_policy(),
        }
    }

    pub fn lease_policy(&self) -> LeasePolicy {
        LeasePolicy {
            lease: self.lease,
            margin: self.lease_margin,
        }
    }

    /// When the expiry job should look at a barcode order: once the longest barcode flow
    /// (pay, the polling window, a query, every cancel attempt) and one more lease are over,
    /// nobody is legitimately working on it, and an unresolved trade must be cancelled then,
    /// not when the order's own timeout runs out.
    pub fn barcode_settle_after(&self, call_timeout: Duration) -> Duration {
        call_timeout * (2 + self.cancel_attempts)
            + self.poll_duration
            + self.cancel_retry_delay * self.cancel_attempts
            + self.lease
            + self.lease_margin
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lease: Duration::from_secs(15),
            lease_margin: LeasePolicy::DEFAULT_MARGIN,
            precreate_attempts: 2,
            poll_interval: Duration::from_secs(3),
            poll_duration: Duration::from_secs(24),
            cancel_attempts: 3,
            cancel_retry_delay: Duration::from_secs(1),
            seller_id: None,
            refunds: RefundPolicy {
                lease: LeasePolicy {
                    lease: Duration::from_secs(15),
                    margin: LeasePolicy::DEFAULT_MARGIN,
                },
                send_attempts: 2,
                recheck_after: Duration::from_secs(60),
            },
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
    /// The cancel of an unresolved barcode payment has no known outcome; the expiry job (or
    /// an identical retry) finishes the order.
    pub const CANCEL_OUTCOME_UNKNOWN: &str = "cancel_outcome_unknown";
    /// Alipay refused the cancel and the trade is still open.
    pub const CANCEL_REFUSED: &str = "cancel_refused";
    /// Alipay's trade does not match the order; an anomaly is recorded for an operator.
    pub const ALIPAY_MISMATCH: &str = "alipay_mismatch";
}

/// Why a create request could not be answered with an order.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("out_trade_no is already used by a different request")]
    Mismatch,
    #[error("another request is working on this order")]
    InFlight { retry_after: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Scheduler(#[from] ScheduleError),
    /// Alipay's answer is unknown; the lease was released, the same request recovers.
    #[error("Alipay's answer is unknown ({0})")]
    AlipayUnavailable(String),
    /// Alipay refused the request itself for our configuration (signature, app id,
    /// permissions).
    #[error("Alipay rejected the request ({0})")]
    AlipayRejected(String),
    /// Alipay refused the request for its content (a parameter, a forbidden word): the
    /// caller's to fix. The order is FAILED when the refusal was signed.
    #[error("Alipay refused the request ({sub_code})")]
    AlipayRefusedRequest { sub_code: String },
    /// Alipay refused the call for its rate limit; nothing was done.
    #[error("Alipay is rate limiting calls ({sub_code})")]
    AlipayRateLimited { sub_code: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<IllegalTransition> for CreateError {
    fn from(error: IllegalTransition) -> Self {
        CreateError::Internal(error.to_string())
    }
}

/// How a refusal from Alipay is to be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The request's content: `422`, and a FAILED order when the refusal is trustworthy.
    CallerCaused,
    /// Alipay's rate limit (`40005`): `503` with `Retry-After`; nothing happened.
    RateLimited,
    /// Anything else (for a signed `40004`: the payment was declined; for a gateway
    /// refusal: our configuration).
    Other,
}

/// Refusals caused by what the caller asked for (Alipay's public error tables: `40002`
/// argument errors and the `40004` parameter and content errors of precreate and pay).
const CALLER_CAUSED: [&str; 8] = [
    "isv.invalid-parameter",
    "isv.suspected-attack",
    "isv.illegal-json",
    "ACQ.INVALID_PARAMETER",
    "ACQ.EXIST_FORBIDDEN_WORD",
    "ACQ.TOTAL_FEE_EXCEED",
    "ACQ.NOW_TIME_AFTER_EXPIRE_TIME_ERROR",
    "ACQ.SUB_GOODS_SIZE_MAX_COUNT",
];

pub(crate) fn refusal(failure: &alipay::outcome::Failure) -> Refusal {
    if failure.code == "40005" {
        Refusal::RateLimited
    } else if CALLER_CAUSED
        .iter()
        .any(|code| failure.sub_code.as_deref() == Some(code))
    {
        Refusal::CallerCaused
    } else {
        Refusal::Other
    }
}

/// The failure recorded on a FAILED order: Alipay's `sub_code`, and for a business failure
/// (`40004`) its `sub_msg`, written for the cashier. A gateway refusal's `sub_msg` may echo
/// the signed request (the buyer's payment code among it), so only its generic `msg` is kept.
pub(crate) fn order_failure(failure: &alipay::outcome::Failure, business: bool) -> OrderFailure {
    let message = if business {
        failure.sub_msg.clone()
    } else {
        None
    };
    OrderFailure {
        code: failure
            .sub_code
            .clone()
            .unwrap_or_else(|| failure.code.clone()),
        message: message.unwrap_or_else(|| failure.msg.clone()),
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

/// What the holder does next: go on with the order (still held, as stored now), or stop
/// with this answer because someone else has the order now.
pub(crate) enum Next {
    Go(Order),
    Stop(Result<Created, CreateError>),
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
        self.settings.lease_policy().lease_chrono()
    }

    /// Fences the next side-effecting call of `held`, sent after waiting `wait`.
    pub(crate) async fn fence(&self, held: &Order, wait: Duration) -> Result<Next, CreateError> {
        let work = wait + self.gateway.call_timeout();
        let fenced = cover(
            &self.store,
            &self.clock,
            &self.settings.lease_policy(),
            held,
            work,
        )
        .await?;
        Ok(match fenced {
            Fenced::Held(order) => Next::Go(order),
            Fenced::Lost(current) => {
                count("lease_lost");
                tracing::warn!(
                    status = current.status().as_str(),
                    version = current.version(),
                    "another request has the order now; not calling Alipay"
                );
                Next::Stop(self.answer_for(current))
            }
        })
    }

    /// The answer for an order someone else settled or holds.
    pub(crate) fn answer_for(&self, current: Order) -> Result<Created, CreateError> {
        if current.status().is_final() {
            return Ok(Created::new(current));
        }
        Err(CreateError::InFlight {
            retry_after: current.lease_seconds_left(self.clock.now()),
        })
    }

    /// `domain::fence::apply_as_holder` with this function's ports.
    pub(crate) async fn hold_and_apply(
        &self,
        held: &Order,
        transition: impl Fn(
            &Order,
            chrono::DateTime<chrono::Utc>,
        ) -> Result<Transition, IllegalTransition>,
    ) -> Result<Settled, CreateError> {
        Ok(apply_as_holder(&self.store, &self.clock, held, transition).await?)
    }

    /// [`Self::hold_and_apply`], answered: the order we wrote, or the other request's.
    pub(crate) async fn settle(
        &self,
        held: &Order,
        transition: impl Fn(
            &Order,
            chrono::DateTime<chrono::Utc>,
        ) -> Result<Transition, IllegalTransition>,
    ) -> Result<Created, CreateError> {
        let settled = self.hold_and_apply(held, transition).await?;
        if settled.applied {
            Ok(Created::new(settled.order))
        } else {
            self.answer_for(settled.order)
        }
    }

    /// Alipay refused the call: a verified `40004` (`business`), or a gateway refusal
    /// (`verified` when it was signed). Only a verified refusal is recorded as FAILED; an
    /// unverified one releases the lease (a retry asks Alipay what happened).
    pub(crate) async fn refused(
        &self,
        held: &Order,
        failure: &alipay::outcome::Failure,
        verified: bool,
        business: bool,
    ) -> Result<Created, CreateError> {
        let sub_code = failure
            .sub_code
            .clone()
            .unwrap_or_else(|| failure.code.clone());
        let recorded = order_failure(failure, business);
        let fail = |current: &Order, now| current.failed(recorded.clone(), now);
        match refusal(failure) {
            Refusal::RateLimited => {
                count("alipay_rate_limited");
                tracing::warn!(code = failure.code, sub_code, "Alipay is rate limiting");
                self.release(held).await;
                Err(CreateError::AlipayRateLimited { sub_code })
            }
            Refusal::CallerCaused => {
                count("alipay_refused_request");
                tracing::info!(
                    code = failure.code,
                    sub_code,
                    verified,
                    "Alipay refused the request's content"
                );
                if verified {
                    if let Err(CreateError::Store(error)) = self.settle(held, fail).await {
                        return Err(CreateError::Store(error));
                    }
                } else {
                    self.release(held).await;
                }
                Err(CreateError::AlipayRefusedRequest { sub_code })
            }
            Refusal::Other if business => {
                count("payment_failed");
                tracing::info!(code = failure.code, sub_code, "Alipay declined the payment");
                self.settle(held, fail).await
            }
            Refusal::Other => {
                self.release(held).await;
                tracing::error!(
                    code = failure.code,
                    sub_code,
                    verified,
                    "Alipay rejected the call"
                );
                Err(CreateError::AlipayRejected(format!("rejected_{sub_code}")))
            }
        }
    }

    /// Gives up the lease without an answer from Alipay (`domain::fence::release`).
    pub(crate) async fn release(&self, held: &Order) {
        release(&self.store, &self.clock, held).await;
    }
}
