//! Server limits and defaults, read from the Worker's variables (`[vars]` in wrangler.toml).
//!
//! Every field has a default; a variable that is set must be a non-negative integer in range,
//! or the server refuses to start the subject (a misconfiguration is never silently ignored).

use std::fmt;

/// Limits and timings of one subject. `0` in a retention field means "no limit".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Largest WebSocket text frame or HTTP request body, in bytes.
    pub max_frame_bytes: usize,
    /// Most messages in one batch publish.
    pub max_batch_messages: usize,
    /// How long a `msgId` / `Idempotency-Key` is remembered, in milliseconds.
    pub dedup_window_ms: u64,
    /// How long a delivered message may stay unacknowledged before it is sent again.
    pub ack_wait_ms: u64,
    /// How many times the same unacknowledged messages are delivered before they are skipped.
    pub max_deliver: u32,
    /// In-flight (unacknowledged) messages per subscriber when `sub` names no window.
    pub default_window: u32,
    /// Largest window a subscriber may ask for.
    pub max_window: u32,
    /// Most messages read from storage per page while a subscriber catches up.
    pub replay_page_messages: usize,
    /// Most bytes packed into one `msgs` frame during catch-up.
    pub replay_frame_bytes: usize,
    /// Retention: most messages kept (oldest dropped first).
    pub retention_max_messages: u64,
    /// Retention: most bytes of message data kept.
    pub retention_max_bytes: u64,
    /// Retention: oldest message age kept, in milliseconds.
    pub retention_max_age_ms: u64,
    /// Largest per-subject state object, in bytes of JSON.
    pub max_state_bytes: usize,
    /// Most WebSocket connections one subject accepts at once.
    pub max_connections: usize,
    /// Most arrays and objects nested in one message or state document.
    pub max_json_depth: usize,
    /// Publish rate limits (`0` = unlimited): per WebSocket connection, and per token `sub`
    /// (a token's `limits` claim overrides the per-token ones for it).
    pub pub_rate_per_connection: u64,
    pub pub_bytes_rate_per_connection: u64,
    pub pub_rate_per_token: u64,
    pub pub_bytes_rate_per_token: u64,
    /// Longest lifetime of an access token, in seconds (and how long a revocation is kept).
    pub token_max_lifetime_s: u64,
    /// How often a subject with token-authenticated sockets checks for revocations, in ms.
    pub revocation_check_ms: u64,
    /// Most headers on one message.
    pub max_headers: usize,
    /// Most bytes of header names and values together on one message.
    pub max_header_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_bytes: 1024 * 1024,
            max_batch_messages: 1000,
            dedup_window_ms: 120_000,
            ack_wait_ms: 30_000,
            max_deliver: 5,
            default_window: 1000,
            max_window: 10_000,
            replay_page_messages: 1000,
            replay_frame_bytes: 256 * 1024,
            retention_max_messages: 0,
            retention_max_bytes: 0,
            retention_max_age_ms: 0,
            max_state_bytes: 64 * 1024,
            max_connections: 5000,
            max_json_depth: 64,
            pub_rate_per_connection: 0,
            pub_bytes_rate_per_connection: 0,
            pub_rate_per_token: 0,
            pub_bytes_rate_per_token: 0,
            token_max_lifetime_s: 7 * 86_400,
            revocation_check_ms: 5_000,
            max_headers: 32,
            max_header_bytes: 8 * 1024,
        }
    }
}

/// A variable that is set but not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration variable {}: {}", self.variable, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// The variable names, as documented in the README's configuration table.
pub const VARIABLES: &[&str] = &[
    "MAX_FRAME_BYTES",
    "MAX_BATCH_MESSAGES",
    "DEDUP_WINDOW_MS",
    "ACK_WAIT_MS",
    "MAX_DELIVER",
    "DEFAULT_WINDOW",
    "MAX_WINDOW",
    "REPLAY_PAGE_MESSAGES",
    "REPLAY_FRAME_BYTES",
    "RETENTION_MAX_MESSAGES",
    "RETENTION_MAX_BYTES",
    "RETENTION_MAX_AGE_MS",
    "MAX_STATE_BYTES",
    "MAX_CONNECTIONS",
    "MAX_JSON_DEPTH",
    "PUB_RATE_PER_CONNECTION",
    "PUB_BYTES_RATE_PER_CONNECTION",
    "PUB_RATE_PER_TOKEN",
    "PUB_BYTES_RATE_PER_TOKEN",
    "TOKEN_MAX_LIFETIME_S",
    "REVOCATION_CHECK_MS",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
];

/// The deepest `MAX_JSON_DEPTH` allowed: a message inside the deepest envelope the server
/// sends (`{"messages":[{"data":…}]}`, 3 levels) must stay within the 127 levels that
/// serde_json reads by default.
pub const MAX_JSON_DEPTH_LIMIT: u64 = 124;

impl Config {
    /// Reads every variable through `lookup` (None = unset, keeps the default).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let d = Config::default();
        let read = |variable: &'static str, default: u64, min: u64, max: u64| read_integer(&lookup, variable, default, min, max);
        const MIB: u64 = 1024 * 1024;
        let config = Config {
            max_frame_bytes: read("MAX_FRAME_BYTES", d.max_frame_bytes as u64, 1024, 32 * MIB)? as usize,
            max_batch_messages: read("MAX_BATCH_MESSAGES", d.max_batch_messages as u64, 1, 100_000)? as usize,
            dedup_window_ms: read("DEDUP_WINDOW_MS", d.dedup_window_ms, 0, 7 * 86_400_000)?,
            ack_wait_ms: read("ACK_WAIT_MS", d.ack_wait_ms, 100, 86_400_000)?,
            max_deliver: read("MAX_DELIVER", d.max_deliver as u64, 1, 1000)? as u32,
            default_window: read("DEFAULT_WINDOW", d.default_window as u64, 1, 1_000_000)? as u32,
            max_window: read("MAX_WINDOW", d.max_window as u64, 1, 1_000_000)? as u32,
            replay_page_messages: read("REPLAY_PAGE_MESSAGES", d.replay_page_messages as u64, 1, 100_000)? as usize,
            replay_frame_bytes: read("REPLAY_FRAME_BYTES", d.replay_frame_bytes as u64, 1024, 32 * MIB)? as usize,
            retention_max_messages: read("RETENTION_MAX_MESSAGES", d.retention_max_messages, 0, u64::MAX)?,
            retention_max_bytes: read("RETENTION_MAX_BYTES", d.retention_max_bytes, 0, u64::MAX)?,
            retention_max_age_ms: read("RETENTION_MAX_AGE_MS", d.retention_max_age_ms, 0, u64::MAX)?,
            max_state_bytes: read("MAX_STATE_BYTES", d.max_state_bytes as u64, 2, 32 * MIB)? as usize,
            max_connections: read("MAX_CONNECTIONS", d.max_connections as u64, 1, 32_768)? as usize,
            max_json_depth: read("MAX_JSON_DEPTH", d.max_json_depth as u64, 1, MAX_JSON_DEPTH_LIMIT)? as usize,
            pub_rate_per_connection: read("PUB_RATE_PER_CONNECTION", 0, 0, u32::MAX as u64)?,
            pub_bytes_rate_per_connection: read("PUB_BYTES_RATE_PER_CONNECTION", 0, 0, u64::MAX >> 11)?,
            pub_rate_per_token: read("PUB_RATE_PER_TOKEN", 0, 0, u32::MAX as u64)?,
            pub_bytes_rate_per_token: read("PUB_BYTES_RATE_PER_TOKEN", 0, 0, u64::MAX >> 11)?,
            token_max_lifetime_s: read("TOKEN_MAX_LIFETIME_S", d.token_max_lifetime_s, 60, 10 * 366 * 86_400)?,
            revocation_check_ms: read("REVOCATION_CHECK_MS", d.revocation_check_ms, 500, 60_000)?,
            max_headers: read("MAX_HEADERS", d.max_headers as u64, 0, 1000)? as usize,
            max_header_bytes: read("MAX_HEADER_BYTES", d.max_header_bytes as u64, 0, MIB)? as usize,
        };
        if config.default_window > config.max_window {
            return Err(ConfigError {
                variable: "DEFAULT_WINDOW",
                reason: format!("must not exceed MAX_WINDOW ({})", config.max_window),
            });
        }
        Ok(config)
    }
}

/// Reads one integer variable through `lookup`: `default` when unset or blank, else a
/// non-negative integer from `min` to `max`.
pub fn read_integer(lookup: impl Fn(&str) -> Option<String>, variable: &'static str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    let Some(raw) = lookup(variable) else { return Ok(default) };
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(default);
    }
    let value: u64 = raw.parse().map_err(|_| ConfigError { variable, reason: "expected a non-negative integer".into() })?;
    if value < min || value > max {
        return Err(ConfigError { variable, reason: format!("must be between {min} and {max}") });
    }
    Ok(value)
}

/// The value of a `[vars]` entry in the project's wrangler.toml, for the tests that check it
/// sets each variable to its default.
#[cfg(test)]
pub(crate) fn wrangler_toml_var(name: &str) -> Option<String> {
    include_str!("../../wrangler.toml")
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim_start().strip_prefix('=').map(|v| v.trim().trim_matches('"').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn unset_variables_keep_the_defaults() {
        assert_eq!(with(&[]).unwrap(), Config::default());
        assert_eq!(with(&[("ACK_WAIT_MS", " ")]).unwrap(), Config::default());
    }

    #[test]
    fn set_variables_override_the_defaults() {
        let c = with(&[("ACK_WAIT_MS", "500"), ("RETENTION_MAX_MESSAGES", "10"), ("MAX_DELIVER", "2")]).unwrap();
        assert_eq!(c.ack_wait_ms, 500);
        assert_eq!(c.retention_max_messages, 10);
        assert_eq!(c.max_deliver, 2);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = with(&[("ACK_WAIT_MS", "soon")]).unwrap_err();
        assert_eq!(e.variable, "ACK_WAIT_MS");
        let e = with(&[("MAX_FRAME_BYTES", "10")]).unwrap_err();
        assert_eq!(e.variable, "MAX_FRAME_BYTES");
        assert!(e.to_string().contains("between"));
        let e = with(&[("DEFAULT_WINDOW", "20"), ("MAX_WINDOW", "10")]).unwrap_err();
        assert_eq!(e.variable, "DEFAULT_WINDOW");
        assert!(with(&[("MAX_DELIVER", "-1")]).is_err());
        assert_eq!(with(&[("MAX_JSON_DEPTH", "124")]).unwrap().max_json_depth, 124);
        assert!(with(&[("MAX_JSON_DEPTH", "125")]).unwrap_err().to_string().contains("between 1 and 124"));
        assert_eq!(with(&[("MAX_HEADERS", "0"), ("MAX_HEADER_BYTES", "1048576")]).map(|c| (c.max_headers, c.max_header_bytes)), Ok((0, 1024 * 1024)));
        assert!(with(&[("MAX_HEADERS", "1001")]).unwrap_err().to_string().contains("between 0 and 1000"));
        assert!(with(&[("MAX_HEADER_BYTES", "1048577")]).is_err());
    }

    #[test]
    fn every_documented_variable_is_read() {
        for variable in VARIABLES {
            let e = with(&[(variable, "x")]).unwrap_err();
            assert_eq!(&e.variable, variable);
        }
    }
}
