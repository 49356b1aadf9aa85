//! Auto-batched publishes against the real Worker: many tasks publishing at once while every
//! connection is cut again and again store each message exactly once, in each task's order,
//! under the sequence its publish returned; publishes resent with their ids are answered entry
//! by entry with their original sequences.

mod support;

use durable_stream_client::{AutoBatch, Client, StartPosition, SubscribeOptions};
use futures_util::StreamExt;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use support::{unique_subject, Cutter, Server, API_KEY};

#[tokio::test]
async fn concurrent_publishes_are_stored_once_each_in_order_across_dropped_connections() {
    let server = Arc::new(Server::start().await);
    let client = Client::connect(server.url(), API_KEY).await.unwrap();
    let subject = unique_subject("batching-drops");
    const TASKS: u64 = 50;
    const EACH: u64 = 40;
    let cutter = Cutter::start(server.clone());
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (client, subject) = (client.clone(), subject.clone());
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for n in 0..EACH {
                    seqs.push(client.publish(&subject, json!({ "task": task, "n": n })).await.unwrap());
                }
                seqs
            })
        })
        .collect();
    let mut returned = HashMap::new();
    for (task, handle) in tasks.into_iter().enumerate() {
        let seqs = handle.await.unwrap();
        assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "task {task}'s publishes in its order: {seqs:?}");
        for (n, seq) in seqs.into_iter().enumerate() {
            returned.insert(seq, (task as u64, n as u64));
        }
    }
    assert!(cutter.stop().await > 0);
    assert_eq!(returned.len() as u64, TASKS * EACH, "every publish got a sequence of its own");

    let info = client.info(&subject).await.unwrap();
    assert_eq!((info.first, info.last, info.count), (1, TASKS * EACH, TASKS * EACH), "each message stored once");
    let options = SubscribeOptions::default().start(StartPosition::First);
    let mut stored = client.subscribe(&subject, options).await.unwrap();
    for seq in 1..=TASKS * EACH {
        let message = tokio::time::timeout(Duration::from_secs(60), stored.next()).await.unwrap().unwrap().unwrap();
        let (task, n) = returned[&seq];
        assert_eq!((message.seq, message.data), (seq, json!({ "task": task, "n": n })), "stored under the sequence returned");
    }
    stored.close().await.unwrap();
}

#[tokio::test]
async fn publishes_resent_with_their_ids_get_their_original_sequences_entry_by_entry() {
    let server = Server::start().await;
    let subject = unique_subject("batching-ids");
    let batched = Client::builder(server.url()).api_key(API_KEY).auto_batch(AutoBatch::default().max_messages(8)).connect().await.unwrap();
    let single = Client::builder(server.url()).api_key(API_KEY).auto_batch(AutoBatch::off()).connect().await.unwrap();
    let publish_all = |client: &Client, ids: std::ops::Range<u32>| {
        let publishes = ids.map(|i| {
            let (client, subject) = (client.clone(), subject.clone());
            async move { client.publish_with_id(&subject, json!({ "i": i }), &format!("key-{i}")).await.unwrap() }
        });
        futures_util::future::join_all(publishes)
    };
    let first = publish_all(&single, 0..10).await;
    assert_eq!(first, (1..=10).collect::<Vec<_>>(), "without batching, one after another");
    // Keys 0..10 again mixed with new ones 10..20, coalesced: the old ones answer their
    // sequences, the new ones take the next sequences in order.
    let mixed = publish_all(&batched, 0..20).await;
    let new: Vec<u64> = mixed[10..].to_vec();
    assert_eq!(&mixed[..10], &first[..], "duplicates answer their original sequences");
    assert_eq!(new, (11..=20).collect::<Vec<_>>());
    assert_eq!(batched.info(&subject).await.unwrap().count, 20, "nothing stored twice");
    assert_eq!(publish_all(&single, 10..20).await, new, "a key stored by a batch entry is a duplicate alone too");
}
