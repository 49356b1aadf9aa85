//! Query parameters: of `GET /v1/files` (`prefix`, `delimiter`, `cursor`, `limit`, `uploads`)
//! and the subresources of `/v1/files/{key}` (`uploads`, `uploadId`, `partNumber`, `partSize`,
//! `link`).

use super::key::MAX_KEY_BYTES;
use durable_stream_protocol::files::{parse_part_number, parse_part_size, parse_upload_id};
use durable_stream_protocol::ProtocolError;

/// Most objects one listing returns (R2's own maximum), also the default.
pub const MAX_LIST_LIMIT: u32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub prefix: Option<String>,
    pub delimiter: Option<String>,
    pub cursor: Option<String>,
    pub limit: u32,
    /// `?uploads`: list unfinished uploads in parts instead of files.
    pub uploads: bool,
}

/// Parses decoded query pairs. Empty values count as absent; other parameters (such as `apiKey`)
/// are ignored; a listing parameter given twice is refused rather than guessed at.
pub fn parse_list_query<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<ListQuery, ProtocolError>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut query = ListQuery { prefix: None, delimiter: None, cursor: None, limit: MAX_LIST_LIMIT, uploads: false };
    let mut limit_seen = false;
    for (name, value) in pairs {
        let (name, value) = (name.as_ref(), value.as_ref());
        let slot = match name {
            "uploads" => {
                if std::mem::replace(&mut query.uploads, true) {
                    return Err(duplicate(name));
                }
                continue;
            }
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
    if query.uploads && query.delimiter.is_some() {
        return Err(ProtocolError::bad_request("`delimiter` does not apply to a listing of uploads (`?uploads`)"));
    }
    Ok(query)
}

/// What a request to `/v1/files/{key}` addresses besides the file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subresource {
    /// The file.
    None,
    /// `?uploads[&partSize=N]`: a new upload in parts.
    Uploads { part_size: Option<u64> },
    /// `?uploadId=…[&partNumber=N]`: an upload in parts, or one part of it.
    Upload { upload_id: String, part_number: Option<u16> },
    /// `?link`: a signed link to the file.
    Link,
}

impl Subresource {
    /// The parameter naming it and the operations it has, for the refusal of any other.
    pub fn operations(&self) -> (&'static str, &'static str) {
        match self {
            Subresource::None => ("", "GET, HEAD, PUT, POST, DELETE"),
            Subresource::Uploads { .. } => ("?uploads", "POST (create an upload in parts)"),
            Subresource::Upload { part_number: Some(_), .. } => ("?uploadId=…&partNumber=…", "PUT (upload that part)"),
            Subresource::Upload { part_number: None, .. } => {
                ("?uploadId=…", "GET (list its parts), POST (complete it), DELETE (abort it)")
            }
            Subresource::Link => ("?link", "POST (create a signed link)"),
        }
    }
}

/// Parses the query of `/v1/files/{key}`. Other parameters are ignored, as before subresources
/// existed; a subresource parameter given twice, two subresources at once, or a parameter that
/// belongs to another subresource are refused.
pub fn parse_subresource<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Subresource, ProtocolError>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let (mut uploads, mut upload_id, mut part_number, mut part_size, mut link) = (None, None, None, None, None);
    for (name, value) in pairs {
        let (name, value) = (name.as_ref(), value.as_ref());
        let slot = match name {
            "uploads" => &mut uploads,
            "uploadId" => &mut upload_id,
            "partNumber" => &mut part_number,
            "partSize" => &mut part_size,
            "link" => &mut link,
            _ => continue,
        };
        if slot.replace(value.to_owned()).is_some() {
            return Err(duplicate(name));
        }
    }
    let subresource = match (uploads, upload_id, link) {
        (None, None, None) => Subresource::None,
        (Some(_), None, None) => Subresource::Uploads { part_size: part_size.take().map(|v| parse_part_size(&v)).transpose()? },
        (None, Some(id), None) => Subresource::Upload {
            upload_id: parse_upload_id(&id)?.to_owned(),
            part_number: part_number.take().map(|v| parse_part_number(&v)).transpose()?,
        },
        (None, None, Some(_)) => Subresource::Link,
        _ => return Err(ProtocolError::bad_request("give at most one of `uploads`, `uploadId` and `link`")),
    };
    if part_number.is_some() {
        return Err(ProtocolError::bad_request("`partNumber` goes with `uploadId` (PUT …?uploadId=…&partNumber=N)"));
    }
    if part_size.is_some() {
        return Err(ProtocolError::bad_request("`partSize` goes with `uploads` (POST …?uploads&partSize=N)"));
    }
    Ok(subresource)
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
        assert_eq!(q, ListQuery { prefix: None, delimiter: None, cursor: None, limit: 1000, uploads: false });
        assert!(parse(&[("uploads", ""), ("prefix", "a/")]).unwrap().uploads);
        assert!(parse(&[("uploads", ""), ("delimiter", "/")]).is_err());
        assert!(parse(&[("uploads", ""), ("uploads", "")]).is_err());
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

    fn subresource(pairs: &[(&str, &str)]) -> Result<Subresource, ProtocolError> {
        parse_subresource(pairs.iter().copied())
    }

    #[test]
    fn subresources_parse() {
        assert_eq!(subresource(&[("apiKey", "k"), ("v", "2")]).unwrap(), Subresource::None);
        assert_eq!(subresource(&[("uploads", "")]).unwrap(), Subresource::Uploads { part_size: None });
        assert_eq!(
            subresource(&[("uploads", ""), ("partSize", "5242880")]).unwrap(),
            Subresource::Uploads { part_size: Some(5_242_880) }
        );
        assert_eq!(
            subresource(&[("uploadId", "u1"), ("partNumber", "3")]).unwrap(),
            Subresource::Upload { upload_id: "u1".into(), part_number: Some(3) }
        );
        assert_eq!(subresource(&[("uploadId", "u1")]).unwrap(), Subresource::Upload { upload_id: "u1".into(), part_number: None });
        assert_eq!(subresource(&[("link", "")]).unwrap(), Subresource::Link);
    }

    #[test]
    fn subresource_mixtures_and_strays_are_refused() {
        for bad in [
            &[("uploads", ""), ("link", "")][..],
            &[("uploads", ""), ("uploadId", "u")],
            &[("uploadId", "u"), ("uploadId", "v")],
            &[("uploadId", "")],
            &[("partNumber", "1")],
            &[("uploadId", "u"), ("partNumber", "0")],
            &[("uploadId", "u"), ("partSize", "5242880")],
            &[("uploads", ""), ("partSize", "1")],
            &[("link", ""), ("partNumber", "1")],
        ] {
            assert!(subresource(bad).is_err(), "{bad:?}");
        }
    }
}
