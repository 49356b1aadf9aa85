//! The `dstream` binary against the real Worker.

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use durable_stream_client::{Client, ListFiles, UnfinishedUpload};
use support::mock::{refusing_url, PartialBody};
use support::{unique_subject, Server, API_KEY};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

fn dstream(server: &Server, args: &[&str]) -> Command {
    dstream_at(&server.url(), args)
}

/// `dstream ARGS` against the server at `url`, with the test API key.
fn dstream_at(url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dstream"));
    command.args(args).env("DSTREAM_URL", url).env("DSTREAM_API_KEY", API_KEY).env_remove("DSTREAM_TOKEN").kill_on_drop(true);
    command
}

/// Runs a command that must fail: its exit status and its standard error.
async fn failure(command: &mut Command) -> (Option<i32>, String) {
    let output = command.output().await.unwrap();
    assert!(!output.status.success(), "expected a failure; stdout: {}", String::from_utf8_lossy(&output.stdout));
    (output.status.code(), String::from_utf8(output.stderr).unwrap())
}

/// The names in a directory, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Waits for `condition`, failing the test after a bound no working run comes near.
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type Lines<R> = tokio::io::Lines<tokio::io::BufReader<R>>;

/// Starts `dstream ARGS`, reading its standard output and error line by line.
fn spawn_reading(server: &Server, args: &[&str]) -> (Child, Lines<ChildStdout>, Lines<ChildStderr>) {
    let mut child = dstream(server, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    (child, stdout, stderr)
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

    let mut publisher =
        dstream(&server, &["pub", &subject, "-"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = publisher.stdin.take().unwrap();
    stdin.write_all(b"2\n\n\"three\"\n{\"n\":4}\n").await.unwrap();
    drop(stdin);
    let published = publisher.wait_with_output().await.unwrap();
    assert!(published.status.success());
    assert_eq!(String::from_utf8_lossy(&published.stderr), "published 3 messages (seq 2–4)\n");

    let lines = ok(&server, &["sub", &subject, "--from", "first", "--count", "4", "--json"]).await;
    let messages: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let data: Vec<String> = messages.iter().map(|m| m["data"].to_string()).collect();
    assert_eq!(data, [r#"{"n":1}"#, "2", r#""three""#, r#"{"n":4}"#]);
    assert_eq!(messages[3]["seq"], 4);

    let human = ok(&server, &["sub", &subject, "--from", "3", "--count", "1"]).await;
    assert_eq!(human.trim(), "#3 \"three\"");

    let info: Value = serde_json::from_str(&ok(&server, &["info", &subject]).await).unwrap();
    assert_eq!((info["last"].as_u64(), info["count"].as_u64()), (Some(4), Some(4)));
    let fields: Vec<&str> = info.as_object().unwrap().keys().map(String::as_str).collect();
    let documented = ["subject", "first", "last", "count", "bytes", "subscribers", "connections", "consumers", "epoch"];
    assert!(documented.iter().all(|field| fields.contains(field)), "PROTOCOL.md's info fields, got {fields:?}");
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
async fn errors_exit_non_zero_with_the_reason_and_what_to_do() {
    let server = Server::start().await;
    for args in [&["info", "x"][..], &["files", "ls"]] {
        let (code, stderr) = failure(dstream(&server, args).env("DSTREAM_API_KEY", "wrong")).await;
        assert_eq!(code, Some(1));
        assert!(stderr.starts_with("dstream: unauthorized: "), "{stderr}");
        assert!(stderr.ends_with("— check the API key (DSTREAM_API_KEY or --api-key)\n"), "{stderr}");
    }
    let (code, stderr) = failure(dstream(&server, &["info", "x"]).env_remove("DSTREAM_API_KEY")).await;
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "dstream: no credentials: set DSTREAM_API_KEY or DSTREAM_TOKEN, or pass --api-key or --token (locally the API key is the API_KEY in .dev.vars)\n"
    );

    let (code, stderr) = failure(&mut dstream(&server, &["pub", "x", "{not json"])).await;
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("dstream: the message is not valid JSON ("), "{stderr}");

    // A key given twice is refused, not reduced to its last value and published.
    let twice = unique_subject("cli-twice");
    let (code, stderr) = failure(&mut dstream(&server, &["pub", &twice, r#"{"a":1,"a":2}"#])).await;
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with(r#"dstream: the message is not valid JSON (key "a" is given twice in one object"#), "{stderr}");
    let mut lines = dstream(&server, &["pub", &twice, "-"]);
    lines.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut publisher = lines.spawn().unwrap();
    publisher.stdin.take().unwrap().write_all(b"{\"b\":1}\n{\"b\":1,\"b\":2}\n").await.unwrap();
    let published = publisher.wait_with_output().await.unwrap();
    assert_eq!(published.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&published.stderr);
    assert!(stderr.starts_with(r#"dstream: line 2 is not valid JSON (key "b" is given twice"#), "{stderr}");
    let info: Value = serde_json::from_str(&ok(&server, &["info", &twice]).await).unwrap();
    assert_eq!(info["last"], 0, "nothing was published: {info}");

    let (code, stderr) = failure(&mut dstream(&server, &["files", "put", "k", "./no-such-file"])).await;
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("dstream: cannot read ./no-such-file: "), "{stderr}");

    let (code, stderr) = failure(&mut dstream(&server, &["files", "put", "k", "."])).await;
    assert_eq!(code, Some(1));
    assert_eq!(stderr, "dstream: cannot upload .: not a file\n");

    let (code, stderr) = failure(&mut dstream_at("localhost:8787", &["info", "x"])).await;
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("dstream: invalid URL: localhost:8787"), "{stderr}");
    assert!(stderr.ends_with("e.g. http://127.0.0.1:8787\n"), "{stderr}");

    let subject = unique_subject("cli-conflict");
    ok(&server, &["state", "put", &subject, "1"]).await;
    let (code, stderr) = failure(&mut dstream(&server, &["state", "put", &subject, "2", "--version", "0"])).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains(&format!("`dstream state get {subject}` shows the current state and version")), "{stderr}");
}

#[tokio::test]
async fn a_server_that_is_not_running_is_named_within_seconds() {
    let url = refusing_url().await;
    let port = url.rsplit(':').next().unwrap().to_owned();
    let commands: [&[&str]; 9] = [
        &["pub", "s", "1"],
        &["info", "s"],
        &["state", "get", "s"],
        &["trim", "s", "1"],
        &["sub", "s"],
        &["bench", "--messages", "10"],
        &["files", "ls"],
        &["files", "get", "k"],
        &["rm", "s", "--yes"],
    ];
    for args in commands {
        let started = Instant::now();
        let (code, stderr) = failure(&mut dstream_at(&url, args)).await;
        let elapsed = started.elapsed();
        assert_eq!(code, Some(1), "{args:?}");
        let line = stderr.lines().last().unwrap_or_default();
        assert!(line.starts_with("dstream: cannot connect to "), "{args:?}: {stderr}");
        assert!(line.contains(&format!("://127.0.0.1:{port}/v1/")), "{args:?} names the URL tried: {stderr}");
        assert!(line.ends_with(": connection refused — is the server running? (./scripts/dev.sh)"), "{args:?}: {stderr}");
        // A bound on a failure path, far above the fraction of a second it takes.
        assert!(elapsed < Duration::from_secs(15), "{args:?} took {elapsed:?}");
    }
}

#[tokio::test]
async fn a_server_that_accepts_but_never_answers_is_given_up_on_within_the_timeout() {
    // The kernel completes connections to a listening socket that nobody accepts from.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    for args in [&["info", "s", "--timeout", "2"][..], &["files", "ls", "--timeout", "2"]] {
        let started = Instant::now();
        let (code, stderr) = failure(&mut dstream_at(&url, args)).await;
        assert_eq!(code, Some(1), "{args:?}");
        assert!(stderr.contains(&url[7..]), "{args:?} names the server: {stderr}");
        let waited = stderr.contains("no hello within the connect timeout of 2s") || stderr.contains(&format!("no reply from {url} within 2 s"));
        assert!(waited, "{args:?} says what it waited for: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(15), "{args:?} took {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn a_closed_standard_output_ends_quietly() {
    let server = Server::start().await;
    let subject = unique_subject("cli-pipe");
    for n in 1..=3 {
        ok(&server, &["pub", &subject, &n.to_string()]).await;
    }
    for args in [&["info", &subject][..], &["sub", &subject, "--from", "first", "--count", "3"], &["completions", "bash"]] {
        let mut child = dstream(&server, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // Closing the reading end before anything is written: every write fails with EPIPE.
        drop(child.stdout.take());
        let output = child.wait_with_output().await.unwrap();
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(output.stderr.is_empty(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

#[tokio::test]
async fn rm_needs_yes_and_starts_a_new_epoch() {
    let server = Server::start().await;
    let subject = unique_subject("cli-rm");
    ok(&server, &["pub", &subject, "1"]).await;
    let before: Value = serde_json::from_str(&ok(&server, &["info", &subject]).await).unwrap();

    let (code, stderr) = failure(&mut dstream(&server, &["rm", &subject])).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("cannot be undone; add --yes to confirm"), "{stderr}");
    let unchanged: Value = serde_json::from_str(&ok(&server, &["info", &subject]).await).unwrap();
    assert_eq!((unchanged["count"].as_u64(), &unchanged["epoch"]), (Some(1), &before["epoch"]));

    let removed: Value = serde_json::from_str(&ok(&server, &["rm", &subject, "--yes"]).await).unwrap();
    assert_eq!(removed["deleted"], true);
    assert_ne!(removed["epoch"], before["epoch"]);
    let after: Value = serde_json::from_str(&ok(&server, &["info", &subject]).await).unwrap();
    assert_eq!((after["count"].as_u64(), after["last"].as_u64()), (Some(0), Some(0)));
    assert_eq!(after["epoch"], removed["epoch"]);
    ok(&server, &["rm", &subject, "-y"]).await;
}

#[tokio::test]
async fn completion_scripts_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let output = Command::new(env!("CARGO_BIN_EXE_dstream")).args(["completions", shell]).output().await.unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8(output.stdout).unwrap();
        for subcommand in ["pub", "sub", "info", "rm", "files", "token", "completions"] {
            assert!(script.contains(subcommand), "{shell} script mentions {subcommand}");
        }
        if shell == "bash" {
            let mut check = Command::new("bash").arg("-n").stdin(Stdio::piped()).spawn().unwrap();
            check.stdin.take().unwrap().write_all(script.as_bytes()).await.unwrap();
            assert!(check.wait().await.unwrap().success(), "bash -n accepts the script");
        }
    }
}

#[tokio::test]
async fn failed_downloads_leave_an_existing_file_untouched() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("existing.txt");
    let target_arg = target.to_str().unwrap();
    std::fs::write(&target, "precious").unwrap();
    let untouched = || {
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
        assert_eq!(names_in(dir.path()), ["existing.txt"], "no temporary file is left");
    };
    let key = format!("{}/file.txt", unique_subject("cli-get"));

    let (code, stderr) = failure(&mut dstream(&server, &["files", "get", &key, target_arg])).await;
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with(&format!("dstream: not found: no file {key:?}")), "{stderr}");
    untouched();

    let fresh = dir.path().join("fresh.txt");
    failure(&mut dstream(&server, &["files", "get", &key, fresh.to_str().unwrap()])).await;
    assert!(!fresh.exists(), "a failed download creates no file");
    untouched();

    let (code, _) = failure(&mut dstream_at(&refusing_url().await, &["files", "get", &key, target_arg])).await;
    assert_eq!(code, Some(1));
    untouched();

    let cut_off = PartialBody::start(100_000, 1000, true).await;
    let (code, stderr) = failure(&mut dstream_at(&cut_off.url(), &["files", "get", "k", target_arg])).await;
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("dstream: HTTP error: "), "the cause is named: {stderr}");
    untouched();

    let source = dir.path().join("source.txt");
    std::fs::write(&source, "replacement").unwrap();
    ok(&server, &["files", "put", &key, source.to_str().unwrap()]).await;
    std::fs::remove_file(&source).unwrap();

    // A target that cannot be written is named as given, not by the temporary file.
    let no_dir = dir.path().join("no-such-dir").join("copy.txt");
    let (code, stderr) = failure(&mut dstream(&server, &["files", "get", &key, no_dir.to_str().unwrap()])).await;
    assert_eq!(code, Some(1));
    assert_eq!(stderr, format!("dstream: cannot write {}: its directory does not exist\n", no_dir.display()));
    let (code, stderr) = failure(&mut dstream(&server, &["files", "get", &key, "./"])).await;
    assert_eq!(code, Some(1));
    assert_eq!(stderr, "dstream: cannot write ./: it does not name a file; give a file path\n");
    std::fs::create_dir(dir.path().join("a-dir")).unwrap();
    let a_dir = dir.path().join("a-dir");
    let (code, stderr) = failure(&mut dstream(&server, &["files", "get", &key, a_dir.to_str().unwrap()])).await;
    assert_eq!(code, Some(1));
    assert_eq!(stderr, format!("dstream: cannot write {}: it is a directory; give a file path\n", a_dir.display()));
    assert!(names_in(&a_dir).is_empty(), "no temporary file is left");
    std::fs::remove_dir(&a_dir).unwrap();
    untouched();

    ok(&server, &["files", "get", &key, target_arg]).await;
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "replacement");
    assert_eq!(names_in(dir.path()), ["existing.txt"]);
}

#[tokio::test]
async fn an_interrupted_download_leaves_an_existing_file_untouched() {
    let stalled = PartialBody::start(100_000, 1000, false).await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("existing.txt");
    std::fs::write(&target, "precious").unwrap();
    let child = dstream_at(&stalled.url(), &["files", "get", "k", target.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Body bytes in the temporary file mean the download (and with it the Ctrl-C handler) runs.
    wait_until("part of the body in a temporary file", || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .any(|entry| entry.file_name() != "existing.txt" && entry.metadata().is_ok_and(|m| m.len() > 0))
    })
    .await;
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().await.unwrap().success());
    let output = child.wait_with_output().await.unwrap();
    assert_eq!(output.status.code(), Some(130));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr, format!("dstream: interrupted; {} was left as it was\n", target.display()));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
    assert_eq!(names_in(dir.path()), ["existing.txt"]);
}

#[tokio::test]
async fn bench_prints_a_markdown_table() {
    let server = Server::start().await;
    let table = ok(
        &server,
        &[
            "bench", "--connects", "20", "--connect-window", "2", "--messages", "200", "--window", "20", "--batches", "5",
            "--subscribers", "2", "--fanout-messages", "50", "--backlog", "1000", "--chains", "4", "--chain-messages", "40",
            "--callers", "10", "--concurrent-messages", "300", "--time-limit", "30",
        ],
    )
    .await;
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(rows.len(), 9, "{table}");
    assert!(rows[1].starts_with("| connection set-up, 2 at a time | 20 |"), "all connections made: {table}");
    assert!(rows[1].contains("API key; connect→hello ms p50"), "{table}");
    assert!(rows[2].contains("| 200 |"), "all single publishes done: {table}");
    assert!(rows[3].starts_with("| publish() from 10 concurrent callers, one subject, auto-batched | 300 |"), "concurrent callers: {table}");
    assert!(rows[5].starts_with("| publish, 4 subjects, one at a time | 40 |"), "plain chains: {table}");
    assert!(rows[6].starts_with("| conditional publish (expectLastSeq), 4 subjects, one at a time | 40 |"), "conditional chains: {table}");
    assert!(rows[6].contains("% time per publish vs the row above"), "{table}");
    assert!(rows[7].contains("| 100 |"), "fan-out delivered 50 to each of 2: {table}");
    assert!(rows[8].contains("| 1000 |"), "whole backlog replayed: {table}");
    assert!(table.contains("p99"));
}

#[tokio::test]
async fn sub_says_when_it_lost_the_server_and_goes_on_when_it_is_back() {
    let mut server = Server::start().await;
    let subject = unique_subject("cli-outage");
    ok(&server, &["pub", &subject, "1"]).await;
    let (mut child, mut stdout, mut stderr) = spawn_reading(&server, &["sub", &subject, "--from", "first", "--count", "2"]);
    let patience = Duration::from_secs(60);
    let first = tokio::time::timeout(patience, stdout.next_line()).await.expect("the first message in time");
    assert_eq!(first.unwrap().as_deref(), Some("#1 1"));

    server.stop().await;
    let notice = tokio::time::timeout(patience, stderr.next_line()).await.expect("a notice in time").unwrap().unwrap();
    assert!(notice.starts_with("dstream: ") && notice.contains("; reconnecting in "), "{notice}");

    server.restart().await;
    ok(&server, &["pub", &subject, "2"]).await;
    let second = tokio::time::timeout(patience, stdout.next_line()).await.expect("the second message in time");
    assert_eq!(second.unwrap().as_deref(), Some("#2 2"));
    let mut notices = Vec::new();
    while let Some(line) = tokio::time::timeout(patience, stderr.next_line()).await.expect("stderr ends").unwrap() {
        notices.push(line);
    }
    assert_eq!(notices.last().map(String::as_str), Some("dstream: reconnected"), "{notices:?}");
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn sub_says_when_its_consumer_was_reset_and_prints_the_rewound_messages() {
    let server = Server::start().await;
    let subject = unique_subject("cli-reset");
    ok(&server, &["pub", &subject, "1"]).await;
    ok(&server, &["pub", &subject, "2"]).await;
    let (mut child, mut stdout, mut stderr) =
        spawn_reading(&server, &["sub", &subject, "--consumer", "audit", "--from", "first", "--count", "4"]);
    let patience = Duration::from_secs(60);
    let mut line = async || tokio::time::timeout(patience, stdout.next_line()).await.expect("a message in time").unwrap();
    assert_eq!(line().await.as_deref(), Some("#1 1"));
    assert_eq!(line().await.as_deref(), Some("#2 2"));

    let reset = reqwest::Client::new()
        .put(format!("{}/v1/stream/{subject}/consumers/audit", server.url()))
        .bearer_auth(API_KEY)
        .json(&serde_json::json!({ "acked": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(line().await.as_deref(), Some("#1 1"), "moved back to 0: the messages come again");
    assert_eq!(line().await.as_deref(), Some("#2 2"));
    let notice = tokio::time::timeout(patience, stderr.next_line()).await.expect("a notice in time").unwrap().unwrap();
    assert_eq!(notice, r#"dstream: consumer "audit" was reset to 0; the messages after it follow (again, if it was moved back)"#);
    assert!(child.wait().await.unwrap().success());
}

/// Unfinished uploads of keys under `prefix`, through the client library.
async fn unfinished(server: &Server, prefix: &str) -> Vec<UnfinishedUpload> {
    let client = Client::connect(server.url(), API_KEY).await.unwrap();
    client.list_uploads(&ListFiles { prefix: Some(prefix.to_owned()), ..Default::default() }).await.unwrap().uploads
}

/// `len` bytes that differ from part to part (so a misplaced part shows).
fn numbered_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i / 4099 % 253) as u8 ^ (i % 7) as u8).collect()
}

#[tokio::test]
async fn large_files_and_standard_input_go_up_in_parts() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_subject("cli-parts");
    let body = numbered_bytes(11 * 1024 * 1024 + 17);
    let source = dir.path().join("big.bin");
    std::fs::write(&source, &body).unwrap();
    let key = format!("{prefix}/big.bin");
    let output = run(&server, &["files", "put", &key, source.to_str().unwrap(), "--part-size", "5MiB"]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.starts_with("upload id "), "the id comes first, to resume after a crash: {stderr}");
    assert!(stderr.contains(&format!("uploaded {key} ({} bytes, etag \"", body.len())) && stderr.contains("-3\")"), "{stderr}");
    let copy = dir.path().join("copy.bin");
    ok(&server, &["files", "get", &key, copy.to_str().unwrap()]).await;
    assert!(std::fs::read(&copy).unwrap() == body, "the download differs from the upload");

    // `pg_dump | dstream files put backups/db.sql -`
    let dump = numbered_bytes(6 * 1024 * 1024);
    let piped_key = format!("{prefix}/db.sql");
    let mut child = dstream(&server, &["files", "put", &piped_key, "-", "--part-size", "5MiB", "--content-type", "application/sql"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&dump).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("-2\")"), "two parts");
    let piped = run(&server, &["files", "get", &piped_key]).await;
    assert!(piped.stdout == dump, "the download differs from standard input");
    assert!(unfinished(&server, &prefix).await.is_empty());
}

#[tokio::test]
async fn a_killed_upload_resumes_from_its_stored_parts() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_subject("cli-resume");
    let key = format!("{prefix}/big.bin");
    // Twenty parts sent one at a time: the process is killed long before the last.
    let body = numbered_bytes(100 * 1024 * 1024 + 5);
    let source = dir.path().join("big.bin");
    std::fs::write(&source, &body).unwrap();
    let source = source.to_str().unwrap();
    let mut child = dstream(&server, &["files", "put", &key, source, "--part-size", "5MiB", "--concurrency", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), stderr.next_line()).await.expect("a line in time").unwrap().unwrap();
    let upload_id = first.strip_prefix("upload id ").unwrap_or_else(|| panic!("{first}")).to_owned();
    let client = Client::connect(server.url(), API_KEY).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.list_parts(&key, &upload_id).await.unwrap().parts.is_empty() {
        assert!(Instant::now() < deadline, "no part was stored within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().await.unwrap();
    let stored = client.list_parts(&key, &upload_id).await.expect("killed before it completed").parts;
    assert!(!stored.is_empty() && stored.len() < 20, "{} parts stored", stored.len());

    let output = run(&server, &["files", "put", &key, source, "--resume", &upload_id]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let copy = dir.path().join("copy.bin");
    ok(&server, &["files", "get", &key, copy.to_str().unwrap()]).await;
    assert!(std::fs::read(&copy).unwrap() == body, "the resumed upload differs from the file");
    assert!(unfinished(&server, &prefix).await.is_empty());

    let (code, stderr) = failure(&mut dstream(&server, &["files", "put", &key, "-", "--resume", &upload_id])).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("standard input cannot be read a second time"), "{stderr}");
    let (code, stderr) = failure(&mut dstream(&server, &["files", "put", &key, source, "--resume", &upload_id])).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no unfinished upload"), "{stderr}");
}

#[tokio::test]
async fn an_interrupted_upload_from_standard_input_is_aborted() {
    let server = Server::start().await;
    let key = format!("{}/stdin.bin", unique_subject("cli-interrupt"));
    let mut child = dstream(&server, &["files", "put", &key, "-", "--part-size", "5MiB"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // One part and a byte more: the upload in parts begins; standard input stays open.
    stdin.write_all(&numbered_bytes(5 * 1024 * 1024 + 1)).await.unwrap();
    stdin.flush().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while unfinished(&server, &key).await.is_empty() {
        assert!(Instant::now() < deadline, "the upload did not begin within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().await.unwrap().success());
    // Standard input is still open: the command must not wait for more of it.
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.expect("exits").unwrap();
    assert_eq!(output.status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.ends_with("dstream: interrupted; the upload was aborted\n"), "{stderr}");
    assert!(unfinished(&server, &key).await.is_empty(), "standard input cannot be resumed: nothing is left");
    drop(stdin);
}

#[tokio::test]
async fn links_uploads_and_aborts_from_the_command_line() {
    let server = Server::start_with(&["LINK_SIGNING_KEY=0123456789abcdef0123456789abcdef"]).await;
    let prefix = unique_subject("cli-link");
    let key = format!("{prefix}/report.txt");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("report.txt");
    std::fs::write(&source, "quarterly numbers").unwrap();
    ok(&server, &["files", "put", &key, source.to_str().unwrap()]).await;

    let output = run(&server, &["files", "link", &key, "--ttl", "1h"]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("expires "));
    let url = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_eq!(reqwest::get(&url).await.unwrap().text().await.unwrap(), "quarterly numbers");

    let upload_url = ok(&server, &["files", "link", &format!("{prefix}/drop.txt"), "--method", "put", "--max-bytes", "1KiB"]).await;
    let put = reqwest::Client::new().put(upload_url.trim()).body("dropped in").send().await.unwrap();
    assert_eq!(put.status(), 201);
    let (code, stderr) = failure(&mut dstream(&server, &["files", "link", &key, "--ttl", "8d"])).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("`ttl` must be a number of seconds from 1 to 604800"), "{stderr}");

    let client = Client::connect(server.url(), API_KEY).await.unwrap();
    let created = client.create_upload(&format!("{prefix}/pending.bin"), "application/octet-stream", None).await.unwrap();
    let listing = ok(&server, &["files", "uploads", "--prefix", &prefix]).await;
    assert!(listing.contains(&created.upload_id) && listing.contains("pending.bin"), "{listing}");
    ok(&server, &["files", "abort", &created.key, &created.upload_id]).await;
    assert_eq!(ok(&server, &["files", "uploads", "--prefix", &prefix]).await, "");
}

#[tokio::test]
async fn publishing_standard_input_fails_at_once_while_more_input_may_come() {
    let url = refusing_url().await;
    let mut child = dstream_at(&url, &["pub", "s", "-"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"1\n").await.unwrap();
    stdin.flush().await.unwrap();
    // Standard input stays open, as at a terminal: the failure must not wait for another line.
    let output = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output()).await.expect("exits").unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.ends_with("connection refused — is the server running? (./scripts/dev.sh)\n"), "{stderr}");
    drop(stdin);
}

#[tokio::test]
async fn conditional_publishes_headers_single_messages_and_since() {
    let server = Server::start().await;
    let subject = unique_subject("cli-semantics");
    let created = ok(&server, &["pub", &subject, r#"{"type":"OrderCreated"}"#, "--expect-last-seq", "0", "--header", "source=cli", "--header", "trace=t-1"]).await;
    assert_eq!(created.trim(), "1");

    // A stale expectation: exit status 3, nothing stored, and what to do next.
    let (status, stderr) = failure(&mut dstream(&server, &["pub", &subject, "{}", "--expect-last-seq", "0"])).await;
    assert_eq!(status, Some(3));
    assert!(stderr.starts_with("dstream: conflict: expected an empty subject (last sequence 0), but the subject's last sequence is 1"), "{stderr}");
    assert!(stderr.ends_with(&format!("`dstream sub {subject} --from 1 --count 1` shows what was published after 0; then publish again with --expect-last-seq 1\n")), "{stderr}");

    // Standard input with an expectation: the batches chain, each expecting the one before.
    let mut publisher = dstream(&server, &["pub", &subject, "-", "--expect-last-seq", "1", "--header", "source=stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = publisher.stdin.take().unwrap();
    stdin.write_all(b"2\n3\n").await.unwrap();
    drop(stdin);
    let published = publisher.wait_with_output().await.unwrap();
    assert!(published.status.success(), "{}", String::from_utf8_lossy(&published.stderr));
    let empty = dstream(&server, &["pub", &subject, "-", "--expect-last-seq", "1"]).stdin(Stdio::null()).output().await.unwrap();
    assert!(empty.status.success(), "nothing to publish is no conflict");

    let first: Value = serde_json::from_str(&ok(&server, &["get", &subject, "1"]).await).unwrap();
    assert_eq!(first["headers"], serde_json::json!({ "source": "cli", "trace": "t-1" }));
    assert_eq!(first["data"], serde_json::json!({ "type": "OrderCreated" }));
    let last: Value = serde_json::from_str(&ok(&server, &["get", &subject, "last"]).await).unwrap();
    assert_eq!((last["seq"].as_u64(), &last["headers"]), (Some(3), &serde_json::json!({ "source": "stdin" })));
    let (status, stderr) = failure(&mut dstream(&server, &["get", &subject, "9"])).await;
    assert_eq!(status, Some(1));
    assert!(stderr.contains("not found: message 9 does not exist yet; the subject holds 1 to 3"), "{stderr}");

    // --since: everything from an hour ago, as JSON lines with headers where there are some.
    let lines = ok(&server, &["sub", &subject, "--since", "1h", "--count", "3", "--json"]).await;
    let messages: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(messages.iter().map(|m| m["seq"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(messages[1]["headers"], serde_json::json!({ "source": "stdin" }));
    let human = ok(&server, &["sub", &subject, "--since", "2000-01-01T00:00:00Z", "--count", "1"]).await;
    assert_eq!(human.trim(), r#"#1 {"type":"OrderCreated"} (headers {"source":"cli","trace":"t-1"})"#);
    let (status, stderr) = failure(&mut dstream(&server, &["sub", &subject, "--since", "yesterday"])).await;
    assert_eq!(status, Some(2));
    assert!(stderr.contains("expected a duration ago"), "{stderr}");
}
