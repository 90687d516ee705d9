//! The running sandbox as handlers see it: identity, clock, the one lock around [`State`], the
//! HTTP client for notifications, and the background work (deliveries, scheduler). This is
//! also the seam for later modules (bills, pages): [`Sandbox::trades`] exposes every trade
//! with all its fields.

use crate::clock::Clock;
use crate::identity::Identity;
use crate::notify::delivery::{self, DeliveryJob};
use crate::notify::{Attempt, Notification};
use crate::persist;
use crate::state::{Ctx, State};
use crate::trade::Trade;
use chrono::{DateTime, TimeDelta, Utc};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Notify, watch};

/// A cheap, clonable handle (the axum state).
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    identity: Identity,
    clock: Clock,
    retry_schedule: Vec<Duration>,
    state_file: Option<PathBuf>,
    base_url: String,
    http: reqwest::Client,
    store: Mutex<Store>,
    /// Pokes the scheduler when deadlines may have moved.
    wake: Notify,
    shutdown: watch::Receiver<bool>,
    bill_links: crate::bill::Links,
}

struct Store {
    state: State,
    /// The state text last written to the state file.
    persisted: Option<String>,
}

/// What [`Sandbox::new`] needs.
pub(crate) struct Parts {
    pub identity: Identity,
    pub clock: Clock,
    pub state: State,
    pub retry_schedule: Vec<Duration>,
    pub state_file: Option<PathBuf>,
    pub base_url: String,
    pub http: reqwest::Client,
    pub shutdown: watch::Receiver<bool>,
    pub bill_links: crate::bill::Links,
}

impl Sandbox {
    pub(crate) fn new(parts: Parts) -> Sandbox {
        Sandbox {
            inner: Arc::new(Inner {
                identity: parts.identity,
                clock: parts.clock,
                retry_schedule: parts.retry_schedule,
                state_file: parts.state_file,
                base_url: parts.base_url,
                http: parts.http,
                store: Mutex::new(Store {
                    state: parts.state,
                    persisted: None,
                }),
                wake: Notify::new(),
                shutdown: parts.shutdown,
                bill_links: parts.bill_links,
            }),
        }
    }

    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Sandbox time now.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The bill download links handed out so far (see [`crate::bill`]).
    pub fn bill_links(&self) -> &crate::bill::Links {
        &self.inner.bill_links
    }

    pub fn gateway_url(&self) -> String {
        format!("{}/gateway.do", self.inner.base_url)
    }

    /// Every order with all its fields (amounts, times, refunds, store/operator/terminal,
    /// subject, body, buyer), timers applied up to now. For bills, pages and tests.
    pub async fn trades(&self) -> Vec<Trade> {
        self.mutate(|state, _| state.trades.values().cloned().collect())
            .await
    }

    pub async fn trade(&self, out_trade_no: &str) -> Option<Trade> {
        self.mutate(|state, _| state.trades.get(out_trade_no).cloned())
            .await
    }

    /// Notifications (with their attempts), optionally of one `out_trade_no`, oldest first.
    pub async fn notifications(&self, out_trade_no: Option<&str>) -> Vec<Notification> {
        self.mutate(|state, _| {
            state
                .notifications
                .iter()
                .filter(|n| out_trade_no.is_none_or(|o| n.out_trade_no == o))
                .cloned()
                .collect()
        })
        .await
    }

    /// Runs `f` on the state under the lock at the current sandbox time, after applying due
    /// timers; then saves the state (with `--state-file`), starts due notification deliveries
    /// and wakes the scheduler. `f` must not block: the lock is never held across I/O other
    /// than the state file.
    pub(crate) async fn mutate<R>(&self, f: impl FnOnce(&mut State, &Ctx<'_>) -> R) -> R {
        let result = self.locked(f).await;
        self.inner.wake.notify_one();
        result
    }

    /// Moves sandbox time forward and fires whatever became due.
    pub(crate) async fn advance_clock(&self, by: TimeDelta) -> DateTime<Utc> {
        self.inner.clock.advance(by);
        self.mutate(|_, ctx| ctx.now).await
    }

    /// The scheduler's step: applies due work and returns the next sandbox deadline (without
    /// waking the scheduler itself).
    pub(crate) async fn tick(&self) -> Option<DateTime<Utc>> {
        self.locked(|state, _| state.next_deadline()).await
    }

    async fn locked<R>(&self, f: impl FnOnce(&mut State, &Ctx<'_>) -> R) -> R {
        let mut store = self.inner.store.lock().await;
        let ctx = Ctx {
            now: self.inner.clock.now(),
            identity: &self.inner.identity,
        };
        store.state.run_timers(&ctx);
        let result = f(&mut store.state, &ctx);
        let jobs = store.state.take_due_deliveries(&ctx);
        if let Some(path) = &self.inner.state_file {
            let Store { state, persisted } = &mut *store;
            if let Err(e) = persist::save(path, state, ctx.now, persisted) {
                tracing::warn!(error = %e, "could not save the state file");
            }
        }
        drop(store);
        for job in jobs {
            self.spawn_background(self.deliver(job));
        }
        result
    }

    pub(crate) async fn woken(&self) {
        self.inner.wake.notified().await;
    }

    /// Resolves when the sandbox shuts down.
    pub(crate) async fn shutting_down(&self) {
        let mut shutdown = self.inner.shutdown.clone();
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
    }

    /// Spawns background work that stops when the sandbox shuts down.
    pub(crate) fn spawn_background(&self, work: impl Future<Output = ()> + Send + 'static) {
        let sandbox = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = work => {}
                () = sandbox.shutting_down() => {}
            }
        });
    }

    /// Sends the rounds of one job in order, recording each round under the lock. Boxed
    /// because delivering records through [`Sandbox::mutate`], which starts deliveries.
    fn deliver(&self, job: DeliveryJob) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let sandbox = self.clone();
        Box::pin(async move { sandbox.deliver_rounds(job).await })
    }

    async fn deliver_rounds(&self, job: DeliveryJob) {
        for step in job.steps {
            let mut attempts = Vec::new();
            let round = step.round;
            for copy in 1..=step.copies {
                let at = self.now();
                let reply = delivery::post(&self.inner.http, &step).await;
                tracing::info!(
                    url = step.url,
                    status = ?reply.http_status,
                    success = reply.is_success(),
                    round,
                    copy,
                    "notification attempt"
                );
                attempts.push(Attempt {
                    round,
                    copy,
                    at,
                    notify_time: step.notify_time.clone(),
                    url: step.url.clone(),
                    http_status: reply.http_status,
                    response_body: delivery::truncate(&reply.body),
                    error: reply.error.clone(),
                    success: reply.is_success(),
                });
            }
            let schedule = self.inner.retry_schedule.clone();
            self.mutate(|state, _| state.finish_round(step.id, attempts, &schedule))
                .await;
        }
    }
}
