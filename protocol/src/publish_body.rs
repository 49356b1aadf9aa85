//! HTTP publish bodies: one JSON message, a batch (`?batch=1`: an array of messages), and either
//! of them as envelopes (`?envelope=1`: `{"data":…,"headers":{…}}`, the way to send headers).

use crate::config::Config;
use crate::error::ProtocolError;
use crate::frame::{validate_batch_len, FrameFields, NewMessage};
use crate::headers::parse_headers;
use crate::http_params::PublishParams;
use crate::strict_json;
use serde_json::value::RawValue;

/// The messages of an HTTP publish body, validated like a `pub` frame's. Errors name the part
/// (`` `body` ``, `` `body[2]` ``, `` `body[2].headers` ``).
pub fn parse_publish_body(body: &str, params: PublishParams, config: &Config) -> Result<Vec<NewMessage>, ProtocolError> {
    if !params.batch {
        if body.trim().is_empty() {
            let example = if params.envelope { r#"{"data":{"order":17},"headers":{"type":"OrderCreated"}}"# } else { r#"{"order":17}"# };
            return Err(ProtocolError::bad_request(format!("body is empty: the message must be JSON, e.g. {example}")));
        }
        let message: &RawValue =
            serde_json::from_str(body).map_err(|e| ProtocolError::bad_request(format!("body is not JSON: {e}")))?;
        return Ok(vec![parse_message(message, params.envelope, config, "body")?]);
    }
    let what = if params.envelope { "an array of envelopes" } else { "a JSON array of messages" };
    let items: Vec<&RawValue> = serde_json::from_str(body)
        .map_err(|_| ProtocolError::bad_request(format!("with ?batch=1 the body must be {what}")))?;
    validate_batch_len(items.len(), config)?;
    if !params.envelope {
        // The plain batch is the hot path: entries are named only when one is refused.
        strict_json::check_each(items.iter().map(|m| m.get()), config, "body")?;
        return Ok(items.into_iter().map(|data| NewMessage { data: data.to_owned(), headers: None }).collect());
    }
    items.into_iter().enumerate().map(|(i, item)| parse_message(item, true, config, &format!("body[{i}]"))).collect()
}

/// One message: its data as is, or an envelope around data and headers.
fn parse_message(raw: &RawValue, envelope: bool, config: &Config, part: &str) -> Result<NewMessage, ProtocolError> {
    if !envelope {
        strict_json::check(raw.get(), config, part)?;
        return Ok(NewMessage { data: raw.to_owned(), headers: None });
    }
    let shape = || ProtocolError::bad_request(format!("`{part}` must be an envelope {{\"data\": …, \"headers\": {{…}}}}"));
    let FrameFields { fields, repeated } = serde_json::from_str(raw.get()).map_err(|_| shape())?;
    if let Some(name) = repeated {
        return Err(ProtocolError::bad_request(format!("`{part}`: field `{name}` is given more than once")));
    }
    if let Some(unknown) = fields.keys().find(|name| !matches!(name.as_str(), "data" | "headers")) {
        return Err(ProtocolError::bad_request(format!("`{part}`: unknown field `{unknown}` (an envelope has `data` and `headers`)")));
    }
    let data = fields.get("data").ok_or_else(|| ProtocolError::bad_request(format!("`{part}` needs `data`")))?;
    strict_json::check(data.get(), config, &format!("`{part}.data`"))?;
    let headers = match fields.get("headers") {
        Some(raw) => parse_headers(raw.get(), config, &format!("`{part}.headers`"))?,
        None => None,
    };
    Ok(NewMessage { data: (*data).to_owned(), headers })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    const PLAIN: PublishParams = PublishParams { batch: false, envelope: false };
    const BATCH: PublishParams = PublishParams { batch: true, envelope: false };
    const ENVELOPE: PublishParams = PublishParams { batch: false, envelope: true };
    const ENVELOPES: PublishParams = PublishParams { batch: true, envelope: true };

    fn parse(body: &str, params: PublishParams) -> Result<Vec<(String, Option<String>)>, ProtocolError> {
        let messages = parse_publish_body(body, params, &Config::default())?;
        Ok(messages.into_iter().map(|m| (m.data.get().to_owned(), m.headers.map(|h| h.as_json().to_owned()))).collect())
    }

    fn refusal(body: &str, params: PublishParams) -> String {
        parse(body, params).unwrap_err().message
    }

    #[test]
    fn plain_bodies_and_batches_keep_the_data_verbatim() {
        assert_eq!(parse(r#" {"order": 17} "#, PLAIN).unwrap(), [(r#"{"order": 17}"#.to_owned(), None)]);
        assert_eq!(parse(r#"[1, {"a":2}]"#, BATCH).unwrap(), [("1".to_owned(), None), (r#"{"a":2}"#.to_owned(), None)]);
        assert_eq!(refusal("  ", PLAIN), r#"body is empty: the message must be JSON, e.g. {"order":17}"#);
        assert!(refusal("{", PLAIN).starts_with("body is not JSON"));
        assert_eq!(refusal("{}", BATCH), "with ?batch=1 the body must be a JSON array of messages");
        assert!(refusal("[1,1e400]", BATCH).starts_with("`body[1]`: number 1e400 is out of range"));
        assert!(refusal("1e400", PLAIN).starts_with("body: number 1e400 is out of range"));
    }

    #[test]
    fn envelopes_carry_headers() {
        let one = parse(r#"{"headers":{"type":"OrderCreated"},"data":{"order":17}}"#, ENVELOPE).unwrap();
        assert_eq!(one, [(r#"{"order":17}"#.to_owned(), Some(r#"{"type":"OrderCreated"}"#.to_owned()))]);
        assert_eq!(parse(r#"{"data":null}"#, ENVELOPE).unwrap(), [("null".to_owned(), None)]);
        let batch = parse(r#"[{"data":1,"headers":{"a":"b"}},{"data":2},{"data":3,"headers":{}}]"#, ENVELOPES).unwrap();
        assert_eq!(batch, [("1".to_owned(), Some(r#"{"a":"b"}"#.to_owned())), ("2".to_owned(), None), ("3".to_owned(), None)]);
        assert!(refusal("", ENVELOPE).contains(r#"e.g. {"data":{"order":17},"headers":{"type":"OrderCreated"}}"#));
    }

    #[test]
    fn malformed_envelopes_are_refused_by_part() {
        assert_eq!(refusal("[1]", ENVELOPE), "`body` must be an envelope {\"data\": …, \"headers\": {…}}");
        assert_eq!(refusal(r#"{"headers":{}}"#, ENVELOPE), "`body` needs `data`");
        assert_eq!(refusal(r#"{"data":1,"header":{}}"#, ENVELOPE), "`body`: unknown field `header` (an envelope has `data` and `headers`)");
        assert_eq!(refusal(r#"{"data":1,"data":2}"#, ENVELOPE), "`body`: field `data` is given more than once");
        assert_eq!(refusal(r#"[{"data":1},{"data":2,"headers":[]}]"#, ENVELOPES), r#"`body[1].headers` must be an object of strings, e.g. {"type":"OrderCreated"}"#);
        assert!(refusal(r#"[{"data":1},{"data":"\ud800"}]"#, ENVELOPES).starts_with("`body[1].data`: escape \\ud800 is a lone UTF-16 surrogate"));
        assert_eq!(refusal("[]", ENVELOPES), "`batch` must not be empty");
        let many = format!("{{\"data\":1,\"headers\":{{{}}}}}", (0..33).map(|i| format!("\"h{i}\":\"v\"")).collect::<Vec<_>>().join(","));
        let e = parse(&many, ENVELOPE).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::TooLarge, "`body.headers`: 33 headers; the limit is 32 (MAX_HEADERS)"));
    }
}
