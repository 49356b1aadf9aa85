//! The `dstream` binary against the real Worker.

mod support;

use serde_json::Value;
use std::process::Output;
use support::{unique_subject, Server, API_KEY};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

fn dstream(server: &Server, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dstream"));
    command.args(args).env("DSTREAM_URL", server.url()).env("DSTREAM_API_KEY", API_KEY).kill_on_drop(true);
    command
}

async fn run(server: &Server, args: &[&str]) -> Output {
    dstream(server, args).output().await.unwrap()
}

/// Runs and expects success; returns stdout.
async fn ok(server: &Server, args: &[&str]) -> String {
    let output = run(server, args).await;
    assert!(
        output.status.success(),
        "dstream {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn publish_subscribe_and_subject_commands() {
    let server = Server::start().await;
    let subject = unique_subject("cli");
    assert_eq!(ok(&server, &["pub", &subject, r#"{"n":1}"#]).await.trim(), "1");

    let mut publisher = dstream(&server, &["pub", &subject, "-"]).stdin(std::process::Stdio::piped()).spawn().unwrap();
    let mut stdin = publisher.stdin.take().unwrap();
    stdin.write_all(b"2\n\n\"three\"\n{\"n\":4}\n").await.unwrap();
    drop(stdin);
    assert!(publisher.wait().await.unwrap().success());

    let lines = ok(&server, &["sub", &subject, "--from", "first", "--count", "4", "--json"]).await;
    let messages: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let data: Vec<String> = messages.iter().map(|m| m["data"].to_string()).collect();
    assert_eq!(data, [r#"{"n":1}"#, "2", r#""three""#, r#"{"n":4}"#]);
    assert_eq!(messages[3]["seq"], 4);

    let human = ok(&server, &["sub", &subject, "--from", "3", "--count", "1"]).await;
    assert_eq!(human.trim(), "#3 \"three\"");

    let info: Value = serde_json::from_str(&ok(&server, &["info", &subject]).await).unwrap();
    assert_eq!((info["last"].as_u64(), info["count"].as_u64()), (Some(4), Some(4)));
    let trimmed: Value = serde_json::from_str(&ok(&server, &["trim", &subject, "2"]).await).unwrap();
    assert_eq!(trimmed["first"], 3);

    let put: Value = serde_json::from_str(&ok(&server, &["state", "put", &subject, r#"{"k":"v"}"#, "--version", "0"]).await).unwrap();
    assert_eq!(put["version"], 1);
    let got: Value = serde_json::from_str(&ok(&server, &["state", "get", &subject]).await).unwrap();
    assert_eq!(got, serde_json::json!({ "state": { "k": "v" }, "version": 1 }));
}

#[tokio::test]
async fn subscriptions_resume_from_a_cursor_directory() {
    let server = Server::start().await;
    let subject = unique_subject("cli-cursor");
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_str().unwrap();
    for n in 1..=5 {
        ok(&server, &["pub", &subject, &n.to_string()]).await;
    }
    let first = ok(&server, &["sub", &subject, "--from", "first", "--count", "2", "--cursor-dir", dir]).await;
    assert_eq!(first.lines().collect::<Vec<_>>(), ["#1 1", "#2 2"]);
    let second = ok(&server, &["sub", &subject, "--from", "first", "--count", "2", "--cursor-dir", dir]).await;
    assert_eq!(second.lines().collect::<Vec<_>>(), ["#3 3", "#4 4"]);
}

#[tokio::test]
async fn file_commands() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("in.bin");
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
    std::fs::write(&source, &body).unwrap();
    let prefix = unique_subject("cli-files");
    let key = format!("{prefix}/in.bin");

    ok(&server, &["files", "put", &key, source.to_str().unwrap(), "--content-type", "application/x-test"]).await;
    let target = dir.path().join("out.bin");
    ok(&server, &["files", "get", &key, target.to_str().unwrap()]).await;
    assert_eq!(std::fs::read(&target).unwrap(), body);

    let output = run(&server, &["files", "get", &key, "--range", "10-19"]).await;
    assert!(output.status.success());
    assert_eq!(output.stdout, body[10..20]);

    let listing = ok(&server, &["files", "ls", "--prefix", &prefix]).await;
    assert!(listing.contains(&key) && listing.contains("100000"), "{listing}");
    ok(&server, &["files", "rm", &key]).await;
    let missing = run(&server, &["files", "rm", &key]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
}

#[tokio::test]
async fn errors_exit_non_zero_with_the_reason() {
    let server = Server::start().await;
    let output = dstream(&server, &["info", "x"]).env("DSTREAM_API_KEY", "wrong").output().await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unauthorized"));
    let output = run(&server, &["pub", "x", "{not json"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not valid JSON"));
}

#[tokio::test]
async fn bench_prints_a_markdown_table() {
    let server = Server::start().await;
    let table = ok(
        &server,
        &[
            "bench", "--messages", "200", "--window", "20", "--batches", "5", "--subscribers", "2",
            "--fanout-messages", "50", "--backlog", "1000", "--time-limit", "30",
        ],
    )
    .await;
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(rows.len(), 5, "{table}");
    assert!(rows[1].contains("| 200 |"), "all single publishes done: {table}");
    assert!(rows[3].contains("| 100 |"), "fan-out delivered 50 to each of 2: {table}");
    assert!(rows[4].contains("| 1000 |"), "whole backlog replayed: {table}");
    assert!(table.contains("p99"));
}
