//! What a subject tells the directory about itself, and when. An event only marks the subject
//! changed and bumps in-memory counters (no allocation, no storage write, no I/O); the alarm
//! reports at most every `DIRECTORY_REPORT_MS` while something changes. Counters live in
//! memory until they are reported: an eviction loses at most one interval of counts.

use super::Core;
use crate::directory;
use durable_stream_protocol::consumers::{ack_pending, pending};
use durable_stream_protocol::directory::{next_report_at, ConsumerStats, Report, SubjectStats, REPORTED_CONSUMERS};
use durable_stream_protocol::metrics::{Counters, Histogram};
use durable_stream_protocol::subject::validate_subject;
use durable_stream_protocol::ErrorCode;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use worker::{console_error, AnalyticsEngineDataPointBuilder, Date, Env, Storage};

/// The Analytics Engine dataset binding written to when configured (wrangler.toml).
const ANALYTICS_BINDING: &str = "METRICS";
/// Shortest time between the starts of two timed publishes: timing costs a promise, so at most
/// ten publishes a second are timed, whatever the publish rate.
const COMMIT_SAMPLE_MS: u64 = 100;

pub struct Telemetry {
    /// Whether anything may have changed since the last report.
    changed: bool,
    last_report_at: u64,
    /// `DIRECTORY_REPORT_MS`, or 0 when this subject never reports (reports are off, or its
    /// name is a Durable Streams name outside the subject alphabet, which no listing can show).
    report_ms: u64,
    pub counters: Counters,
    commits: Rc<CommitTimer>,
}

/// Times a sample of publishes, one at a time, from the event that stored one until its write
/// is durable (`storage.sync()`). Every other publish costs two comparisons.
struct CommitTimer {
    storage: Storage,
    timing: Cell<bool>,
    /// When the next sample may start.
    next_at: Cell<u64>,
    latencies: RefCell<Histogram>,
}

impl Telemetry {
    /// A subject just loaded: it reports once soon, since what it did before may not have been
    /// reported.
    pub fn new(subject: &str, report_ms: u64, storage: Storage) -> Telemetry {
        let report_ms = if validate_subject(subject).is_ok() { report_ms } else { 0 };
        let commits = CommitTimer { storage, timing: Cell::new(false), next_at: Cell::new(0), latencies: RefCell::default() };
        Telemetry { changed: true, last_report_at: 0, report_ms, counters: Counters::default(), commits: Rc::new(commits) }
    }

    pub fn mark_changed(&mut self) {
        self.changed = true;
    }

    pub fn count_error(&mut self, code: ErrorCode) {
        self.counters.count_error(code);
    }

    /// When the alarm must run to report (None: nothing to report).
    pub fn next_report(&self) -> Option<u64> {
        next_report_at(self.changed, self.last_report_at, self.report_ms)
    }

    /// Times the publish stored by the current event (which started at `started`), unless
    /// reports are off, one is being timed already, or the last sample started too recently.
    pub fn time_commit(&self, started: u64) {
        if self.report_ms == 0 || self.commits.timing.get() || started < self.commits.next_at.get() {
            return;
        }
        self.commits.timing.set(true);
        self.commits.next_at.set(started + COMMIT_SAMPLE_MS);
        let commits = self.commits.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let synced = commits.storage.sync().await;
            commits.timing.set(false);
            match synced {
                Ok(()) => commits.latencies.borrow_mut().record(Date::now().as_millis().saturating_sub(started)),
                Err(e) => console_error!("storage.sync() failed while timing a commit: {e}"),
            }
        });
    }

    /// What was counted since the last report, handed over: the counters start again at zero.
    fn take_counters(&mut self) -> Counters {
        let mut counters = std::mem::take(&mut self.counters);
        counters.publish_commit = self.commits.latencies.take();
        counters
    }

    /// Counters a failed report could not deliver, kept for the next one.
    fn give_back(&mut self, counters: &Counters) {
        self.counters.add(counters);
        self.changed = true;
    }
}

impl Core {
    /// The report due at `now`, if any; its counters are taken out (see [`Telemetry::give_back`]).
    pub fn due_report(&mut self, now: u64) -> worker::Result<Option<Report>> {
        if self.telemetry.next_report().is_none_or(|at| at > now) {
            return Ok(None);
        }
        let bounds = self.meta.bounds();
        let stats = SubjectStats {
            first: bounds.first,
            last: bounds.last,
            count: bounds.count(),
            bytes: self.meta.bytes,
            connections: self.sessions.len() as u64,
            subscribers: self.sessions.subscriber_count() as u64,
            consumers: self.store.consumer_count()?,
            last_publish_ts: self.meta.last_ts,
            epoch: self.meta.epoch.clone(),
        };
        let live: HashMap<&str, u64> = self
            .sessions
            .subscriptions()
            .filter_map(|sub| Some((sub.consumer.as_deref()?, ack_pending(sub))))
            .collect();
        let consumers = self
            .store
            .consumers(REPORTED_CONSUMERS)?
            .into_iter()
            .map(|c| ConsumerStats {
                pending: pending(bounds.last, c.acked),
                ack_pending: live.get(c.name.as_str()).copied().unwrap_or(0),
                redelivered: c.redelivered,
                name: c.name,
            })
            .collect();
        self.telemetry.changed = false;
        self.telemetry.last_report_at = now;
        let counters = self.telemetry.take_counters();
        Ok(Some(Report::new(self.meta.subject.clone(), stats, consumers, counters)))
    }
}

/// Sends a report to the directory (and to Analytics Engine when bound). A report the
/// directory did not take gives its counters back to the subject for the next one.
pub async fn send(env: &Env, report: Report, core: &RefCell<Option<Core>>) {
    write_data_point(env, &report);
    if let Err(e) = directory::report(env, &report).await {
        console_error!("could not report subject {:?} to the directory: {e:?}", report.subject);
        if let Some(core) = core.borrow_mut().as_mut() {
            core.telemetry.give_back(&report.counters);
        }
    }
}

/// One Analytics Engine data point per report: index and first blob the subject, second blob
/// its epoch; doubles: count, bytes, last, connections, subscribers, consumers, then the
/// interval's dedup hits, state conflicts, errors, sampled commits and their total ms.
fn write_data_point(env: &Env, report: &Report) {
    let Ok(dataset) = env.analytics_engine(ANALYTICS_BINDING) else { return };
    let stats = report.stats.clone().unwrap_or_default();
    let counters = &report.counters;
    let doubles = [
        stats.count,
        stats.bytes,
        stats.last,
        stats.connections,
        stats.subscribers,
        stats.consumers,
        counters.dedup_hits,
        counters.state_conflicts,
        counters.errors.values().sum(),
        counters.publish_commit.count,
        counters.publish_commit.sum_ms,
    ];
    let point = AnalyticsEngineDataPointBuilder::new()
        .indexes([report.subject.as_str()])
        .add_blob(report.subject.as_str())
        .add_blob(stats.epoch.as_str())
        .doubles(doubles.map(|n| n as f64));
    if let Err(e) = point.write_to(&dataset) {
        console_error!("could not write the Analytics Engine data point: {e}");
    }
}
