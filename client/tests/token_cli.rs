//! `dstream token …` and `--token`, through the built binary: local signing, keys, inspection,
//! and the credential sent (against a scripted server, so no Worker is needed).

mod support;

use durable_stream_protocol::token::jwt::{check_times, decode_unverified};
use durable_stream_protocol::token::{Actions, TokenKeys};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use support::mock::{Answer, MockSubject, Upgrade};
use tokio::process::Command;

/// `dstream ARGS` with no credentials from the environment and a server where nothing listens.
fn dstream(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dstream"));
    command
        .args(args)
        .env("DSTREAM_URL", "http://127.0.0.1:9")
        .env_remove("DSTREAM_API_KEY")
        .env_remove("DSTREAM_TOKEN")
        .kill_on_drop(true);
    command
}

async fn run(command: &mut Command) -> (Option<i32>, String, String) {
    let Output { status, stdout, stderr } = command.output().await.unwrap();
    (status.code(), String::from_utf8(stdout).unwrap(), String::from_utf8(stderr).unwrap())
}

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn claims(token: &str) -> Value {
    serde_json::from_str(&decode_unverified(token).unwrap().1).unwrap()
}

#[tokio::test]
async fn create_signs_locally_with_an_hs256_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "the-token-secret\n").unwrap();
    let sign_with = format!("hs256:{}", secret_file.display());
    let (code, stdout, stderr) = run(&mut dstream(&[
        "token", "create", "--sub", "web", "--subject", "orders.>", "--allow", "sub", "--allow", "pub",
        "--deny-subject", "orders.internal.>", "--deny", "sub", "--files", "reports/", "--allow-files", "files:read",
        "--ttl", "15m", "--pub-rate", "10", "--connections", "2", "--sign-with", &sign_with,
    ]))
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let token = stdout.trim_end();
    assert_eq!(stdout.lines().count(), 1, "only the token on stdout: {stdout}");
    let keys = TokenKeys::from_config(Some("the-token-secret"), None, None).unwrap();
    let verified = keys.verify(token).expect("signed with the secret, the trailing newline left out");
    check_times(&verified, now_s(), 3600).unwrap();
    assert_eq!((verified.sub.as_str(), verified.exp - verified.iat.unwrap()), ("web", 900));
    assert_eq!(verified.subject_actions("orders.eu"), Actions::PUB.union(Actions::SUB));
    assert_eq!(verified.subject_actions("orders.internal.x"), Actions::PUB);
    assert!(verified.allows_file(Actions::FILES_READ, "reports/a"));
    assert_eq!((verified.limits.pub_rate, verified.limits.connections), (Some(10.0), Some(2)));
    let jti = verified.jti.unwrap();
    assert!(stderr.starts_with(&format!("token for \"web\", jti {jti}; expires ")), "{stderr}");
    assert!(stderr.ends_with("(in 15m 0s)\n") || stderr.contains("(in 14m 5"), "{stderr}");
    assert!(!stderr.contains(token), "the token only on stdout");

    let (code, stdout, _) = run(&mut dstream(&["token", "create", "--sub", "w", "--sign-with", &sign_with, "--jti", "j1", "--json"])).await;
    assert_eq!(code, Some(0));
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(printed["jti"], "j1");
    assert_eq!(printed["exp"], claims(printed["token"].as_str().unwrap())["exp"]);
}

#[tokio::test]
async fn keygen_writes_a_private_key_only_its_owner_reads_and_create_signs_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let keyfile = dir.path().join("issuer.jwk");
    let keyfile_arg = keyfile.to_str().unwrap();
    let (code, stdout, stderr) = run(&mut dstream(&["token", "keygen", keyfile_arg, "--kid", "k2025"])).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(std::fs::metadata(&keyfile).unwrap().permissions().mode() & 0o777, 0o600);
    let entry: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(entry["kid"], "k2025");
    let private = std::fs::read_to_string(&keyfile).unwrap();
    let d: Value = serde_json::from_str(&private).unwrap();
    assert!(!stdout.contains(d["d"].as_str().unwrap()) && !stderr.contains(d["d"].as_str().unwrap()), "the private key stays in the file");
    assert!(stderr.contains("TOKEN_PUBLIC_KEYS"), "{stderr}");

    let (code, _, stderr) = run(&mut dstream(&["token", "keygen", keyfile_arg])).await;
    assert_eq!(code, Some(2), "an existing key is never overwritten");
    assert!(stderr.contains("exists already"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&keyfile).unwrap(), private);

    let sign_with = format!("ed25519:{keyfile_arg}");
    let (code, token, stderr) = run(&mut dstream(&["token", "create", "--sub", "svc", "--subject", "a.*", "--allow", "state", "--sign-with", &sign_with])).await;
    assert_eq!(code, Some(0), "{stderr}");
    let keys = TokenKeys::from_config(None, None, Some(&json!([entry]).to_string())).unwrap();
    let verified = keys.verify(token.trim_end()).unwrap();
    assert_eq!(verified.subject_actions("a.b"), Actions::STATE);
    let header: Value = serde_json::from_str(&decode_unverified(token.trim_end()).unwrap().0).unwrap();
    assert_eq!(header["kid"], "k2025");
}

#[tokio::test]
async fn inspect_shows_the_claims_and_the_time_left() {
    let token = durable_stream_client::TokenBuilder::new("web")
        .ttl(std::time::Duration::from_secs(7200))
        .allow_subjects(["orders.>"], [durable_stream_client::Action::Sub])
        .sign_hs256(b"s")
        .unwrap();
    let (code, stdout, stderr) = run(&mut dstream(&["token", "inspect", &token])).await;
    assert_eq!(code, Some(0), "{stderr}");
    let shown: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["header"]["alg"], "HS256");
    assert_eq!(shown["claims"]["allow"], json!([{"subjects": ["orders.>"], "actions": ["sub"]}]));
    let left = shown["secondsLeft"].as_i64().unwrap();
    assert!((7000..=7200).contains(&left), "{left}");
    assert!(shown["expires"].as_str().unwrap().ends_with('Z'));
    assert!(stderr.contains("(in 1h 59m)") || stderr.contains("(in 2h 0m)"), "{stderr}");
    assert!(stderr.contains("not verified"), "{stderr}");

    // From DSTREAM_TOKEN when no argument is given.
    let (code, from_env, _) = run(dstream(&["token", "inspect"]).env("DSTREAM_TOKEN", &token)).await;
    assert_eq!((code, from_env.contains("\"sub\": \"web\"")), (Some(0), true));

    let (code, _, stderr) = run(&mut dstream(&["token", "inspect", "not-a-token"])).await;
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("dstream: cannot read the token: malformed token"), "{stderr}");
    let (code, _, stderr) = run(&mut dstream(&["token", "inspect"])).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no token to inspect"), "{stderr}");
}

#[tokio::test]
async fn token_commands_say_what_is_missing() {
    // Minting and revoking need the API key; a token is not enough.
    let (code, _, stderr) = run(dstream(&["token", "create", "--sub", "s"]).env("DSTREAM_TOKEN", "eyJ.a.b")).await;
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("dstream: minting tokens (or sign here with --sign-with) needs the API key"), "{stderr}");
    let (code, _, stderr) = run(&mut dstream(&["token", "revoke", "--jti", "j"])).await;
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("dstream: revoking tokens needs the API key"), "{stderr}");

    for (args, expected) in [
        (&["token", "create", "--sub", "s", "--allow", "sub"][..], "--subject"),
        (&["token", "create", "--sub", "s", "--subject", "a", "--allow", "files:read"], "possible values: pub, sub, state, admin"),
        (&["token", "create", "--sub", "s", "--files", "r/"], "--allow-files"),
        (&["token", "create", "--sub", "s", "--ttl", "1w"], "expected seconds or a number with s, m, h or d"),
        (&["token", "create", "--sub", "s", "--sign-with", "rs256:k"], "expected ed25519:KEYFILE[:KID] or hs256:SECRETFILE"),
        (&["token", "create", "--sub", "s", "--jti", "j"], "--sign-with"),
        (&["token", "revoke"], "--jti"),
        (&["token", "revoke", "--jti", "j", "--issued-before", "now"], "cannot be used with"),
        (&["token", "revoke", "--issued-before", "now"], "--jti"),
    ] {
        let (code, _, stderr) = run(&mut dstream(args)).await;
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }

    let dir = tempfile::tempdir().unwrap();
    let missing = format!("ed25519:{}", dir.path().join("none.jwk").display());
    let (code, _, stderr) = run(&mut dstream(&["token", "create", "--sub", "s", "--sign-with", &missing])).await;
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("dstream: cannot read the key file "), "{stderr}");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "k").unwrap();
    let bad_pattern = format!("hs256:{}", secret.display());
    let (code, _, stderr) = run(&mut dstream(&["token", "create", "--sub", "s", "--subject", "a.>.b", "--allow", "pub", "--sign-with", &bad_pattern])).await;
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("dstream: invalid token: the token would be refused: subject pattern"), "{stderr}");
}

#[tokio::test]
async fn the_token_is_sent_instead_of_the_api_key_and_its_refusals_explained() {
    let mock = MockSubject::start(
        |_, authorization: &str| match authorization {
            "Bearer expired-token" => Upgrade::Refuse(401, r#"{"error":{"code":"token_expired","message":"token has expired"}}"#),
            _ => Upgrade::Accept,
        },
        |_, frame: &Value| match frame["op"].as_str() {
            Some("info") => vec![Answer::Frame(
                json!({"op": "err", "id": frame["id"], "code": "forbidden", "message": "the token of \"web\" does not grant sub on subject \"s\""}).to_string(),
            )],
            _ => vec![],
        },
    )
    .await;
    let (code, _, stderr) = run(dstream(&["info", "s"]).env("DSTREAM_URL", mock.url()).env("DSTREAM_API_KEY", "key").env("DSTREAM_TOKEN", "the-token")).await;
    assert_eq!(code, Some(1));
    assert_eq!(mock.seen().upgrades, ["Bearer the-token"], "the token, not the API key");
    assert!(stderr.starts_with("dstream: forbidden: the token of \"web\""), "{stderr}");
    assert!(stderr.ends_with("— `dstream token inspect` shows what the token grants\n"), "{stderr}");

    let (code, _, stderr) = run(dstream(&["pub", "s", "1", "--token", "expired-token"]).env("DSTREAM_URL", mock.url())).await;
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("dstream: token expired: "), "{stderr}");
    assert!(stderr.contains("get a new token"), "{stderr}");
    assert!(!stderr.contains("expired-token"), "the token is never printed: {stderr}");
}

#[tokio::test]
async fn create_and_revoke_ask_the_server_with_the_api_key() {
    use support::mock::{http_response, MockHttp};
    let exp = now_s() + 3600;
    let minted = format!(r#"{{"token":"eyJ.minted.token","exp":{exp},"jti":"j7"}}"#);
    let mock = MockHttp::start(vec![
        http_response("201 Created", "", &minted),
        http_response("200 OK", "", r#"{"revoked":{"jti":"j7","expiresAt":1700086400000},"version":4}"#),
        http_response("401 Unauthorized", "", r#"{"error":{"code":"unauthorized","message":"minting tokens needs the API key"}}"#),
    ])
    .await;
    let with_key = |args: &[&str]| {
        let mut command = dstream(args);
        command.env("DSTREAM_URL", mock.url()).env("DSTREAM_API_KEY", "key").env("DSTREAM_TOKEN", "a-token");
        command
    };
    let (code, stdout, stderr) = run(&mut with_key(&["token", "create", "--sub", "web", "--subject", "orders.>", "--allow", "sub", "--json"])).await;
    assert_eq!(code, Some(0), "{stderr}");
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(printed, json!({"token": "eyJ.minted.token", "exp": exp, "jti": "j7"}));
    let (code, stdout, stderr) = run(&mut with_key(&["token", "revoke", "--jti", "j7"])).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["version"], 4);
    let requests = mock.requests();
    assert!(requests.iter().all(|r| r.header("authorization") == Some("Bearer key")), "the API key, not the token");
    assert_eq!(serde_json::from_slice::<Value>(&requests[1].body).unwrap(), json!({"jti": "j7"}));

    let (code, _, stderr) = run(&mut with_key(&["token", "revoke", "--jti", "j8"])).await;
    assert_eq!(code, Some(1));
    assert!(stderr.ends_with("— check the API key (DSTREAM_API_KEY or --api-key)\n"), "{stderr}");
}
