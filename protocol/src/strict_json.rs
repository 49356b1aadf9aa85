//! Strict JSON: what the server accepts as message data and state documents.
//!
//! Stored JSON goes out verbatim to every reader, so it must be JSON that standard parsers
//! read with their default settings. [`validate`] refuses what RFC 8259 allows but common
//! parsers do not read (or read differently):
//!
//! - arrays and objects nested deeper than a limit (serde_json stops at 128, Ruby at 100);
//! - numbers that overflow a 64-bit float (`1e400`, 400-digit integers): JavaScript reads
//!   them as `Infinity`, serde_json refuses them. Integers beyond 2^53 that are still finite
//!   doubles are accepted: every parser reads them, some exactly (u64), some rounded;
//! - `\u` escapes that are lone UTF-16 surrogates (`"\ud800"`): not Unicode, refused by
//!   serde_json and by strict UTF-8 encoders;
//! - duplicate keys in one object: parsers disagree on which one wins.
//!
//! It is one iterative pass over the text (no recursion, so any nesting is safe to look at),
//! allocating only for keys that contain escapes and for the per-object key lists.

use crate::config::Config;
use crate::error::ProtocolError;
use std::borrow::Cow;
use std::fmt;

/// Why a JSON text was refused, and at which byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub at: usize,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Not JSON at all; says what was expected.
    Syntax(&'static str),
    TooDeep { limit: usize },
    NumberOutOfRange { number: String },
    LoneSurrogate { code_unit: u16 },
    ControlCharacter { byte: u8 },
    DuplicateKey { key: String },
}

/// Longest key or number quoted in an error message.
const QUOTE_LIMIT: usize = 40;

fn shortened(text: &str) -> String {
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            Problem::Syntax(expected) => write!(f, "malformed JSON: expected {expected}"),
            Problem::TooDeep { limit } => {
                write!(f, "arrays and objects nested more than {limit} deep (the limit is {limit}, MAX_JSON_DEPTH)")
            }
            Problem::NumberOutOfRange { number } => {
                write!(f, "number {number} is out of range: numbers must fit a 64-bit float (magnitude at most 1.7976931348623157e308)")
            }
            Problem::LoneSurrogate { code_unit } => {
                write!(f, "escape \\u{code_unit:04x} is a lone UTF-16 surrogate, not a character")
            }
            Problem::ControlCharacter { byte } => {
                write!(f, "control character U+{byte:04X} in a string must be escaped")
            }
            Problem::DuplicateKey { key } => write!(f, "duplicate key {key:?}: keys of an object must be unique"),
        }?;
        write!(f, " (at byte {})", self.at)
    }
}

impl std::error::Error for JsonError {}

/// Checks one JSON text against the rules above; `max_depth` is the most arrays and objects
/// that may enclose a value (`1` and `"a"` have depth 0, `[]` and `{}` depth 1).
pub fn validate(text: &str, max_depth: usize) -> Result<(), JsonError> {
    enum Open {
        Array,
        /// `first_key` indexes the object's first key in `keys`; `start` is its `{`.
        Object { first_key: usize, start: usize },
    }
    let mut s = Scanner { text, bytes: text.as_bytes(), pos: 0 };
    let mut open: Vec<Open> = Vec::new();
    // The keys of every object being read, innermost last.
    let mut keys: Vec<Cow<str>> = Vec::new();
    'value: loop {
        s.skip_whitespace();
        match s.peek() {
            Some(b'{') | Some(b'[') => {
                if open.len() == max_depth {
                    return Err(s.error(Problem::TooDeep { limit: max_depth }));
                }
                let start = s.pos;
                let is_object = s.bytes[start] == b'{';
                s.pos += 1;
                s.skip_whitespace();
                if is_object {
                    open.push(Open::Object { first_key: keys.len(), start });
                    if s.peek() != Some(b'}') {
                        keys.push(s.key()?);
                        continue 'value;
                    }
                } else {
                    open.push(Open::Array);
                    if s.peek() != Some(b']') {
                        continue 'value;
                    }
                }
                // Empty: the closing bracket is read below.
            }
            Some(b'"') => {
                s.string()?;
            }
            Some(b'-' | b'0'..=b'9') => s.number()?,
            Some(b't') => s.literal("true")?,
            Some(b'f') => s.literal("false")?,
            Some(b'n') => s.literal("null")?,
            _ => return Err(s.error(Problem::Syntax("a value"))),
        }
        // A value ended: close what it ends, then find where the next value starts.
        loop {
            s.skip_whitespace();
            match (open.last(), s.peek()) {
                (None, None) => return Ok(()),
                (None, Some(_)) => return Err(s.error(Problem::Syntax("the end of the text after the value"))),
                (Some(Open::Array), Some(b',')) => {
                    s.pos += 1;
                    continue 'value;
                }
                (Some(Open::Array), Some(b']')) => {
                    s.pos += 1;
                    open.pop();
                }
                (Some(Open::Array), _) => return Err(s.error(Problem::Syntax("`,` or `]`"))),
                (Some(Open::Object { .. }), Some(b',')) => {
                    s.pos += 1;
                    s.skip_whitespace();
                    keys.push(s.key()?);
                    continue 'value;
                }
                (Some(&Open::Object { first_key, start }), Some(b'}')) => {
                    s.pos += 1;
                    open.pop();
                    let own = &mut keys[first_key..];
                    own.sort_unstable();
                    if let Some(pair) = own.windows(2).find(|pair| pair[0] == pair[1]) {
                        let key = shortened(&pair[0]);
                        return Err(JsonError { at: start, problem: Problem::DuplicateKey { key } });
                    }
                    keys.truncate(first_key);
                }
                (Some(Open::Object { .. }), _) => return Err(s.error(Problem::Syntax("`,` or `}`"))),
            }
        }
    }
}

/// [`validate`] with the configured depth, as a `bad_request` that names the offending part
/// (`what`, e.g. "`data`" or "`batch[3]`").
pub fn check(text: &str, config: &Config, what: &str) -> Result<(), ProtocolError> {
    validate(text, config.max_json_depth).map_err(|e| ProtocolError::bad_request(format!("{what}: {e}")))
}

/// [`check`] for each message of a batch, named `` `{array}[i]` ``.
pub fn check_each<'a>(messages: impl IntoIterator<Item = &'a str>, config: &Config, array: &str) -> Result<(), ProtocolError> {
    // The entry's name is only formatted for a refusal: batches are on the publish hot path.
    messages.into_iter().enumerate().try_for_each(|(i, text)| {
        validate(text, config.max_json_depth).map_err(|e| ProtocolError::bad_request(format!("`{array}[{i}]`: {e}")))
    })
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn error(&self, problem: Problem) -> JsonError {
        JsonError { at: self.pos, problem }
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &'static str) -> Result<(), JsonError> {
        if !self.bytes[self.pos..].starts_with(word.as_bytes()) {
            return Err(self.error(Problem::Syntax("a value")));
        }
        self.pos += word.len();
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let integer_digits = match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                1
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error(Problem::Syntax("a digit"))),
        };
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error(Problem::Syntax("a digit after `.`")));
            }
        }
        let mut exponent = false;
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error(Problem::Syntax("a digit in the exponent")));
            }
            exponent = true;
        }
        // Only an exponent or more than 308 integer digits can reach 1.8e308: ordinary numbers
        // skip the float conversion.
        if exponent || integer_digits > 308 {
            let number = &self.text[start..self.pos];
            if number.parse::<f64>().map_or(true, f64::is_infinite) {
                return Err(JsonError { at: start, problem: Problem::NumberOutOfRange { number: shortened(number) } });
            }
        }
        Ok(())
    }

    /// Reads a string and returns its contents as written (escapes validated, not decoded).
    fn string(&mut self) -> Result<&'a str, JsonError> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.error(Problem::Syntax("`\"` to end the string"))),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(&self.text[start..self.pos - 1]);
                }
                Some(b'\\') => {
                    let (_, len) = escape(&self.bytes[self.pos..]).map_err(|problem| self.error(problem))?;
                    self.pos += len;
                }
                Some(byte @ 0x00..=0x1f) => return Err(self.error(Problem::ControlCharacter { byte })),
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Reads an object key and the `:` after it; the key is decoded so that `"a"` and
    /// `"\u0061"` are the same key.
    fn key(&mut self) -> Result<Cow<'a, str>, JsonError> {
        if self.peek() != Some(b'"') {
            return Err(self.error(Problem::Syntax("a string key")));
        }
        let raw = self.string()?;
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return Err(self.error(Problem::Syntax("`:` after the key")));
        }
        self.pos += 1;
        Ok(if raw.contains('\\') { Cow::Owned(unescape(raw)) } else { Cow::Borrowed(raw) })
    }
}

/// Decodes the escape at the start of `bytes` (which begins with `\`): the character and
/// how many bytes it took.
fn escape(bytes: &[u8]) -> Result<(char, usize), Problem> {
    let simple = match bytes.get(1) {
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        Some(b'u') => return unicode_escape(bytes),
        _ => return Err(Problem::Syntax("an escape: one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX")),
    };
    Ok((simple, 2))
}

fn hex4(bytes: &[u8]) -> Option<u16> {
    let hex = std::str::from_utf8(bytes.get(..4)?).ok()?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(hex, 16).ok()
}

/// `\uXXXX`, or a surrogate pair `\uD8xx\uDCxx`.
fn unicode_escape(bytes: &[u8]) -> Result<(char, usize), Problem> {
    let unit = hex4(&bytes[2..]).ok_or(Problem::Syntax("four hex digits after \\u"))?;
    match unit {
        0xD800..=0xDBFF => {
            let low = if bytes[6..].starts_with(b"\\u") { hex4(&bytes[8..]) } else { None };
            match low {
                Some(low @ 0xDC00..=0xDFFF) => {
                    let code = 0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                    Ok((char::from_u32(code).expect("a surrogate pair is a character"), 12))
                }
                _ => Err(Problem::LoneSurrogate { code_unit: unit }),
            }
        }
        0xDC00..=0xDFFF => Err(Problem::LoneSurrogate { code_unit: unit }),
        _ => Ok((char::from_u32(u32::from(unit)).expect("a non-surrogate code unit is a character"), 6)),
    }
}

/// Decodes the escapes of string contents that [`Scanner::string`] accepted.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(backslash) = rest.find('\\') {
        out.push_str(&rest[..backslash]);
        let (ch, len) = escape(&rest.as_bytes()[backslash..]).expect("escapes were validated while scanning");
        out.push(ch);
        rest = &rest[backslash + len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> Problem {
        validate(text, 64).expect_err(text).problem
    }

    fn nested(open: &str, close: &str, depth: usize) -> String {
        format!("{}1{}", open.repeat(depth), close.repeat(depth))
    }

    #[test]
    fn ordinary_json_is_accepted() {
        for text in [
            "0", "-0", "1", "-12.5e-3", "1E+2", "true", "false", "null", "\"\"", "[]", "{}", " [ 1 , 2 ] ",
            r#"{"a":[1,{"b":null}],"c":"d\n\u00e9\"\\\/\b\f\r\t","e":{}}"#, "\"raw é and 😀\"", "[[],[[]],{}]",
            "123456789012345678901234567890", "18446744073709551617", "9007199254740993",
        ] {
            assert_eq!(validate(text, 64), Ok(()), "{text}");
        }
    }

    #[test]
    fn depth_is_counted_in_arrays_and_objects() {
        let objects = |depth: usize| format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        for at_limit in [nested("[", "]", 64), objects(64), format!("[{}]", objects(63)), nested("[", "]", 63).replace('1', "[]")] {
            assert_eq!(validate(&at_limit, 64), Ok(()));
        }
        for over in [nested("[", "]", 65), objects(65), format!("{{\"x\":[{}]}}", objects(63)), nested("[", "]", 64).replace('1', "{}")] {
            assert_eq!(validate(&over, 64).unwrap_err().problem, Problem::TooDeep { limit: 64 });
        }
        assert_eq!(validate("1", 0), Ok(()));
        assert_eq!(validate("[]", 0).unwrap_err().problem, Problem::TooDeep { limit: 0 });
        // The limit is reached at the 65th opening bracket, without reading further.
        assert_eq!(validate(&nested("[", "]", 65), 64).unwrap_err().at, 64);
    }

    #[test]
    fn very_deep_input_is_refused_without_recursion() {
        let deep = nested("[", "]", 100_000);
        assert_eq!(validate(&deep, 64).unwrap_err().problem, Problem::TooDeep { limit: 64 });
        let unclosed = "{\"a\":[".repeat(100_000);
        assert_eq!(validate(&unclosed, usize::MAX).unwrap_err().problem, Problem::Syntax("a value"));
    }

    #[test]
    fn numbers_must_fit_a_double() {
        for ok in ["1e308", "-1e308", "1.7976931348623157e308", "1e-400", "-0.0e-999", "4.9e-324"] {
            assert_eq!(validate(ok, 64), Ok(()), "{ok}");
        }
        for bad in ["1e309", "-1e400", "1E400", "[1,2e999]", "1.8e308", "1234e306"] {
            assert!(matches!(problem(bad), Problem::NumberOutOfRange { .. }), "{bad}");
        }
        let huge_integer = format!("1{}", "0".repeat(309));
        assert!(matches!(problem(&huge_integer), Problem::NumberOutOfRange { .. }));
        let message = validate(&format!("[{huge_integer}]"), 64).unwrap_err().to_string();
        assert!(message.starts_with("number 1000000000000000000000000000000000000000… is out of range"), "{message}");
        assert!(message.ends_with("(at byte 1)"), "{message}");
        assert_eq!(validate(&format!("1{}", "0".repeat(308)), 64), Ok(()));
    }

    #[test]
    fn accepted_numbers_are_read_by_serde_json() {
        for text in ["1.7976931348623157e308", "1.79769313486231580e308", "-1.7976931348623157e308", "1e-400", "9007199254740993"] {
            assert_eq!(validate(text, 64), Ok(()));
            assert!(serde_json::from_str::<serde_json::Value>(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn escapes_must_be_valid_unicode() {
        assert_eq!(validate(r#""\ud83d\ude00""#, 64), Ok(()));
        assert_eq!(validate(r#"{"\uD83D\uDE00":1}"#, 64), Ok(()));
        assert_eq!(problem(r#""\ud800""#), Problem::LoneSurrogate { code_unit: 0xd800 });
        assert_eq!(problem(r#""\udbff x""#), Problem::LoneSurrogate { code_unit: 0xdbff });
        assert_eq!(problem(r#""\ude00""#), Problem::LoneSurrogate { code_unit: 0xde00 });
        assert_eq!(problem(r#""\ud800\u0041""#), Problem::LoneSurrogate { code_unit: 0xd800 });
        assert_eq!(problem(r#""\ud800\ud800""#), Problem::LoneSurrogate { code_unit: 0xd800 });
        assert_eq!(problem(r#"["ok",{"\udc00":1}]"#), Problem::LoneSurrogate { code_unit: 0xdc00 });
        // Written out (not escaped), the text is a Rust string and so already valid UTF-8.
        assert_eq!(validate("\"\u{10000}\"", 64), Ok(()));
        assert!(validate(r#""\ud800""#, 64).unwrap_err().to_string().contains("\\ud800 is a lone UTF-16 surrogate"));
        for bad in [r#""\x""#, r#""\u12""#, r#""\u12g4""#, r#""\"#] {
            assert!(matches!(problem(bad), Problem::Syntax(_)), "{bad}");
        }
    }

    #[test]
    fn duplicate_keys_are_refused() {
        assert_eq!(problem(r#"{"a":1,"b":2,"a":3}"#), Problem::DuplicateKey { key: "a".into() });
        assert_eq!(problem(r#"{"a":1,"\u0061":2}"#), Problem::DuplicateKey { key: "a".into() });
        assert_eq!(problem(r#"[{"x":{"y":1,"y":2}}]"#), Problem::DuplicateKey { key: "y".into() });
        assert_eq!(problem(r#"{"a":{"b":1},"a":2}"#), Problem::DuplicateKey { key: "a".into() });
        // The same key in different objects, nested or not, is fine.
        assert_eq!(validate(r#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#, 64), Ok(()));
        assert_eq!(validate(r#"{"a":1,"A":2,"a ":3}"#, 64), Ok(()));
        let e = validate(r#"[0,{"k":1,"k":1}]"#, 64).unwrap_err();
        assert_eq!((e.at, e.to_string()), (3, "duplicate key \"k\": keys of an object must be unique (at byte 3)".into()));
    }

    #[test]
    fn many_keys_are_checked_quickly() {
        let keys: Vec<String> = (0..100_000).map(|i| format!("\"k{i}\":{i}")).collect();
        let object = format!("{{{}}}", keys.join(","));
        assert_eq!(validate(&object, 64), Ok(()));
        let with_duplicate = format!("{{{},\"k5\":0}}", keys.join(","));
        assert_eq!(validate(&with_duplicate, 64).unwrap_err().problem, Problem::DuplicateKey { key: "k5".into() });
    }

    #[test]
    fn strings_refuse_raw_control_characters() {
        assert_eq!(problem("\"a\u{1}b\""), Problem::ControlCharacter { byte: 1 });
        assert_eq!(problem("\"tab\tinside\""), Problem::ControlCharacter { byte: 9 });
        assert!(validate("\"a\u{1}\"", 64).unwrap_err().to_string().contains("U+0001"));
    }

    #[test]
    fn malformed_json_is_refused() {
        for bad in [
            "", " ", "[", "]", "{", "[1,]", "[,1]", "{\"a\":1,}", "{,}", "{\"a\" 1}", "{1:2}", "01", "-", "1.", ".5", "+1",
            "1e", "1e+", "tru", "nul", "True", "[1 2]", "1 2", "\"abc", "\u{feff}1", "NaN", "Infinity", "{\"a\":1]", "[1}",
        ] {
            assert!(matches!(validate(bad, 64), Err(JsonError { problem: Problem::Syntax(_), .. })), "{bad:?}");
        }
    }

    #[test]
    fn check_names_the_part_and_the_limit() {
        let config = Config { max_json_depth: 2, ..Config::default() };
        let e = check("[[[1]]]", &config, "`data`").unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::BadRequest);
        assert_eq!(e.message, "`data`: arrays and objects nested more than 2 deep (the limit is 2, MAX_JSON_DEPTH) (at byte 2)");
        let e = check_each(["1", "{}", "1e999"], &config, "batch").unwrap_err();
        assert!(e.message.starts_with("`batch[2]`: number 1e999 is out of range"), "{}", e.message);
        assert_eq!(check_each(["1", "[[2]]"], &config, "batch"), Ok(()));
    }
}
