//! The query of `GET /v1/files`: `prefix`, `delimiter`, `cursor` and `limit`.

use super::key::MAX_KEY_BYTES;
use durable_stream_protocol::ProtocolError;

/// Most objects one listing returns (R2's own maximum), also the default.
pub const MAX_LIST_LIMIT: u32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub prefix: Option<String>,
    pub delimiter: Option<String>,
    pub cursor: Option<String>,
    pub limit: u32,
}

/// Parses decoded query pairs. Empty values count as absent; other parameters (such as `apiKey`)
/// are ignored; a listing parameter given twice is refused rather than guessed at.
pub fn parse_list_query<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<ListQuery, ProtocolError>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut query = ListQuery { prefix: None, delimiter: None, cursor: None, limit: MAX_LIST_LIMIT };
    let mut limit_seen = false;
    for (name, value) in pairs {
        let (name, value) = (name.as_ref(), value.as_ref());
        let slot = match name {
            "prefix" => &mut query.prefix,
            "delimiter" => &mut query.delimiter,
            "cursor" => &mut query.cursor,
            "limit" => {
                if std::mem::replace(&mut limit_seen, true) {
                    return Err(duplicate(name));
                }
                query.limit = parse_limit(value)?;
                continue;
            }
            _ => continue,
        };
        if slot.is_some() {
            return Err(duplicate(name));
        }
        // A prefix or delimiter longer than any key cannot match; cursors are R2's opaque tokens.
        if name != "cursor" && value.len() > MAX_KEY_BYTES {
            return Err(ProtocolError::bad_request(format!("{name} is longer than {MAX_KEY_BYTES} bytes")));
        }
        *slot = Some(value.to_owned()).filter(|v| !v.is_empty());
    }
    Ok(query)
}

fn duplicate(name: &str) -> ProtocolError {
    // The same rule and wording as the stream API's parameters.
    durable_stream_protocol::http_params::repeated_parameter(name)
}

fn parse_limit(value: &str) -> Result<u32, ProtocolError> {
    let invalid = || ProtocolError::bad_request(format!("limit must be an integer from 1 to {MAX_LIST_LIMIT}, got {value:?}"));
    // Digits only: u32's parser would also accept a leading '+'.
    if value.is_empty() || value.len() > 4 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    value.parse::<u32>().ok().filter(|n| (1..=MAX_LIST_LIMIT).contains(n)).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<ListQuery, ProtocolError> {
        parse_list_query(pairs.iter().copied())
    }

    #[test]
    fn defaults_and_values() {
        let q = parse(&[("apiKey", "k")]).unwrap();
        assert_eq!(q, ListQuery { prefix: None, delimiter: None, cursor: None, limit: 1000 });
        let q = parse(&[("prefix", "a/"), ("delimiter", "/"), ("cursor", "c"), ("limit", "7")]).unwrap();
        assert_eq!(q.prefix.as_deref(), Some("a/"));
        assert_eq!(q.delimiter.as_deref(), Some("/"));
        assert_eq!(q.cursor.as_deref(), Some("c"));
        assert_eq!(q.limit, 7);
        assert_eq!(parse(&[("prefix", ""), ("cursor", "")]).unwrap().prefix, None);
    }

    #[test]
    fn limit_bounds() {
        assert_eq!(parse(&[("limit", "1")]).unwrap().limit, 1);
        assert_eq!(parse(&[("limit", "1000")]).unwrap().limit, 1000);
        for bad in ["", "0", "1001", "5000", "abc", "+5", "-1", " 5", "1e3", "99999999999"] {
            assert!(parse(&[("limit", bad)]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn duplicates_and_oversized_values_are_refused() {
        assert!(parse(&[("limit", "1"), ("limit", "2")]).is_err());
        assert!(parse(&[("prefix", "a"), ("prefix", "b")]).is_err());
        assert!(parse(&[("prefix", &"p".repeat(1025))]).is_err());
    }
}
