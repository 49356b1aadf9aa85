//! Entity-tag preconditions (RFC 9110 §13): `If-Match`, `If-None-Match` and `If-Range`.
//!
//! `etag` arguments are R2's bare etag (without quotes); R2 etags are always strong.

/// What a GET or HEAD does after evaluating its preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412: `If-Match` names none of the current etag.
    Failed,
}

/// One member of an entity-tag list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ListMember<'a> {
    Any,
    Tag { weak: bool, opaque: &'a str },
    /// Not a valid entity-tag: matches nothing.
    Invalid,
}

/// Splits `*` or `#entity-tag` into members. An opaque tag may contain ',' so this scans
/// quoted strings instead of splitting on commas.
fn list_members(header: &str) -> Vec<ListMember<'_>> {
    let mut members = Vec::new();
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return members;
        }
        if let Some(after) = rest.strip_prefix('*') {
            members.push(ListMember::Any);
            rest = after;
            continue;
        }
        let (weak, tagged) = match rest.strip_prefix("W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let quoted = tagged.strip_prefix('"').and_then(|inner| inner.split_once('"'));
        match quoted {
            Some((opaque, after)) => {
                members.push(ListMember::Tag { weak, opaque });
                rest = after;
            }
            None => {
                members.push(ListMember::Invalid);
                rest = rest.split_once(',').map_or("", |(_, after)| after);
            }
        }
    }
}

/// Strong comparison (If-Match, If-Range): only a strong tag with the same opaque value.
fn strong_match(header: &str, etag: &str) -> bool {
    list_members(header).iter().any(|member| match member {
        ListMember::Any => true,
        ListMember::Tag { weak, opaque } => !weak && *opaque == etag,
        ListMember::Invalid => false,
    })
}

/// Weak comparison (If-None-Match): `W/` is ignored.
fn weak_match(header: &str, etag: &str) -> bool {
    list_members(header).iter().any(|member| match member {
        ListMember::Any => true,
        ListMember::Tag { opaque, .. } => *opaque == etag,
        ListMember::Invalid => false,
    })
}

/// RFC 9110 §13.2.2 order for an existing file: If-Match first, then If-None-Match.
pub fn evaluate(if_match: Option<&str>, if_none_match: Option<&str>, etag: &str) -> Precondition {
    if if_match.is_some_and(|header| !strong_match(header, etag)) {
        return Precondition::Failed;
    }
    if if_none_match.is_some_and(|header| weak_match(header, etag)) {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// Whether `Range` may be honoured: without `If-Range`, or when it is exactly the current
/// strong etag. A date or another tag means "send the whole file" (always a correct answer).
pub fn range_allowed(if_range: Option<&str>, etag: &str) -> bool {
    let Some(header) = if_range else { return true };
    matches!(list_members(header).as_slice(), [ListMember::Tag { weak: false, opaque }] if *opaque == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_uses_weak_comparison_and_lists() {
        assert_eq!(evaluate(None, Some("\"abc\""), "abc"), Precondition::NotModified);
        assert_eq!(evaluate(None, Some("W/\"abc\""), "abc"), Precondition::NotModified);
        assert_eq!(evaluate(None, Some("\"x\", W/\"abc\""), "abc"), Precondition::NotModified);
        assert_eq!(evaluate(None, Some("*"), "abc"), Precondition::NotModified);
        assert_eq!(evaluate(None, Some("\"x\",\"y\""), "abc"), Precondition::Proceed);
        assert_eq!(evaluate(None, Some("abc"), "abc"), Precondition::Proceed, "unquoted is not an etag");
    }

    #[test]
    fn if_match_uses_strong_comparison() {
        assert_eq!(evaluate(Some("\"abc\""), None, "abc"), Precondition::Proceed);
        assert_eq!(evaluate(Some("*"), None, "abc"), Precondition::Proceed);
        assert_eq!(evaluate(Some("\"x\", \"abc\""), None, "abc"), Precondition::Proceed);
        assert_eq!(evaluate(Some("W/\"abc\""), None, "abc"), Precondition::Failed);
        assert_eq!(evaluate(Some("\"x\""), None, "abc"), Precondition::Failed);
        assert_eq!(evaluate(Some(""), None, "abc"), Precondition::Failed);
    }

    #[test]
    fn if_match_is_evaluated_before_if_none_match() {
        assert_eq!(evaluate(Some("\"x\""), Some("\"abc\""), "abc"), Precondition::Failed);
        assert_eq!(evaluate(Some("\"abc\""), Some("\"abc\""), "abc"), Precondition::NotModified);
    }

    #[test]
    fn tags_may_contain_commas_and_garbage_is_skipped() {
        assert_eq!(evaluate(None, Some("junk, \"a,b\""), "a,b"), Precondition::NotModified);
        assert_eq!(evaluate(None, Some("\"unterminated"), "unterminated"), Precondition::Proceed);
    }

    #[test]
    fn if_range_needs_the_exact_strong_tag() {
        assert!(range_allowed(None, "abc"));
        assert!(range_allowed(Some("\"abc\""), "abc"));
        assert!(!range_allowed(Some("W/\"abc\""), "abc"));
        assert!(!range_allowed(Some("\"x\""), "abc"));
        assert!(!range_allowed(Some("Tue, 15 Nov 1994 08:12:31 GMT"), "abc"));
    }
}
