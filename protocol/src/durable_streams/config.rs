//! Limits of the Durable Streams mount, read from the Worker's variables like `Config`.

use crate::config::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsConfig {
    /// How long a long-poll waits for data before answering 204 (`DS_LONG_POLL_MS`).
    pub long_poll_ms: u64,
    /// Interval of SSE keep-alive control events (`DS_SSE_HEARTBEAT_MS`).
    pub sse_heartbeat_ms: u64,
    /// How long one SSE response stays open before the server ends it; clients reconnect from
    /// their last offset (`DS_SSE_MAX_MS`).
    pub sse_max_ms: u64,
    /// Long-polls plus SSE connections one stream holds at once (`DS_MAX_LIVE_READERS`).
    pub max_live_readers: usize,
    /// Most bytes a fork copies from its source (`DS_MAX_FORK_BYTES`).
    pub max_fork_bytes: u64,
}

impl Default for DsConfig {
    fn default() -> Self {
        DsConfig {
            long_poll_ms: 20_000,
            sse_heartbeat_ms: 15_000,
            sse_max_ms: 300_000,
            max_live_readers: 1000,
            max_fork_bytes: 16 * 1024 * 1024,
        }
    }
}

pub const VARIABLES: &[&str] = &["DS_LONG_POLL_MS", "DS_SSE_HEARTBEAT_MS", "DS_SSE_MAX_MS", "DS_MAX_LIVE_READERS", "DS_MAX_FORK_BYTES"];

impl DsConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<DsConfig, ConfigError> {
        let mut config = DsConfig::default();
        let read = |variable: &'static str, min: u64, max: u64| -> Result<Option<u64>, ConfigError> {
            let Some(value) = lookup(variable) else { return Ok(None) };
            value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .map(Some)
                .ok_or_else(|| ConfigError { variable, reason: format!("{value:?} is not an integer between {min} and {max}") })
        };
        if let Some(v) = read("DS_LONG_POLL_MS", 100, 120_000)? {
            config.long_poll_ms = v;
        }
        if let Some(v) = read("DS_SSE_HEARTBEAT_MS", 100, 120_000)? {
            config.sse_heartbeat_ms = v;
        }
        if let Some(v) = read("DS_SSE_MAX_MS", 1000, 3_600_000)? {
            config.sse_max_ms = v;
        }
        if let Some(v) = read("DS_MAX_LIVE_READERS", 1, 100_000)? {
            config.max_live_readers = v as usize;
        }
        if let Some(v) = read("DS_MAX_FORK_BYTES", 0, 1 << 30)? {
            config.max_fork_bytes = v;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(DsConfig::from_lookup(|_| None).unwrap(), DsConfig::default());
        let c = DsConfig::from_lookup(|n| (n == "DS_LONG_POLL_MS").then(|| "3000".into())).unwrap();
        assert_eq!(c.long_poll_ms, 3000);
        let e = DsConfig::from_lookup(|n| (n == "DS_MAX_LIVE_READERS").then(|| "0".into())).unwrap_err();
        assert_eq!(e.variable, "DS_MAX_LIVE_READERS");
    }

    #[test]
    fn wrangler_toml_sets_every_variable_to_its_default() {
        let value = crate::config::wrangler_toml_var;
        for variable in VARIABLES {
            assert!(value(variable).is_some(), "{variable} is missing from wrangler.toml [vars]");
        }
        assert_eq!(DsConfig::from_lookup(value).unwrap(), DsConfig::default());
    }
}
