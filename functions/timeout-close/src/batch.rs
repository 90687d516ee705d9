//! An SQS batch of expiry messages, answered with partial batch failures (the event source
//! mapping has `ReportBatchItemFailures`): a message that failed is named, and only it comes
//! back. Messages are handled one after the other: a batch is small (the template's batch
//! size), and an order's messages must not race each other.

use crate::{Expiries, ExpiryError};
use aws_adapters::ExpiryMessage;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use domain::ports::{Clock, ExpiryScheduler, OrderStore, PaymentGateway};
use f2f_runtime::telemetry::count;
use tracing::Instrument;

impl<S, Q, G, C> Expiries<S, Q, G, C>
where
    S: OrderStore,
    Q: ExpiryScheduler,
    G: PaymentGateway,
    C: Clock,
{
    pub async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for record in event.records {
            let id = record.message_id.clone().unwrap_or_default();
            let parsed = record
                .body
                .as_deref()
                .ok_or_else(|| ExpiryError::Malformed("no body".into()))
                .and_then(|body| {
                    ExpiryMessage::parse(body).map_err(|e| ExpiryError::Malformed(e.to_string()))
                });
            let outcome = match parsed {
                Ok(message) => {
                    let span = tracing::info_span!("expiry", out_trade_no = %message.out_trade_no, message_id = %id);
                    self.expire(&message).instrument(span).await
                }
                Err(error) => Err(error),
            };
            match outcome {
                Ok(handled) => {
                    count(handled_metric(&handled));
                    tracing::info!(message_id = %id, outcome = handled.kind(), "expiry handled");
                }
                Err(error) => {
                    count("expiry_retried");
                    tracing::warn!(message_id = %id, %error, "expiry failed; SQS delivers it again");
                    response.add_failure(id);
                }
            }
        }
        response
    }
}

fn handled_metric(handled: &crate::Handled) -> &'static str {
    match handled {
        crate::Handled::NotDue => "expiry_not_due",
        crate::Handled::AlreadySettled(_) => "expiry_already_settled",
        crate::Handled::Busy => "expiry_busy",
        crate::Handled::Settled(_) => "expiry_settled",
        crate::Handled::Anomaly => "expiry_anomaly",
        crate::Handled::NoSuchOrder => "expiry_no_such_order",
        crate::Handled::NotThisClaim => "expiry_not_this_claim",
        crate::Handled::RefundsSettled => "expiry_refunds_settled",
        crate::Handled::RefundsPending => "expiry_refunds_pending",
    }
}
