//! `dstream`: publish, subscribe, inspect subjects, move files and benchmark a durable-stream
//! server from the command line.

mod bench;
mod files;

use clap::{Args, Parser, Subcommand};
use durable_stream_client::{Client, Error, FileCursorStore, StartPosition, SubscribeOptions};
use futures_util::{FutureExt, StreamExt};
use serde_json::{json, Value};
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
    /// API key (sent as a bearer token).
    #[arg(long, env = "DSTREAM_API_KEY", hide_env_values = true, global = true)]
    api_key: Option<String>,
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
    /// Read or write a subject's state object.
    #[command(subcommand)]
    State(StateCommand),
    /// Upload, download, list and delete files.
    #[command(subcommand)]
    Files(files::FilesCommand),
    /// Measure publish, fan-out and replay throughput against a running server.
    Bench(bench::BenchArgs),
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
    /// Exit after this many messages.
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

fn parse_start(text: &str) -> Result<StartPosition, String> {
    match text {
        "first" => Ok(StartPosition::First),
        "last" => Ok(StartPosition::Last),
        "new" => Ok(StartPosition::New),
        _ => text.parse().map(StartPosition::Seq).map_err(|_| "expected a sequence number, first, last or new".into()),
    }
}

fn parse_json(text: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(|e| Error::BadRequest(format!("not valid JSON ({e}): {text}")))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dstream: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    let mut builder = Client::builder(&cli.url).request_timeout(Duration::from_secs(cli.timeout.max(1)));
    if let Some(key) = &cli.api_key {
        builder = builder.api_key(key);
    }
    let client = builder.connect().await?;
    match cli.command {
        Command::Pub { subject, data, id } if data == "-" => {
            if id.is_some() {
                return Err(Error::BadRequest("--id applies to a single message, not to stdin".into()));
            }
            publish_lines(&client, &subject).await
        }
        Command::Pub { subject, data, id } => {
            let data = parse_json(&data)?;
            let seq = match id {
                Some(id) => client.publish_with_id(&subject, data, &id).await?,
                None => client.publish(&subject, data).await?,
            };
            println!("{seq}");
            Ok(())
        }
        Command::Sub(args) => subscribe(&client, args).await,
        Command::Info { subject } => print_json(&client.info(&subject).await?),
        Command::Trim { subject, upto } => print_json(&client.trim(&subject, upto).await?),
        Command::State(StateCommand::Get { subject }) => {
            let (state, version) = client.state_get(&subject).await?;
            print_json(&json!({ "state": state, "version": version }))
        }
        Command::State(StateCommand::Put { subject, state, version }) => {
            let version = client.state_put(&subject, parse_json(&state)?, version).await?;
            print_json(&json!({ "version": version }))
        }
        Command::Files(command) => files::run(&client, command).await,
        Command::Bench(args) => bench::run(&client, args).await,
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Error> {
    println!("{}", serde_json::to_string_pretty(value).expect("values serialize"));
    Ok(())
}

/// Most lines sent in one batch.
const LINES_PER_BATCH: usize = 100;

/// Publishes stdin lines in order: lines already waiting are sent together as one batch, so
/// a fast producer gets batching and a slow one (`tail -f`) gets each line as it comes.
async fn publish_lines(client: &Client, subject: &str) -> Result<(), Error> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let (mut total, mut first_seq, mut last_seq) = (0usize, None, 0);
    loop {
        let Some(line) = lines.next_line().await? else { break };
        let mut batch = Vec::new();
        let mut more = Some(line);
        while let Some(line) = more {
            if !line.trim().is_empty() {
                batch.push(parse_json(&line)?);
            }
            more = None;
            if batch.len() < LINES_PER_BATCH {
                // `next_line` is cancel-safe: an unfinished line is kept for the next call.
                if let Some(next) = lines.next_line().now_or_never() {
                    more = next?;
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
        Some(first) => eprintln!("published {total} messages (seq {first}..={last_seq})"),
        None => eprintln!("nothing to publish"),
    }
    Ok(())
}

async fn subscribe(client: &Client, args: SubArgs) -> Result<(), Error> {
    let mut options = SubscribeOptions { from: args.from, consumer: args.consumer, window: args.window, ..Default::default() };
    if let Some(dir) = args.cursor_dir {
        options.cursor_store = Some(Arc::new(FileCursorStore::new(dir)?));
    }
    let mut subscription = client.subscribe(&args.subject, options).await?;
    let mut stdout = tokio::io::stdout();
    let mut received = 0u64;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    while args.count.is_none_or(|count| received < count) {
        let message = tokio::select! {
            message = subscription.next() => match message {
                Some(message) => message?,
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
        stdout.write_all(format!("{line}\n").as_bytes()).await?;
        stdout.flush().await?;
    }
    subscription.close().await
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
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
