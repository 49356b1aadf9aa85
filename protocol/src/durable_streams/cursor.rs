//! `Stream-Cursor`: the number of 20-second intervals since 2024-10-09T00:00:00Z, returned on
//! live reads so that CDNs collapse identical long-polls. A client that echoes a cursor at or
//! ahead of the current interval gets a strictly larger one (with random jitter), so cached
//! responses can never cycle.

pub const INTERVAL_MS: u64 = 20_000;
pub const EPOCH_MS: u64 = 1_728_432_000_000;
const MAX_JITTER_SECONDS: u64 = 3600;

/// `random` is uniform in [0, 1) (the caller owns the randomness).
pub fn next_cursor(now_ms: u64, client_cursor: Option<&str>, random: f64) -> String {
    let current = now_ms.saturating_sub(EPOCH_MS) / INTERVAL_MS;
    let Some(client) = client_cursor.and_then(|c| c.parse::<u64>().ok()) else { return current.to_string() };
    if client < current {
        return current.to_string();
    }
    let jitter_seconds = 1 + ((random.clamp(0.0, 0.999_999) * MAX_JITTER_SECONDS as f64) as u64);
    let jitter_intervals = jitter_seconds.div_ceil(INTERVAL_MS / 1000).max(1);
    (client + jitter_intervals).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_intervals_and_never_repeat() {
        let now = EPOCH_MS + 45_000;
        assert_eq!(next_cursor(now, None, 0.5), "2");
        assert_eq!(next_cursor(now, Some("1"), 0.5), "2");
        assert_eq!(next_cursor(now, Some("junk"), 0.5), "2");
        assert_eq!(next_cursor(now, Some("2"), 0.0), "3");
        let advanced: u64 = next_cursor(now, Some("7"), 0.9999).parse().unwrap();
        assert!(advanced > 7 && advanced <= 7 + 180);
    }
}
