//! Access tokens against the real Worker on workerd: EdDSA tokens from `TokenBuilder`, refusals
//! as typed errors, a token provider refreshing a live subscription in-band, and rate-limited
//! publishes that the client waits out and delivers exactly once.

mod support;

use durable_stream_client::{Action, Client, ConnectionEvent, Ed25519Key, Error, StartPosition, SubscribeOptions, TokenBuilder, TokenLimits};
use futures_util::StreamExt;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{unique_subject, Server, API_KEY};

const SECRET: &str = "client-tests-token-secret";

async fn message(subscription: &mut durable_stream_client::Subscription) -> durable_stream_client::Message {
    match tokio::time::timeout(Duration::from_secs(30), subscription.next()).await {
        Ok(Some(Ok(message))) => message,
        other => panic!("expected a message within 30 s, got {other:?}"),
    }
}

#[tokio::test]
async fn an_eddsa_token_from_token_builder_does_what_it_grants_and_nothing_more() {
    let key = Ed25519Key::generate(Some("issuer-1"));
    let keys = format!("TOKEN_PUBLIC_KEYS=[{}]", key.public_entry());
    let server = Server::start_with(&[&keys]).await;
    let subject = format!("orders.{}", unique_subject("eu"));
    let token = TokenBuilder::new("checkout-service")
        .ttl(Duration::from_secs(600))
        .allow_subjects(["orders.>"], [Action::Pub])
        .sign_ed25519(Some(&key.kid), key.private_key())
        .unwrap();
    let client = Client::builder(server.url()).token(token).connect().await.unwrap();
    assert_eq!(client.publish(&subject, json!({"order": 1})).await.unwrap(), 1);
    match client.subscribe(&subject, SubscribeOptions::default()).await {
        Err(Error::Forbidden(message)) => assert!(message.contains("sub"), "{message}"),
        Ok(_) => panic!("a publish-only token subscribed"),
        Err(other) => panic!("expected Forbidden, got {other:?}"),
    }
    match client.publish("payments.x", json!(1)).await {
        Err(Error::Forbidden(message)) => assert!(message.contains("payments.x"), "{message}"),
        other => panic!("expected Forbidden on another subject, got {other:?}"),
    }
    // A token signed by a key the server does not list is refused as such.
    let stranger = Ed25519Key::generate(Some("issuer-1"));
    let forged = TokenBuilder::new("checkout-service").allow_subjects(["orders.>"], [Action::Pub]).sign_ed25519(Some("issuer-1"), stranger.private_key()).unwrap();
    let forged_client = Client::builder(server.url()).token(forged).connect().await.unwrap();
    match forged_client.publish(&subject, json!(2)).await {
        Err(Error::Unauthorized(message)) => assert!(message.contains("signature"), "{message}"),
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[tokio::test]
async fn a_token_provider_keeps_a_subscription_going_across_many_short_tokens_without_reconnecting() {
    let secret_var = format!("TOKEN_SECRET={SECRET}");
    let server = Server::start_with(&[&secret_var]).await;
    let subject = unique_subject("refresh");
    let minted = Arc::new(AtomicUsize::new(0));
    let provider = {
        let (minted, subject) = (minted.clone(), subject.clone());
        move || {
            minted.fetch_add(1, Ordering::SeqCst);
            let token = TokenBuilder::new("reader")
                .ttl(Duration::from_secs(4))
                .allow_subjects([subject.clone()], [Action::Sub])
                .sign_hs256(SECRET.as_bytes());
            std::future::ready(token)
        }
    };
    let reader = Client::builder(server.url()).token_provider(provider).connect().await.unwrap();
    let mut events = reader.events();
    let mut subscription = reader.subscribe(&subject, SubscribeOptions::default().start(StartPosition::First)).await.unwrap();
    let publisher = Client::connect(server.url(), API_KEY).await.unwrap();
    // Over about 12 s, three times the tokens' lifetime: the subscription must outlive them all.
    for i in 1..=12u64 {
        assert_eq!(publisher.publish(&subject, json!({ "i": i })).await.unwrap(), i);
        assert_eq!(message(&mut subscription).await.seq, i);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(minted.load(Ordering::SeqCst) >= 3, "the provider was asked for fresh tokens");
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, ConnectionEvent::Disconnected { .. } | ConnectionEvent::TokenRefreshFailed { .. }),
            "no reconnect and no failed refresh: {event:?}"
        );
    }
}

#[tokio::test]
async fn rate_limited_publishes_are_waited_out_and_stored_exactly_once() {
    let secret_var = format!("TOKEN_SECRET={SECRET}");
    let server = Server::start_with(&[&secret_var, "PUB_RATE_PER_TOKEN=20"]).await;
    let subject = unique_subject("limited");
    let token = TokenBuilder::new("bursty")
        .allow_subjects([subject.clone()], [Action::Pub])
        .limits(TokenLimits { pub_rate: Some(20.0), ..Default::default() })
        .sign_hs256(SECRET.as_bytes())
        .unwrap();
    let client = Client::builder(server.url()).token(token).connect().await.unwrap();
    let publishes = (0..100).map(|i| {
        let (client, subject) = (client.clone(), subject.clone());
        tokio::spawn(async move { client.publish(&subject, json!({ "n": i })).await })
    });
    let mut seqs = BTreeSet::new();
    for publish in futures_util::future::join_all(publishes).await {
        seqs.insert(publish.unwrap().expect("every publish succeeds after waiting"));
    }
    assert_eq!(seqs, (1..=100).collect(), "100 distinct sequences, none lost");
    let admin = Client::connect(server.url(), API_KEY).await.unwrap();
    let info = admin.info(&subject).await.unwrap();
    assert_eq!((info.count, info.last), (100, 100), "stored exactly once each");
    let mut all = admin.subscribe(&subject, SubscribeOptions::default().start(StartPosition::First)).await.unwrap();
    let mut payloads = BTreeSet::new();
    for _ in 0..100 {
        payloads.insert(message(&mut all).await.data["n"].as_u64().unwrap());
    }
    assert_eq!(payloads, (0..100).collect(), "each payload once");
}
