//! Uploads in parts (docs/PROTOCOL.md, "Uploads in parts"), shared by the Worker and the Rust
//! client: R2's multipart limits, the server's file limits, the JSON bodies both sides exchange,
//! and the checks of part numbers, part sizes and the part list that completes an upload.

use crate::config::{read_integer, ConfigError};
use crate::error::ProtocolError;
use serde::{Deserialize, Serialize};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// R2's smallest part: every part but the last has at least this many bytes.
pub const MIN_PART_BYTES: u64 = 5 * MIB;
/// R2's largest part.
pub const MAX_PART_BYTES: u64 = 5 * GIB;
/// Most parts in one upload (R2's limit): part numbers are `1..=MAX_PARTS`.
pub const MAX_PARTS: u16 = 10_000;
/// R2's largest upload in one request (not in parts).
pub const R2_SINGLE_PUT_MAX_BYTES: u64 = 5 * GIB - 5 * MIB;
/// R2's largest object (4.995 TiB), which only an upload in parts can make.
pub const R2_MAX_OBJECT_BYTES: u64 = 5 * 1024 * GIB - 5 * GIB;
/// The largest `FILE_PART_BYTES`: the Worker holds two such parts in memory for each upload it
/// splits itself, in an isolate of 128 MB.
pub const MAX_BUFFERED_PART_BYTES: u64 = 64 * MIB;
/// Longest upload id accepted in a query (R2's are far shorter).
pub const MAX_UPLOAD_ID_BYTES: usize = 1024;

/// The Worker's file limits, from its variables (`[vars]`; see the README's configuration table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimits {
    /// `MAX_FILE_BYTES`: the largest file, however it is uploaded.
    pub max_file_bytes: u64,
    /// `FILE_SINGLE_PUT_MAX_BYTES`: an upload with a `Content-Length` up to this is stored in
    /// one R2 put; a larger one, and one without `Content-Length`, goes to R2 in parts.
    pub single_put_max_bytes: u64,
    /// `FILE_PART_BYTES`: the size of the parts the Worker cuts an upload into, and the
    /// default `partSize` of an upload created with `?uploads`.
    pub part_bytes: u64,
}

impl Default for FileLimits {
    fn default() -> Self {
        FileLimits { max_file_bytes: R2_MAX_OBJECT_BYTES, single_put_max_bytes: R2_SINGLE_PUT_MAX_BYTES, part_bytes: 8 * MIB }
    }
}

impl FileLimits {
    /// Reads the three variables through `lookup` (None or blank = the default).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<FileLimits, ConfigError> {
        let d = FileLimits::default();
        let read = |variable, default, min, max| read_integer(&lookup, variable, default, min, max);
        Ok(FileLimits {
            max_file_bytes: read("MAX_FILE_BYTES", d.max_file_bytes, 1, R2_MAX_OBJECT_BYTES)?,
            single_put_max_bytes: read("FILE_SINGLE_PUT_MAX_BYTES", d.single_put_max_bytes, 1, R2_SINGLE_PUT_MAX_BYTES)?,
            part_bytes: read("FILE_PART_BYTES", d.part_bytes, MIN_PART_BYTES, MAX_BUFFERED_PART_BYTES)?,
        })
    }
}

/// The answer to `POST /v1/files/{key}?uploads` (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedUpload {
    pub key: String,
    pub upload_id: String,
    /// Every part but the last must have exactly this many bytes.
    pub part_size: u64,
}

/// A part R2 has stored: the answer to a part upload, and an entry of a part listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadedPart {
    pub part_number: u16,
    pub etag: String,
    pub size: u64,
}

/// The answer to `GET /v1/files/{key}?uploadId=…`: the upload and its parts, by part number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartListing {
    pub key: String,
    pub upload_id: String,
    pub part_size: u64,
    /// RFC 3339, UTC.
    pub created: String,
    pub parts: Vec<UploadedPart>,
}

/// The body of `POST /v1/files/{key}?uploadId=…`: `{"parts":[{"partNumber":1,"etag":"…"},…]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Completion {
    pub parts: Vec<PartRef>,
}

/// One part named by a completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartRef {
    pub part_number: u16,
    pub etag: String,
}

/// An unfinished upload in the answer to `GET /v1/files?uploads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnfinishedUpload {
    pub key: String,
    pub upload_id: String,
    pub part_size: u64,
    /// RFC 3339, UTC.
    pub created: String,
}

/// The answer to `GET /v1/files?uploads&prefix=…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadListing {
    pub uploads: Vec<UnfinishedUpload>,
    pub truncated: bool,
    /// Pass as `cursor` for the next page while `truncated`.
    pub cursor: Option<String>,
}

/// Digits only (a parser would also take `+5`), without saturating.
fn integer(text: &str) -> Option<u64> {
    Some(text).filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).and_then(|t| t.parse().ok())
}

/// The `partNumber` query parameter: `1..=MAX_PARTS`.
pub fn parse_part_number(text: &str) -> Result<u16, ProtocolError> {
    integer(text)
        .filter(|n| (1..=u64::from(MAX_PARTS)).contains(n))
        .map(|n| n as u16)
        .ok_or_else(|| ProtocolError::bad_request(format!("`partNumber` must be an integer between 1 and {MAX_PARTS}, got {text:?}")))
}

/// The `partSize` query parameter of `?uploads`: `MIN_PART_BYTES..=MAX_PART_BYTES`.
pub fn parse_part_size(text: &str) -> Result<u64, ProtocolError> {
    integer(text).filter(|n| (MIN_PART_BYTES..=MAX_PART_BYTES).contains(n)).ok_or_else(|| {
        ProtocolError::bad_request(format!(
            "`partSize` must be a byte count between {MIN_PART_BYTES} (5 MiB) and {MAX_PART_BYTES} (5 GiB), got {text:?}"
        ))
    })
}

/// The `uploadId` query parameter: what `?uploads` returned, so printable ASCII of bounded length.
pub fn parse_upload_id(text: &str) -> Result<&str, ProtocolError> {
    if text.is_empty() || text.len() > MAX_UPLOAD_ID_BYTES || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ProtocolError::bad_request(
            "`uploadId` must be the id that `POST …?uploads` returned (printable ASCII, at most 1024 bytes)",
        ));
    }
    Ok(text)
}

/// Whether part `part_number` of `length` bytes fits an upload of `part_size`-byte parts and a
/// file of at most `max_file_bytes`. Only the last part may be shorter than `part_size`, which
/// the completion checks (the last part is not known before).
pub fn check_part(part_size: u64, part_number: u16, length: u64, max_file_bytes: u64) -> Result<(), ProtocolError> {
    if length == 0 {
        return Err(ProtocolError::bad_request(format!("part {part_number} is empty; a part has at least 1 byte")));
    }
    if length > part_size {
        return Err(ProtocolError::too_large(format!(
            "part {part_number} is {length} bytes; this upload's parts are {part_size} bytes (only the last may be smaller)"
        )));
    }
    let end = (u64::from(part_number) - 1) * part_size + length;
    if end > max_file_bytes {
        return Err(ProtocolError::too_large(format!(
            "part {part_number} ends at byte {end} of the file; the limit is {max_file_bytes} bytes"
        )));
    }
    Ok(())
}

/// Checks the part list of a completion against the parts uploaded (`uploaded`, any order) and
/// returns the file's size: part numbers ascending without repeats, each uploaded, every part but
/// the last exactly `part_size` bytes (R2 requires equal parts). The etags are R2's to check: a
/// part uploaded twice at once (a killed client's last part and its resume's) may be recorded
/// here with the etag of the upload R2 did not keep.
pub fn check_completion(
    part_size: u64,
    requested: &[PartRef],
    uploaded: &[UploadedPart],
    max_file_bytes: u64,
) -> Result<u64, ProtocolError> {
    let Some(last) = requested.last() else {
        return Err(ProtocolError::bad_request(
            r#"`parts` is empty: list every part of the file, e.g. {"parts":[{"partNumber":1,"etag":"…"}]}"#,
        ));
    };
    if let Some(pair) = requested.windows(2).find(|pair| pair[1].part_number <= pair[0].part_number) {
        return Err(ProtocolError::bad_request(format!(
            "`parts` must list part numbers in ascending order, each once (part {} follows part {})",
            pair[1].part_number, pair[0].part_number
        )));
    }
    let mut size = 0u64;
    for part in requested {
        let number = part.part_number;
        let stored = uploaded.iter().find(|p| p.part_number == number).ok_or_else(|| {
            ProtocolError::bad_request(format!("part {number} was not uploaded; the upload's part listing shows what was"))
        })?;
        if number != last.part_number && stored.size != part_size {
            return Err(ProtocolError::bad_request(format!(
                "part {number} is {} bytes; every part but the last must be {part_size} bytes (the upload's partSize)",
                stored.size
            )));
        }
        size += stored.size;
    }
    if size > max_file_bytes {
        return Err(ProtocolError::too_large(format!("the parts add up to {size} bytes; the limit is {max_file_bytes}")));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use std::collections::HashMap;

    const PART: u64 = MIN_PART_BYTES;

    fn uploaded(sizes: &[(u16, u64)]) -> Vec<UploadedPart> {
        sizes.iter().map(|&(n, size)| UploadedPart { part_number: n, etag: format!("e{n}"), size }).collect()
    }

    fn refs(numbers: &[u16]) -> Vec<PartRef> {
        numbers.iter().map(|&n| PartRef { part_number: n, etag: format!("e{n}") }).collect()
    }

    fn limits(vars: &[(&str, &str)]) -> Result<FileLimits, ConfigError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        FileLimits::from_lookup(|name| map.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn limits_have_r2_defaults_and_bounds() {
        assert_eq!(limits(&[]).unwrap(), FileLimits::default());
        assert_eq!(FileLimits::default().single_put_max_bytes, 5_363_466_240);
        let custom = limits(&[("FILE_SINGLE_PUT_MAX_BYTES", "1024"), ("FILE_PART_BYTES", "5242880")]).unwrap();
        assert_eq!((custom.single_put_max_bytes, custom.part_bytes), (1024, PART));
        for (variable, bad) in [
            ("FILE_PART_BYTES", "5242879"),
            ("FILE_PART_BYTES", "67108865"),
            ("FILE_SINGLE_PUT_MAX_BYTES", "0"),
            ("FILE_SINGLE_PUT_MAX_BYTES", "5363466241"),
            ("MAX_FILE_BYTES", "0"),
            ("MAX_FILE_BYTES", "5GiB"),
        ] {
            assert_eq!(limits(&[(variable, bad)]).unwrap_err().variable, variable, "{variable}={bad}");
        }
    }

    #[test]
    fn part_numbers_sizes_and_ids_parse_strictly() {
        assert_eq!(parse_part_number("1").unwrap(), 1);
        assert_eq!(parse_part_number("10000").unwrap(), 10_000);
        for bad in ["0", "10001", "", "+1", "-1", "1.0", "99999999999999999999"] {
            assert!(parse_part_number(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_part_size("5242880").unwrap(), PART);
        assert!(parse_part_size("5242879").is_err());
        assert!(parse_part_size(&(MAX_PART_BYTES + 1).to_string()).is_err());
        assert!(parse_upload_id("abc-_.~123").is_ok());
        for bad in ["", "a b", "a\nb", &"x".repeat(MAX_UPLOAD_ID_BYTES + 1)] {
            assert!(parse_upload_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_part_is_at_most_the_part_size_and_within_the_file_limit() {
        assert!(check_part(PART, 1, PART, u64::MAX).is_ok());
        assert!(check_part(PART, 3, 1, u64::MAX).is_ok(), "a shorter part may be the last");
        assert_eq!(check_part(PART, 1, 0, u64::MAX).unwrap_err().code, ErrorCode::BadRequest);
        assert_eq!(check_part(PART, 1, PART + 1, u64::MAX).unwrap_err().code, ErrorCode::TooLarge);
        assert!(check_part(PART, 2, 10, PART + 10).is_ok());
        let beyond = check_part(PART, 2, 11, PART + 10).unwrap_err();
        assert_eq!(beyond.code, ErrorCode::TooLarge);
        assert!(beyond.message.contains("limit is"), "{}", beyond.message);
    }

    #[test]
    fn a_completion_adds_up_equal_parts_and_a_shorter_last_one() {
        let parts = uploaded(&[(1, PART), (2, PART), (3, 7)]);
        assert_eq!(check_completion(PART, &refs(&[1, 2, 3]), &parts, u64::MAX).unwrap(), 2 * PART + 7);
        assert_eq!(check_completion(PART, &refs(&[1, 2]), &parts, u64::MAX).unwrap(), 2 * PART, "a subset is a file too");
        assert_eq!(check_completion(PART, &refs(&[3]), &parts, u64::MAX).unwrap(), 7);
        assert_eq!(check_completion(PART, &refs(&[1, 3]), &parts, u64::MAX).unwrap(), PART + 7, "gaps are allowed");
    }

    #[test]
    fn bad_part_lists_say_what_is_wrong() {
        let parts = uploaded(&[(1, PART), (2, 7), (3, PART)]);
        let message = |requested: Vec<PartRef>| check_completion(PART, &requested, &parts, u64::MAX).unwrap_err().message;
        assert!(message(vec![]).contains("is empty"));
        assert!(message(refs(&[2, 1])).contains("ascending"));
        assert!(message(refs(&[1, 1])).contains("ascending"));
        assert!(message(refs(&[1, 4])).contains("part 4 was not uploaded"));
        assert_eq!(
            check_completion(PART, &[PartRef { part_number: 1, etag: "other".into() }], &parts, u64::MAX).unwrap(),
            PART,
            "R2 checks the etags"
        );
        assert!(message(refs(&[1, 2, 3])).contains("part 2 is 7 bytes; every part but the last"));
        let too_big = check_completion(PART, &refs(&[1, 2]), &parts, PART).unwrap_err();
        assert_eq!(too_big.code, ErrorCode::TooLarge);
    }

    #[test]
    fn completions_refuse_unknown_fields_and_read_camel_case() {
        let body = r#"{"parts":[{"partNumber":1,"etag":"a"}]}"#;
        let completion: Completion = serde_json::from_str(body).unwrap();
        assert_eq!(completion.parts, vec![PartRef { part_number: 1, etag: "a".into() }]);
        assert!(serde_json::from_str::<Completion>(r#"{"parts":[{"partNumber":1,"etag":"a","size":3}]}"#).is_err());
        assert!(serde_json::from_str::<Completion>(r#"{"parts":[],"extra":1}"#).is_err());
        assert!(serde_json::from_str::<Completion>(r#"{"parts":[{"partNumber":-1,"etag":"a"}]}"#).is_err());
    }
}
