//! Prometheus metrics: the counters a subject keeps in memory between two reports to the
//! directory, and the text exposition format (version 0.0.4) of `GET /metrics`.

use crate::error::ErrorCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The `Content-Type` of `GET /metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the publish→commit latency buckets, in milliseconds (the `le` labels are in
/// seconds: 0.001 … 2.5, then `+Inf`). The runtime's clock moves in whole milliseconds.
pub const COMMIT_BUCKETS_MS: [u64; 11] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500];

/// Latencies, one count per bucket (not cumulative: rendering adds them up), plus the total.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Histogram {
    /// `buckets[i]`: samples above bucket `i − 1` and at most [`COMMIT_BUCKETS_MS`]`[i]`.
    pub buckets: [u64; COMMIT_BUCKETS_MS.len()],
    pub count: u64,
    pub sum_ms: u64,
}

impl Histogram {
    pub fn record(&mut self, ms: u64) {
        if let Some(bucket) = COMMIT_BUCKETS_MS.iter().position(|&le| ms <= le) {
            self.buckets[bucket] += 1;
        }
        self.count += 1;
        self.sum_ms += ms;
    }

    fn add(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_ms += other.sum_ms;
    }
}

/// What a subject counts between two reports, and the directory's totals of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Counters {
    /// Publishes answered from the dedup window (`msgId`, `Idempotency-Key`).
    pub dedup_hits: u64,
    /// State writes refused because the version did not match.
    pub state_conflicts: u64,
    /// Errors answered by subjects, by code.
    pub errors: BTreeMap<String, u64>,
    /// Publish→commit latency of sampled publishes.
    pub publish_commit: Histogram,
}

impl Counters {
    pub fn count_error(&mut self, code: ErrorCode) {
        match self.errors.get_mut(code.as_str()) {
            Some(count) => *count += 1,
            None => {
                self.errors.insert(code.as_str().to_owned(), 1);
            }
        }
    }

    pub fn add(&mut self, other: &Counters) {
        self.dedup_hits += other.dedup_hits;
        self.state_conflicts += other.state_conflicts;
        for (code, count) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += count;
        }
        self.publish_commit.add(&other.publish_commit);
    }

    pub fn is_empty(&self) -> bool {
        *self == Counters::default()
    }
}

/// Series of one subject: stored messages and bytes (gauges, like NATS's
/// `jetstream_stream_total_messages` and `…_total_bytes`) and its last sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectSeries {
    pub subject: String,
    pub messages: u64,
    pub bytes: u64,
    pub last_seq: u64,
}

/// Series of one durable consumer, with the meanings of NATS's `nats_consumer_num_pending`,
/// `…_num_ack_pending` and `…_num_redelivered`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSeries {
    pub subject: String,
    pub consumer: String,
    pub num_pending: u64,
    pub num_ack_pending: u64,
    pub redelivered: u64,
}

/// Everything one scrape shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub subjects: u64,
    pub connections: u64,
    pub subscriptions: u64,
    pub subject_series: Vec<SubjectSeries>,
    pub consumer_series: Vec<ConsumerSeries>,
    pub counters: Counters,
}

/// A label value with `\`, `"` and line feeds escaped, as the text format requires.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Milliseconds as seconds, without trailing zeros (`2500` → `2.5`, `1` → `0.001`).
fn seconds(ms: u64) -> String {
    let whole = ms / 1000;
    let fraction = format!("{:03}", ms % 1000);
    match fraction.trim_end_matches('0') {
        "" => whole.to_string(),
        digits => format!("{whole}.{digits}"),
    }
}

/// One metric family: its `HELP` and `TYPE` lines, then its samples.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out, name }
    }

    /// A sample named `{family}{suffix}` with `labels` (name, unescaped value).
    fn sample(&mut self, suffix: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.out, "{}{suffix}", self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, raw)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label(raw));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// The text exposition format (0.0.4) of a snapshot. Every family is written once, with its
/// `HELP` and `TYPE`, and the families without series are still declared.
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    let gauges = [
        ("durable_stream_subjects", "Subjects in the directory (with a message, a connection or a durable consumer).", snapshot.subjects),
        ("durable_stream_connections", "WebSocket connections to all subjects.", snapshot.connections),
        ("durable_stream_subscriptions", "Connections with a subscription, all subjects.", snapshot.subscriptions),
    ];
    for (name, help, value) in gauges {
        Family::new(&mut out, name, "gauge", help).sample("", &[], value);
    }

    type SubjectValue = fn(&SubjectSeries) -> u64;
    let per_subject: [(&str, &str, SubjectValue); 3] = [
        ("durable_stream_messages_total", "Messages stored in the subject (like NATS jetstream_stream_total_messages).", |s| s.messages),
        ("durable_stream_bytes_total", "Bytes of message data stored in the subject.", |s| s.bytes),
        ("durable_stream_last_seq", "The subject's last sequence.", |s| s.last_seq),
    ];
    for (name, help, value) in per_subject {
        let mut family = Family::new(&mut out, name, "gauge", help);
        for series in &snapshot.subject_series {
            family.sample("", &[("subject", &series.subject)], value(series));
        }
    }

    type ConsumerValue = fn(&ConsumerSeries) -> u64;
    let per_consumer: [(&str, &str, &str, ConsumerValue); 3] = [
        ("durable_stream_consumer_num_pending", "gauge", "Messages after the consumer's acknowledged position (last - acked).", |c| c.num_pending),
        ("durable_stream_consumer_num_ack_pending", "gauge", "Messages delivered to the consumer's subscription and not acknowledged.", |c| c.num_ack_pending),
        ("durable_stream_consumer_redelivered_total", "counter", "Messages redelivered to the consumer after its ack wait.", |c| c.redelivered),
    ];
    for (name, kind, help, value) in per_consumer {
        let mut family = Family::new(&mut out, name, kind, help);
        for series in &snapshot.consumer_series {
            family.sample("", &[("subject", &series.subject), ("consumer", &series.consumer)], value(series));
        }
    }

    let counters = &snapshot.counters;
    Family::new(&mut out, "durable_stream_dedup_hits_total", "counter", "Publishes answered from the dedup window (nothing stored).")
        .sample("", &[], counters.dedup_hits);
    Family::new(&mut out, "durable_stream_state_conflicts_total", "counter", "State writes refused for a version mismatch.")
        .sample("", &[], counters.state_conflicts);
    let mut errors = Family::new(&mut out, "durable_stream_errors_total", "counter", "Errors answered by subjects, by code.");
    for (code, count) in &counters.errors {
        errors.sample("", &[("code", code)], count);
    }

    let latency = &counters.publish_commit;
    let mut histogram = Family::new(
        &mut out,
        "durable_stream_publish_commit_seconds",
        "histogram",
        "Time from a publish reaching its subject to its write being durable (sampled).",
    );
    let mut cumulative = 0;
    for (le, count) in COMMIT_BUCKETS_MS.iter().zip(latency.buckets) {
        cumulative += count;
        histogram.sample("_bucket", &[("le", &seconds(*le))], cumulative);
    }
    histogram.sample("_bucket", &[("le", "+Inf")], latency.count);
    histogram.sample("_sum", &[], seconds(latency.sum_ms));
    histogram.sample("_count", &[], latency.count);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_count_each_sample_in_its_bucket() {
        let mut h = Histogram::default();
        for ms in [0, 1, 2, 3, 2500, 9000] {
            h.record(ms);
        }
        assert_eq!(h.buckets, [2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!((h.count, h.sum_ms), (6, 11_506));
    }

    #[test]
    fn counters_add_up_and_round_trip() {
        let mut total = Counters::default();
        assert!(total.is_empty());
        let mut delta = Counters { dedup_hits: 2, state_conflicts: 1, ..Counters::default() };
        delta.count_error(ErrorCode::BadRequest);
        delta.count_error(ErrorCode::BadRequest);
        delta.count_error(ErrorCode::Conflict);
        delta.publish_commit.record(4);
        total.add(&delta);
        total.add(&delta);
        assert_eq!((total.dedup_hits, total.state_conflicts), (4, 2));
        assert_eq!(total.errors, BTreeMap::from([("bad_request".into(), 4), ("conflict".into(), 2)]));
        assert_eq!((total.publish_commit.count, total.publish_commit.buckets[2]), (2, 2));
        let json = serde_json::to_string(&total).unwrap();
        assert_eq!(serde_json::from_str::<Counters>(&json).unwrap(), total);
        assert_eq!(serde_json::from_str::<Counters>("{}").unwrap(), Counters::default());
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("line\nbreak"), "line\\nbreak");
        assert_eq!(escape_label("orders.eu-1"), "orders.eu-1");
    }

    #[test]
    fn seconds_are_written_without_trailing_zeros() {
        let written: Vec<String> = COMMIT_BUCKETS_MS.iter().map(|ms| seconds(*ms)).collect();
        assert_eq!(written, ["0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5"]);
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(12_345), "12.345");
    }

    #[test]
    fn renders_every_family_once_with_its_type() {
        let mut counters = Counters { dedup_hits: 3, ..Counters::default() };
        counters.count_error(ErrorCode::NotFound);
        counters.publish_commit.record(3);
        counters.publish_commit.record(40);
        let snapshot = Snapshot {
            subjects: 2,
            connections: 5,
            subscriptions: 1,
            subject_series: vec![SubjectSeries { subject: "orders".into(), messages: 7, bytes: 90, last_seq: 9 }],
            consumer_series: vec![ConsumerSeries {
                subject: "orders".into(),
                consumer: "bill\"ing".into(),
                num_pending: 4,
                num_ack_pending: 2,
                redelivered: 1,
            }],
            counters,
        };
        let text = render(&snapshot);
        for line in [
            "# TYPE durable_stream_subjects gauge",
            "durable_stream_subjects 2",
            "durable_stream_connections 5",
            "durable_stream_subscriptions 1",
            "durable_stream_messages_total{subject=\"orders\"} 7",
            "durable_stream_bytes_total{subject=\"orders\"} 90",
            "durable_stream_last_seq{subject=\"orders\"} 9",
            "durable_stream_consumer_num_pending{subject=\"orders\",consumer=\"bill\\\"ing\"} 4",
            "durable_stream_consumer_num_ack_pending{subject=\"orders\",consumer=\"bill\\\"ing\"} 2",
            "# TYPE durable_stream_consumer_redelivered_total counter",
            "durable_stream_consumer_redelivered_total{subject=\"orders\",consumer=\"bill\\\"ing\"} 1",
            "durable_stream_dedup_hits_total 3",
            "durable_stream_state_conflicts_total 0",
            "durable_stream_errors_total{code=\"not_found\"} 1",
            "# TYPE durable_stream_publish_commit_seconds histogram",
            "durable_stream_publish_commit_seconds_bucket{le=\"0.002\"} 0",
            "durable_stream_publish_commit_seconds_bucket{le=\"0.005\"} 1",
            "durable_stream_publish_commit_seconds_bucket{le=\"0.05\"} 2",
            "durable_stream_publish_commit_seconds_bucket{le=\"+Inf\"} 2",
            "durable_stream_publish_commit_seconds_sum 0.043",
            "durable_stream_publish_commit_seconds_count 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(types, 13, "one TYPE per family");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn families_without_series_are_still_declared() {
        let text = render(&Snapshot::default());
        assert!(text.contains("# TYPE durable_stream_messages_total gauge\n# HELP durable_stream_bytes_total"));
        assert!(text.contains("durable_stream_publish_commit_seconds_count 0\n"));
    }
}
