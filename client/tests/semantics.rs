//! Event-sourcing semantics through the client against the real Worker: conditional publishes
//! (typed conflicts, resends across dropped connections), headers, reads of one message, and
//! subscriptions that start at a time.

mod support;

use durable_stream_client::{Client, Error, Headers, PublishOptions, StartPosition, SubscribeOptions};
use futures_util::StreamExt;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::{unique_subject, Cutter, Server, API_KEY};

async fn client(server: &Server) -> Client {
    Client::connect(server.url(), API_KEY).await.unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
}

#[tokio::test]
async fn conditional_publishes_refuse_a_stale_expectation_with_the_last_sequence() {
    let server = Server::start().await;
    let client = client(&server).await;
    let subject = unique_subject("conditional");
    assert_eq!(client.publish_if(&subject, json!({ "type": "OrderCreated" }), 0).await.unwrap(), 1);
    match client.publish_if(&subject, json!({ "type": "OrderCreated" }), 0).await {
        Err(Error::Conflict { last_seq: Some(1), message }) => assert!(message.contains("nothing was stored"), "{message}"),
        other => panic!("expected a conflict with last_seq 1, got {other:?}"),
    }
    let events = [(json!({ "type": "OrderPriced" }), Headers::new()), (json!({ "type": "OrderPaid" }), Headers::new())];
    let batch = client.publish_batch_with_options(&subject, events.clone(), PublishOptions::new().expect_last_seq(1)).await;
    assert_eq!(batch.unwrap(), (2, 3));
    let stale = client.publish_batch_with_options(&subject, events, PublishOptions::new().expect_last_seq(1)).await;
    assert!(matches!(stale, Err(Error::Conflict { last_seq: Some(3), .. })), "{stale:?}");
    assert_eq!(client.info(&subject).await.unwrap().count, 3, "the refusals stored nothing");
}

#[tokio::test]
async fn conditional_publishes_resent_after_dropped_connections_get_their_own_sequences() {
    let server = Arc::new(Server::start().await);
    let client = client(&server).await;
    let subject = unique_subject("conditional-drops");
    // Cut every connection again and again while a chain of publishes runs, each expecting the
    // one before: a publish stored before its reply was lost is resent with the same message
    // id, and must come back with its sequence, not as a conflict with itself.
    let cutter = Cutter::start(server.clone());
    const CHAIN: u64 = 300;
    for expected in 0..CHAIN {
        let seq = client.publish_if(&subject, json!({ "n": expected + 1 }), expected).await;
        assert_eq!(seq.unwrap(), expected + 1, "publish expecting {expected}");
    }
    assert!(cutter.stop().await > 0);
    let info = client.info(&subject).await.unwrap();
    assert_eq!((info.first, info.last, info.count), (1, CHAIN, CHAIN), "each stored once");
    for seq in [1, CHAIN / 2, CHAIN] {
        assert_eq!(client.get_message(&subject, seq).await.unwrap().data, json!({ "n": seq }));
    }
}

#[tokio::test]
async fn headers_round_trip_and_single_messages_are_read_by_sequence() {
    let server = Server::start().await;
    let client = client(&server).await;
    let subject = unique_subject("headers");
    let created = PublishOptions::new().header("type", "OrderCreated").header("trace-id", "t-1");
    assert_eq!(client.publish_with_options(&subject, json!({ "order": 17 }), created).await.unwrap(), 1);
    assert_eq!(client.publish(&subject, json!("plain")).await.unwrap(), 2);
    let entries = [(json!(3), headers(&[("type", "Priced")])), (json!(4), Headers::new())];
    let common = PublishOptions::new().header("trace-id", "t-2").header("type", "Default");
    assert_eq!(client.publish_batch_with_options(&subject, entries, common).await.unwrap(), (3, 4));

    let expected = [
        headers(&[("type", "OrderCreated"), ("trace-id", "t-1")]),
        Headers::new(),
        headers(&[("type", "Priced"), ("trace-id", "t-2")]),
        headers(&[("type", "Default"), ("trace-id", "t-2")]),
    ];
    let mut sub = client.subscribe(&subject, SubscribeOptions::default().start(StartPosition::First)).await.unwrap();
    for (i, want) in expected.iter().enumerate() {
        let message = tokio::time::timeout(Duration::from_secs(20), sub.next()).await.unwrap().unwrap().unwrap();
        assert_eq!((message.seq, &message.headers), (i as u64 + 1, want));
    }
    sub.close().await.unwrap();

    let first = client.get_message(&subject, 1).await.unwrap();
    assert_eq!((first.seq, first.headers, first.data), (1, expected[0].clone(), json!({ "order": 17 })));
    let last = client.get_last_message(&subject).await.unwrap();
    assert_eq!((last.seq, last.headers), (4, expected[3].clone()));
    assert!(client.get_message(&subject, 2).await.unwrap().headers.is_empty());
    client.trim(&subject, 1).await.unwrap();
    match client.get_message(&subject, 1).await {
        Err(Error::NotFound(message)) => assert_eq!(message, "message 1 was trimmed; the subject holds 2 to 4"),
        other => panic!("expected not found, got {other:?}"),
    }
    assert!(matches!(client.get_message(&subject, 5).await, Err(Error::NotFound(_))));
    assert!(matches!(client.get_last_message(&unique_subject("empty")).await, Err(Error::NotFound(_))));
}

#[tokio::test]
async fn subscriptions_start_at_a_time() {
    let server = Server::start().await;
    let client = client(&server).await;
    let subject = unique_subject("since");
    client.publish_batch(&subject, [1, 2]).await.unwrap();
    let first_ts = client.get_message(&subject, 1).await.unwrap().ts;
    // The next publish must be stored at a later millisecond than the batch.
    while std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64 <= first_ts + 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    client.publish(&subject, 3).await.unwrap();
    let third_ts = client.get_message(&subject, 3).await.unwrap().ts;
    assert!(third_ts > first_ts);
    for (time, first_seq) in [(0, 1), (first_ts, 1), (first_ts + 1, 3), (third_ts, 3)] {
        let options = SubscribeOptions::default().start(StartPosition::Time(time));
        let mut sub = client.subscribe(&subject, options).await.unwrap();
        let message = tokio::time::timeout(Duration::from_secs(20), sub.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(message.seq, first_seq, "from time {time}");
        sub.close().await.unwrap();
    }
}
