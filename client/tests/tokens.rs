//! Access tokens and rate limits against scripted servers: in-band refresh, expiry with and
//! without a token provider, and rate-limited publishes sent again with the same msgId.

mod support;

use durable_stream_client::{Action, Client, ConnectionEvent, Error, StartPosition, SubscribeOptions, TokenBuilder};
use durable_stream_protocol::token::jwt::decode_unverified;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::mock::{Answer, MockSubject, Upgrade};

const SECRET: &[u8] = b"test-secret";
/// A bound on waits that normally take milliseconds.
const PATIENCE: Duration = Duration::from_secs(30);

fn ok(frame: &Value, fields: Value) -> Answer {
    let mut reply = json!({ "op": "ok", "id": frame["id"] });
    reply.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
    Answer::Frame(reply.to_string())
}

/// The answers of a well-behaved subject: publishes get the next sequence, `sub` starts at 1,
/// `auth` is accepted.
fn well_behaved() -> impl Fn(usize, &Value) -> Vec<Answer> + Send + Sync {
    let seq = Mutex::new(0u64);
    move |_, frame| match frame["op"].as_str() {
        Some("pub") => {
            let mut last = seq.lock().unwrap();
            let first = *last + 1;
            *last += frame["batch"].as_array().map_or(1, |batch| batch.len() as u64);
            vec![ok(frame, json!({ "seq": first, "last": *last }))]
        }
        Some("sub") => vec![ok(frame, json!({ "first": 1, "last": 0, "from": 1 }))],
        Some("auth") => vec![ok(frame, json!({ "exp": 4_000_000_000u64 }))],
        _ => vec![],
    }
}

fn accept_all(_: usize, _: &str) -> Upgrade {
    Upgrade::Accept
}

/// The tokens a provider returned, in order.
type Issued = Arc<Mutex<Vec<String>>>;

/// A provider of tokens living `ttl`, with the jti `t1`, `t2`, …, and the list of them.
fn provider(ttl: Duration) -> (Issued, impl Fn() -> std::future::Ready<Result<String, Error>> + Send + Sync + 'static) {
    let issued = Arc::new(Mutex::new(Vec::new()));
    let log = issued.clone();
    let provide = move || {
        let mut issued = log.lock().unwrap();
        let token = TokenBuilder::new("t").ttl(ttl).allow_subjects([">"], [Action::Pub, Action::Sub]).jti(format!("t{}", issued.len() + 1)).sign_hs256(SECRET);
        if let Ok(token) = &token {
            issued.push(token.clone());
        }
        std::future::ready(token)
    };
    (issued, provide)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn jti(token: &str) -> String {
    let (_, claims) = decode_unverified(token).unwrap();
    serde_json::from_str::<Value>(&claims).unwrap()["jti"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_refreshed_token_is_sent_in_band_on_every_open_connection_without_reconnecting() {
    let mock = MockSubject::start(accept_all, well_behaved()).await;
    // Two-second tokens: the next is asked for after one second.
    let (issued, provide) = provider(Duration::from_secs(2));
    let client = Client::builder(mock.url()).token_provider(provide).connect().await.unwrap();
    assert_eq!(client.publish("orders", json!(1)).await.unwrap(), 1);
    let mut subscription = client.subscribe("orders", SubscribeOptions::default().start(StartPosition::First)).await.unwrap();

    let seen = mock
        .wait_for("an auth frame on both connections", |seen| {
            let auths = seen.ops("auth");
            auths.iter().any(|(c, _)| *c == 0) && auths.iter().any(|(c, _)| *c == 1)
        })
        .await;
    let first = issued.lock().unwrap()[0].clone();
    assert_eq!(seen.upgrades[0], bearer(&first), "the request connection opened with the first token");
    for (connection, auth) in seen.ops("auth") {
        let token = auth["token"].as_str().unwrap();
        assert_ne!(jti(token), "t1", "connection {connection} got a newer token in-band");
        assert!(issued.lock().unwrap().iter().any(|t| t == token), "a token from the provider");
    }

    assert_eq!(client.publish("orders", json!(2)).await.unwrap(), 2);
    let seen = mock.seen();
    assert_eq!(seen.upgrades.len(), 2, "no reconnect: one request and one subscription connection");
    let publishes: Vec<usize> = seen.ops("pub").iter().map(|(c, _)| *c).collect();
    assert_eq!(publishes, [0, 0], "both publishes on the first connection");
    assert!(tokio::time::timeout(Duration::from_millis(50), subscription.next()).await.is_err(), "the subscription is quiet and open");
}

#[tokio::test]
async fn a_rate_limited_publish_waits_and_is_sent_again_with_the_same_msg_id() {
    // The first frame of each msgId is refused as rate limited; the ones after it are stored.
    let refused = Mutex::new(std::collections::HashSet::new());
    let stored = well_behaved();
    let mock = MockSubject::start(accept_all, move |n, frame: &Value| {
        let msg_id = frame["msgId"].as_str().unwrap_or_default().to_owned();
        match msg_id.as_str() {
            "forbidden" => vec![Answer::Frame(json!({"op": "err", "id": frame["id"], "code": "forbidden", "message": "no pub here"}).to_string())],
            "slow" => vec![Answer::Frame(json!({"op": "err", "id": frame["id"], "code": "rate_limited", "message": "later", "retryAfterMs": 60_000}).to_string())],
            _ if frame["op"] == "pub" && refused.lock().unwrap().insert(msg_id.clone()) => vec![Answer::Frame(
                json!({"op": "err", "id": frame["id"], "code": "rate_limited", "message": "over pubRate", "retryAfterMs": 300}).to_string(),
            )],
            _ => stored(n, frame),
        }
    })
    .await;
    let client = Client::builder(mock.url()).api_key("key").request_timeout(Duration::from_secs(20)).connect().await.unwrap();

    let started = Instant::now();
    assert_eq!(client.publish("orders", json!({"n": 1})).await.unwrap(), 1);
    assert!(started.elapsed() >= Duration::from_millis(300), "it waited as asked");
    assert_eq!(client.publish_batch("orders", [json!(2), json!(3)]).await.unwrap().0, 2);
    let publishes = mock.seen().ops("pub");
    assert_eq!(publishes.len(), 4, "each publish was sent twice: {publishes:?}");
    for pair in publishes.chunks(2) {
        assert_eq!(pair[0].1, pair[1].1, "sent again verbatim (same msgId and id)");
    }

    // A wait beyond the request timeout is not waited out, and refusals are typed.
    match client.publish_with_id("orders", 4, "slow").await {
        Err(Error::RateLimited { message, retry_after }) => {
            assert_eq!((message.as_str(), retry_after), ("later", Some(Duration::from_secs(60))));
        }
        other => panic!("expected rate_limited, got {other:?}"),
    }
    assert!(matches!(client.publish_with_id("orders", 5, "forbidden").await, Err(Error::Forbidden(m)) if m == "no pub here"));
    assert_eq!(mock.seen().ops("pub").len(), 6, "neither was sent again");
}

/// Sends `err token_expired` and closes with 4401, as the server does when a socket's token
/// expires without an in-band refresh, when `op` arrives: instead of answering it, or after.
fn expire_at(op: &'static str, answered: bool) -> impl Fn(usize, &Value) -> Vec<Answer> + Send + Sync {
    let answer = well_behaved();
    move |n, frame| {
        let mut answers = answer(n, frame);
        if frame["op"] == op {
            if !answered {
                answers.clear();
            }
            let expired = json!({"op": "err", "id": null, "code": "token_expired", "message": "token has expired"});
            answers.extend([Answer::Frame(expired.to_string()), Answer::Close(4401, "token expired")]);
        }
        answers
    }
}

#[tokio::test]
async fn without_a_provider_an_expired_token_ends_requests_and_subscriptions_without_reconnecting() {
    let token = TokenBuilder::new("t").allow_subjects([">"], [Action::Pub, Action::Sub]).sign_hs256(SECRET).unwrap();
    let mock = MockSubject::start(accept_all, expire_at("pub", false)).await;
    let client = Client::builder(mock.url()).token(token.clone()).connect().await.unwrap();
    let mut events = client.events();
    match client.publish("orders", 1).await {
        Err(Error::TokenExpired(message)) => assert!(message.contains("4401"), "{message}"),
        other => panic!("expected token_expired, got {other:?}"),
    }
    let subscriptions = MockSubject::start(accept_all, expire_at("sub", true)).await;
    let client = Client::builder(subscriptions.url()).token(token.clone()).connect().await.unwrap();
    // The server closes the socket right after accepting the subscription.
    let mut subscription = client.subscribe("orders", SubscribeOptions::default()).await.unwrap();
    let item = tokio::time::timeout(PATIENCE, subscription.next()).await.expect("the stream reports the expiry");
    assert!(matches!(item, Some(Err(Error::TokenExpired(_)))), "{item:?}");
    assert!(tokio::time::timeout(PATIENCE, subscription.next()).await.unwrap().is_none(), "and ends");

    // Reconnect attempts would come within the backoff's first delay (100 ms).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mock.seen().upgrades, [bearer(&token)], "no reconnect with an expired token");
    assert_eq!(subscriptions.seen().upgrades.len(), 1);
    while let Ok(event) = events.try_recv() {
        assert!(!matches!(event, ConnectionEvent::Reconnecting { .. }), "{event:?}");
    }
}

#[tokio::test]
async fn with_a_provider_an_expired_token_is_replaced_and_the_publish_sent_again() {
    let (issued, provide) = provider(Duration::from_secs(3600));
    let first = Arc::new(Mutex::new(None::<String>));
    let remembered = first.clone();
    // The first connection's token expires at its first publish; opened again with that
    // token, the upgrade is refused; with the provider's next token it is accepted.
    let upgrade = move |n: usize, authorization: &str| {
        let mut first = remembered.lock().unwrap();
        match (n, first.as_deref()) {
            (0, _) => {
                *first = Some(authorization.to_owned());
                Upgrade::Accept
            }
            (_, Some(expired)) if expired == authorization => {
                Upgrade::Refuse(401, r#"{"error":{"code":"token_expired","message":"token has expired"}}"#)
            }
            _ => Upgrade::Accept,
        }
    };
    let expire_first = expire_at("pub", false);
    let answer = well_behaved();
    let mock = MockSubject::start(upgrade, move |n, frame| if n == 0 { expire_first(n, frame) } else { answer(n, frame) }).await;
    let client = Client::builder(mock.url()).token_provider(provide).connect().await.unwrap();

    assert_eq!(client.publish_with_id("orders", 1, "m1").await.unwrap(), 1);
    let seen = mock.seen();
    let tokens = issued.lock().unwrap().clone();
    assert_eq!(tokens.len(), 2, "the provider was asked once more");
    assert_eq!(seen.upgrades.first(), Some(&bearer(&tokens[0])));
    assert_eq!(seen.upgrades.last(), Some(&bearer(&tokens[1])), "reconnected with the new token");
    let publishes = seen.ops("pub");
    assert_eq!(publishes.len(), 2);
    assert_eq!(publishes[0].1["msgId"], publishes[1].1["msgId"], "the same publish, sent again");
}

#[tokio::test]
async fn http_requests_refused_as_rate_limited_are_sent_again_after_the_wait() {
    use support::mock::{http_response, MockHttp};
    let limited_body = r#"{"error":{"code":"rate_limited","message":"slow down","retryAfterMs":200}}"#;
    let mock = MockHttp::start(vec![
        http_response("429 Too Many Requests", "", limited_body),
        // Without retryAfterMs in the body, the Retry-After header (seconds) says how long.
        http_response("429 Too Many Requests", "Retry-After: 1\r\n", r#"{"error":{"code":"rate_limited","message":"slow down"}}"#),
        http_response("200 OK", "", r#"{"deleted":true,"epoch":"e2"}"#),
    ])
    .await;
    let client = Client::builder(mock.url()).token("the-token").connect().await.unwrap();
    let started = Instant::now();
    assert_eq!(client.delete_subject("orders").await.unwrap(), "e2");
    assert!(started.elapsed() >= Duration::from_millis(1200), "waited 200 ms, then 1 s");
    let requests = mock.requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert!(request.head.starts_with("DELETE /v1/stream/orders HTTP/1.1"), "{}", request.head);
        assert_eq!(request.header("authorization"), Some("Bearer the-token"));
    }

    // A wait beyond the request timeout is not waited out.
    let mock = MockHttp::start(vec![http_response("429 Too Many Requests", "Retry-After: 60\r\n", "")]).await;
    let client = Client::builder(mock.url()).api_key("key").request_timeout(Duration::from_secs(5)).connect().await.unwrap();
    match client.delete_subject("orders").await {
        Err(Error::RateLimited { retry_after, .. }) => assert_eq!(retry_after, Some(Duration::from_secs(60))),
        other => panic!("expected rate_limited, got {other:?}"),
    }
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn minting_and_revoking_send_what_the_server_expects() {
    use durable_stream_client::{Revoke, TokenLimits};
    use support::mock::{http_response, MockHttp};
    let mock = MockHttp::start(vec![
        http_response("201 Created", "", r#"{"token":"eyJ.x.y","exp":1800000600,"jti":"j1"}"#),
        http_response("200 OK", "", r#"{"revoked":{"sub":"web","issuedBefore":1700000000000,"expiresAt":1700086400000},"version":3}"#),
    ])
    .await;
    let client = Client::connect(mock.url(), "key").await.unwrap();
    let builder = TokenBuilder::new("web")
        .ttl(Duration::from_secs(600))
        .allow_subjects(["orders.>"], [Action::Sub])
        .limits(TokenLimits { pub_rate: Some(5.0), ..Default::default() });
    let issued = client.create_token(&builder).await.unwrap();
    assert_eq!((issued.token.as_str(), issued.exp, issued.jti.as_str()), ("eyJ.x.y", 1_800_000_600, "j1"));
    assert!(!format!("{issued:?}").contains("eyJ.x.y"), "Debug leaves the token out");
    let before = std::time::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
    let revoked = client.revoke_tokens(Revoke::Client { sub: "web".into(), issued_before: Some(before) }).await.unwrap();
    assert_eq!((revoked.version, revoked.revoked.expires_at), (3, 1_700_086_400_000));

    let requests = mock.requests();
    assert!(requests[0].head.starts_with("POST /v1/tokens HTTP/1.1"));
    assert_eq!(requests[0].header("authorization"), Some("Bearer key"));
    let minted: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(
        minted,
        json!({"sub": "web", "ttl": 600, "allow": [{"subjects": ["orders.>"], "actions": ["sub"]}], "limits": {"pubRate": 5.0}})
    );
    assert!(requests[1].head.starts_with("POST /v1/tokens/revoke HTTP/1.1"));
    assert_eq!(serde_json::from_slice::<Value>(&requests[1].body).unwrap(), json!({"sub": "web", "issuedBefore": 1_700_000_000_000u64}));

    let fixed_jti = TokenBuilder::new("web").jti("mine");
    assert!(matches!(client.create_token(&fixed_jti).await, Err(Error::InvalidToken(m)) if m.contains("the server chooses the jti")));
}
