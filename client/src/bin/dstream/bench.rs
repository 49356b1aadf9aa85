//! `dstream bench`: throughput and latency against a running server, printed as Markdown.
//! Every phase uses the command's credential (API key or token), so running it once with each
//! compares them.
//!
//! Every phase stops at its message count or at the time limit, whichever comes first, and
//! reports what it actually did in that time. With `--floor`, the single-publish and fan-out
//! phases also run against the platform floor (a minimal JavaScript Durable Object, see
//! [`floor`]) with the same windows and payloads, and the table shows our rate against it.
//!
//! Every phase sends one frame per publish, as the floor does, except the concurrent callers'
//! phase: there the client coalesces the publishes of many tasks into batch frames (auto-batching,
//! as applications get it by default), and the row compares that with the floor's single publishes.

mod floor;

use clap::{Args, ValueEnum};
use durable_stream_client::{Client, Error, Seq, StartPosition, SubscribeOptions, Subscription};
use floor::Floor;
use futures_util::stream::FuturesUnordered;
use futures_util::{Future, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The parts of the benchmark, in the order they run.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connect,
    Single,
    /// Many tasks each calling `publish()` in a loop, auto-batched by the client.
    Concurrent,
    Batch,
    /// Plain against conditional publishes.
    Conditional,
    Fanout,
    Replay,
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// The phases to run, comma-separated (default: all of them).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "connect,single,concurrent,batch,conditional,fanout,replay")]
    phases: Vec<Phase>,
    /// WebSocket connections opened in the connection set-up phase, each timed from connect
    /// until the server's hello and then closed.
    #[arg(long, default_value_t = 200)]
    connects: u64,
    /// Connection set-ups in flight at once (1: one after another).
    #[arg(long, default_value_t = 1)]
    connect_window: usize,
    /// Messages published one at a time.
    #[arg(long, default_value_t = 10_000)]
    messages: u64,
    /// Single publishes in flight at once.
    #[arg(long, default_value_t = 100)]
    window: usize,
    /// Tasks in the concurrent phase, each publishing one message at a time to one subject.
    #[arg(long, default_value_t = 100)]
    callers: usize,
    /// Messages published in the concurrent phase.
    #[arg(long, default_value_t = 50_000)]
    concurrent_messages: u64,
    /// Batches published.
    #[arg(long, default_value_t = 500)]
    batches: u64,
    /// Messages per batch.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 8)]
    batch_window: usize,
    /// Publishers in the plain and conditional chain phases, each publishing to its own
    /// subject one message at a time.
    #[arg(long, default_value_t = 100)]
    chains: usize,
    /// Messages published in each of the two chain phases (plain, conditional).
    #[arg(long, default_value_t = 10_000)]
    chain_messages: u64,
    /// Subscribers in the fan-out phase.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Messages published in the fan-out phase (each delivered to every subscriber).
    #[arg(long, default_value_t = 2_000)]
    fanout_messages: u64,
    /// Publishes in flight at once in the fan-out phase. Latency includes the wait behind the
    /// publishes ahead (about window ÷ publish rate), and workerd's throughput itself drops
    /// when many events queue for one Durable Object: see bench/RESULTS.md.
    #[arg(long, default_value_t = 10)]
    fanout_window: usize,
    /// Backlog replayed in the catch-up phase.
    #[arg(long, default_value_t = 100_000)]
    backlog: u64,
    /// Approximate payload size in bytes.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Time limit per phase, in seconds.
    #[arg(long, default_value_t = 60)]
    time_limit: u64,
    /// Subject name prefix (a random suffix is added; default `bench`).
    #[arg(long, default_value = "bench")]
    subject: String,
    /// Keep the benchmark's subjects instead of deleting them at the end.
    #[arg(long)]
    keep: bool,
    /// Also run the single-publish and fan-out phases against the platform floor at this URL,
    /// `http://host:port/<variant>` (e.g. http://127.0.0.1:8788/sql).
    #[arg(long, value_name = "URL")]
    floor: Option<String>,
    /// With a floor: rounds of the single-publish and fan-out phases, ours and the floor taking
    /// turns (ours first in odd rounds, the floor first in even ones), so that other load on
    /// the machine weighs on both alike. The row reports the round with the median ratio.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
}

/// What one phase did against one server.
#[derive(Clone)]
struct Measured {
    count: u64,
    elapsed: Duration,
    /// Publish→deliver latencies, for the fan-out phase.
    latency: Option<Histogram<u64>>,
}

impl Measured {
    fn empty() -> Measured {
        Measured { count: 0, elapsed: Duration::ZERO, latency: None }
    }

    /// Adds another run of the same phase.
    fn add(&mut self, other: Measured) {
        self.count += other.count;
        self.elapsed += other.elapsed;
    }

    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// `p50 … p90 … p99 … max …` in milliseconds.
    fn percentiles(&self) -> Option<String> {
        let latency = self.latency.as_ref()?;
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(format!(
            "p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}",
            ms(latency.value_at_quantile(0.5)),
            ms(latency.value_at_quantile(0.9)),
            ms(latency.value_at_quantile(0.99)),
            ms(latency.max())
        ))
    }
}

/// One row of the results table.
struct Row {
    name: String,
    ours: Measured,
    floor: Option<Measured>,
    unit: &'static str,
    notes: String,
}

impl Row {
    fn new(name: String, ours: Measured, unit: &'static str, notes: String) -> Self {
        Row { name, ours, floor: None, unit, notes }
    }
}

/// Runs `phase` against ours and the floor in `rounds` alternating rounds and returns the
/// round whose ratio (ours ÷ floor) is the median, with every round's ratio in order.
async fn paired<T, F, Fut>(rounds: usize, mut phase: F) -> Result<((T, T), Vec<f64>), Error>
where
    F: FnMut(bool) -> Fut,
    Fut: std::future::Future<Output = Result<(T, f64), Error>>,
{
    let mut results = Vec::new();
    for round in 0..rounds.max(1) {
        let (ours, floor) = if round % 2 == 0 {
            let ours = phase(false).await?;
            (ours, phase(true).await?)
        } else {
            let floor = phase(true).await?;
            (phase(false).await?, floor)
        };
        results.push((ours.1 / floor.1.max(1e-9), ours.0, floor.0));
    }
    let ratios: Vec<f64> = results.iter().map(|r| r.0).collect();
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (_, ours, floor) = results.swap_remove((results.len() - 1) / 2);
    Ok(((ours, floor), ratios))
}

/// `; rounds (ours ÷ floor): 0.93, 1.04, …` when there was more than one.
fn rounds_note(ratios: &[f64]) -> String {
    if ratios.len() < 2 {
        return String::new();
    }
    let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    format!("; {} rounds (ours ÷ floor): {}, median shown", ratios.len(), listed.join(", "))
}

/// Microseconds from 1 µs to an hour, 3 significant digits; longer latencies saturate.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// A payload carrying its publish time, padded to about `size` bytes.
fn payload(size: usize) -> Value {
    json!({ "t": now_micros(), "pad": "x".repeat(size.saturating_sub(24)) })
}

/// Runs `make(i)` for `i` in `0..count`, keeping up to `window` in flight, until done or
/// `deadline`. Returns how many succeeded and the time taken; the first error stops the run.
async fn pipelined<F, Fut>(count: u64, window: usize, deadline: Instant, mut make: F) -> Result<(u64, Duration), Error>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let started = Instant::now();
    let (mut issued, mut done) = (0u64, 0u64);
    let mut in_flight = FuturesUnordered::new();
    loop {
        while issued < count && in_flight.len() < window.max(1) && Instant::now() < deadline {
            in_flight.push(make(issued));
            issued += 1;
        }
        match in_flight.next().await {
            Some(result) => {
                result?;
                done += 1;
            }
            None => return Ok((done, started.elapsed())),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The two wires: our protocol through the client library, or the floor's raw frames

/// Where a phase's load goes.
#[derive(Clone, Copy)]
enum Target<'a> {
    Ours(&'a Client),
    Floor(&'a Floor),
}

/// Publishes to one subject, many in flight at once.
enum Publisher<'a> {
    Ours(&'a Client, &'a str),
    Floor(floor::Publisher),
}

/// Receives one subject's new messages.
enum Feed {
    Ours(Subscription),
    Floor(floor::Subscriber),
}

impl<'a> Target<'a> {
    /// A publisher with its connection open (connecting is not part of what is measured).
    async fn publisher(self, subject: &'a str) -> Result<Publisher<'a>, Error> {
        match self {
            Target::Ours(client) => {
                client.info(subject).await?;
                Ok(Publisher::Ours(client, subject))
            }
            Target::Floor(floor) => Ok(Publisher::Floor(floor.publisher(subject).await?)),
        }
    }

    /// A subscriber to what is published from now on.
    async fn subscribe(self, subject: &str) -> Result<Feed, Error> {
        match self {
            Target::Ours(client) => {
                let options = SubscribeOptions::default().start(StartPosition::New).window(1000);
                Ok(Feed::Ours(client.subscribe(subject, options).await?))
            }
            Target::Floor(floor) => Ok(Feed::Floor(floor.subscriber(subject).await?)),
        }
    }
}

impl Publisher<'_> {
    async fn publish(&self, data: Value) -> Result<(), Error> {
        match self {
            Publisher::Ours(client, subject) => client.publish(subject, data).await.map(drop),
            Publisher::Floor(publisher) => publisher.publish(data).await,
        }
    }
}

impl Feed {
    /// The next message's data; `None` when the feed ends.
    async fn next(&mut self) -> Option<Result<Value, Error>> {
        match self {
            Feed::Ours(subscription) => subscription.next().await.map(|m| m.map(|m| m.data)),
            Feed::Floor(subscriber) => subscriber.next().await,
        }
    }

    async fn close(self) {
        match self {
            Feed::Ours(subscription) => drop(subscription.close().await),
            Feed::Floor(subscriber) => subscriber.close().await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Phases

/// Runs every phase and returns the results as a Markdown table. `client` sends every publish
/// alone; `batching` coalesces concurrent publishes (for the concurrent callers' phase).
/// `credential` names what the clients authenticate with (`API key` or `token`), for the notes.
pub async fn run(client: &Client, batching: &Client, args: BenchArgs, credential: &str) -> Result<String, Error> {
    let floor = args.floor.as_deref().map(Floor::new).transpose()?;
    let prefix = format!("{}-{:08x}", args.subject, rand::random::<u32>());
    let limit = Duration::from_secs(args.time_limit.max(1));
    let mut subjects: Vec<String> =
        ["single", "batch", "fanout", "replay", "concurrent"].iter().map(|p| format!("{prefix}-{p}")).collect();
    let mut rows = Vec::new();

    let runs = |phase: Phase| args.phases.contains(&phase);

    if runs(Phase::Connect) {
        eprintln!("bench: connection set-up ({} with {} at a time)", args.connects, args.connect_window);
        let measured = connect(client, &subjects[0], &args, limit).await?;
        let notes = format!("{credential}; connect→hello ms {}", measured.percentiles().unwrap_or_default());
        rows.push(Row::new(format!("connection set-up, {} at a time", args.connect_window), measured, "conn/s", notes));
    }
    let mut floor_single = None;
    if runs(Phase::Single) {
        let row = single_row(client, floor.as_ref(), &subjects[0], &args, limit, credential).await?;
        floor_single = row.floor.clone();
        rows.push(row);
    }
    if runs(Phase::Concurrent) {
        let mut row = concurrent_row(batching, &subjects[4], &args, limit).await?;
        if let (Some(floor), None) = (&floor, &floor_single) {
            eprintln!("bench: single publishes against the floor (for the concurrent callers' row)");
            floor_single = Some(single(Target::Floor(floor), &subjects[0], &args, limit).await?);
        }
        row.floor = floor_single;
        rows.push(row);
    }
    if runs(Phase::Batch) {
        rows.push(batch_row(client, &subjects[1], &args, limit).await?);
    }
    if runs(Phase::Conditional) {
        eprintln!("bench: plain and conditional publishes ({} each, {} subjects one at a time)", args.chain_messages, args.chains);
        let chain_subjects = |kind: &str| (0..args.chains).map(|i| format!("{prefix}-{kind}-{i}")).collect::<Vec<_>>();
        let (plain_subjects, conditional_subjects) = (chain_subjects("plain"), chain_subjects("conditional"));
        rows.extend(chains(client, &plain_subjects, &conditional_subjects, &args, limit).await?);
        subjects.extend(plain_subjects.into_iter().chain(conditional_subjects));
    }
    if runs(Phase::Fanout) {
        rows.push(fan_out_row(client, floor.as_ref(), &subjects[2], &args, limit).await?);
    }
    if runs(Phase::Replay) {
        eprintln!("bench: catch-up replay ({} messages)", args.backlog);
        rows.push(replay(client, &subjects[3], &args, limit).await?);
    }

    if !args.keep {
        for subject in &subjects {
            // Best effort: a failed cleanup does not invalidate the measurements.
            let _ = client.delete_subject(subject).await;
        }
    }
    Ok(table(&rows))
}

async fn single_row(client: &Client, floor: Option<&Floor>, subject: &str, args: &BenchArgs, limit: Duration, credential: &str) -> Result<Row, Error> {
    let name = format!("publish, {} in flight", args.window);
    let notes = format!("{credential}; {} B payloads", args.size);
    eprintln!("bench: single publishes ({} with {} in flight)", args.messages, args.window);
    let Some(floor) = floor else {
        return Ok(Row::new(name, single(Target::Ours(client), subject, args, limit).await?, "msg/s", notes));
    };
    let ((ours, floor), ratios) = paired(args.rounds, |against_floor| async move {
        let target = if against_floor { Target::Floor(floor) } else { Target::Ours(client) };
        eprintln!("bench: single publishes against {}", if against_floor { "the floor" } else { "ours" });
        let measured = single(target, subject, args, limit).await?;
        let rate = measured.rate();
        Ok((measured, rate))
    })
    .await?;
    let mut row = Row::new(name, ours, "msg/s", format!("{notes}{}", rounds_note(&ratios)));
    row.floor = Some(floor);
    Ok(row)
}

/// `--callers` tasks each calling `publish()` in a loop on one subject, through the batching
/// client. Its floor is the floor's single publishes (the floor has no batching of its own).
async fn concurrent_row(batching: &Client, subject: &str, args: &BenchArgs, limit: Duration) -> Result<Row, Error> {
    eprintln!("bench: concurrent publish() callers ({} messages from {} tasks, auto-batched)", args.concurrent_messages, args.callers);
    batching.info(subject).await?; // opens the connection, as `Target::publisher` does
    let callers = vec![subject.to_owned(); args.callers];
    let mut lasts = vec![0; args.callers];
    let measured = chained(batching, &callers, &mut lasts, false, args.concurrent_messages, Instant::now() + limit, args.size).await?;
    Ok(Row::new(
        format!("publish() from {} concurrent callers, one subject, auto-batched", args.callers),
        measured,
        "msg/s",
        format!("{} B payloads; each task awaits each publish; floor: its single publishes, {} in flight", args.size, args.window),
    ))
}

async fn batch_row(client: &Client, subject: &str, args: &BenchArgs, limit: Duration) -> Result<Row, Error> {
    eprintln!("bench: batched publishes ({} batches of {})", args.batches, args.batch_size);
    client.info(subject).await?; // opens the connection, as `Target::publisher` does
    let (done, elapsed) = pipelined(args.batches, args.batch_window, Instant::now() + limit, |_| async {
        let batch: Vec<Value> = (0..args.batch_size).map(|_| payload(args.size)).collect();
        client.publish_batch(subject, batch).await.map(drop)
    })
    .await?;
    Ok(Row::new(
        format!("publish batches of {}", args.batch_size),
        Measured { count: done * args.batch_size as u64, elapsed, latency: None },
        "msg/s",
        format!("{done} batches, {} in flight", args.batch_window),
    ))
}

async fn fan_out_row(client: &Client, floor: Option<&Floor>, subject: &str, args: &BenchArgs, limit: Duration) -> Result<Row, Error> {
    eprintln!(
        "bench: fan-out ({} messages to {} subscribers, {} in flight)",
        args.fanout_messages, args.subscribers, args.fanout_window
    );
    let name = format!("fan-out to {} subscribers", args.subscribers);
    let describe = |published: u64, measured: &Measured| format!("{published} published, {}", measured.percentiles().unwrap_or_default());
    let Some(floor) = floor else {
        let (measured, published) = fan_out(Target::Ours(client), subject, args, limit).await?;
        let notes = format!("{} in flight; publish→deliver ms: {}", args.fanout_window, describe(published, &measured));
        return Ok(Row::new(name, measured, "deliveries/s", notes));
    };
    let (((ours, ours_published), (floor, floor_published)), ratios) = paired(args.rounds, |against_floor| async move {
        let target = if against_floor { Target::Floor(floor) } else { Target::Ours(client) };
        eprintln!("bench: fan-out against {}", if against_floor { "the floor" } else { "ours" });
        let (measured, published) = fan_out(target, subject, args, limit).await?;
        let rate = measured.rate();
        Ok(((measured, published), rate))
    })
    .await?;
    let notes = format!(
        "{} in flight; publish→deliver ms: {}; floor: {}{}",
        args.fanout_window,
        describe(ours_published, &ours),
        describe(floor_published, &floor),
        rounds_note(&ratios)
    );
    let mut row = Row::new(name, ours, "deliveries/s", notes);
    row.floor = Some(floor);
    Ok(row)
}

/// Opens and closes connections, `--connect-window` at a time, timing each until its hello.
async fn connect(client: &Client, subject: &str, args: &BenchArgs, limit: Duration) -> Result<Measured, Error> {
    let latency = std::sync::Mutex::new(latency_histogram());
    let (count, elapsed) = pipelined(args.connects, args.connect_window, Instant::now() + limit, |_| async {
        let started = Instant::now();
        client.check_connection(subject).await?;
        latency.lock().unwrap_or_else(|p| p.into_inner()).saturating_record(started.elapsed().as_micros() as u64);
        Ok(())
    })
    .await?;
    Ok(Measured { count, elapsed, latency: Some(latency.into_inner().unwrap_or_else(|p| p.into_inner())) })
}

/// Single publishes, `--window` in flight.
async fn single(target: Target<'_>, subject: &str, args: &BenchArgs, limit: Duration) -> Result<Measured, Error> {
    let publisher = target.publisher(subject).await?;
    let (count, elapsed) =
        pipelined(args.messages, args.window, Instant::now() + limit, |_| publisher.publish(payload(args.size))).await?;
    Ok(Measured { count, elapsed, latency: None })
}

/// How often the plain and the conditional chain phases take turns, in the order plain,
/// conditional, conditional, plain, …: short turns in a balanced order, so that other work on
/// the machine coming and going, and the first turn's warm-up, weigh on both alike.
const CHAIN_TURNS: u64 = 10;

/// Plain publishes against conditional ones of the same shape: `--chains` publishers, each
/// publishing to its own subject one message at a time; a conditional publisher expects the
/// last sequence its previous publish got. The two take turns; returns a row for each, the
/// conditional one with its cost over the plain one.
async fn chains(client: &Client, plain: &[String], conditional: &[String], args: &BenchArgs, limit: Duration) -> Result<[Row; 2], Error> {
    /// One kind of chain: its subjects, their last sequences, and what it did in all turns.
    struct Chains<'a> {
        subjects: &'a [String],
        lasts: Vec<Seq>,
        conditional: bool,
        total: Measured,
    }
    for subject in plain.iter().chain(conditional) {
        client.info(subject).await?; // opens the subject's connection, as `Target::publisher` does
    }
    let per_turn = args.chain_messages.div_ceil(CHAIN_TURNS);
    let deadline = Instant::now() + limit;
    let mut kinds = [(plain, false), (conditional, true)]
        .map(|(subjects, conditional)| Chains { subjects, lasts: vec![0; subjects.len()], conditional, total: Measured::empty() });
    for turn in 0..CHAIN_TURNS {
        for kind in if turn % 2 == 0 { [0, 1] } else { [1, 0] } {
            let chains = &mut kinds[kind];
            let measured = chained(client, chains.subjects, &mut chains.lasts, chains.conditional, per_turn, deadline, args.size).await?;
            chains.total.add(measured);
        }
    }
    let [plain_total, conditional_total] = kinds.map(|chains| chains.total);
    let shape = format!("{} subjects, one at a time", args.chains);
    let cost = plain_total.rate() / conditional_total.rate().max(1e-9) - 1.0;
    Ok([
        Row::new(format!("publish, {shape}"), plain_total, "msg/s", format!("{} B payloads; {CHAIN_TURNS} turns with the row below", args.size)),
        Row::new(
            format!("conditional publish (expectLastSeq), {shape}"),
            conditional_total,
            "msg/s",
            format!("each expects its subject's last sequence; {:+.1}% time per publish vs the row above", cost * 100.0),
        ),
    ])
}

/// One publisher per entry of `subjects` (a subject named several times gets several), each
/// publishing one message at a time until `count` are published in all, keeping the last
/// sequence it got in `lasts`; a `conditional` publish expects it.
async fn chained(
    client: &Client,
    subjects: &[String],
    lasts: &mut [Seq],
    conditional: bool,
    count: u64,
    deadline: Instant,
    size: usize,
) -> Result<Measured, Error> {
    let issued = AtomicU64::new(0);
    let started = Instant::now();
    let publishers = subjects.iter().zip(lasts.iter_mut()).map(|(subject, last)| {
        let issued = &issued;
        async move {
            let mut done = 0u64;
            while issued.fetch_add(1, Ordering::Relaxed) < count && Instant::now() < deadline {
                *last = if conditional {
                    client.publish_if(subject, payload(size), *last).await?
                } else {
                    client.publish(subject, payload(size)).await?
                };
                done += 1;
            }
            Ok::<_, Error>(done)
        }
    });
    let done: u64 = futures_util::future::try_join_all(publishers).await?.into_iter().sum();
    Ok(Measured { count: done, elapsed: started.elapsed(), latency: None })
}

/// Publishes while every subscriber counts deliveries and their latency. Returns what was
/// delivered and how many messages were published.
async fn fan_out(target: Target<'_>, subject: &str, args: &BenchArgs, limit: Duration) -> Result<(Measured, u64), Error> {
    let expected = args.fanout_messages;
    let deadline = Instant::now() + limit;
    let mut receivers = Vec::new();
    for _ in 0..args.subscribers {
        let mut feed = target.subscribe(subject).await?;
        receivers.push(tokio::spawn(async move {
            let mut latencies = latency_histogram();
            let mut received = 0u64;
            // One timer for the whole run, not one per message.
            let receiving = async {
                while received < expected {
                    let Some(data) = feed.next().await else { break };
                    let sent = data?["t"].as_u64().unwrap_or(0);
                    latencies.saturating_record(now_micros().saturating_sub(sent));
                    received += 1;
                }
                Ok::<_, Error>(())
            };
            let outcome = tokio::time::timeout_at(deadline.into(), receiving).await;
            feed.close().await;
            if let Ok(Err(e)) = outcome {
                return Err(e);
            }
            Ok::<_, Error>((received, latencies))
        }));
    }
    let publisher = target.publisher(subject).await?;
    let started = Instant::now();
    let (published, _) =
        pipelined(expected, args.fanout_window, deadline, |_| publisher.publish(payload(args.size))).await?;
    let mut latencies = latency_histogram();
    let mut delivered = 0;
    for receiver in receivers {
        let (received, histogram) = receiver.await.map_err(|e| Error::InvalidResponse(format!("subscriber task: {e}")))??;
        delivered += received;
        latencies.add(&histogram).expect("histograms with the same precision add up");
    }
    Ok((Measured { count: delivered, elapsed: started.elapsed(), latency: Some(latencies) }, published))
}

async fn replay(client: &Client, subject: &str, args: &BenchArgs, limit: Duration) -> Result<Row, Error> {
    let batch_size = args.batch_size.max(1) as u64;
    let batches = args.backlog.div_ceil(batch_size);
    let (published_batches, fill_time) = pipelined(batches, args.batch_window, Instant::now() + limit, |i| async move {
        let n = batch_size.min(args.backlog - i * batch_size);
        let batch: Vec<Value> = (0..n).map(|_| payload(args.size)).collect();
        client.publish_batch(subject, batch).await.map(drop)
    })
    .await?;
    let backlog = (published_batches * batch_size).min(args.backlog);
    let deadline = Instant::now() + limit;
    let started = Instant::now();
    let options = SubscribeOptions::default().start(StartPosition::First).window(10_000);
    let mut subscription = client.subscribe(subject, options).await?;
    let mut received = 0u64;
    // One timer for the whole catch-up, not one per message.
    let receiving = async {
        while received < backlog {
            let Some(message) = subscription.next().await else { break };
            message?;
            received += 1;
        }
        Ok::<_, Error>(())
    };
    if let Ok(Err(e)) = tokio::time::timeout_at(deadline.into(), receiving).await {
        return Err(e);
    }
    let elapsed = started.elapsed();
    subscription.close().await?;
    Ok(Row::new(
        "catch-up replay".into(),
        Measured { count: received, elapsed, latency: None },
        "msg/s",
        format!("backlog of {backlog} written in {:.1} s", fill_time.as_secs_f64()),
    ))
}

/// The results as a Markdown table; with floor columns when any phase ran against the floor.
fn table(rows: &[Row]) -> String {
    let with_floor = rows.iter().any(|row| row.floor.is_some());
    let mut out = String::new();
    if with_floor {
        out.push_str("| benchmark | messages | seconds | rate | floor | vs floor | notes |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---|\n");
    } else {
        out.push_str("| benchmark | messages | seconds | rate | notes |\n");
        out.push_str("|---|---:|---:|---:|---|\n");
    }
    for row in rows {
        let ours = &row.ours;
        let mut cells = vec![
            row.name.clone(),
            ours.count.to_string(),
            format!("{:.2}", ours.elapsed.as_secs_f64()),
            format!("{:.0} {}", ours.rate(), row.unit),
        ];
        if with_floor {
            match &row.floor {
                Some(floor) => {
                    cells.push(format!("{:.0} {}", floor.rate(), row.unit));
                    cells.push(format!("{:.2}", ours.rate() / floor.rate().max(1e-9)));
                }
                None => cells.extend(["–".to_owned(), "–".to_owned()]),
            }
        }
        cells.push(row.notes.clone());
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pipelined_runs_stop_at_the_count_and_keep_the_window() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let in_flight = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let (done, _) = pipelined(50, 4, Instant::now() + Duration::from_secs(5), |_| async {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::task::yield_now().await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(done, 50);
        assert!(peak.load(Ordering::SeqCst) <= 4);
    }

    #[tokio::test]
    async fn pipelined_runs_stop_at_the_deadline() {
        let (done, _) = pipelined(u64::MAX, 2, Instant::now() + Duration::from_millis(50), |_| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(())
        })
        .await
        .unwrap();
        assert!(done > 0 && done < 100, "{done}");
    }

    fn measured(count: u64, seconds: u64) -> Measured {
        Measured { count, elapsed: Duration::from_secs(seconds), latency: None }
    }

    #[test]
    fn tables_show_the_floor_and_the_ratio_only_when_measured() {
        let rows = vec![Row::new("a".into(), measured(100, 2), "msg/s", "n".into())];
        assert_eq!(table(&rows), "| benchmark | messages | seconds | rate | notes |\n|---|---:|---:|---:|---|\n| a | 100 | 2.00 | 50 msg/s | n |\n");
        let mut compared = Row::new("b".into(), measured(300, 1), "msg/s", "m".into());
        compared.floor = Some(measured(400, 1));
        let text = table(&[compared, Row::new("c".into(), measured(1, 1), "msg/s", String::new())]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "| benchmark | messages | seconds | rate | floor | vs floor | notes |");
        assert_eq!(lines[2], "| b | 300 | 1.00 | 300 msg/s | 400 msg/s | 0.75 | m |");
        assert_eq!(lines[3], "| c | 1 | 1.00 | 1 msg/s | – | – |  |");
    }

    #[test]
    fn latency_percentiles_are_in_milliseconds() {
        let mut latency = latency_histogram();
        for micros in [1_000, 2_000, 3_000, 100_000] {
            latency.record(micros).unwrap();
        }
        let m = Measured { count: 4, elapsed: Duration::from_secs(1), latency: Some(latency) };
        assert_eq!(m.percentiles().unwrap(), "p50 2.0 p90 100.0 p99 100.0 max 100.0");
        assert_eq!(measured(1, 1).percentiles(), None);
    }

    #[test]
    fn payloads_are_about_the_requested_size() {
        let size = payload(128).to_string().len();
        assert!((110..=150).contains(&size), "{size}");
    }
}
