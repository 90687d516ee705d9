//! SQS: the expiry queue and the business events queue.

pub mod business_events;
pub mod expiry;
