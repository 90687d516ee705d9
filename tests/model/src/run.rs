//! The driver: runs a script against the real handlers (`pay`, `query`, `notify`,
//! `timeout-close`, `reconcile`'s matching and healing) over one [`World`], each request a
//! future polled only when the script resumes it, the invariants checked after every step;
//! then settles (every request finished, every notification delivered, every due expiry
//! handled, every order read, the last day reconciled) and checks that the orders agree with
//! Alipay.

use crate::alipay::{APP_ID, BillRow, Note, SELLER_ID};
use crate::check;
use crate::script::{Action, Scene, order_fen, refund_fen};
use crate::world::{Fate, Point, Port, World};
use alipay::{AlipayVerifier, PrivateKey};
use aws_adapters::ExpiryMessage;
use chrono::{DateTime, Duration as Span, NaiveDate, TimeZone, Utc};
use domain::memory::{Expiry, MemoryScheduler};
use domain::order::{EventKind, RefundStatus};
use domain::ports::StoreError;
use domain::refunding::RefundError;
use domain::{OrderStatus, OutRequestNo, OutTradeNo};
use notify::{Delivery, Notifications, Reply};
use pay::{CreateError, Payments, Settings};
use query::Orders;
use query::sync::RefundLookup;
use reconcile::matching::{Matcher, Row, RowKind};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use timeout_close::{Expiries, ExpiryError, Handled};

/// The handlers, each over the same world.
struct Handlers {
    pay: Payments<Port, MemoryScheduler, Port, Port>,
    orders: Orders<Port, Port, Port>,
    notifications: Notifications<Port, Port>,
    expiries: Expiries<Port, MemoryScheduler, Port, Port>,
    port: Port,
}

impl Handlers {
    fn new(world: &Arc<World>, verifier: AlipayVerifier) -> Handlers {
        let port = Port {
            world: world.clone(),
        };
        let settings = Settings::default();
        Handlers {
            orders: Orders {
                store: port.clone(),
                gateway: port.clone(),
                clock: port.clone(),
                sync_after: Duration::from_secs(2),
            },
            notifications: Notifications {
                store: port.clone(),
                clock: port.clone(),
                verifier,
                app_id: APP_ID.to_owned(),
                seller_id: Some(SELLER_ID.to_owned()),
            },
            expiries: Expiries {
                store: port.clone(),
                scheduler: world.queue.clone(),
                gateway: port.clone(),
                clock: port.clone(),
                policy: settings.lease_policy(),
                refunds: settings.refunds,
            },
            pay: Payments::new(
                port.clone(),
                world.queue.clone(),
                port.clone(),
                port.clone(),
                settings,
            ),
            port,
        }
    }
}

/// What a request was.
#[derive(Debug, Clone)]
enum What {
    Create,
    Get,
    Refund,
    RefundGet,
    Notify(Note),
    Expire(Expiry),
    Reconcile,
}

/// How a request ended.
#[derive(Debug)]
enum Done {
    Create(Result<OrderStatus, CreateError>),
    Refund(Result<Option<RefundStatus>, RefundError>),
    Read(Result<(), StoreError>),
    Notify(Reply),
    Expire(Result<Handled, ExpiryError>),
}

struct Op<'h> {
    id: usize,
    what: What,
    future: Pin<Box<dyn Future<Output = Done> + 'h>>,
}

/// What a case went through: requests made, and how often each kind of outcome was reached
/// (`status:REFUNDED`, `event:paid/notification`, `anomaly:paid_after_close`, ...), so that a
/// run can show the scripts reach what they are meant to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub requests: u64,
    pub reached: BTreeMap<String, u64>,
}

impl Tally {
    fn saw(&mut self, what: String) {
        *self.reached.entry(what).or_default() += 1;
    }

    /// Adds what the settled world shows.
    fn survey(&mut self, world: &World) {
        for order in world.store.orders() {
            self.saw(format!("status:{}", order.status().as_str()));
        }
        for record in world.store.anomalies() {
            self.saw(format!("anomaly:{}", record.latest.kind.as_str()));
        }
        for stored in world.store.events() {
            let name = match &stored.event.kind {
                EventKind::Paid { source, .. } => format!("paid/{source:?}"),
                EventKind::Closed { reason } => format!("closed/{reason}"),
                EventKind::RefundSucceeded { source, .. } => format!("refund_succeeded/{source:?}"),
                EventKind::RefundFailed { failure, .. } => {
                    format!("refund_failed/{}", failure.code)
                }
                EventKind::Failed { failure } => format!("failed/{}", failure.code),
                other => format!("{other:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            };
            self.saw(format!("event:{name}"));
        }
        for notification in world.store.notifications() {
            self.saw(format!("notification:{}", notification.verdict.as_str()));
        }
    }
}

/// 2024-01-01 10:00 in Beijing.
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 2, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The signing key of the model's Alipay, and its public half as the notify function knows it.
fn keys() -> Result<&'static (PrivateKey, AlipayVerifier), String> {
    static KEYS: OnceLock<Result<(PrivateKey, AlipayVerifier), String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (key, _) = PrivateKey::generate().map_err(|e| e.to_string())?;
        let public = key.public_key().map_err(|e| e.to_string())?;
        Ok((key, AlipayVerifier::PublicKey(public)))
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn signed(note: &Note) -> Result<Vec<u8>, String> {
    let (key, _) = keys()?;
    let params: Vec<(&str, &str)> = note.params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    alipay::notify::sign_form(&params, encoding_rs::UTF_8, key)
        .map(String::into_bytes)
        .map_err(|e| e.to_string())
}

/// A small deterministic source of fates for what must be answered while time passes.
struct Fates(u32);

impl Fates {
    fn next(&mut self) -> Fate {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        Fate((self.0 >> 8) as u8)
    }
}

/// Settling rounds before an order still open is a hanging order.
const SETTLE_ROUNDS: usize = 8;
/// Polls of one request before it counts as never finishing.
const MAX_POLLS: usize = 2_000;

struct Driver<'h> {
    world: &'h Arc<World>,
    handlers: &'h Handlers,
    ops: Vec<Op<'h>>,
    next_id: usize,
    deliveries: u64,
    tally: Tally,
    /// What happened, for the report of a failing script.
    log: Vec<String>,
    /// The scene of each order number's first request: a retry sends the same request (a
    /// different one is refused before anything happens, which is not worth the steps).
    scenes: BTreeMap<u8, Scene>,
}

fn no(order: u8) -> Result<OutTradeNo, String> {
    OutTradeNo::parse(&format!("M{order}")).map_err(|e| e.to_string())
}

fn store_failure(error: &StoreError) -> Result<(), String> {
    match error {
        StoreError::Corrupt(detail) => Err(format!("the store is corrupt: {detail}")),
        StoreError::Unavailable(_) => Ok(()),
    }
}

impl<'h> Driver<'h> {
    fn now(&self) -> DateTime<Utc> {
        self.world.now()
    }

    fn note(&mut self, line: String) {
        let at = self.now().format("%d %H:%M:%S");
        self.log.push(format!("{at} {line}"));
    }

    /// The error with what led to it, and the orders and trades as they are.
    fn report(&self, error: String) -> String {
        let orders: Vec<String> = self
            .world
            .store
            .orders()
            .iter()
            .map(|o| {
                format!(
                    "{} {} v{} refunded {} refunds {:?}",
                    o.out_trade_no(),
                    o.status().as_str(),
                    o.version(),
                    o.refunded_fen(),
                    o.refunds()
                        .iter()
                        .map(|r| (r.out_request_no().to_string(), r.status()))
                        .collect::<Vec<_>>()
                )
            })
            .collect();
        let trades: Vec<String> = self
            .world
            .alipay()
            .trades
            .values()
            .map(|t| format!("{t:?}"))
            .collect();
        format!(
            "{error}\n--- what happened:\n{}\n--- orders:\n{}\n--- Alipay:\n{}",
            self.log.join("\n"),
            orders.join("\n"),
            trades.join("\n")
        )
    }

    fn start(
        &mut self,
        what: What,
        future: Pin<Box<dyn Future<Output = Done> + 'h>>,
    ) -> Result<(), String> {
        let id = self.next_id;
        self.next_id += 1;
        self.tally.requests += 1;
        self.note(format!("#{id} starts: {what:?}"));
        self.ops.push(Op { id, what, future });
        self.poll(id)
    }

    fn position(&self, id: usize) -> Option<usize> {
        self.ops.iter().position(|op| op.id == id)
    }

    /// Polls request `id` once: it runs to its next suspension or to its end.
    fn poll(&mut self, id: usize) -> Result<(), String> {
        let Some(at) = self.position(id) else {
            return Ok(());
        };
        self.world.polling(Some(id));
        let polled = self.ops.get_mut(at).map(|op| {
            op.future
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
        });
        self.world.polling(None);
        match polled {
            Some(Poll::Ready(done)) => {
                let op = self.ops.remove(at);
                self.world.forget(id);
                self.note(format!("#{id} ends: {done:?}"));
                let ended = format!("{done:?}").replace(')', "");
                let ended = ended
                    .split(['(', ' '])
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ");
                self.tally.saw(format!("ended:{ended}"));
                self.finished(op.what, done)
            }
            Some(Poll::Pending) => match self.world.waiting(id) {
                Some(wait) => {
                    self.note(format!("#{id} waits at {:?}", wait.point));
                    Ok(())
                }
                None => Err(format!(
                    "request {id} waits for something other than the world"
                )),
            },
            None => Ok(()),
        }
    }

    /// What a finished request means for the queue and the outbox; errors that are bugs.
    fn finished(&mut self, what: What, done: Done) -> Result<(), String> {
        match done {
            Done::Create(Err(CreateError::Internal(detail))) => {
                Err(format!("create failed internally: {detail}"))
            }
            Done::Create(Err(CreateError::Store(error)))
            | Done::Refund(Err(RefundError::Store(error)))
            | Done::Read(Err(error)) => store_failure(&error),
            Done::Notify(Reply::RetryLater) => {
                if let What::Notify(note) = what {
                    self.world.alipay().outbox.push(note);
                }
                Ok(())
            }
            Done::Expire(Err(error)) => {
                if let ExpiryError::Store(error) = &error {
                    store_failure(error)?;
                }
                self.redeliver(&what);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A message or notification whose handler gave no answer is delivered again.
    fn redeliver(&self, what: &What) {
        match what {
            What::Notify(note) => self.world.alipay().outbox.push(note.clone()),
            What::Expire(message) => self.world.queue.redeliver(message.clone()),
            _ => {}
        }
    }

    /// Resumes request `id` with `fate` (a sleeper once its sleep is over).
    fn resume(&mut self, id: usize, fate: Fate, fates: &mut Fates) -> Result<(), String> {
        let Some(wait) = self.world.waiting(id) else {
            return Ok(());
        };
        if wait.point == Point::Sleep {
            self.advance_to(wait.deadline, fates)?;
        }
        self.world.grant(id, fate);
        self.poll(id)
    }

    /// Moves the clock to `target`; every suspension due before then is resumed at its
    /// deadline, in deadline order.
    fn advance_to(&mut self, target: DateTime<Utc>, fates: &mut Fates) -> Result<(), String> {
        for _ in 0..MAX_POLLS * 8 {
            let due = self
                .world
                .suspended()
                .into_iter()
                .filter(|(_, wait)| wait.deadline < target)
                .min_by_key(|(id, wait)| (wait.deadline, *id));
            let Some((id, wait)) = due else {
                self.world.set_now(target);
                return Ok(());
            };
            self.world.set_now(wait.deadline);
            self.world.grant(id, fates.next());
            self.poll(id)?;
        }
        Err("requests kept waiting while time passed".into())
    }

    /// The process of request `id` dies; its Alipay call in flight arrives or not.
    fn crash(&mut self, id: usize, fate: u8) -> Result<(), String> {
        let Some(wait) = self.world.waiting(id) else {
            return Ok(());
        };
        if matches!(wait.point, Point::Call(_)) && fate.is_multiple_of(2) {
            // The request reached Alipay; the process dies before the answer is used.
            self.world.grant(id, Fate(11));
            self.poll(id)?;
        }
        let Some(at) = self.position(id) else {
            return Ok(());
        };
        let op = self.ops.remove(at);
        self.world.forget(id);
        self.redeliver(&op.what);
        Ok(())
    }

    fn create(&mut self, order: u8, scene: Scene) -> Result<(), String> {
        let no = no(order)?;
        let first = *self.scenes.entry(order).or_insert(scene);
        let scene = match (first, scene) {
            (Scene::Barcode(_), Scene::Barcode(buyer)) => Scene::Barcode(buyer),
            _ => first,
        };
        let body = match scene {
            Scene::Qr => format!(
                r#"{{"out_trade_no":"{no}","amount_fen":{},"subject":"tea","scene":"qr","timeout_seconds":60}}"#,
                order_fen(order)
            ),
            Scene::Barcode(buyer) => {
                self.world.alipay().buyers.insert(no.to_string(), buyer);
                format!(
                    r#"{{"out_trade_no":"{no}","amount_fen":{},"subject":"tea","scene":"barcode","auth_code":"280000000000000001","timeout_seconds":60}}"#,
                    order_fen(order)
                )
            }
        };
        let request = pay::validation::parse(body.as_bytes()).map_err(|e| format!("{e:?}"))?;
        let h = self.handlers;
        self.start(
            What::Create,
            Box::pin(async move {
                Done::Create(h.pay.create(&request).await.map(|c| c.order.status()))
            }),
        )
    }

    fn refund(&mut self, order: u8, refund: u8) -> Result<(), String> {
        let no = no(order)?;
        let body = format!(
            r#"{{"out_request_no":"{no}R{refund}","amount_fen":{}}}"#,
            refund_fen(refund, order_fen(order))
        );
        let new = pay::refunds::parse(&no, body.as_bytes()).map_err(|e| format!("{e:?}"))?;
        let h = self.handlers;
        self.start(
            What::Refund,
            Box::pin(async move {
                Done::Refund(
                    h.pay
                        .refund(&no, &new)
                        .await
                        .map(|a| a.refund().map(|r| r.status())),
                )
            }),
        )
    }

    fn get(&mut self, order: u8) -> Result<(), String> {
        let no = no(order)?;
        let h = self.handlers;
        self.start(
            What::Get,
            Box::pin(async move { Done::Read(h.orders.lookup(&no).await.map(|_| ())) }),
        )
    }

    fn refund_get(&mut self, order: u8, refund: u8) -> Result<(), String> {
        let no = no(order)?;
        let request = OutRequestNo::parse(&format!("{no}R{refund}")).map_err(|e| e.to_string())?;
        let h = self.handlers;
        self.start(
            What::RefundGet,
            Box::pin(async move {
                let looked = h.orders.lookup_refund(&no, &request).await;
                Done::Read(looked.map(|_: RefundLookup| ()))
            }),
        )
    }

    fn deliver(&mut self, note: Note) -> Result<(), String> {
        self.deliveries += 1;
        let delivery = Delivery {
            body: signed(&note)?,
            headers: BTreeMap::from([(
                "content-type".to_owned(),
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            )]),
            request_id: format!("D{}", self.deliveries),
            received_at: self.now(),
        };
        let h = self.handlers;
        self.start(
            What::Notify(note),
            Box::pin(async move { Done::Notify(h.notifications.receive(&delivery).await) }),
        )
    }

    fn expire(&mut self, expiry: Expiry) -> Result<(), String> {
        let message = ExpiryMessage {
            out_trade_no: expiry.out_trade_no.clone(),
            due_at: expiry.due_at,
            claim: expiry.claim.clone(),
        };
        let h = self.handlers;
        self.start(
            What::Expire(expiry),
            Box::pin(async move { Done::Expire(h.expiries.expire(&message).await) }),
        )
    }

    /// Moves to 09:05 of the next Beijing day and reconciles the day before against its bill.
    fn next_morning(&mut self, fates: &mut Fates) -> Result<(), String> {
        let day = domain::beijing_day(self.now());
        let morning = day
            .succ_opt()
            .and_then(|next| next.and_hms_opt(1, 5, 0))
            .map(|at| at.and_utc())
            .ok_or("no next day")?;
        self.advance_to(morning, fates)?;
        self.reconcile(day)
    }

    fn reconcile(&mut self, day: NaiveDate) -> Result<(), String> {
        let bill: Vec<BillRow> = self.world.alipay().bill(day);
        let world = self.world.clone();
        let h = self.handlers;
        self.start(
            What::Reconcile,
            Box::pin(async move {
                // As `Reconciler::reconcile` does, with the bill's rows read from the model.
                let mut matcher = Matcher::new(day);
                for order in world.store.orders() {
                    if domain::beijing_day(order.created_at()) == day {
                        matcher.add_order(&order);
                    }
                }
                for (line, row) in (1..).zip(&bill) {
                    matcher.row(Row {
                        out_trade_no: &row.out_trade_no,
                        trade_no: &row.trade_no,
                        kind: if row.refund {
                            RowKind::Refund
                        } else {
                            RowKind::Payment
                        },
                        out_request_no: row.out_request_no.as_deref(),
                        fen: row.fen,
                        line,
                        finished_at: row.finished_at,
                    });
                }
                for number in matcher.aside_numbers() {
                    if let Some(order) = world.store.order(&number) {
                        matcher.add_order(&order);
                    }
                }
                matcher.classify_aside();
                let matched = matcher.finish();
                let acted = reconcile::heal::act(&h.port, &h.port, &matched.findings).await;
                Done::Read(acted.map(|_| ()))
            }),
        )
    }

    fn act(&mut self, action: Action) -> Result<(), String> {
        match action {
            Action::Create { order, scene } => self.create(order, scene),
            Action::Get { order } => self.get(order),
            Action::Refund { order, refund } => self.refund(order, refund),
            Action::RefundGet { order, refund } => self.refund_get(order, refund),
            Action::Scan { order } => {
                let now = self.now();
                self.world.alipay().scan(no(order)?.as_str(), now);
                Ok(())
            }
            Action::Pay { order } => {
                let now = self.now();
                self.world.alipay().pay_by_buyer(no(order)?.as_str(), now);
                Ok(())
            }
            Action::Deliver { pick, again } => {
                let note = {
                    let mut alipay = self.world.alipay();
                    let count = alipay.outbox.len();
                    if count == 0 {
                        return Ok(());
                    }
                    let at = usize::from(pick) % count;
                    if again {
                        alipay.outbox.get(at).cloned()
                    } else {
                        Some(alipay.outbox.remove(at))
                    }
                };
                match note {
                    Some(note) => self.deliver(note),
                    None => Ok(()),
                }
            }
            Action::Expire { pick } => {
                let count = self.world.queue.scheduled().len();
                if count == 0 {
                    return Ok(());
                }
                match self.world.queue.take(usize::from(pick) % count) {
                    Some(expiry) => self.expire(expiry),
                    None => Ok(()),
                }
            }
            Action::Step { op, fate } => match self.pick(op) {
                Some(id) => self.resume(id, Fate(fate), &mut Fates(u32::from(fate) | 1)),
                None => Ok(()),
            },
            Action::Crash { op, fate } => match self.pick(op) {
                Some(id) => self.crash(id, fate),
                None => Ok(()),
            },
            Action::Wait { seconds, fates } => {
                let target = self.now() + Span::seconds(i64::from(seconds));
                self.advance_to(target, &mut Fates(u32::from(fates) | 1))
            }
            Action::NextMorning { fates } => self.next_morning(&mut Fates(u32::from(fates) | 1)),
        }
    }

    fn pick(&self, op: u8) -> Option<usize> {
        let count = self.ops.len();
        (count > 0)
            .then(|| self.ops.get(usize::from(op) % count).map(|op| op.id))
            .flatten()
    }

    /// Runs every request in flight to its end, everything answered normally.
    fn finish_all(&mut self) -> Result<(), String> {
        for _ in 0..MAX_POLLS {
            let next = self
                .world
                .suspended()
                .into_iter()
                .min_by_key(|(id, wait)| (wait.deadline, *id));
            let Some((id, wait)) = next else {
                return Ok(());
            };
            if wait.point == Point::Sleep {
                self.world.set_now(wait.deadline);
            }
            self.world.grant(id, Fate::NORMAL);
            self.poll(id)?;
        }
        Err("a request never finished".into())
    }

    fn run_alone(&mut self, started: Result<(), String>) -> Result<(), String> {
        started?;
        self.finish_all()
    }

    /// Everything Alipay and the queue still have to deliver, and a read of every order.
    fn settle_round(&mut self) -> Result<(), String> {
        self.finish_all()?;
        let later = self.now() + Span::minutes(10);
        self.advance_to(later, &mut Fates(1))?;
        loop {
            let note = {
                let mut alipay = self.world.alipay();
                (!alipay.outbox.is_empty()).then(|| alipay.outbox.remove(0))
            };
            let Some(note) = note else { break };
            let started = self.deliver(note);
            self.run_alone(started)?;
        }
        let mut messages = Vec::new();
        while let Some(message) = self.world.queue.take(0) {
            messages.push(message);
        }
        let now = self.now();
        for message in messages {
            if message.due_at <= now {
                let started = self.expire(message);
                self.run_alone(started)?;
            } else {
                self.world.queue.redeliver(message);
            }
        }
        for order in self.world.store.orders() {
            let number: u8 = order
                .out_trade_no()
                .as_str()
                .trim_start_matches('M')
                .parse()
                .map_err(|_| "an order number of another script")?;
            let started = self.get(number);
            self.run_alone(started)?;
            let pending: Vec<u8> = order
                .refunds()
                .iter()
                .filter(|r| r.is_pending())
                .filter_map(|r| r.out_request_no().as_str().rsplit('R').next()?.parse().ok())
                .collect();
            for refund in pending {
                let started = self.refund_get(number, refund);
                self.run_alone(started)?;
            }
        }
        Ok(())
    }

    /// Every order still CREATING has an expiry on its way: a queued message, or one being
    /// handled, for the order or for the claim it was stored with. Otherwise an order whose
    /// creator died could stay CREATING for ever.
    fn watched(&self) -> Result<(), String> {
        let mut messages = self.world.queue.scheduled();
        messages.extend(self.ops.iter().filter_map(|op| match &op.what {
            What::Expire(message) => Some(message.clone()),
            _ => None,
        }));
        for order in self.world.store.orders() {
            if order.status() != domain::OrderStatus::Creating {
                continue;
            }
            let covered = messages.iter().any(|m| {
                &m.out_trade_no == order.out_trade_no()
                    && m.claim.as_ref().is_none_or(|claim| claim.names(&order))
            });
            if !covered {
                return Err(format!(
                    "{} is CREATING and no expiry is on its way",
                    order.out_trade_no()
                ));
            }
        }
        Ok(())
    }

    fn settled(&self) -> bool {
        self.ops.is_empty()
            && self.world.alipay().outbox.is_empty()
            && self.world.store.orders().iter().all(|order| {
                !order.status().is_open() && order.refunds().iter().all(|r| !r.is_pending())
            })
    }
}

/// Runs one script; `Err` says which invariant broke, after which step.
pub fn run(script: &[Action]) -> Result<Tally, String> {
    let world = Arc::new(World::new(start()));
    let (_, verifier) = keys()?;
    let handlers = Handlers::new(&world, verifier.clone());
    let mut driver = Driver {
        world: &world,
        handlers: &handlers,
        ops: Vec::new(),
        next_id: 0,
        deliveries: 0,
        tally: Tally::default(),
        log: Vec::new(),
        scenes: BTreeMap::new(),
    };
    for (index, action) in script.iter().enumerate() {
        driver.note(format!("step {index}: {action:?}"));
        driver
            .act(*action)
            .and_then(|()| check::invariants(&world))
            .and_then(|()| driver.watched())
            .map_err(|e| driver.report(format!("after step {index} ({action:?}): {e}")))?;
    }
    driver.note("settling".into());
    for _ in 0..SETTLE_ROUNDS {
        driver
            .settle_round()
            .and_then(|()| check::invariants(&world))
            .map_err(|e| driver.report(format!("while settling: {e}")))?;
        if driver.settled() {
            break;
        }
    }
    driver
        .next_morning(&mut Fates(1))
        .and_then(|()| driver.finish_all())
        .and_then(|()| check::invariants(&world))
        .map_err(|e| driver.report(format!("reconciling the last day: {e}")))?;
    check::settled(&world).map_err(|e| driver.report(format!("after settling: {e}")))?;
    let mut tally = std::mem::take(&mut driver.tally);
    tally.survey(&world);
    Ok(tally)
}
