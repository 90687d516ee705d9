//! `aws_config()` reaches the emulator through `AWS_ENDPOINT_URL`, as the local stack does.
//! The environment is a process's, so the check runs in a child process of this test binary.

// Test code: a failing unwrap is a failing test. clippy.toml allows that in #[test] functions;
// this extends it to the helpers of this file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_adapters::aws_sdk_dynamodb;
use aws_adapters::dynamo::schema::create_table;
use std::process::Command;
use test_support::{MotoServer, unique_name};

const CHILD: &str = "child_creates_a_table_through_the_default_config";

#[tokio::test]
async fn aws_config_follows_aws_endpoint_url() {
    let moto = MotoServer::shared().await.unwrap();
    let table = unique_name("config");
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD, "--ignored", "--nocapture"])
        .envs(moto.env())
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .env("CHILD_TABLE", &table)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("1 passed"), "{stdout}");

    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config());
    let tables = client.list_tables().send().await.unwrap();
    assert!(tables.table_names().contains(&table));
}

#[tokio::test]
#[ignore = "run in a child process by aws_config_follows_aws_endpoint_url"]
async fn child_creates_a_table_through_the_default_config() {
    let table = std::env::var("CHILD_TABLE").unwrap();
    let config = aws_adapters::aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    create_table(&client, &table).await.unwrap();
}
