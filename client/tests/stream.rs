//! The client against the real Worker on workerd: publishing, subscribing, reconnects,
//! acknowledgements, consumers, cursors and subject operations.

mod support;

use durable_stream_client::{
    AckMode, Client, ConnectionEvent, Error, FileCursorStore, Message, OnEpochChange, StartPosition, SubscribeOptions,
    Subscription,
};
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{unique_subject, Server, API_KEY};
use tokio::task::JoinHandle;

async fn client(server: &Server) -> Client {
    Client::connect(server.url(), API_KEY).await.unwrap()
}

fn from_first() -> SubscribeOptions {
    SubscribeOptions::default().start(StartPosition::First)
}

/// The next message, failing the test if none arrives in time.
async fn next(sub: &mut Subscription) -> Message {
    match tokio::time::timeout(Duration::from_secs(20), sub.next()).await {
        Ok(Some(Ok(message))) => message,
        Ok(Some(Err(e))) => panic!("subscription failed: {e}"),
        Ok(None) => panic!("subscription ended"),
        Err(_) => panic!("no message within 20 s"),
    }
}

async fn collect(sub: &mut Subscription, count: usize) -> Vec<Message> {
    let mut messages = Vec::with_capacity(count);
    for _ in 0..count {
        messages.push(next(sub).await);
    }
    messages
}

/// Asserts that nothing arrives for `quiet`.
async fn assert_quiet(sub: &mut Subscription, quiet: Duration) {
    if let Ok(item) = tokio::time::timeout(quiet, sub.next()).await {
        panic!("expected no message, got {item:?}");
    }
}

#[tokio::test]
async fn publish_and_subscribe_round_trip() {
    let server = Server::start().await;
    let client = client(&server).await;
    let subject = unique_subject("round-trip");
    assert_eq!(client.publish(&subject, json!({"n": 1})).await.unwrap(), 1);
    assert_eq!(client.publish(&subject, "two").await.unwrap(), 2);
    assert_eq!(client.publish_batch(&subject, vec![json!(3), json!([4])]).await.unwrap(), (3, 4));
    assert_eq!(client.publish_with_id(&subject, json!(null), "fixed-id").await.unwrap(), 5);
    assert_eq!(client.publish_with_id(&subject, json!("ignored"), "fixed-id").await.unwrap(), 5, "deduplicated");

    let mut sub = client.subscribe(&subject, from_first()).await.unwrap();
    let messages = collect(&mut sub, 5).await;
    let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
    let data: Vec<Value> = messages.iter().map(|m| m.data.clone()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(data, [json!({"n": 1}), json!("two"), json!(3), json!([4]), json!(null)]);
    assert!(messages.iter().all(|m| !m.redelivered && m.ts > 0));
    assert_eq!(messages[0].deserialize::<HashMap<String, u32>>().unwrap()["n"], 1);

    // Live delivery after catching up.
    client.publish(&subject, json!("live")).await.unwrap();
    let live = next(&mut sub).await;
    assert_eq!((live.seq, live.data.clone()), (6, json!("live")));

    let info = client.info(&subject).await.unwrap();
    assert_eq!((info.subject.as_str(), info.first, info.last, info.count), (subject.as_str(), 1, 6, 6));
    assert_eq!(info.subscribers, 1);
    assert!(!info.epoch.is_empty());
    sub.close().await.unwrap();
}

#[tokio::test]
async fn subscription_resumes_after_a_server_restart_without_loss_or_duplicates() {
    let mut server = Server::start().await;
    let client = client(&server).await;
    let mut events = client.events();
    let subject = unique_subject("resume");
    client.publish_batch(&subject, (1..=50).map(|n| json!({ "n": n }))).await.unwrap();

    let mut sub = client.subscribe(&subject, from_first().window(10)).await.unwrap();
    let mut seen: Vec<u64> = collect(&mut sub, 20).await.iter().map(|m| m.seq).collect();

    server.restart().await;
    for n in 51..=100 {
        client.publish(&subject, json!({ "n": n })).await.unwrap();
    }
    for message in collect(&mut sub, 80).await {
        assert_eq!(message.data["n"], json!(message.seq));
        seen.push(message.seq);
    }
    assert_eq!(seen, (1..=100).collect::<Vec<u64>>());
    assert_quiet(&mut sub, Duration::from_millis(500)).await;

    let mut saw_reconnect = false;
    while let Ok(event) = events.try_recv() {
        saw_reconnect |= matches!(event, ConnectionEvent::Reconnecting { .. });
    }
    assert!(saw_reconnect, "reconnects are observable");
}

/// Publishes `0..count` as `{"payload": n}` with `window` in flight, counting completions.
fn publish_many(client: &Client, subject: &str, count: u64, window: usize, done: Arc<AtomicU64>) -> JoinHandle<Vec<u64>> {
    let (client, subject) = (client.clone(), subject.to_owned());
    tokio::spawn(async move {
        let mut in_flight = FuturesUnordered::new();
        let mut seqs = Vec::new();
        for n in 0..count {
            if in_flight.len() >= window {
                seqs.push(in_flight.next().await.unwrap());
            }
            let (client, subject, done) = (client.clone(), subject.clone(), done.clone());
            in_flight.push(async move {
                let seq = client.publish(&subject, json!({ "payload": n })).await.expect("every publish succeeds");
                done.fetch_add(1, Ordering::SeqCst);
                seq
            });
        }
        while let Some(seq) = in_flight.next().await {
            seqs.push(seq);
        }
        seqs
    })
}

/// Waits until `done` reaches `at_least`.
async fn wait_for(done: &AtomicU64, at_least: u64) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while done.load(Ordering::SeqCst) < at_least {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("publishes make progress");
}

/// Checks that `subject` holds each payload of `0..count` exactly once.
async fn assert_stored_exactly_once(client: &Client, subject: &str, count: u64) {
    assert_eq!(client.info(subject).await.unwrap().count, count, "nothing stored twice");
    let mut sub = client.subscribe(subject, from_first()).await.unwrap();
    let mut payloads: Vec<u64> =
        collect(&mut sub, count as usize).await.iter().map(|m| m.data["payload"].as_u64().unwrap()).collect();
    payloads.sort_unstable();
    assert_eq!(payloads, (0..count).collect::<Vec<_>>(), "each payload exactly once");
}

#[tokio::test]
async fn publishes_in_flight_across_a_restart_are_stored_exactly_once() {
    let mut server = Server::start().await;
    let client = client(&server).await;
    let subject = unique_subject("in-flight");
    const COUNT: u64 = 2000;
    let done = Arc::new(AtomicU64::new(0));
    let publisher = publish_many(&client, &subject, COUNT, 50, done.clone());
    wait_for(&done, 200).await;
    server.restart().await;
    let completed_before_restart = done.load(Ordering::SeqCst);
    let mut seqs = publisher.await.unwrap();
    assert!(completed_before_restart < COUNT, "the restart happened mid-stream");
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len() as u64, COUNT, "distinct publishes got distinct sequences");
    assert_stored_exactly_once(&client, &subject, COUNT).await;
}

#[tokio::test]
async fn publishes_in_flight_when_connections_drop_are_stored_exactly_once() {
    let server = Server::start().await;
    let client = client(&server).await;
    let subject = unique_subject("dropped-publishes");
    const COUNT: u64 = 3000;
    let done = Arc::new(AtomicU64::new(0));
    let publisher = publish_many(&client, &subject, COUNT, 200, done.clone());
    for cut in 1..=3 {
        wait_for(&done, cut * 500).await;
        server.drop_connections();
    }
    publisher.await.unwrap();
    assert_stored_exactly_once(&client, &subject, COUNT).await;
}

#[tokio::test]
async fn live_subscriptions_survive_dropped_connections_without_gaps_or_repeats() {
    let server = Server::start().await;
    let client = client(&server).await;
    let subject = unique_subject("dropped");
    let mut sub = client.subscribe(&subject, SubscribeOptions::default().start(StartPosition::New)).await.unwrap();
    const COUNT: u64 = 1000;
    let done = Arc::new(AtomicU64::new(0));
    let publisher = publish_many(&client, &subject, COUNT, 50, done.clone());
    wait_for(&done, 300).await;
    server.drop_connections();
    publisher.await.unwrap();
    let messages = collect(&mut sub, COUNT as usize).await;
    assert!(messages.windows(2).all(|pair| pair[1].seq == pair[0].seq + 1), "in order, no gaps, no repeats");
    let mut payloads: Vec<u64> = messages.iter().map(|m| m.data["payload"].as_u64().unwrap()).collect();
    payloads.sort_unstable();
    assert_eq!(payloads, (0..COUNT).collect::<Vec<u64>>());
    assert_quiet(&mut sub, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn manual_acks_and_redelivery() {
    let server = Server::start_with(&["ACK_WAIT_MS=300"]).await;
    let client = client(&server).await;
    let subject = unique_subject("manual");
    client.publish_batch(&subject, [1, 2, 3]).await.unwrap();
    let mut sub = client.subscribe(&subject, from_first().ack(AckMode::Manual)).await.unwrap();
    let first = collect(&mut sub, 3).await;
    assert!(first.iter().all(|m| !m.redelivered));
    first[0].ack();

    // 2 and 3 were not acknowledged: after the ack wait they come again, marked.
    let again = collect(&mut sub, 2).await;
    assert_eq!(again.iter().map(|m| (m.seq, m.redelivered)).collect::<Vec<_>>(), [(2, true), (3, true)]);
    again[1].ack(); // cumulative: acknowledges 2 as well
    assert_quiet(&mut sub, Duration::from_millis(900)).await;
    assert_eq!(sub.position(), 3);

    client.publish(&subject, 4).await.unwrap();
    let fourth = next(&mut sub).await;
    assert_eq!((fourth.seq, fourth.redelivered), (4, false));
}

#[tokio::test]
async fn messages_never_acknowledged_are_skipped_after_max_deliver() {
    let server = Server::start_with(&["ACK_WAIT_MS=200", "MAX_DELIVER=2"]).await;
    let client = client(&server).await;
    let subject = unique_subject("skipped");
    client.publish_batch(&subject, [1, 2]).await.unwrap();
    let mut sub = client.subscribe(&subject, from_first().ack(AckMode::Manual)).await.unwrap();
    let deliveries = collect(&mut sub, 4).await;
    assert_eq!(deliveries.iter().map(|m| (m.seq, m.redelivered)).collect::<Vec<_>>(), [(1, false), (2, false), (1, true), (2, true)]);
    // The server gives up on 1..=2 and moves on; so does the subscription's position.
    assert_quiet(&mut sub, Duration::from_millis(600)).await;
    client.publish(&subject, 3).await.unwrap();
    assert_eq!(next(&mut sub).await.seq, 3);
    assert_eq!(sub.position(), 2, "skipped messages count as consumed");
}

#[tokio::test]
async fn manual_mode_resumes_after_the_last_ack_across_reconnects() {
    let server = Server::start().await;
    let client = client(&server).await;
    let subject = unique_subject("manual-resume");
    client.publish_batch(&subject, 1..=6).await.unwrap();
    let mut sub = client.subscribe(&subject, from_first().ack(AckMode::Manual)).await.unwrap();
    let got = collect(&mut sub, 6).await;
    got[2].ack();
    // Give the ack time to be sent, then cut the connection: 4..6 were never acknowledged.
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.drop_connections();
    let again = collect(&mut sub, 3).await;
    assert_eq!(again.iter().map(|m| (m.seq, m.redelivered)).collect::<Vec<_>>(), [(4, true), (5, true), (6, true)]);
    again[2].ack();
    assert_quiet(&mut sub, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn durable_consumer_resumes_from_its_server_side_position() {
    let server = Server::start().await;
    let client = client(&server).await;
    let subject = unique_subject("consumer");
    client.publish_batch(&subject, 1..=10).await.unwrap();

    let options = || SubscribeOptions::default().consumer("billing").ack(AckMode::Manual);
    let mut sub = client.subscribe(&subject, options().start(StartPosition::First)).await.unwrap();
    let got = collect(&mut sub, 4).await;
    got[3].ack();
    sub.close().await.unwrap();
    assert!(client.info(&subject).await.unwrap().consumers >= 1);

    // A different process (here: client) with the same consumer name and no start position.
    let other = Client::connect(server.url(), API_KEY).await.unwrap();
    let mut sub = other.subscribe(&subject, options()).await.unwrap();
    assert_eq!(next(&mut sub).await.seq, 5);
}

/// An administrator moves a consumer back while its subscriber is connected: the subscription
/// yields the rewound messages again, and its acks after the reset are the consumer's position.
#[tokio::test]
async fn a_consumer_reset_under_a_live_subscription_rewinds_it() {
    let server = Server::start().await;
    let client = client(&server).await;
    let mut events = client.events();
    let subject = unique_subject("reset");
    client.publish_batch(&subject, 1..=5).await.unwrap();
    let options = SubscribeOptions::default().consumer("billing").ack(AckMode::Manual).start(StartPosition::First);
    let mut sub = client.subscribe(&subject, options).await.unwrap();
    let seqs = |messages: &[Message]| messages.iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(seqs(&collect(&mut sub, 5).await), [1, 2, 3, 4, 5]);

    let consumer_url = format!("{}/v1/stream/{subject}/consumers/billing", server.url());
    let http = reqwest::Client::new();
    let reset = http.put(&consumer_url).bearer_auth(API_KEY).json(&json!({ "acked": 2 })).send().await.unwrap();
    assert_eq!(reset.status(), 200, "{}", reset.text().await.unwrap());
    let again = collect(&mut sub, 3).await;
    assert_eq!(seqs(&again), [3, 4, 5]);
    assert!(again.iter().all(|m| !m.redelivered), "after a reset they are ordinary deliveries");
    again[2].ack();
    client.publish(&subject, 6).await.unwrap();
    assert_eq!(next(&mut sub).await.seq, 6);
    let reported = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let ConnectionEvent::ConsumerReset { consumer, acked, .. } = events.recv().await.unwrap() {
                return (consumer, acked);
            }
        }
    });
    assert_eq!(reported.await.expect("a ConsumerReset event"), ("billing".to_string(), 2));

    sub.close().await.unwrap();
    let list: Value = http
        .get(format!("{}/v1/stream/{subject}/consumers", server.url()))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["consumers"][0]["acked"], 5, "{list}");
}

#[tokio::test]
async fn cursor_file_resumes_a_new_client_where_the_old_one_stopped() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let subject = unique_subject("cursor");
    let options = || {
        let store = Arc::new(FileCursorStore::new(dir.path()).unwrap());
        from_first().cursor_store(store)
    };
    let client_a = client(&server).await;
    client_a.publish_batch(&subject, 1..=10).await.unwrap();
    let mut sub = client_a.subscribe(&subject, options()).await.unwrap();
    assert_eq!(collect(&mut sub, 6).await.last().unwrap().seq, 6);
    sub.close().await.unwrap();
    drop(client_a);

    let client_b = client(&server).await;
    let mut sub = client_b.subscribe(&subject, options()).await.unwrap();
    assert_eq!(next(&mut sub).await.seq, 7, "resumed after the saved cursor, not from first");
    drop(sub); // dropping saves too
    let mut sub = client_b.subscribe(&subject, options()).await.unwrap();
    assert_eq!(next(&mut sub).await.seq, 8);
}

#[tokio::test]
async fn wiping_a_subject_is_an_epoch_change() {
    let server = Server::start().await;
    let client = client(&server).await;
    let subject = unique_subject("epoch");
    client.publish_batch(&subject, ["a", "b"]).await.unwrap();
    let mut strict = client.subscribe(&subject, from_first()).await.unwrap();
    let restarting =
        client.subscribe(&subject, from_first().on_epoch_change(OnEpochChange::RestartFromFirst)).await.unwrap();
    let mut restarting = restarting;
    collect(&mut strict, 2).await;
    collect(&mut restarting, 2).await;
    let epoch = strict.epoch().unwrap();

    client.delete_subject(&subject).await.unwrap();
    client.publish(&subject, "new epoch").await.unwrap();

    match tokio::time::timeout(Duration::from_secs(20), strict.next()).await.unwrap() {
        Some(Err(Error::EpochChanged { previous, current })) => {
            assert_eq!(previous, epoch);
            assert_ne!(current, epoch);
        }
        other => panic!("expected an epoch change, got {other:?}"),
    }
    assert!(strict.next().await.is_none(), "the stream ends after an epoch change");

    let first = next(&mut restarting).await;
    assert_eq!((first.seq, first.data.clone()), (1, json!("new epoch")));
    assert_ne!(restarting.epoch().unwrap(), epoch);
}

#[tokio::test]
async fn trim_and_state() {
    let server = Server::start().await;
    let client = client(&server).await;
    let subject = unique_subject("ops");
    client.publish_batch(&subject, 1..=10).await.unwrap();
    let trimmed = client.trim(&subject, 4).await.unwrap();
    assert_eq!((trimmed.first, trimmed.deleted), (5, 4));
    let mut sub = client.subscribe(&subject, from_first()).await.unwrap();
    assert_eq!(next(&mut sub).await.seq, 5);

    assert_eq!(client.state_get(&subject).await.unwrap(), (Value::Null, 0));
    let v1 = client.state_put(&subject, json!({"owner": "a"}), Some(0)).await.unwrap();
    assert_eq!(v1, 1);
    let v2 = client.state_put(&subject, json!({"owner": "b"}), None).await.unwrap();
    assert_eq!(v2, 2);
    assert_eq!(client.state_get(&subject).await.unwrap(), (json!({"owner": "b"}), 2));
}

#[tokio::test]
async fn server_errors_are_typed() {
    let mut server = Server::start_with(&["MAX_CONNECTIONS=1"]).await;
    let client = client(&server).await;
    let subject = unique_subject("errors");

    let wrong_key = Client::connect(server.url(), "wrong").await.unwrap();
    match wrong_key.publish(&subject, 1).await {
        Err(Error::Unauthorized(message)) => assert!(message.contains("API key"), "the server's message: {message}"),
        other => panic!("expected unauthorized, got {other:?}"),
    }
    assert!(matches!(wrong_key.subscribe(&subject, from_first()).await, Err(Error::Unauthorized(_))));
    assert!(matches!(wrong_key.delete_subject(&subject).await, Err(Error::Unauthorized(_))));

    client.publish(&subject, 1).await.unwrap();
    match client.state_put(&subject, json!(1), Some(7)).await {
        Err(Error::Conflict { message, .. }) => assert!(!message.is_empty()),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let big_state = "x".repeat(70 * 1024);
    assert!(matches!(client.state_put(&subject, big_state, None).await, Err(Error::TooLarge(_))));
    let big_message = "x".repeat(2 * 1024 * 1024);
    assert!(matches!(client.publish(&subject, big_message).await, Err(Error::TooLarge(_))), "refused before sending");
    assert!(matches!(client.publish_batch(&subject, Vec::<u8>::new()).await, Err(Error::BadRequest(_))));

    // The request connection holds the subject's only connection slot.
    match client.subscribe(&subject, from_first()).await {
        Err(Error::RateLimited { message, .. }) => assert!(message.contains("limit")),
        other => panic!("expected rate limiting, got {other:?}"),
    }
    let files = client.get_file("no/such/file", &mut tokio::io::sink(), None).await;
    assert!(matches!(files, Err(Error::NotFound(_))), "{files:?}");

    server.stop().await;
    let impatient = Client::builder(server.url())
        .api_key(API_KEY)
        .request_timeout(Duration::from_millis(700))
        .connect()
        .await
        .unwrap();
    // The proxy closes every connection at once: the request was never sent, and the error
    // says where the client tried to connect.
    match impatient.info(&subject).await {
        Err(Error::Connect { url, .. }) => assert_eq!(url, format!("{}/v1/stream/{subject}", server.url().replace("http", "ws"))),
        other => panic!("expected a connect error, got {other:?}"),
    }
    let http = impatient.head_file("any").await;
    assert!(matches!(http, Err(Error::Http(_))), "{http:?}");
}

#[tokio::test]
async fn subscription_options_are_validated_by_the_server() {
    let server = Server::start().await;
    let client = client(&server).await;
    let subject = unique_subject("bad-options");
    match client.subscribe(&subject, SubscribeOptions::default().window(1_000_000)).await {
        Err(Error::BadRequest(message)) => assert!(message.contains("window"), "{message}"),
        other => panic!("expected bad_request, got {other:?}"),
    }
}
