//! `dstream bench`: throughput and latency against a running server, printed as Markdown.
//!
//! Every phase stops at its message count or at the time limit, whichever comes first, and
//! reports what it actually did in that time.

use clap::Args;
use durable_stream_client::{Client, Error, StartPosition, SubscribeOptions};
use futures_util::stream::FuturesUnordered;
use futures_util::{Future, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Messages published one at a time.
    #[arg(long, default_value_t = 10_000)]
    messages: u64,
    /// Single publishes in flight at once.
    #[arg(long, default_value_t = 100)]
    window: usize,
    /// Batches published.
    #[arg(long, default_value_t = 200)]
    batches: u64,
    /// Messages per batch.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 8)]
    batch_window: usize,
    /// Subscribers in the fan-out phase.
    #[arg(long, default_value_t = 4)]
    subscribers: usize,
    /// Messages published in the fan-out phase (each delivered to every subscriber).
    #[arg(long, default_value_t = 2_000)]
    fanout_messages: u64,
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
}

/// One row of the results table.
struct Row {
    name: String,
    count: u64,
    elapsed: Duration,
    unit: &'static str,
    notes: String,
}

impl Row {
    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
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

pub async fn run(client: &Client, args: BenchArgs) -> Result<(), Error> {
    let prefix = format!("{}-{:08x}", args.subject, rand::random::<u32>());
    let limit = Duration::from_secs(args.time_limit.max(1));
    let subjects: Vec<String> = ["single", "batch", "fanout", "replay"].iter().map(|p| format!("{prefix}-{p}")).collect();
    let mut rows = Vec::new();

    eprintln!("bench: single publishes ({} with {} in flight)", args.messages, args.window);
    let subject = &subjects[0];
    let (done, elapsed) = pipelined(args.messages, args.window, Instant::now() + limit, |_| async {
        client.publish(subject, payload(args.size)).await.map(drop)
    })
    .await?;
    rows.push(Row {
        name: format!("publish, {} in flight", args.window),
        count: done,
        elapsed,
        unit: "msg/s",
        notes: format!("{} B payloads", args.size),
    });

    eprintln!("bench: batched publishes ({} batches of {})", args.batches, args.batch_size);
    let subject = &subjects[1];
    let (done, elapsed) = pipelined(args.batches, args.batch_window, Instant::now() + limit, |_| async {
        let batch: Vec<Value> = (0..args.batch_size).map(|_| payload(args.size)).collect();
        client.publish_batch(subject, batch).await.map(drop)
    })
    .await?;
    rows.push(Row {
        name: format!("publish batches of {}", args.batch_size),
        count: done * args.batch_size as u64,
        elapsed,
        unit: "msg/s",
        notes: format!("{done} batches, {} in flight", args.batch_window),
    });

    eprintln!("bench: fan-out ({} messages to {} subscribers)", args.fanout_messages, args.subscribers);
    rows.push(fan_out(client, &subjects[2], &args, limit).await?);

    eprintln!("bench: catch-up replay ({} messages)", args.backlog);
    rows.push(replay(client, &subjects[3], &args, limit).await?);

    if !args.keep {
        for subject in &subjects {
            // Best effort: a failed cleanup does not invalidate the measurements.
            let _ = client.delete_subject(subject).await;
        }
    }
    print_table(&rows);
    Ok(())
}

async fn fan_out(client: &Client, subject: &str, args: &BenchArgs, limit: Duration) -> Result<Row, Error> {
    let expected = args.fanout_messages;
    let deadline = Instant::now() + limit;
    let mut receivers = Vec::new();
    for _ in 0..args.subscribers {
        let options = SubscribeOptions::default().start(StartPosition::New).window(1000);
        let mut subscription = client.subscribe(subject, options).await?;
        receivers.push(tokio::spawn(async move {
            let mut latencies = latency_histogram();
            let mut received = 0u64;
            while received < expected {
                let remaining = deadline.saturating_duration_since(Instant::now());
                let Ok(Some(message)) = tokio::time::timeout(remaining, subscription.next()).await else { break };
                let message = message?;
                let sent = message.data["t"].as_u64().unwrap_or(0);
                latencies.saturating_record(now_micros().saturating_sub(sent));
                received += 1;
            }
            let _ = subscription.close().await;
            Ok::<_, Error>((received, latencies))
        }));
    }
    let started = Instant::now();
    let (published, _) = pipelined(expected, args.window, deadline, |_| async {
        client.publish(subject, payload(args.size)).await.map(drop)
    })
    .await?;
    let mut latencies = latency_histogram();
    let mut delivered = 0;
    for receiver in receivers {
        let (received, histogram) = receiver.await.map_err(|e| Error::InvalidResponse(format!("subscriber task: {e}")))??;
        delivered += received;
        latencies.add(&histogram).expect("histograms with the same precision add up");
    }
    let ms = |q: f64| latencies.value_at_quantile(q) as f64 / 1000.0;
    Ok(Row {
        name: format!("fan-out to {} subscribers", args.subscribers),
        count: delivered,
        elapsed: started.elapsed(),
        unit: "deliveries/s",
        notes: format!(
            "{published} published; publish→deliver ms p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            latencies.max() as f64 / 1000.0
        ),
    })
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
    while received < backlog {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, subscription.next()).await {
            Ok(Some(message)) => {
                message?;
                received += 1;
            }
            Ok(None) | Err(_) => break,
        }
    }
    let elapsed = started.elapsed();
    subscription.close().await?;
    Ok(Row {
        name: "catch-up replay".into(),
        count: received,
        elapsed,
        unit: "msg/s",
        notes: format!("backlog of {backlog} written in {:.1} s", fill_time.as_secs_f64()),
    })
}

fn print_table(rows: &[Row]) {
    println!("| benchmark | messages | seconds | rate | notes |");
    println!("|---|---:|---:|---:|---|");
    for row in rows {
        println!(
            "| {} | {} | {:.2} | {:.0} {} | {} |",
            row.name,
            row.count,
            row.elapsed.as_secs_f64(),
            row.rate(),
            row.unit,
            row.notes
        );
    }
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

    #[test]
    fn payloads_are_about_the_requested_size() {
        let size = payload(128).to_string().len();
        assert!((110..=150).contains(&size), "{size}");
    }
}
