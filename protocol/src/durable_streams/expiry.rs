//! Stream lifetime: `Stream-TTL` (seconds of idleness, renewed by reads and writes but not by
//! HEAD) or `Stream-Expires-At` (an absolute RFC 3339 time), never both.

use super::parse_header_uint;
use crate::error::ProtocolError;

/// The lifetime a create asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lifetime {
    pub ttl_seconds: Option<u64>,
    /// The header as sent (echoed by HEAD) and its instant in ms since the epoch.
    pub expires_at: Option<(String, u64)>,
}

pub fn parse_lifetime(ttl: Option<&str>, expires_at: Option<&str>) -> Result<Lifetime, ProtocolError> {
    if ttl.is_some() && expires_at.is_some() {
        return Err(ProtocolError::bad_request("give Stream-TTL or Stream-Expires-At, not both"));
    }
    let ttl_seconds = ttl.map(|v| parse_header_uint("Stream-TTL", v)).transpose()?;
    let expires_at = expires_at
        .map(|v| {
            parse_rfc3339_ms(v.trim())
                .map(|ms| (v.trim().to_owned(), ms))
                .ok_or_else(|| ProtocolError::bad_request(format!("Stream-Expires-At must be an RFC 3339 time, got {v:?}")))
        })
        .transpose()?;
    Ok(Lifetime { ttl_seconds, expires_at })
}

/// When a stream expires: `expires_at_ms`, or `ttl` after its last access.
pub fn deadline(ttl_seconds: Option<u64>, last_access_ms: u64, expires_at_ms: Option<u64>) -> Option<u64> {
    let by_ttl = ttl_seconds.map(|ttl| last_access_ms.saturating_add(ttl.saturating_mul(1000)));
    match (by_ttl, expires_at_ms) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (`T` or space, `z` accepted) to ms since the epoch.
pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(range)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &text[19..];
    let mut millis = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse().ok()?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let tz = &rest[1..];
            if tz.len() != 5 || tz.as_bytes()[2] != b':' {
                return None;
            }
            let (h, m): (i64, i64) = (tz[..2].parse().ok()?, tz[3..].parse().ok()?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 60 + m)
        }
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month[(month - 1) as usize] || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = ((days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60) * 1000) + millis;
    u64::try_from(ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("2024-10-09T00:00:00.000Z"), Some(1_728_432_000_000));
        assert_eq!(parse_rfc3339_ms("2024-10-09T02:00:00.5+02:00"), Some(1_728_432_000_500));
        assert_eq!(parse_rfc3339_ms("2024-02-29T12:00:00Z"), Some(1_709_208_000_000));
        for bad in ["not-a-timestamp", "2024-02-30T00:00:00Z", "2024-10-09", "2024-10-09T00:00:00", "2024-13-01T00:00:00Z", "2024-10-09T00:00:00+0200"] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn lifetime_headers() {
        assert_eq!(parse_lifetime(None, None).unwrap(), Lifetime::default());
        assert_eq!(parse_lifetime(Some("3600"), None).unwrap().ttl_seconds, Some(3600));
        for bad in ["abc", "-1", "00060", "+60", "60.5", "1e3"] {
            assert!(parse_lifetime(Some(bad), None).is_err(), "{bad}");
        }
        assert!(parse_lifetime(Some("1"), Some("2030-01-01T00:00:00Z")).is_err());
        let l = parse_lifetime(None, Some("1970-01-01T00:00:01Z")).unwrap();
        assert_eq!(l.expires_at, Some(("1970-01-01T00:00:01Z".into(), 1000)));
    }

    #[test]
    fn deadlines() {
        assert_eq!(deadline(None, 5, None), None);
        assert_eq!(deadline(Some(2), 1000, None), Some(3000));
        assert_eq!(deadline(None, 1000, Some(50)), Some(50));
        assert_eq!(deadline(Some(2), 1000, Some(2500)), Some(2500));
    }
}
