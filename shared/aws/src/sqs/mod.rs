//! SQS: the expiry queue.

pub mod expiry;
