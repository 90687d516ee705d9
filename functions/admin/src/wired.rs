//! The admin function as Lambda runs it: the orders table, the reports bucket and the expiry
//! queue, from one SDK configuration (the local stack builds it the same way).

use crate::AdminApi;
use aws_adapters::{
    DynamoOrderStore, S3Objects, SqsExpiryScheduler, aws_sdk_dynamodb, aws_sdk_s3, aws_sdk_sqs,
};
use aws_config::SdkConfig;
use f2f_runtime::{AdminConfig, Function, SystemClock};

/// The concrete API Lambda serves.
pub type WiredAdmin = AdminApi<DynamoOrderStore, S3Objects, SqsExpiryScheduler, SystemClock>;

pub fn wired(sdk: &SdkConfig, config: &AdminConfig) -> WiredAdmin {
    AdminApi {
        store: DynamoOrderStore::new(aws_sdk_dynamodb::Client::new(sdk), &config.orders_table)
            .acting_as(Function::Admin.name()),
        reports: S3Objects::new(aws_sdk_s3::Client::new(sdk), &config.bill_bucket),
        scheduler: SqsExpiryScheduler::new(aws_sdk_sqs::Client::new(sdk), &config.expiry_queue_url),
        clock: SystemClock,
    }
}
