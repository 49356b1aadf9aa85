//! `dstream`: publish, subscribe, inspect subjects, move files and benchmark a durable-stream
//! server from the command line.

mod bench;
mod files;
mod token;

use clap::{Args, CommandFactory, Parser, Subcommand};
use durable_stream_client::{
    AutoBatch,
    cursor_key, Backoff, Client, ConnectionEvent, Error, FileCursorStore, Headers, PublishOptions, StartPosition,
    StoredMessage, SubscribeOptions,
};
use durable_stream_protocol::durable_streams::expiry::parse_rfc3339_ms;
use futures_util::{FutureExt, StreamExt};
use serde_json::{json, Value};
use std::fmt::Display;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

#[derive(Parser)]
#[command(name = "dstream", version, about = "Command-line client for durable-stream servers")]
struct Cli {
    /// Server base URL.
    #[arg(long, env = "DSTREAM_URL", default_value = "http://127.0.0.1:8787", global = true)]
    url: String,
    /// API key (sent as a bearer token; locally the API_KEY in .dev.vars).
    #[arg(long, env = "DSTREAM_API_KEY", hide_env_values = true, global = true)]
    api_key: Option<String>,
    /// Access token (a JWT, e.g. from `dstream token create`). Used instead of the API key when
    /// both are set, except by `token create` and `token revoke`, which need the API key.
    #[arg(long, env = "DSTREAM_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Seconds a request may wait for its reply.
    #[arg(long, default_value_t = 30, global = true)]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish a JSON message (or, with `-`, one message per line of standard input).
    Pub {
        subject: String,
        /// The message as JSON, or `-` to read one JSON message per line from stdin.
        data: String,
        /// Idempotency key (single message only): republishing it returns the original sequence.
        #[arg(long)]
        id: Option<String>,
        /// Publish only if the subject's last sequence is N (0: only if it never had a message);
        /// otherwise store nothing and exit with status 3. With `-`, each batch of lines expects
        /// the last sequence of the one before, so the lines land together right after N.
        #[arg(long, value_name = "N")]
        expect_last_seq: Option<u64>,
        /// A header for the message (with `-`: for every line), as NAME=VALUE; repeat for more.
        #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
        headers: Vec<(String, String)>,
    },
    /// Print one message, by sequence number or `last`, as JSON.
    Get {
        subject: String,
        /// A sequence number, or `last` for the newest retained message.
        #[arg(value_parser = parse_message_ref)]
        seq: MessageRef,
    },
    /// Print messages as they arrive.
    Sub(SubArgs),
    /// Show a subject's statistics as JSON.
    Info { subject: String },
    /// Delete every message up to and including UPTO.
    Trim { subject: String, upto: u64 },
    /// Delete a subject: its messages, durable consumers and state (needs --yes).
    Rm {
        subject: String,
        /// Confirm the deletion; it cannot be undone.
        #[arg(short, long)]
        yes: bool,
    },
    /// Read or write a subject's state object.
    #[command(subcommand)]
    State(StateCommand),
    /// Upload, download, list and delete files.
    #[command(subcommand)]
    Files(files::FilesCommand),
    /// Create, revoke and inspect access tokens, and make keys to sign them.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Measure publish, fan-out and replay throughput against a running server.
    Bench(bench::BenchArgs),
    /// Print a shell completion script.
    ///
    /// For example: `dstream completions bash > ~/.local/share/bash-completion/completions/dstream`.
    Completions { shell: clap_complete::Shell },
}

#[derive(Args)]
struct SubArgs {
    subject: String,
    /// Where to start: a sequence number, `first`, `last` or `new` (default: the consumer's
    /// position, or first).
    #[arg(long, value_parser = parse_start, conflicts_with = "since")]
    from: Option<StartPosition>,
    /// Start at the first message stored at or after a time: a duration ago (`90s`, `10m`,
    /// `2h`, `1d`, `1h30m`) or an RFC 3339 time (`2026-11-29T10:00:00Z`).
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Durable consumer name (the server remembers its position).
    #[arg(long)]
    consumer: Option<String>,
    /// Print one JSON object per line: {"seq","ts","headers","data","redelivered"} (`headers`
    /// only for messages that have some).
    #[arg(long)]
    json: bool,
    /// Exit after this many messages (undecodable ones included).
    #[arg(long)]
    count: Option<u64>,
    /// Most unacknowledged messages in flight.
    #[arg(long)]
    window: Option<u32>,
    /// Save the position in this directory and resume from it next time.
    #[arg(long)]
    cursor_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum StateCommand {
    /// Print {"state": ..., "version": N}.
    Get { subject: String },
    /// Replace the state with JSON; with --version, only if the current version is that.
    Put {
        subject: String,
        state: String,
        #[arg(long)]
        version: Option<u64>,
    },
}

/// Why a command stopped, which decides what is printed and the exit status.
pub enum Failure {
    /// The server or the connection to it failed.
    Client(Error),
    /// Something local failed (a file, standard input); the message says what and where.
    Local(String),
    /// The command line needs changing (exit status 2, like clap's own usage errors).
    Usage(String),
    /// Standard output was closed by its reader (`dstream info x | head -1`): stop quietly.
    OutputClosed,
    /// Ctrl-C; the message says what was left in place.
    Interrupted(String),
    /// A conditional publish was refused (exit status 3, so that a script can tell it from a
    /// failure and read, decide and publish again); the message says what to do.
    Conflict(String),
    /// The server or the connection failed, and the note says what that left behind.
    Noted(Error, String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Client(e)
    }
}

/// Writes one line to standard output.
pub fn out(line: impl Display) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").and_then(|()| stdout.flush()).map_err(stdout_failure)
}

/// A failed write to standard output: a closed pipe ends the command quietly.
pub fn stdout_failure(e: std::io::Error) -> Failure {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe => Failure::OutputClosed,
        _ => Failure::Local(format!("cannot write to standard output: {e}")),
    }
}

/// `NAME=VALUE` of `--header`.
fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err("expected NAME=VALUE, e.g. type=OrderCreated".into()),
    }
}

/// Which message `get` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageRef {
    Seq(u64),
    Last,
}

fn parse_message_ref(text: &str) -> Result<MessageRef, String> {
    match text {
        "last" => Ok(MessageRef::Last),
        _ => text.parse().ok().filter(|seq| *seq > 0).map(MessageRef::Seq).ok_or_else(|| "expected a sequence number (from 1) or last".into()),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `--since`: a duration ago (`1h30m`) or an RFC 3339 time, as ms since the Unix epoch.
fn parse_since(text: &str, now_ms: u64) -> Result<u64, String> {
    if let Some(at) = parse_rfc3339_ms(text) {
        return Ok(at);
    }
    let expected = || format!("--since {text:?}: expected a duration ago (90s, 10m, 2h, 1d, 1h30m) or an RFC 3339 time (2026-11-29T10:00:00Z)");
    let (mut ago, mut rest) = (0u64, text);
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let amount: u64 = rest[..digits].parse().map_err(|_| expected())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_ms = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(expected()),
        };
        rest = &rest[unit_len..];
        ago = amount.checked_mul(unit_ms).and_then(|ms| ago.checked_add(ms)).ok_or_else(expected)?;
    }
    if text.is_empty() {
        return Err(expected());
    }
    Ok(now_ms.saturating_sub(ago))
}

fn parse_start(text: &str) -> Result<StartPosition, String> {
    match text {
        "first" => Ok(StartPosition::First),
        "last" => Ok(StartPosition::Last),
        "new" => Ok(StartPosition::New),
        _ => text.parse().map(StartPosition::Seq).map_err(|_| "expected a sequence number, first, last or new".into()),
    }
}

/// Parses a message or state given on the command line; `what` names it in the error.
///
/// An object with a key given twice is refused, as the server refuses it (strict JSON): parsed
/// into a `Value`, the last one would silently win and the other be lost.
fn parse_json(text: &str, what: &str) -> Result<Value, Failure> {
    let refuse = |e: serde_json::Error| Failure::Local(format!("{what} is not valid JSON ({e}): {text}"));
    serde_json::from_str::<UniqueKeys>(text).map_err(refuse)?;
    serde_json::from_str(text).map_err(refuse)
}

/// Deserializes any JSON value, failing on an object that has a key twice (also when spelled
/// differently, as `"a"` and `"\u0061"`).
struct UniqueKeys;

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeys)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeys {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(self)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut keys = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if keys.contains(&key) {
                return Err(serde::de::Error::custom(format_args!("key {key:?} is given twice in one object")));
            }
            map.next_value::<UniqueKeys>()?;
            keys.insert(key);
        }
        Ok(self)
    }
}

/// Which credential a command sends to the server, for the advice after a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    ApiKey,
    Token,
}

impl Cli {
    fn credential(&self) -> Credential {
        match &self.command {
            Command::Token(command) if command.needs_api_key() => Credential::ApiKey,
            _ if self.token.as_deref().is_some_and(|t| !t.is_empty()) => Credential::Token,
            _ => Credential::ApiKey,
        }
    }
}

/// How to reach the server: the global options.
pub struct Server {
    url: String,
    api_key: Option<String>,
    pub token: Option<String>,
    timeout: Duration,
}

impl Server {
    /// A client with the token if there is one, else the API key; `auto_batch` says how it
    /// coalesces concurrent publishes.
    async fn client(&self, backoff: Backoff, auto_batch: AutoBatch) -> Result<Client, Failure> {
        let builder = match (&self.token, &self.api_key) {
            (Some(token), _) => Client::builder(&self.url).token(token),
            (None, Some(key)) => Client::builder(&self.url).api_key(key),
            (None, None) => {
                return Err(Failure::Local(
                    "no credentials: set DSTREAM_API_KEY or DSTREAM_TOKEN, or pass --api-key or --token (locally the API key is the API_KEY in .dev.vars)".into(),
                ))
            }
        };
        self.configure(builder.auto_batch(auto_batch), backoff).await
    }

    /// A client with the API key, for what only the API key may do (`purpose`).
    pub async fn admin_client(&self, purpose: &str) -> Result<Client, Failure> {
        let Some(key) = &self.api_key else {
            return Err(Failure::Local(format!(
                "{purpose} needs the API key: set DSTREAM_API_KEY or pass --api-key (a token is not enough)"
            )));
        };
        self.configure(Client::builder(&self.url).api_key(key), one_shot_backoff()).await
    }

    async fn configure(&self, builder: durable_stream_client::ClientBuilder, backoff: Backoff) -> Result<Client, Failure> {
        let client = builder
            // A server that accepts connections but never answers should not outwait --timeout.
            .connect_timeout(self.timeout.min(CONNECT_TIMEOUT))
            .request_timeout(self.timeout)
            .backoff(backoff)
            .connect()
            .await?;
        Ok(client)
    }
}

fn one_shot_backoff() -> Backoff {
    Backoff { max_attempts: Some(ONE_SHOT_ATTEMPTS), ..Backoff::default() }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let server = cli.url.clone();
    let timeout = cli.timeout;
    let credential = cli.credential();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("dstream: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    // A read of standard input may still be waiting on a blocking thread (Ctrl-C or a failure
    // while `pub -` or `files put -` read it); an ordinary shutdown would wait for its next line.
    runtime.shutdown_background();
    match outcome {
        Ok(()) | Err(Failure::OutputClosed) => ExitCode::SUCCESS,
        Err(Failure::Client(e)) => {
            eprintln!("dstream: {}", describe(&e, &server, timeout, credential));
            ExitCode::FAILURE
        }
        Err(Failure::Noted(e, note)) => {
            eprintln!("dstream: {}{note}", describe(&e, &server, timeout, credential));
            ExitCode::FAILURE
        }
        Err(Failure::Local(message)) => {
            eprintln!("dstream: {message}");
            ExitCode::FAILURE
        }
        Err(Failure::Usage(message)) => {
            eprintln!("dstream: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Interrupted(message)) => {
            eprintln!("dstream: interrupted{message}");
            ExitCode::from(130)
        }
        Err(Failure::Conflict(message)) => {
            eprintln!("dstream: {message}");
            ExitCode::from(3)
        }
    }
}

/// The error's message (the client's messages include their whole source chain) and what to
/// do about it.
fn describe(e: &Error, server: &str, timeout: u64, credential: Credential) -> String {
    match e {
        Error::Connect { url, source } if caused_by(&**source, std::io::ErrorKind::ConnectionRefused) => {
            format!("cannot connect to {url}: connection refused — is the server running? (./scripts/dev.sh)")
        }
        Error::Connect { source, .. } if caused_by(&**source, std::io::ErrorKind::TimedOut) => {
            format!("{e} — is the server busy or still starting? Otherwise check the server URL (--url or DSTREAM_URL)")
        }
        Error::Connect { .. } => format!("{e} — check the server URL (--url or DSTREAM_URL)"),
        Error::Unauthorized(_) if credential == Credential::Token => {
            format!("{e} (from {server}) — check the token (DSTREAM_TOKEN or --token); `dstream token inspect` shows it")
        }
        Error::Unauthorized(_) => format!("{e} (from {server}) — check the API key (DSTREAM_API_KEY or --api-key)"),
        Error::TokenExpired(_) => {
            format!("{e} — get a new token (from its issuer, or `dstream token create`) and pass it with --token or DSTREAM_TOKEN")
        }
        Error::Forbidden(_) => format!("{e} — `dstream token inspect` shows what the token grants"),
        Error::RateLimited { .. } => format!("{e} — the server limits how fast this client may publish; try again later"),
        Error::InvalidUrl(_) => format!("{e} — pass the server's base URL with --url or DSTREAM_URL, e.g. http://127.0.0.1:8787"),
        Error::Internal(_) => format!(
            "{e} — the server's log says why (the terminal running ./scripts/dev.sh or wrangler dev; when deployed, `npx wrangler tail`)"
        ),
        Error::Timeout => format!(
            "timed out: no reply from {server} within {timeout} s — the server may be overloaded; --timeout waits longer"
        ),
        _ => e.to_string(),
    }
}

/// Whether an I/O error of this kind is in the chain: `ConnectionRefused` (nothing listens at
/// the address), `TimedOut` (something does, but it did not answer in time).
fn caused_by(e: &(dyn std::error::Error + 'static), kind: std::io::ErrorKind) -> bool {
    let mut cause = Some(e);
    while let Some(error) = cause {
        if error.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == kind) {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The longest wait for a connection to open (the client's default).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Reconnect attempts of one-shot commands: a server that refuses three connections in a row
/// (within about a second) is not coming back while someone waits at the terminal.
const ONE_SHOT_ATTEMPTS: u32 = 3;

async fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Completions { shell } = cli.command {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "dstream", &mut script);
        return std::io::stdout().lock().write_all(&script).map_err(stdout_failure);
    }
    let given = |value: Option<String>| value.filter(|v| !v.is_empty());
    let server = Server {
        url: cli.url,
        api_key: given(cli.api_key),
        token: given(cli.token),
        timeout: Duration::from_secs(cli.timeout.max(1)),
    };
    if let Command::Token(command) = cli.command {
        return token::run(&server, command).await;
    }
    // A subscription may run for days and should outlive server restarts; the other commands
    // are one request (or a bounded series) and should fail fast when the server is away.
    let backoff = match cli.command {
        Command::Sub(_) => Backoff::default(),
        _ => one_shot_backoff(),
    };
    let client = server.client(backoff.clone(), AutoBatch::default()).await?;
    match cli.command {
        Command::Pub { subject, data, id, expect_last_seq, headers } => {
            let mut options = PublishOptions::new().headers(headers.into_iter().collect());
            if let Some(id) = id {
                if data == "-" {
                    return Err(Failure::Usage("--id applies to a single message, not to stdin".into()));
                }
                options = options.msg_id(id);
            }
            let refused = |e| conflict_advice(e, &subject, expect_last_seq);
            if data == "-" {
                return publish_lines(&client, &subject, options, expect_last_seq).await.map_err(refused);
            }
            if let Some(last_seq) = expect_last_seq {
                options = options.expect_last_seq(last_seq);
            }
            let data = parse_json(&data, "the message")?;
            out(client.publish_with_options(&subject, data, options).await.map_err(|e| refused(e.into()))?)
        }
        Command::Get { subject, seq } => {
            let message = match seq {
                MessageRef::Seq(seq) => client.get_message(&subject, seq).await,
                MessageRef::Last => client.get_last_message(&subject).await,
            };
            out(message_json(&message?))
        }
        Command::Sub(args) => subscribe(&client, args).await,
        Command::Info { subject } => print_json(&client.info(&subject).await?),
        Command::Trim { subject, upto } => print_json(&client.trim(&subject, upto).await?),
        Command::Rm { subject, yes: false } => Err(Failure::Usage(format!(
            "rm deletes every message, durable consumer and the state of {subject:?}, and cannot be undone; add --yes to confirm"
        ))),
        Command::Rm { subject, yes: true } => {
            let epoch = client.delete_subject(&subject).await?;
            print_json(&json!({ "subject": subject, "deleted": true, "epoch": epoch }))
        }
        Command::State(StateCommand::Get { subject }) => {
            let (state, version) = client.state_get(&subject).await?;
            print_json(&json!({ "state": state, "version": version }))
        }
        Command::State(StateCommand::Put { subject, state, version }) => {
            let version = client.state_put(&subject, parse_json(&state, "the state")?, version).await.map_err(|e| match e {
                Error::Conflict { .. } => {
                    Failure::Local(format!("{e} — `dstream state get {subject}` shows the current state and version"))
                }
                other => Failure::Client(other),
            })?;
            print_json(&json!({ "version": version }))
        }
        Command::Files(command) => files::run(&client, command).await,
        Command::Bench(args) => {
            let credential = if server.token.is_some() { "token" } else { "API key" };
            // Every phase but the concurrent callers' sends one frame per publish, as the floor does.
            let unbatched = server.client(backoff, AutoBatch::off()).await?;
            out(bench::run(&unbatched, &client, args, credential).await?.trim_end())
        }
        Command::Completions { .. } | Command::Token(_) => unreachable!("answered before connecting"),
    }
}

/// What to do after a refused conditional publish: read what came after the expectation.
fn conflict_advice(failure: Failure, subject: &str, expected: Option<u64>) -> Failure {
    match (failure, expected) {
        (Failure::Client(e @ Error::Conflict { last_seq: Some(last_seq), .. }), Some(expected)) => Failure::Conflict(format!(
            "{e} — `dstream sub {subject} --from {} --count {}` shows what was published after {expected}; then publish again with --expect-last-seq {last_seq}",
            expected + 1,
            last_seq.saturating_sub(expected).max(1),
        )),
        (failure, _) => failure,
    }
}

/// A message as one line of JSON: `{"seq","ts","headers","data"}`, `headers` only if it has some.
fn message_json(message: &StoredMessage) -> Value {
    let mut line = json!({ "seq": message.seq, "ts": message.ts });
    if !message.headers.is_empty() {
        line["headers"] = json!(message.headers);
    }
    line["data"] = message.data.clone();
    line
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    out(serde_json::to_string_pretty(value).expect("values serialize"))
}

/// Most lines sent in one batch.
const LINES_PER_BATCH: usize = 100;

/// Publishes stdin lines in order: lines already waiting are sent together as one batch, so
/// a fast producer gets batching and a slow one (`tail -f`) gets each line as it comes. With
/// an expected last sequence, each batch expects the last sequence of the one before.
async fn publish_lines(client: &Client, subject: &str, options: PublishOptions, mut expected: Option<u64>) -> Result<(), Failure> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let read_error = |e: std::io::Error| Failure::Local(format!("cannot read standard input: {e}"));
    let (mut line_number, mut total, mut first_seq, mut last_seq) = (0usize, 0usize, None, 0);
    loop {
        let Some(line) = lines.next_line().await.map_err(read_error)? else { break };
        let mut batch = Vec::new();
        let mut more = Some(line);
        while let Some(line) = more {
            line_number += 1;
            if !line.trim().is_empty() {
                batch.push(parse_json(&line, &format!("line {line_number}"))?);
            }
            more = None;
            if batch.len() < LINES_PER_BATCH {
                // `next_line` is cancel-safe: an unfinished line is kept for the next call.
                if let Some(next) = lines.next_line().now_or_never() {
                    more = next.map_err(read_error)?;
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        total += batch.len();
        let mut batch_options = options.clone();
        if let Some(last_seq) = expected {
            batch_options = batch_options.expect_last_seq(last_seq);
        }
        let messages = batch.into_iter().map(|data| (data, Headers::new()));
        let (first, last) = client.publish_batch_with_options(subject, messages, batch_options).await?;
        expected = expected.map(|_| last);
        first_seq.get_or_insert(first);
        last_seq = last;
    }
    match first_seq {
        Some(first) if first == last_seq => eprintln!("published 1 message (seq {first})"),
        Some(first) => eprintln!("published {total} messages (seq {first}–{last_seq})"),
        None => eprintln!("nothing to publish"),
    }
    Ok(())
}

async fn subscribe(client: &Client, args: SubArgs) -> Result<(), Failure> {
    let cursor_file = args.cursor_dir.as_ref().map(|dir| {
        dir.join(format!("{}.cursor.json", cursor_key(&args.subject, args.consumer.as_deref())))
    });
    let since = match args.since.as_deref() {
        Some(when) => Some(StartPosition::Time(parse_since(when, now_ms()).map_err(Failure::Usage)?)),
        None => None,
    };
    let from = args.from.or(since);
    let mut options = SubscribeOptions { from, consumer: args.consumer, window: args.window, ..Default::default() };
    if let Some(dir) = args.cursor_dir {
        let store = FileCursorStore::new(&dir).map_err(|e| Failure::Local(e.to_string()))?;
        options.cursor_store = Some(Arc::new(store));
    }
    let wiped = |e: Error| match (&e, &cursor_file) {
        (Error::EpochChanged { .. }, Some(file)) => Failure::Local(format!(
            "{e}: the subject was deleted since the position saved in {} — delete that file to read it from the start",
            file.display()
        )),
        (Error::EpochChanged { .. }, None) => {
            Failure::Local(format!("{e}: the subject was deleted meanwhile — run the command again to read it anew"))
        }
        _ => Failure::Client(e),
    };
    let mut subscription = client.subscribe(&args.subject, options).await.map_err(wiped)?;
    let mut connection_events = client.events();
    let mut reconnect_reason = None;
    let mut stdout = tokio::io::stdout();
    let mut received = 0u64;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut outcome = Ok(());
    while args.count.is_none_or(|count| received < count) {
        let message = tokio::select! {
            // Connection events first: a reconnect is reported before the messages after it.
            biased;
            Ok(event) = connection_events.recv() => {
                report_connection(event, &mut reconnect_reason);
                continue;
            }
            message = subscription.next() => match message {
                Some(Ok(message)) => message,
                Some(Err(undecodable @ Error::Undecodable { .. })) => {
                    // Reported and counted like a message: the subscription has moved past it.
                    eprintln!("dstream: {undecodable}");
                    received += 1;
                    continue;
                }
                Some(Err(e)) => {
                    outcome = Err(wiped(e));
                    break;
                }
                None => break,
            },
            _ = &mut interrupted => break,
        };
        received += 1;
        let line = if args.json {
            let stored = StoredMessage { seq: message.seq, ts: message.ts, headers: message.headers.clone(), data: message.data.clone() };
            let mut line = message_json(&stored);
            line["redelivered"] = message.redelivered.into();
            line.to_string()
        } else {
            let headers = if message.headers.is_empty() { String::new() } else { format!(" (headers {})", json!(message.headers)) };
            let mark = if message.redelivered { " (redelivered)" } else { "" };
            format!("#{} {}{headers}{mark}", message.seq, message.data)
        };
        let written = async {
            stdout.write_all(format!("{line}\n").as_bytes()).await?;
            stdout.flush().await
        };
        if let Err(e) = written.await {
            outcome = Err(stdout_failure(e));
            break;
        }
    }
    // Close in every case: it sends the last ack and saves the cursor.
    let closed = subscription.close().await;
    outcome.and(closed.map_err(Failure::from))
}

/// Tells the person watching a subscription that it lost its connection and is retrying, so
/// that a server outage does not look like a quiet subject.
fn report_connection(event: ConnectionEvent, reason: &mut Option<String>) {
    match event {
        ConnectionEvent::Disconnected { reason: why, .. } => *reason = Some(why),
        ConnectionEvent::Reconnecting { attempt, delay, .. } => {
            let why = reason.as_deref().unwrap_or("connection lost");
            eprintln!("dstream: {why}; reconnecting in {:.1} s (attempt {attempt})", delay.as_secs_f64());
        }
        ConnectionEvent::Connected { .. } if reason.take().is_some() => eprintln!("dstream: reconnected"),
        ConnectionEvent::ConsumerReset { consumer, acked, .. } => {
            eprintln!("dstream: consumer {consumer:?} was reset to {acked}; the messages after it follow (again, if it was moved back)");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_ago_and_rfc3339_times() {
        let now = 1_795_946_400_000;
        assert_eq!(parse_since("10m", now), Ok(now - 600_000));
        assert_eq!(parse_since("1h30m", now), Ok(now - 5_400_000));
        assert_eq!(parse_since("90s", now), Ok(now - 90_000));
        assert_eq!(parse_since("1d", now), Ok(now - 86_400_000));
        assert_eq!(parse_since("250ms", now), Ok(now - 250));
        assert_eq!(parse_since("2026-11-29T10:00:00Z", 0), Ok(1_795_946_400_000));
        assert_eq!(parse_since("2026-11-29T11:00:00.5+01:00", 0), Ok(1_795_946_400_500));
        for bad in ["", "10", "m", "10 m", "10x", "-5m", "yesterday", "2026-11-29", "99999999999999999999d"] {
            let e = parse_since(bad, now).unwrap_err();
            assert!(e.contains("expected a duration ago"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn headers_and_message_references_parse() {
        assert_eq!(parse_header("type=OrderCreated"), Ok(("type".into(), "OrderCreated".into())));
        assert_eq!(parse_header("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_header("empty="), Ok(("empty".into(), String::new())));
        assert!(parse_header("=x").is_err());
        assert!(parse_header("novalue").is_err());
        assert_eq!(parse_message_ref("7"), Ok(MessageRef::Seq(7)));
        assert_eq!(parse_message_ref("last"), Ok(MessageRef::Last));
        assert!(parse_message_ref("0").is_err());
        assert!(parse_message_ref("first").is_err());
    }

    #[test]
    fn a_refused_expectation_says_what_to_read_and_what_to_expect_next() {
        let refused = Error::Conflict { message: "expected last sequence 5, but the subject's last sequence is 8".into(), last_seq: Some(8) };
        let Failure::Conflict(advice) = conflict_advice(Failure::Client(refused), "orders", Some(5)) else { panic!() };
        assert!(advice.ends_with("`dstream sub orders --from 6 --count 3` shows what was published after 5; then publish again with --expect-last-seq 8"), "{advice}");
        let other = Error::Conflict { message: "stream is closed".into(), last_seq: None };
        assert!(matches!(conflict_advice(Failure::Client(other), "orders", Some(5)), Failure::Client(_)));
    }

    #[test]
    fn start_positions_parse() {
        assert_eq!(parse_start("12"), Ok(StartPosition::Seq(12)));
        assert_eq!(parse_start("first"), Ok(StartPosition::First));
        assert_eq!(parse_start("new"), Ok(StartPosition::New));
        assert!(parse_start("-1").is_err());
    }

    #[test]
    fn json_with_a_key_given_twice_is_refused() {
        for twice in [r#"{"a":1,"a":2}"#, r#"[{"b":{"a":1,"\u0061":2}}]"#] {
            let Err(Failure::Local(message)) = parse_json(twice, "the message") else { panic!("{twice} was accepted") };
            assert!(message.starts_with(r#"the message is not valid JSON (key "a" is given twice in one object at line 1"#), "{message}");
        }
        assert_eq!(parse_json(r#"{"a":{"a":1},"b":[{"a":2},{"a":3}]}"#, "x").ok(), Some(json!({"a":{"a":1},"b":[{"a":2},{"a":3}]})));
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn errors_say_what_failed_and_what_to_do() {
        let connect = |kind| Error::Connect { url: "ws://h:1/v1/stream/x".into(), source: Arc::new(std::io::Error::from(kind)) };
        let describe = |e: &Error, server, timeout| describe(e, server, timeout, Credential::ApiKey);
        assert_eq!(
            describe(&connect(std::io::ErrorKind::ConnectionRefused), "http://h:1", 30),
            "cannot connect to ws://h:1/v1/stream/x: connection refused — is the server running? (./scripts/dev.sh)"
        );
        let timed_out = describe(&connect(std::io::ErrorKind::TimedOut), "http://h:1", 30);
        assert!(timed_out.starts_with("cannot connect to ws://h:1/v1/stream/x: timed out") && timed_out.ends_with("(--url or DSTREAM_URL)"), "{timed_out}");
        assert!(timed_out.contains("— is the server busy or still starting?"), "{timed_out}");
        let unreachable = describe(&connect(std::io::ErrorKind::HostUnreachable), "http://h:1", 30);
        assert!(unreachable.ends_with("— check the server URL (--url or DSTREAM_URL)"), "{unreachable}");
        let unauthorized = describe(&Error::Unauthorized("missing or wrong API key".into()), "http://h:1", 30);
        assert!(unauthorized.contains("DSTREAM_API_KEY or --api-key"), "{unauthorized}");
        assert!(describe(&Error::Timeout, "http://h:1", 7).contains("within 7 s"));
        let internal = describe(&Error::Internal("internal error".into()), "http://h:1", 30);
        assert!(internal.starts_with("server error: internal error — the server's log says why"), "{internal}");
    }

    #[test]
    fn refusals_of_a_token_say_what_to_do_with_the_token() {
        let token_refused = describe(&Error::Unauthorized("token revoked".into()), "http://h:1", 30, Credential::Token);
        assert!(token_refused.ends_with("check the token (DSTREAM_TOKEN or --token); `dstream token inspect` shows it"), "{token_refused}");
        let expired = describe(&Error::TokenExpired("token has expired".into()), "http://h:1", 30, Credential::Token);
        assert!(expired.starts_with("token expired: token has expired — get a new token"), "{expired}");
        let forbidden = describe(&Error::Forbidden("no pub on \"x\"".into()), "http://h:1", 30, Credential::Token);
        assert!(forbidden.ends_with("`dstream token inspect` shows what the token grants"), "{forbidden}");
    }

    #[test]
    fn the_token_wins_over_the_api_key_except_for_token_administration() {
        let credential = |args: &[&str]| Cli::parse_from([&["dstream", "--api-key", "k", "--token", "t"], args].concat()).credential();
        assert_eq!(credential(&["info", "s"]), Credential::Token);
        assert_eq!(credential(&["token", "revoke", "--jti", "j"]), Credential::ApiKey);
        assert_eq!(credential(&["token", "create", "--sub", "s"]), Credential::ApiKey);
        assert_eq!(credential(&["token", "create", "--sub", "s", "--sign-with", "hs256:f"]), Credential::Token);
        let key_only = Cli::parse_from(["dstream", "--api-key", "k", "info", "s"]).credential();
        assert_eq!(key_only, Credential::ApiKey);
    }
}
