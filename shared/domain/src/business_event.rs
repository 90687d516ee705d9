//! Business events: what other systems (fulfilment, notifications to the merchant, analytics)
//! learn about orders, published from the table's stream (the audit event items are the
//! outbox: each is committed in the same transaction as the change it records, so no change
//! goes unannounced). This module is the public contract: which audit events are published
//! and under which type, the envelope, its stable `event_id`, and the port the publisher
//! sends through.
//!
//! | type | published for |
//! | --- | --- |
//! | `order.created` | [`EventKind::Claimed`] |
//! | `order.awaiting_payment` | [`EventKind::CreatedAtAlipay`] |
//! | `order.scanned` | [`EventKind::Scanned`] |
//! | `order.paid` | [`EventKind::Paid`], [`EventKind::AcceptedAsPaid`] |
//! | `order.closed` | [`EventKind::Closed`] |
//! | `order.failed` | [`EventKind::Failed`] |
//! | `order.refunded` | [`EventKind::RefundedByCancel`] |
//! | `refund.requested` | [`EventKind::RefundRequested`] (its amount is reserved) |
//! | `refund.succeeded` | [`EventKind::RefundSucceeded`] (the order is PARTIALLY_REFUNDED or REFUNDED) |
//! | `refund.failed` | [`EventKind::RefundFailed`] (the reservation is released) |
//! | `anomaly.recorded` | an anomaly record inserted, or its `occurrences` increased |
//!
//! Lease changes and syncs are bookkeeping of our own and are not published. Delivery is at
//! least once: subscribers deduplicate by `event_id`.

use crate::anomaly::{AnomalyKind, AnomalyRecord, AnomalyStatus};
use crate::order::{EventKind, OrderEvent, OrderFailure, PaymentSource, RefundSource};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::future::Future;

/// The envelope's `schema_version`: raised only for a change a subscriber must act on (a
/// field removed or changing meaning); new fields and new types keep it.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "order.created")]
    OrderCreated,
    #[serde(rename = "order.awaiting_payment")]
    OrderAwaitingPayment,
    #[serde(rename = "order.scanned")]
    OrderScanned,
    #[serde(rename = "order.paid")]
    OrderPaid,
    #[serde(rename = "order.closed")]
    OrderClosed,
    #[serde(rename = "order.failed")]
    OrderFailed,
    #[serde(rename = "order.refunded")]
    OrderRefunded,
    #[serde(rename = "refund.requested")]
    RefundRequested,
    #[serde(rename = "refund.succeeded")]
    RefundSucceeded,
    #[serde(rename = "refund.failed")]
    RefundFailed,
    #[serde(rename = "anomaly.recorded")]
    AnomalyRecorded,
}

impl EventType {
    pub const ALL: [EventType; 11] = [
        EventType::OrderCreated,
        EventType::OrderAwaitingPayment,
        EventType::OrderScanned,
        EventType::OrderPaid,
        EventType::OrderClosed,
        EventType::OrderFailed,
        EventType::OrderRefunded,
        EventType::RefundRequested,
        EventType::RefundSucceeded,
        EventType::RefundFailed,
        EventType::AnomalyRecorded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderCreated => "order.created",
            EventType::OrderAwaitingPayment => "order.awaiting_payment",
            EventType::OrderScanned => "order.scanned",
            EventType::OrderPaid => "order.paid",
            EventType::OrderClosed => "order.closed",
            EventType::OrderFailed => "order.failed",
            EventType::OrderRefunded => "order.refunded",
            EventType::RefundRequested => "refund.requested",
            EventType::RefundSucceeded => "refund.succeeded",
            EventType::RefundFailed => "refund.failed",
            EventType::AnomalyRecorded => "anomaly.recorded",
        }
    }

    /// The public type of an audit event, or `None` for internal bookkeeping. Every kind is
    /// named (no catch-all), so a new kind cannot be published or hidden by accident.
    pub fn of(kind: &EventKind) -> Option<EventType> {
        match kind {
            EventKind::Claimed => Some(EventType::OrderCreated),
            EventKind::CreatedAtAlipay => Some(EventType::OrderAwaitingPayment),
            EventKind::Scanned { .. } => Some(EventType::OrderScanned),
            EventKind::Paid { .. } | EventKind::AcceptedAsPaid { .. } => Some(EventType::OrderPaid),
            EventKind::Closed { .. } => Some(EventType::OrderClosed),
            EventKind::Failed { .. } => Some(EventType::OrderFailed),
            EventKind::RefundedByCancel { .. } => Some(EventType::OrderRefunded),
            EventKind::RefundRequested { .. } => Some(EventType::RefundRequested),
            EventKind::RefundSucceeded { .. } => Some(EventType::RefundSucceeded),
            EventKind::RefundFailed { .. } => Some(EventType::RefundFailed),
            EventKind::LeaseTakenOver
            | EventKind::LeaseExtended
            | EventKind::LeaseReleased
            | EventKind::Synced => None,
        }
    }
}

/// What caused an order event, as far as the kind says more than its type: only the fields
/// of that kind are present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    /// `order.paid`: who told us (`pay_response`, `query`, `notification`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PaymentSource>,
    /// `order.paid`, `order.scanned`, `order.refunded`: Alipay's trade number, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alipay_trade_no: Option<String>,
    /// `order.closed`: why (e.g. `expired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `order.failed`, `refund.failed`: Alipay's `sub_code` (or `code`) and message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<OrderFailure>,
    /// `order.refunded`, `refund.*`: the amount given back (or asked for), in fen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_fen: Option<i64>,
    /// `refund.*`: the merchant's number of the refund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_request_no: Option<String>,
    /// `refund.succeeded`: who told us (`refund_response`, `refund_query`, `notification`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_source: Option<RefundSource>,
}

impl Cause {
    pub fn of(kind: &EventKind) -> Cause {
        match kind {
            EventKind::Scanned { alipay_trade_no } => Cause {
                alipay_trade_no: alipay_trade_no.clone(),
                ..Cause::default()
            },
            EventKind::Paid {
                alipay_trade_no,
                source,
            } => Cause {
                source: Some(*source),
                alipay_trade_no: Some(alipay_trade_no.clone()),
                ..Cause::default()
            },
            EventKind::AcceptedAsPaid { alipay_trade_no } => Cause {
                alipay_trade_no: Some(alipay_trade_no.clone()),
                ..Cause::default()
            },
            EventKind::Closed { reason } => Cause {
                reason: Some(reason.clone()),
                ..Cause::default()
            },
            EventKind::Failed { failure } => Cause {
                failure: Some(failure.clone()),
                ..Cause::default()
            },
            EventKind::RefundedByCancel {
                alipay_trade_no,
                refund_fen,
            } => Cause {
                alipay_trade_no: alipay_trade_no.clone(),
                refund_fen: Some(*refund_fen),
                ..Cause::default()
            },
            EventKind::RefundRequested {
                out_request_no,
                amount_fen,
            } => Cause {
                refund_fen: Some(*amount_fen),
                out_request_no: Some(out_request_no.clone()),
                ..Cause::default()
            },
            EventKind::RefundSucceeded {
                out_request_no,
                amount_fen,
                source,
            } => Cause {
                refund_fen: Some(*amount_fen),
                out_request_no: Some(out_request_no.clone()),
                refund_source: Some(*source),
                ..Cause::default()
            },
            EventKind::RefundFailed {
                out_request_no,
                amount_fen,
                failure,
            } => Cause {
                refund_fen: Some(*amount_fen),
                out_request_no: Some(out_request_no.clone()),
                failure: Some(failure.clone()),
                ..Cause::default()
            },
            EventKind::Claimed
            | EventKind::CreatedAtAlipay
            | EventKind::LeaseTakenOver
            | EventKind::LeaseExtended
            | EventKind::LeaseReleased
            | EventKind::Synced => Cause::default(),
        }
    }
}

/// An anomaly event's details: the record after the sighting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalyDetails {
    /// The record's id, `<out_trade_no>/<kind>`.
    pub id: String,
    pub kind: AnomalyKind,
    pub status: AnomalyStatus,
    /// How often it was seen, this sighting included.
    pub occurrences: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// What an operator should do.
    pub operator_action: String,
    /// The latest sighting as recorded (what Alipay said, the order's state then).
    pub latest: serde_json::Value,
}

/// The envelope every subscriber receives, `O` being the order as the merchant API shows it
/// (the publisher fills in its view; the domain does not render orders).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusinessEvent<O> {
    pub schema_version: u32,
    /// Stable across redeliveries: `<out_trade_no>/v<version>` for order events,
    /// `<anomaly id>/<occurrences>` for anomaly events.
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// RFC 3339 in UTC, milliseconds: when the change was committed.
    pub occurred_at: String,
    /// The order concerned (`null` for an anomaly that names no order of ours).
    pub out_trade_no: Option<String>,
    /// Order events: the order's version after the change (orders' events are numbered by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Order events: the order after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<O>,
    /// Order events: the details of the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// Anomaly events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<AnomalyDetails>,
}

/// `<out_trade_no>/v<version>`.
pub fn order_event_id(out_trade_no: &str, version: u64) -> String {
    format!("{out_trade_no}/v{version}")
}

/// `<anomaly id>/<occurrences>`: one event per sighting.
pub fn anomaly_event_id(anomaly_id: &str, occurrences: u64) -> String {
    format!("{anomaly_id}/{occurrences}")
}

fn occurred_at(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl<O> BusinessEvent<O> {
    /// The event of an audit event and the order it left behind; `None` for internal kinds.
    pub fn of_order_event(event: &OrderEvent, order: O) -> Option<BusinessEvent<O>> {
        let event_type = EventType::of(&event.kind)?;
        let out_trade_no = event.out_trade_no.as_str();
        Some(BusinessEvent {
            schema_version: SCHEMA_VERSION,
            event_id: order_event_id(out_trade_no, event.version),
            event_type,
            occurred_at: occurred_at(event.at),
            out_trade_no: Some(out_trade_no.to_owned()),
            version: Some(event.version),
            order: Some(order),
            cause: Some(Cause::of(&event.kind)),
            anomaly: None,
        })
    }

    /// The event of one anomaly sighting, as the record stands after it.
    pub fn of_anomaly(record: &AnomalyRecord) -> Result<BusinessEvent<O>, serde_json::Error> {
        let kind = record.latest.kind;
        let latest = serde_json::to_value(&record.latest)?;
        // Read from the sighting as recorded: a forged notification may name no valid order.
        let out_trade_no = latest
            .get("out_trade_no")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        Ok(BusinessEvent {
            schema_version: SCHEMA_VERSION,
            event_id: anomaly_event_id(&record.latest.id(), record.occurrences),
            event_type: EventType::AnomalyRecorded,
            occurred_at: occurred_at(record.last_seen),
            out_trade_no,
            version: None,
            order: None,
            cause: None,
            anomaly: Some(AnomalyDetails {
                id: record.latest.id(),
                kind,
                status: record.status,
                occurrences: record.occurrences,
                first_seen: record.first_seen,
                last_seen: record.last_seen,
                operator_action: kind.operator_action().to_owned(),
                latest,
            }),
        })
    }
}

impl<O: Serialize> BusinessEvent<O> {
    /// The event as the sink sends it: its JSON and the attributes it is routed by.
    pub fn to_message(&self) -> Result<EventMessage, serde_json::Error> {
        Ok(EventMessage {
            event_id: self.event_id.clone(),
            event_type: self.event_type,
            out_trade_no: self.out_trade_no.clone(),
            group: match (&self.out_trade_no, &self.anomaly) {
                (Some(no), _) => no.clone(),
                (None, Some(anomaly)) => anomaly.id.clone(),
                (None, None) => self.event_id.clone(),
            },
            body: serde_json::to_string(self)?,
        })
    }
}

/// One event as a sink sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMessage {
    pub event_id: String,
    pub event_type: EventType,
    pub out_trade_no: Option<String>,
    /// Events of one group are delivered in the order sent: the order number, so an order's
    /// events (and its anomalies) arrive in order.
    pub group: String,
    /// The envelope's JSON.
    pub body: String,
}

/// Some events were not sent. The ones before `first_unsent` were; the ones from it on may or
/// may not have been, and are to be sent again (their `event_id` deduplicates them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("events from #{first_unsent} on were not sent: {reason}")]
pub struct SinkError {
    pub first_unsent: usize,
    pub reason: String,
}

/// Where business events go (an SQS FIFO queue in AWS).
pub trait EventSink: Send + Sync {
    /// Sends `events` in order.
    fn send(&self, events: &[EventMessage]) -> impl Future<Output = Result<(), SinkError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OutTradeNo;
    use crate::anomaly::{AlipayFacts, Anomaly, FactSource};
    use crate::order::OrderStatus;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_704_067_200 + seconds, 5_000_000)
            .single()
            .unwrap_or_default()
    }

    fn event(kind: EventKind) -> OrderEvent {
        OrderEvent {
            out_trade_no: OutTradeNo::parse("T1").unwrap_or_else(|e| unreachable!("{e}")),
            version: 3,
            from: Some(OrderStatus::Pending),
            to: OrderStatus::Paid,
            kind,
            at: at(0),
            actor: None,
        }
    }

    #[test]
    fn every_type_has_its_documented_name() {
        for event_type in EventType::ALL {
            let json = serde_json::to_string(&event_type).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", event_type.as_str()));
        }
    }

    #[test]
    fn every_type_is_documented_with_an_example() {
        let openapi = include_str!("../../../infra/api/openapi.yaml");
        for event_type in EventType::ALL {
            let name = event_type.as_str();
            assert!(openapi.contains(&format!("        - {name}\n")), "{name}");
            assert!(openapi.contains(&format!("\"type\": \"{name}\"")), "{name}");
        }
    }

    #[test]
    fn lease_changes_and_syncs_are_not_published() {
        for kind in [
            EventKind::LeaseTakenOver,
            EventKind::LeaseExtended,
            EventKind::LeaseReleased,
            EventKind::Synced,
        ] {
            assert_eq!(EventType::of(&kind), None, "{kind:?}");
            assert!(BusinessEvent::of_order_event(&event(kind), ()).is_none());
        }
        assert_eq!(
            EventType::of(&EventKind::Scanned {
                alipay_trade_no: None
            }),
            Some(EventType::OrderScanned)
        );
    }

    #[test]
    fn an_order_event_carries_its_id_version_cause_and_order() {
        let paid = event(EventKind::Paid {
            alipay_trade_no: "2024010122001".into(),
            source: PaymentSource::Notification,
        });
        let published = BusinessEvent::of_order_event(&paid, "the order")
            .unwrap_or_else(|| unreachable!("paid is public"));
        let message = published
            .to_message()
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(message.event_id, "T1/v3");
        assert_eq!(message.group, "T1");
        let body: serde_json::Value =
            serde_json::from_str(&message.body).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            body,
            serde_json::json!({
                "schema_version": 1,
                "event_id": "T1/v3",
                "type": "order.paid",
                "occurred_at": "2024-01-01T00:00:00.005Z",
                "out_trade_no": "T1",
                "version": 3,
                "order": "the order",
                "cause": {"source": "notification", "alipay_trade_no": "2024010122001"},
            })
        );
    }

    #[test]
    fn causes_name_only_what_their_kind_says() {
        let failure = OrderFailure {
            code: "ACQ.PAYMENT_AUTH_CODE_INVALID".into(),
            message: "invalid".into(),
        };
        let json = |kind: EventKind| serde_json::to_value(Cause::of(&kind)).unwrap_or_default();
        assert_eq!(json(EventKind::Claimed), serde_json::json!({}));
        assert_eq!(
            json(EventKind::Closed {
                reason: "expired".into()
            }),
            serde_json::json!({"reason": "expired"})
        );
        assert_eq!(
            json(EventKind::Failed { failure }),
            serde_json::json!({"failure": {"code": "ACQ.PAYMENT_AUTH_CODE_INVALID", "message": "invalid"}})
        );
        assert_eq!(
            json(EventKind::RefundedByCancel {
                alipay_trade_no: None,
                refund_fen: 1500
            }),
            serde_json::json!({"refund_fen": 1500})
        );
    }

    #[test]
    fn each_anomaly_sighting_is_its_own_event() {
        let no = OutTradeNo::parse("T2").unwrap_or_else(|e| unreachable!("{e}"));
        let sighting = Anomaly {
            kind: AnomalyKind::PaidAfterClose,
            out_trade_no: Some(no),
            order_status: Some(OrderStatus::Closed),
            order_amount_fen: Some(100),
            facts: AlipayFacts::from(FactSource::Notification),
            detail: "paid after close".into(),
            seen_at: at(60),
        };
        let record = AnomalyRecord {
            id: sighting.id(),
            latest: sighting,
            status: AnomalyStatus::Open,
            first_seen: at(0),
            last_seen: at(60),
            occurrences: 2,
            resolution: None,
        };
        let published: BusinessEvent<()> =
            BusinessEvent::of_anomaly(&record).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(published.event_id, "T2/paid_after_close/2");
        assert_eq!(published.out_trade_no.as_deref(), Some("T2"));
        assert_eq!(published.occurred_at, "2024-01-01T00:01:00.005Z");
        let message = published
            .to_message()
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(message.group, "T2");
        let body: serde_json::Value =
            serde_json::from_str(&message.body).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(body["type"], "anomaly.recorded");
        assert_eq!(body["anomaly"]["kind"], "paid_after_close");
        assert_eq!(body["anomaly"]["occurrences"], 2);
        assert_eq!(body["anomaly"]["latest"]["detail"], "paid after close");
        assert_eq!(
            body["anomaly"]["operator_action"],
            AnomalyKind::PaidAfterClose.operator_action()
        );
        assert!(body.get("order").is_none() && body.get("version").is_none());
    }
}
