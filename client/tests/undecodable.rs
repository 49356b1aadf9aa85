//! Messages the client cannot decode, sent by a mock server (the real one refuses to store
//! them): each is reported in its place and the rest of its frame is delivered.

mod support;

use durable_stream_client::{AckMode, Client, Error, Message, StartPosition, SubscribeOptions, Subscription};
use futures_util::StreamExt;
use serde_json::json;
use std::time::Duration;
use support::mock::{too_deep, MockStream};

/// Good message 1, undecodable 2 (200-level nesting), good 3, in one `msgs` frame.
fn poisoned_frame() -> String {
    format!(
        r#"{{"op":"msgs","messages":[{{"seq":1,"ts":10,"data":{{"n":1}}}},{{"seq":2,"ts":11,"data":{}}},{{"seq":3,"ts":12,"data":{{"n":3}}}}]}}"#,
        too_deep()
    )
}

/// A bound on waits that normally take milliseconds.
const PATIENCE: Duration = Duration::from_secs(20);

async fn next(subscription: &mut Subscription) -> Result<Message, Error> {
    tokio::time::timeout(PATIENCE, subscription.next()).await.expect("an item in time").expect("the stream goes on")
}

async fn subscribe(mock: &MockStream, ack: AckMode) -> Subscription {
    let client = Client::connect(mock.url(), "key").await.unwrap();
    client.subscribe("poisoned", SubscribeOptions::default().start(StartPosition::First).ack(ack)).await.unwrap()
}

#[tokio::test]
async fn an_undecodable_message_is_reported_in_its_place_and_acknowledged_like_the_others() {
    let mut mock = MockStream::start(vec![poisoned_frame()]).await;
    let mut subscription = subscribe(&mock, AckMode::Auto).await;
    let first = next(&mut subscription).await.unwrap();
    assert_eq!((first.seq, first.data.clone()), (1, json!({"n": 1})));
    match next(&mut subscription).await {
        Err(Error::Undecodable { seq: 2, reason }) => assert!(reason.contains("recursion limit"), "{reason}"),
        other => panic!("expected message 2 to be undecodable, got {other:?}"),
    }
    let third = next(&mut subscription).await.unwrap();
    assert_eq!((third.seq, third.ts, third.data.clone()), (3, 12, json!({"n": 3})));
    assert_eq!(subscription.position(), 3);
    subscription.close().await.unwrap();
    assert_eq!(mock.ack_reaching(3).await, 3, "acknowledged past the undecodable message");
}

#[tokio::test]
async fn in_manual_mode_an_undecodable_message_is_acknowledged_with_the_one_before_it() {
    let mut mock = MockStream::start(vec![poisoned_frame()]).await;
    let mut subscription = subscribe(&mock, AckMode::Manual).await;
    let first = next(&mut subscription).await.unwrap();
    assert!(matches!(next(&mut subscription).await, Err(Error::Undecodable { seq: 2, .. })));
    let third = next(&mut subscription).await.unwrap();
    assert_eq!(subscription.position(), 0, "nothing acknowledged yet");
    first.ack();
    assert_eq!(subscription.position(), 2, "acknowledging 1 passes the undecodable 2");
    assert_eq!(mock.ack_reaching(1).await, 2);
    third.ack();
    subscription.close().await.unwrap();
    assert_eq!(mock.ack_reaching(3).await, 3);
}

#[tokio::test]
async fn a_frame_that_cannot_be_read_is_an_error_and_the_subscription_goes_on() {
    let unreadable = r#"{"op":"msgs","messages":[{"seq":"one","ts":1,"data":1}]}"#.to_owned();
    let good = r#"{"op":"msg","seq":2,"ts":2,"data":"after"}"#.to_owned();
    let mock = MockStream::start(vec![unreadable, good]).await;
    let mut subscription = subscribe(&mock, AckMode::Auto).await;
    match next(&mut subscription).await {
        Err(Error::InvalidResponse(message)) => assert!(message.starts_with("undecodable frame"), "{message}"),
        other => panic!("expected the unreadable frame to be reported, got {other:?}"),
    }
    let after = next(&mut subscription).await.unwrap();
    assert_eq!((after.seq, after.data), (2, json!("after")));
}

#[tokio::test]
async fn dstream_sub_reports_an_undecodable_message_and_counts_it() {
    let mock = MockStream::start(vec![poisoned_frame()]).await;
    let output = tokio::time::timeout(
        PATIENCE,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_dstream"))
            .args(["sub", "poisoned", "--from", "first", "--count", "3"])
            .env("DSTREAM_URL", mock.url())
            .env("DSTREAM_API_KEY", "key")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("dstream sub ends after its three messages")
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout, "#1 {\"n\":1}\n#3 {\"n\":3}\n");
    assert!(stderr.starts_with("dstream: message #2 could not be decoded: recursion limit exceeded"), "{stderr}");
}
