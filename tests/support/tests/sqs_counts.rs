//! SQS message counts on the wrapped moto server (`moto_server.py` computes them with one
//! clock reading each): visible, in flight and delayed messages are told apart, and a receive
//! hands out only visible, undelayed messages.

// Test code: a failing unwrap is a failing test. clippy.toml allows that in #[test] functions;
// this extends it to the helpers of this file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use std::collections::HashMap;
use test_support::{MotoServer, unique_name};

async fn counts(client: &Client, queue_url: &str) -> HashMap<&'static str, String> {
    let attributes = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    [
        ("visible", QueueAttributeName::ApproximateNumberOfMessages),
        (
            "in flight",
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ),
        (
            "delayed",
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ),
    ]
    .into_iter()
    .map(|(label, name)| (label, attributes.get(&name).cloned().unwrap_or_default()))
    .collect()
}

async fn receive_one(client: &Client, queue_url: &str) -> Option<String> {
    client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(1)
        .visibility_timeout(300)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
        .into_iter()
        .next()
        .and_then(|m| m.body)
}

#[tokio::test]
async fn visible_in_flight_and_delayed_messages_are_counted_apart() {
    let server = MotoServer::shared().await.unwrap();
    let client = Client::new(&server.sdk_config());
    let queue_url = client
        .create_queue()
        .queue_name(unique_name("counts"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    for (body, delay) in [("first", 0), ("second", 0), ("later", 900)] {
        client
            .send_message()
            .queue_url(&queue_url)
            .message_body(body)
            .delay_seconds(delay)
            .send()
            .await
            .unwrap();
    }
    let expected = |visible: &str, in_flight: &str, delayed: &str| {
        HashMap::from([
            ("visible", visible.to_owned()),
            ("in flight", in_flight.to_owned()),
            ("delayed", delayed.to_owned()),
        ])
    };
    assert_eq!(counts(&client, &queue_url).await, expected("2", "0", "1"));

    let received = receive_one(&client, &queue_url).await.unwrap();
    assert_ne!(received, "later");
    assert_eq!(counts(&client, &queue_url).await, expected("1", "1", "1"));

    let other = receive_one(&client, &queue_url).await.unwrap();
    assert!(other != received && other != "later", "{other}");
    assert_eq!(counts(&client, &queue_url).await, expected("0", "2", "1"));
    // The delayed message is not handed out before its time.
    assert_eq!(receive_one(&client, &queue_url).await, None);
}
