//! `dstream`: publish, subscribe, inspect subjects, move files and benchmark a durable-stream
//! server from the command line.

mod bench;
mod files;
mod token;

use clap::{Args, CommandFactory, Parser, Subcommand};
use durable_stream_client::{
    cursor_key, Backoff, Client, ConnectionEvent, Error, FileCursorStore, StartPosition, SubscribeOptions,
};
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
    #[arg(long, value_parser = parse_start)]
    from: Option<StartPosition>,
    /// Durable consumer name (the server remembers its position).
    #[arg(long)]
    consumer: Option<String>,
    /// Print one JSON object per line: {"seq","ts","data","redelivered"}.
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
    /// A client with the token if there is one, else the API key.
    async fn client(&self, backoff: Backoff) -> Result<Client, Failure> {
        let builder = match (&self.token, &self.api_key) {
            (Some(token), _) => Client::builder(&self.url).token(token),
            (None, Some(key)) => Client::builder(&self.url).api_key(key),
            (None, None) => {
                return Err(Failure::Local(
                    "no credentials: set DSTREAM_API_KEY or DSTREAM_TOKEN, or pass --api-key or --token (locally the API key is the API_KEY in .dev.vars)".into(),
                ))
            }
        };
        self.configure(builder, backoff).await
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
    let client = server.client(backoff).await?;
    match cli.command {
        Command::Pub { subject, data, id } if data == "-" => {
            if id.is_some() {
                return Err(Failure::Usage("--id applies to a single message, not to stdin".into()));
            }
            publish_lines(&client, &subject).await
        }
        Command::Pub { subject, data, id } => {
            let data = parse_json(&data, "the message")?;
            let seq = match id {
                Some(id) => client.publish_with_id(&subject, data, &id).await?,
                None => client.publish(&subject, data).await?,
            };
            out(seq)
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
                Error::Conflict(_) => {
                    Failure::Local(format!("{e} — `dstream state get {subject}` shows the current state and version"))
                }
                other => Failure::Client(other),
            })?;
            print_json(&json!({ "version": version }))
        }
        Command::Files(command) => files::run(&client, command).await,
        Command::Bench(args) => {
            let credential = if server.token.is_some() { "token" } else { "API key" };
            out(bench::run(&client, args, credential).await?.trim_end())
        }
        Command::Completions { .. } | Command::Token(_) => unreachable!("answered before connecting"),
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    out(serde_json::to_string_pretty(value).expect("values serialize"))
}

/// Most lines sent in one batch.
const LINES_PER_BATCH: usize = 100;

/// Publishes stdin lines in order: lines already waiting are sent together as one batch, so
/// a fast producer gets batching and a slow one (`tail -f`) gets each line as it comes.
async fn publish_lines(client: &Client, subject: &str) -> Result<(), Failure> {
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
        let (first, last) = client.publish_batch(subject, batch).await?;
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
    let mut options = SubscribeOptions { from: args.from, consumer: args.consumer, window: args.window, ..Default::default() };
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
            json!({ "seq": message.seq, "ts": message.ts, "data": message.data, "redelivered": message.redelivered })
                .to_string()
        } else {
            let mark = if message.redelivered { " (redelivered)" } else { "" };
            format!("#{} {}{mark}", message.seq, message.data)
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
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
