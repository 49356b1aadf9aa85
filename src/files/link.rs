//! Signed links (docs/PROTOCOL.md, "Signed links"): a URL that lets whoever holds it read
//! (`GET`, `HEAD`) or upload (`PUT`) one file until it expires, without the API key.
//!
//! The signature is HMAC-SHA256, keyed with the `LINK_SIGNING_KEY` secret, over the method, the
//! key, the expiry and, for uploads, the content type and size limit. All of them travel in the
//! link's query (`method`, `expires`, `contentType`, `maxBytes`, `signature`), so changing one,
//! or using the link on another key, breaks the signature. Links signed with
//! `LINK_SIGNING_KEY_PREVIOUS` stay valid while keys rotate. Without `LINK_SIGNING_KEY` links are
//! neither made nor honoured (fail closed).

use crate::hex;
use durable_stream_protocol::{strict_json, ProtocolError};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The query parameter whose presence makes a request a signed-link request.
pub const SIGNATURE_PARAM: &str = "signature";
pub const SIGNING_KEY_SECRET: &str = "LINK_SIGNING_KEY";
pub const PREVIOUS_SIGNING_KEY_SECRET: &str = "LINK_SIGNING_KEY_PREVIOUS";
/// Longest link lifetime: a week, like S3's presigned URLs.
pub const MAX_TTL_SECONDS: u64 = 7 * 24 * 3600;
/// Shorter keys are refused as a misconfiguration: 32 random bytes make HMAC-SHA256 unguessable.
const MIN_SIGNING_KEY_BYTES: usize = 32;
/// Longest content type a link may fix.
const MAX_CONTENT_TYPE_BYTES: usize = 256;
/// Largest body of a link request (`{"ttl":…,"method":…,"contentType":…,"maxBytes":…}`).
pub const MAX_LINK_REQUEST_BYTES: usize = 4096;
/// Names this format in the signed text, so that a later format can never share a signature.
const FORMAT: &str = "durable-stream signed link v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LinkMethod {
    Get,
    Put,
}

impl LinkMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkMethod::Get => "GET",
            LinkMethod::Put => "PUT",
        }
    }

    /// A GET link also answers HEAD (the same headers, as download managers ask first).
    fn allows(self, request_method: &str) -> bool {
        match self {
            LinkMethod::Get => matches!(request_method, "GET" | "HEAD"),
            LinkMethod::Put => request_method == "PUT",
        }
    }
}

/// What a link allows: `method` on `key` until `expires` (Unix seconds), and for an upload at
/// most `max_bytes` of type `content_type` when those are set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub method: LinkMethod,
    pub key: String,
    pub expires: u64,
    pub content_type: Option<String>,
    pub max_bytes: Option<u64>,
}

/// The body of `POST /v1/files/{key}?link`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LinkRequest {
    ttl: u64,
    method: Option<LinkMethod>,
    content_type: Option<String>,
    max_bytes: Option<u64>,
}

/// The signing keys: the current one, and the one before it while links it signed still run.
pub struct SigningKeys {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
}

/// Never prints the keys.
impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKeys(…)")
    }
}

impl SigningKeys {
    /// From the secrets' values. Unset or too short refuses every link, with a message saying
    /// what to configure.
    pub fn new(current: Option<String>, previous: Option<String>) -> Result<SigningKeys, ProtocolError> {
        let Some(current) = current.filter(|key| !key.is_empty()) else {
            return Err(ProtocolError::forbidden(format!(
                "signed links are off: the server has no {SIGNING_KEY_SECRET} secret \
                 (`wrangler secret put {SIGNING_KEY_SECRET}`; locally in .dev.vars)"
            )));
        };
        let previous = previous.filter(|key| !key.is_empty());
        for (name, key) in [(SIGNING_KEY_SECRET, Some(&current)), (PREVIOUS_SIGNING_KEY_SECRET, previous.as_ref())] {
            if key.is_some_and(|key| key.len() < MIN_SIGNING_KEY_BYTES) {
                return Err(ProtocolError::forbidden(format!(
                    "signed links are off: {name} is shorter than {MIN_SIGNING_KEY_BYTES} bytes; \
                     set a random one (e.g. `openssl rand -hex 32`)"
                )));
            }
        }
        Ok(SigningKeys { current: current.into_bytes(), previous: previous.map(String::into_bytes) })
    }
}

impl Grant {
    /// The signed text: one field a line. Keys and content types hold no control characters,
    /// so no two grants share a text.
    fn signed_text(&self) -> String {
        let content_type = self.content_type.as_deref().unwrap_or_default();
        let max_bytes = self.max_bytes.map(|n| n.to_string()).unwrap_or_default();
        format!("{FORMAT}\n{}\n{}\n{}\n{content_type}\n{max_bytes}", self.method.as_str(), self.key, self.expires)
    }

    fn mac(&self, key: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(self.signed_text().as_bytes());
        mac
    }

    /// The link's query: every field and the signature, with the current key.
    pub fn query(&self, keys: &SigningKeys) -> Vec<(&'static str, String)> {
        let signature = hex::encode(&self.mac(&keys.current).finalize().into_bytes());
        let mut query = vec![("method", self.method.as_str().to_owned()), ("expires", self.expires.to_string())];
        query.extend(self.content_type.clone().map(|content_type| ("contentType", content_type)));
        query.extend(self.max_bytes.map(|max| ("maxBytes", max.to_string())));
        query.push((SIGNATURE_PARAM, signature));
        query
    }
}

/// The grant a link request asks for, checked: a `ttl` of 1 s to a week, upload limits only on
/// PUT links, `max_bytes` within the file limit; it expires at `not_after` at the latest (the
/// end of the access token that asks for it).
pub fn plan(
    key: &str,
    body: &[u8],
    now_seconds: u64,
    max_file_bytes: u64,
    not_after: Option<u64>,
) -> Result<Grant, ProtocolError> {
    const EXAMPLE: &str = r#"{"ttl":3600,"method":"GET"}"#;
    let text = std::str::from_utf8(body).map_err(|_| ProtocolError::bad_request(format!("body must be UTF-8 JSON, e.g. {EXAMPLE}")))?;
    strict_json::validate(text, 1).map_err(|e| ProtocolError::bad_request(format!("body: {e}; expected e.g. {EXAMPLE}")))?;
    let request: LinkRequest = serde_json::from_str(text).map_err(|e| {
        ProtocolError::bad_request(format!(
            "body is not a link request ({e}); expected {{\"ttl\":seconds,\"method\":\"GET\"|\"PUT\"}} \
             and for PUT optionally \"contentType\" and \"maxBytes\""
        ))
    })?;
    if !(1..=MAX_TTL_SECONDS).contains(&request.ttl) {
        return Err(ProtocolError::bad_request(format!(
            "`ttl` must be a number of seconds from 1 to {MAX_TTL_SECONDS} (7 days), got {}",
            request.ttl
        )));
    }
    let method = request.method.unwrap_or(LinkMethod::Get);
    if method == LinkMethod::Get && (request.content_type.is_some() || request.max_bytes.is_some()) {
        return Err(ProtocolError::bad_request("`contentType` and `maxBytes` limit uploads: they go with \"method\":\"PUT\""));
    }
    if let Some(content_type) = &request.content_type {
        check_content_type(content_type).map_err(ProtocolError::bad_request)?;
    }
    if let Some(max) = request.max_bytes.filter(|max| !(1..=max_file_bytes).contains(max)) {
        return Err(ProtocolError::bad_request(format!("`maxBytes` must be from 1 to {max_file_bytes} (MAX_FILE_BYTES), got {max}")));
    }
    Ok(Grant {
        method,
        key: key.to_owned(),
        expires: not_after.map_or(now_seconds + request.ttl, |end| end.min(now_seconds + request.ttl)),
        content_type: request.content_type,
        max_bytes: request.max_bytes,
    })
}

fn check_content_type(content_type: &str) -> Result<(), String> {
    if content_type.is_empty() || content_type.len() > MAX_CONTENT_TYPE_BYTES {
        return Err(format!("`contentType` must be 1 to {MAX_CONTENT_TYPE_BYTES} bytes"));
    }
    if !content_type.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err("`contentType` must be printable ASCII".into());
    }
    Ok(())
}

/// Checks a signed-link request for `key`: its query (`pairs`), its method and the time.
/// Every refusal is 403 `forbidden`, saying why.
pub fn verify<K, V>(
    pairs: impl IntoIterator<Item = (K, V)>,
    key: &str,
    request_method: &str,
    now_seconds: u64,
    keys: &SigningKeys,
) -> Result<Grant, ProtocolError>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let [method, expires, content_type, max_bytes, signature] = link_params(pairs)?;
    let malformed = |what: &str| ProtocolError::forbidden(format!("the link is malformed ({what}); ask for a new one"));
    let method = match method.as_deref() {
        Some("GET") => LinkMethod::Get,
        Some("PUT") => LinkMethod::Put,
        _ => return Err(malformed("`method` must be GET or PUT")),
    };
    let number = |text: Option<String>, name: &str| -> Result<Option<u64>, ProtocolError> {
        text.map(|t| t.parse::<u64>().ok().filter(|_| t.bytes().all(|b| b.is_ascii_digit())).ok_or_else(|| malformed(name)))
            .transpose()
    };
    let expires = number(expires, "`expires` must be Unix seconds")?.ok_or_else(|| malformed("`expires` is missing"))?;
    let max_bytes = number(max_bytes, "`maxBytes` must be a byte count")?;
    if let Some(content_type) = &content_type {
        check_content_type(content_type).map_err(|e| malformed(&e))?;
    }
    let signature = signature.and_then(|s| hex::decode(&s)).ok_or_else(|| malformed("`signature` must be hex"))?;
    let grant = Grant { method, key: key.to_owned(), expires, content_type, max_bytes };
    let signed_by = |secret: &[u8]| grant.mac(secret).verify_slice(&signature).is_ok();
    if !signed_by(&keys.current) && !keys.previous.as_deref().is_some_and(signed_by) {
        return Err(ProtocolError::forbidden(
            "the link's signature does not match: the link was altered, is for another file, \
             or its signing key was retired; ask for a new one",
        ));
    }
    if now_seconds >= grant.expires {
        return Err(ProtocolError::forbidden(format!("the link expired (at Unix time {}); ask for a new one", grant.expires)));
    }
    if !grant.method.allows(request_method) {
        let allowed = match grant.method {
            LinkMethod::Get => "GET and HEAD",
            LinkMethod::Put => "PUT",
        };
        return Err(ProtocolError::forbidden(format!("this link allows {allowed}, not {request_method}")));
    }
    Ok(grant)
}

/// `method`, `expires`, `contentType`, `maxBytes` and `signature`, each at most once.
fn link_params<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<[Option<String>; 5], ProtocolError>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    const NAMES: [&str; 5] = ["method", "expires", "contentType", "maxBytes", SIGNATURE_PARAM];
    let mut values: [Option<String>; 5] = Default::default();
    for (name, value) in pairs {
        let Some(slot) = NAMES.iter().position(|n| *n == name.as_ref()) else { continue };
        if values[slot].replace(value.as_ref().to_owned()).is_some() {
            return Err(ProtocolError::forbidden(format!("the link is malformed (`{}` is given twice); ask for a new one", NAMES[slot])));
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn keys(current: &str, previous: Option<&str>) -> SigningKeys {
        SigningKeys::new(Some(current.into()), previous.map(Into::into)).unwrap()
    }

    fn key_a() -> SigningKeys {
        keys(&"a".repeat(32), None)
    }

    fn link(body: &str, keys: &SigningKeys) -> Vec<(&'static str, String)> {
        plan("dir/file.bin", body.as_bytes(), NOW, 1 << 40, None).unwrap().query(keys)
    }

    fn check(query: &[(&str, String)], key: &str, method: &str, now: u64, keys: &SigningKeys) -> Result<Grant, ProtocolError> {
        verify(query.iter().map(|(n, v)| (*n, v.as_str())), key, method, now, keys)
    }

    fn refusal(result: Result<Grant, ProtocolError>) -> String {
        let error = result.unwrap_err();
        assert_eq!(error.code, durable_stream_protocol::ErrorCode::Forbidden);
        error.message
    }

    #[test]
    fn a_link_is_honoured_for_its_method_key_and_lifetime() {
        let query = link(r#"{"ttl":60}"#, &key_a());
        assert_eq!(query.iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["method", "expires", "signature"]);
        let grant = check(&query, "dir/file.bin", "GET", NOW, &key_a()).unwrap();
        assert_eq!((grant.method, grant.expires), (LinkMethod::Get, NOW + 60));
        assert!(check(&query, "dir/file.bin", "HEAD", NOW + 59, &key_a()).is_ok());
        assert!(refusal(check(&query, "dir/file.bin", "GET", NOW + 60, &key_a())).contains("expired"));
        assert!(refusal(check(&query, "dir/file.bin", "PUT", NOW, &key_a())).contains("allows GET and HEAD, not PUT"));
        assert!(refusal(check(&query, "dir/other.bin", "GET", NOW, &key_a())).contains("does not match"));
        assert!(refusal(check(&query, "dir/file.bin", "GET", NOW, &keys(&"b".repeat(32), None))).contains("does not match"));
    }

    #[test]
    fn every_signed_field_is_bound() {
        let query = link(r#"{"ttl":60,"method":"PUT","contentType":"text/csv","maxBytes":1000}"#, &key_a());
        let put = check(&query, "dir/file.bin", "PUT", NOW, &key_a()).unwrap();
        assert_eq!((put.content_type.as_deref(), put.max_bytes), (Some("text/csv"), Some(1000)));
        assert!(refusal(check(&query, "dir/file.bin", "GET", NOW, &key_a())).contains("allows PUT, not GET"));
        for (name, forged) in [("method", "GET"), ("expires", "1900000000"), ("contentType", "text/html"), ("maxBytes", "9999")] {
            let tampered: Vec<_> = query.iter().map(|(n, v)| (*n, if *n == name { forged.to_owned() } else { v.clone() })).collect();
            assert!(refusal(check(&tampered, "dir/file.bin", "PUT", NOW, &key_a())).contains("does not match"), "{name}");
        }
        let dropped: Vec<_> = query.iter().filter(|(n, _)| *n != "maxBytes").cloned().collect();
        assert!(refusal(check(&dropped, "dir/file.bin", "PUT", NOW, &key_a())).contains("does not match"));
        let mut flipped = query.clone();
        let signature = &mut flipped.last_mut().unwrap().1;
        let last = if signature.ends_with('0') { "1" } else { "0" };
        signature.replace_range(63.., last);
        assert!(refusal(check(&flipped, "dir/file.bin", "PUT", NOW, &key_a())).contains("does not match"));
    }

    #[test]
    fn links_of_the_previous_key_stay_valid_during_a_rotation() {
        let old = keys(&"o".repeat(32), None);
        let query = link(r#"{"ttl":60}"#, &old);
        let rotated = keys(&"n".repeat(40), Some(&"o".repeat(32)));
        assert!(check(&query, "dir/file.bin", "GET", NOW, &rotated).is_ok());
        assert!(check(&link(r#"{"ttl":60}"#, &rotated), "dir/file.bin", "GET", NOW, &rotated).is_ok());
        assert!(check(&query, "dir/file.bin", "GET", NOW, &keys(&"n".repeat(40), None)).is_err(), "retired");
    }

    #[test]
    fn malformed_links_are_refused() {
        let query = link(r#"{"ttl":60}"#, &key_a());
        let with = |name: &str, value: &str| -> Vec<(&str, String)> {
            query.iter().cloned().map(|(n, v)| (n, if n == name { value.to_owned() } else { v })).collect()
        };
        assert!(refusal(check(&with("method", "DELETE"), "dir/file.bin", "GET", NOW, &key_a())).contains("malformed"));
        assert!(refusal(check(&with("expires", "+5"), "dir/file.bin", "GET", NOW, &key_a())).contains("malformed"));
        assert!(refusal(check(&with("signature", "xyz"), "dir/file.bin", "GET", NOW, &key_a())).contains("malformed"));
        let mut twice = query.clone();
        twice.push(("expires", "1".into()));
        assert!(refusal(check(&twice, "dir/file.bin", "GET", NOW, &key_a())).contains("given twice"));
        let missing: Vec<_> = query.iter().filter(|(n, _)| *n != "expires").cloned().collect();
        assert!(refusal(check(&missing, "dir/file.bin", "GET", NOW, &key_a())).contains("`expires` is missing"));
    }

    #[test]
    fn link_requests_are_checked() {
        let plan = |body: &str| plan("k", body.as_bytes(), NOW, 1000, None);
        assert_eq!(plan(r#"{"ttl":604800}"#).unwrap().expires, NOW + MAX_TTL_SECONDS);
        let token_link = |ttl: u64| super::plan("k", format!(r#"{{"ttl":{ttl}}}"#).as_bytes(), NOW, 1000, Some(NOW + 60));
        assert_eq!(token_link(30).unwrap().expires, NOW + 30);
        assert_eq!(token_link(3600).unwrap().expires, NOW + 60, "a token's link ends with the token");
        for (body, says) in [
            (r#"{"ttl":0}"#, "`ttl`"),
            (r#"{"ttl":604801}"#, "`ttl`"),
            (r#"{"ttl":-1}"#, "not a link request"),
            (r#"{"method":"GET"}"#, "missing field `ttl`"),
            (r#"{"ttl":1,"method":"DELETE"}"#, "not a link request"),
            (r#"{"ttl":1,"extra":true}"#, "not a link request"),
            (r#"{"ttl":1,"ttl":2}"#, "duplicate key"),
            (r#"{"ttl":1,"maxBytes":5}"#, "go with \"method\":\"PUT\""),
            (r#"{"ttl":1,"method":"PUT","maxBytes":1001}"#, "`maxBytes` must be from 1 to 1000"),
            (r#"{"ttl":1,"method":"PUT","contentType":"a\nb"}"#, "printable"),
            ("", "malformed JSON"),
        ] {
            let message = plan(body).unwrap_err().message;
            assert!(message.contains(says), "{body}: {message}");
        }
    }

    #[test]
    fn signing_keys_must_be_set_and_long_enough() {
        assert!(SigningKeys::new(None, None).unwrap_err().message.contains("no LINK_SIGNING_KEY"));
        assert!(SigningKeys::new(Some(String::new()), None).is_err());
        assert!(SigningKeys::new(Some("short".into()), None).unwrap_err().message.contains("shorter than 32"));
        let short_previous = SigningKeys::new(Some("k".repeat(32)), Some("p".into())).unwrap_err();
        assert!(short_previous.message.contains("LINK_SIGNING_KEY_PREVIOUS"));
        assert!(SigningKeys::new(Some("k".repeat(32)), Some(String::new())).unwrap().previous.is_none());
    }
}
