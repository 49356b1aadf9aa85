//! The subject directory: what a subject reports about itself (from its alarm, at most every
//! `DIRECTORY_REPORT_MS` while something changes), how the listing pages through it, and which
//! subjects get metric series.

use crate::config::{read_integer, ConfigError};
use crate::error::ProtocolError;
use crate::http_params::{number, route_params, unknown};
use crate::metrics::Counters;
use crate::subject::MAX_SUBJECT_LEN;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Most consumers one report carries (the first by name); the directory keeps only these for
/// the per-consumer metric series.
pub const REPORTED_CONSUMERS: usize = 100;
/// Subjects per listing page when `limit` is not given, and the most a page may ask for.
pub const DEFAULT_LIST_LIMIT: usize = 100;
pub const MAX_LIST_LIMIT: usize = 1000;
/// Most prefixes in `METRICS_SUBJECT_PREFIXES` or `/metrics?prefix=`.
pub const MAX_METRICS_PREFIXES: usize = 64;

/// The directory's variables (`[vars]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryConfig {
    /// Shortest time between two reports of one subject, in ms; 0 turns reports off (and with
    /// them the listing's and the metrics' knowledge of subjects).
    pub report_ms: u64,
    /// Most subjects with per-subject series in one scrape.
    pub metrics_max_subjects: usize,
    /// Most consumers with per-consumer series in one scrape.
    pub metrics_max_consumers: usize,
    /// The subjects that get series, by name prefix (`[""]`: every subject, up to the cap).
    pub metrics_subject_prefixes: Vec<String>,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            report_ms: 5_000,
            metrics_max_subjects: 1_000,
            metrics_max_consumers: 1_000,
            metrics_subject_prefixes: vec![String::new()],
        }
    }
}

pub const VARIABLES: &[&str] = &["DIRECTORY_REPORT_MS", "METRICS_MAX_SUBJECTS", "METRICS_MAX_CONSUMERS", "METRICS_SUBJECT_PREFIXES"];

impl DirectoryConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<DirectoryConfig, ConfigError> {
        let d = DirectoryConfig::default();
        let report_ms = read_integer(&lookup, "DIRECTORY_REPORT_MS", d.report_ms, 0, 60_000)?;
        if report_ms != 0 && report_ms < 100 {
            return Err(ConfigError { variable: "DIRECTORY_REPORT_MS", reason: "must be 0 (off) or between 100 and 60000".into() });
        }
        let prefixes = match lookup("METRICS_SUBJECT_PREFIXES") {
            Some(list) => parse_prefixes(&list)
                .map_err(|e| ConfigError { variable: "METRICS_SUBJECT_PREFIXES", reason: e.message })?,
            None => d.metrics_subject_prefixes,
        };
        Ok(DirectoryConfig {
            report_ms,
            metrics_max_subjects: read_integer(&lookup, "METRICS_MAX_SUBJECTS", d.metrics_max_subjects as u64, 0, 100_000)? as usize,
            metrics_max_consumers: read_integer(&lookup, "METRICS_MAX_CONSUMERS", d.metrics_max_consumers as u64, 0, 100_000)? as usize,
            metrics_subject_prefixes: prefixes,
        })
    }
}

/// When a subject reports next: not while nothing changed since its last report, else one
/// interval after it (at once for a subject that has not reported since it was loaded).
pub fn next_report_at(changed: bool, last_report_at: u64, report_ms: u64) -> Option<u64> {
    (changed && report_ms > 0).then(|| last_report_at + report_ms)
}

/// A subject's numbers as the listing shows them (the fields of `GET /v1/subjects`, in order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectStats {
    pub first: u64,
    pub last: u64,
    pub count: u64,
    pub bytes: u64,
    pub connections: u64,
    pub subscribers: u64,
    pub consumers: u64,
    /// When the last message was stored (ms; 0 before the first).
    pub last_publish_ts: u64,
    pub epoch: String,
}

impl SubjectStats {
    /// Whether there is anything to list: a subject never published to, with nothing
    /// connected and no durable consumer (one only looked at, or just wiped) is not listed.
    pub fn is_vacant(&self) -> bool {
        self.last == 0 && self.connections == 0 && self.consumers == 0
    }
}

/// One consumer in a report: what its metric series show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerStats {
    pub name: String,
    pub pending: u64,
    pub ack_pending: u64,
    pub redelivered: u64,
}

/// What a subject tells the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub subject: String,
    /// None when the subject is vacant ([`SubjectStats::is_vacant`]): the directory forgets it.
    pub stats: Option<SubjectStats>,
    /// At most [`REPORTED_CONSUMERS`], by name.
    #[serde(default)]
    pub consumers: Vec<ConsumerStats>,
    /// What was counted since the previous report (added to the directory's totals).
    #[serde(default)]
    pub counters: Counters,
}

impl Report {
    /// The report of a subject with these numbers: vacant subjects carry no stats or consumers.
    pub fn new(subject: String, stats: SubjectStats, consumers: Vec<ConsumerStats>, counters: Counters) -> Report {
        if stats.is_vacant() {
            return Report { subject, stats: None, consumers: Vec::new(), counters };
        }
        Report { subject, stats: Some(stats), consumers, counters }
    }
}

/// One subject in a listing page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectEntry {
    pub subject: String,
    #[serde(flatten)]
    pub stats: SubjectStats,
    /// When the subject last reported (ms).
    pub as_of: u64,
}

/// `GET /v1/subjects?prefix=&limit=&cursor=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParams {
    pub prefix: String,
    pub limit: usize,
    /// List the subjects after this name (decoded from `cursor`).
    pub after: Option<String>,
}

pub fn parse_list_params<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<ListParams, ProtocolError> {
    let mut params = ListParams { prefix: String::new(), limit: DEFAULT_LIST_LIMIT, after: None };
    for (name, value) in route_params(pairs)? {
        match name {
            "prefix" => params.prefix = check_prefix(value)?.to_owned(),
            "limit" => params.limit = number(name, value, 1, MAX_LIST_LIMIT as u64)? as usize,
            "cursor" if value.is_empty() => {}
            "cursor" => params.after = Some(decode_cursor(value)?),
            _ => return Err(unknown(name)),
        }
    }
    Ok(params)
}

/// `GET /metrics?prefix=a.,b.`: the prefixes that choose the subjects with series, if given.
pub fn parse_metrics_params<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Option<Vec<String>>, ProtocolError> {
    let mut prefixes = None;
    for (name, value) in route_params(pairs)? {
        match name {
            "prefix" => prefixes = Some(parse_prefixes(value)?),
            _ => return Err(unknown(name)),
        }
    }
    Ok(prefixes)
}

/// A name prefix: empty, or the start of a subject name.
fn check_prefix(prefix: &str) -> Result<&str, ProtocolError> {
    let foreign = prefix.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-')));
    if prefix.len() > MAX_SUBJECT_LEN || foreign.is_some() {
        return Err(ProtocolError::bad_request(format!(
            "`prefix` must be the start of a subject name: at most {MAX_SUBJECT_LEN} of A-Z a-z 0-9 . _ ~ -"
        )));
    }
    Ok(prefix)
}

/// A comma-separated list of name prefixes (empty entries left out; none at all: every subject,
/// `[""]`), without the ones another prefix of the list already covers, in name order.
pub fn parse_prefixes(list: &str) -> Result<Vec<String>, ProtocolError> {
    let mut prefixes: Vec<String> = Vec::new();
    for prefix in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        prefixes.push(check_prefix(prefix)?.to_owned());
    }
    if prefixes.is_empty() {
        return Ok(vec![String::new()]);
    }
    if prefixes.len() > MAX_METRICS_PREFIXES {
        return Err(ProtocolError::bad_request(format!("at most {MAX_METRICS_PREFIXES} prefixes")));
    }
    prefixes.sort();
    // Sorted, a prefix comes right after any prefix of it that covers it.
    let mut kept: Vec<String> = Vec::new();
    for prefix in prefixes {
        if !kept.last().is_some_and(|shorter| prefix.starts_with(shorter.as_str())) {
            kept.push(prefix);
        }
    }
    Ok(kept)
}

/// The first name after every name that starts with `prefix` (the names' characters are all
/// below U+007F, and SQLite compares text byte by byte): `prefix <= name < end` selects them.
pub fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{7f}")
}

const CURSOR_VERSION: &str = "1.";

/// The opaque `cursor` that continues a listing after `name`.
pub fn encode_cursor(name: &str) -> String {
    format!("{CURSOR_VERSION}{}", URL_SAFE_NO_PAD.encode(name))
}

pub fn decode_cursor(cursor: &str) -> Result<String, ProtocolError> {
    cursor
        .strip_prefix(CURSOR_VERSION)
        .and_then(|encoded| URL_SAFE_NO_PAD.decode(encoded).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|name| crate::subject::validate_subject(name).is_ok())
        .ok_or_else(|| ProtocolError::bad_request("`cursor` is not one this server gave out; list again without it"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &[(&'static str, &'static str)]) -> Result<ListParams, ProtocolError> {
        parse_list_params(query.iter().copied())
    }

    #[test]
    fn config_defaults_ranges_and_prefixes() {
        assert_eq!(DirectoryConfig::from_lookup(|_| None).unwrap(), DirectoryConfig::default());
        let set = |name: &'static str, value: &'static str| move |n: &str| (n == name).then(|| value.to_owned());
        assert_eq!(DirectoryConfig::from_lookup(set("DIRECTORY_REPORT_MS", "0")).unwrap().report_ms, 0);
        assert_eq!(DirectoryConfig::from_lookup(set("DIRECTORY_REPORT_MS", "250")).unwrap().report_ms, 250);
        assert_eq!(DirectoryConfig::from_lookup(set("DIRECTORY_REPORT_MS", "50")).unwrap_err().variable, "DIRECTORY_REPORT_MS");
        assert_eq!(DirectoryConfig::from_lookup(set("METRICS_MAX_SUBJECTS", "x")).unwrap_err().variable, "METRICS_MAX_SUBJECTS");
        let c = DirectoryConfig::from_lookup(set("METRICS_SUBJECT_PREFIXES", "orders., billing")).unwrap();
        assert_eq!(c.metrics_subject_prefixes, ["billing", "orders."]);
        assert_eq!(DirectoryConfig::from_lookup(set("METRICS_SUBJECT_PREFIXES", "a/b")).unwrap_err().variable, "METRICS_SUBJECT_PREFIXES");
    }

    #[test]
    fn wrangler_toml_sets_every_variable_to_its_default() {
        let value = crate::config::wrangler_toml_var;
        for variable in VARIABLES {
            assert!(value(variable).is_some(), "{variable} is missing from wrangler.toml [vars]");
        }
        assert_eq!(DirectoryConfig::from_lookup(value).unwrap(), DirectoryConfig::default());
    }

    #[test]
    fn reports_wait_for_a_change_and_the_interval() {
        assert_eq!(next_report_at(false, 1_000, 5_000), None);
        assert_eq!(next_report_at(true, 1_000, 5_000), Some(6_000));
        assert_eq!(next_report_at(true, 0, 5_000), Some(5_000), "not reported since loading: due at once");
        assert_eq!(next_report_at(true, 1_000, 0), None, "reports are off");
    }

    #[test]
    fn vacant_subjects_are_reported_without_stats() {
        let stats = SubjectStats { epoch: "e".into(), first: 1, ..SubjectStats::default() };
        let consumer = ConsumerStats { name: "c".into(), pending: 0, ack_pending: 0, redelivered: 0 };
        let vacant = Report::new("s".into(), stats.clone(), vec![consumer.clone()], Counters::default());
        assert_eq!((vacant.stats, vacant.consumers.len()), (None, 0));
        for listed in [
            SubjectStats { last: 1, ..stats.clone() },
            SubjectStats { connections: 1, ..stats.clone() },
            SubjectStats { consumers: 1, ..stats.clone() },
        ] {
            assert!(Report::new("s".into(), listed, vec![consumer.clone()], Counters::default()).stats.is_some());
        }
    }

    #[test]
    fn listing_entries_use_the_documented_names_in_order() {
        let entry = SubjectEntry { subject: "orders".into(), stats: SubjectStats { epoch: "e".into(), ..Default::default() }, as_of: 5 };
        let json = serde_json::to_value(&entry).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["subject", "first", "last", "count", "bytes", "connections", "subscribers", "consumers", "lastPublishTs", "epoch", "asOf"]
        );
        assert_eq!(serde_json::from_value::<SubjectEntry>(json).unwrap(), entry);
    }

    #[test]
    fn list_parameters() {
        assert_eq!(params(&[]).unwrap(), ListParams { prefix: String::new(), limit: 100, after: None });
        let cursor = encode_cursor("orders.7");
        let query = [("prefix", "orders."), ("limit", "5"), ("cursor", cursor.as_str()), ("apiKey", "k")];
        let parsed = parse_list_params(query.iter().copied()).unwrap();
        assert_eq!(parsed, ListParams { prefix: "orders.".into(), limit: 5, after: Some("orders.7".into()) });
        assert_eq!(params(&[("cursor", "")]).unwrap().after, None, "an empty cursor starts at the beginning");
        assert!(params(&[("limit", "0")]).unwrap_err().message.contains("between 1 and 1000"));
        assert!(params(&[("limit", "1001")]).is_err());
        assert!(params(&[("prefix", "a/b")]).unwrap_err().message.contains("start of a subject name"));
        assert!(params(&[("cursor", "nope")]).unwrap_err().message.contains("list again without it"));
        assert!(params(&[("sort", "x")]).unwrap_err().message.contains("unknown query parameter `sort`"));
        assert!(params(&[("limit", "1"), ("limit", "2")]).unwrap_err().message.contains("more than once"));
    }

    #[test]
    fn cursors_are_opaque_and_checked() {
        for name in ["a", "orders.eu-1_x~y", &"z".repeat(128)] {
            assert_eq!(decode_cursor(&encode_cursor(name)).unwrap(), name);
        }
        assert!(!encode_cursor("orders").contains("orders"));
        for bad in ["", "1.", "2.b3JkZXJz", "1.!!", "1.YS9i" /* "a/b" */] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefix_ranges_select_exactly_the_names_that_start_with_it() {
        let end = prefix_end("orders.");
        for inside in ["orders.", "orders.a", "orders.~~~", "orders.zzz"] {
            assert!("orders." <= inside && inside < end.as_str(), "{inside}");
        }
        for outside in ["orders", "orders-", "orders/", "ordersa", "p"] {
            assert!(!("orders." <= outside && outside < end.as_str()), "{outside}");
        }
        assert!("~~~" < prefix_end("").as_str());
    }

    #[test]
    fn metric_prefixes_are_sorted_and_not_covered_twice() {
        assert_eq!(parse_prefixes("").unwrap(), [""]);
        assert_eq!(parse_prefixes("b.,a., a.x,b").unwrap(), ["a.", "b"]);
        assert_eq!(parse_prefixes("x,,y,").unwrap(), ["x", "y"], "empty entries are left out");
        assert_eq!(parse_prefixes(" , ").unwrap(), [""]);
        assert!(parse_prefixes("a b").is_err());
        assert!(parse_prefixes(&vec!["a"; 65].join(",")).unwrap_err().message.contains("at most 64"));
        assert_eq!(parse_metrics_params([("prefix", "t.")]).unwrap(), Some(vec!["t.".to_owned()]));
        assert_eq!(parse_metrics_params([]).unwrap(), None);
        assert!(parse_metrics_params([("limit", "1")]).is_err());
    }
}
