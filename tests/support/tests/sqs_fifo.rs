//! FIFO queues on the wrapped moto server: `SendMessageBatch` with group and deduplication
//! ids, a group's messages in order, and SQS's 5-minute deduplication, which holds even after
//! the first message was received and deleted (`moto_server.py` remembers the ids; moto alone
//! delivers such a duplicate again).

// Test code: a failing unwrap is a failing test. clippy.toml allows that in #[test] functions;
// this extends it to the helpers of this file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use test_support::{MotoServer, unique_name};

async fn send(client: &Client, queue_url: &str, ids: &[&str]) {
    let entries = ids
        .iter()
        .enumerate()
        .map(|(index, id)| {
            SendMessageBatchRequestEntry::builder()
                .id(index.to_string())
                .message_body(*id)
                .message_group_id("order-1")
                .message_deduplication_id(*id)
                .build()
                .unwrap()
        })
        .collect();
    let sent = client
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .unwrap();
    // SQS accepts a duplicate; it only does not deliver it.
    assert_eq!(sent.successful().len(), ids.len());
    assert!(sent.failed().is_empty());
}

/// Receives and deletes until the queue is empty; the bodies in order.
async fn drain(client: &Client, queue_url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let messages = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        for message in messages {
            bodies.push(message.body.unwrap());
            client
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn a_duplicate_is_not_delivered_within_the_window_even_once_the_first_is_deleted() {
    let server = MotoServer::shared().await.unwrap();
    let client = Client::new(&server.sdk_config());
    let queue_url = client
        .create_queue()
        .queue_name(format!("{}.fifo", unique_name("fifo")))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    send(&client, &queue_url, &["a", "b", "c"]).await;
    send(&client, &queue_url, &["b", "c", "d"]).await;
    assert_eq!(drain(&client, &queue_url).await, ["a", "b", "c", "d"]);

    send(&client, &queue_url, &["a", "e"]).await;
    assert_eq!(drain(&client, &queue_url).await, ["e"]);
}
