//! Creates (`PUT`): what a stream is configured with, whether a repeated create is the same one
//! (200) or a conflict (409), and what lifetime a fork gets.

use super::content_type;
use super::expiry::Lifetime;
use crate::sequence::Seq;

/// The configuration a stream was created with (and a create request asks for).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamConfig {
    /// As sent (absent = the default type); compared by essence.
    pub content_type: Option<String>,
    pub lifetime: Lifetime,
    pub closed: bool,
    /// The source stream's name, for forks.
    pub forked_from: Option<String>,
    /// Where the fork was taken; a request without `Stream-Fork-Offset` leaves it None.
    pub fork_offset: Option<Seq>,
    /// `Stream-Fork-Sub-Offset` as sent (0 = absent).
    pub fork_sub_offset: u64,
}

impl StreamConfig {
    pub fn content_type_or_default(&self) -> &str {
        self.content_type.as_deref().unwrap_or(content_type::DEFAULT)
    }

    /// Whether a create asking for `requested` may answer 200 for this existing stream.
    pub fn accepts_repeat(&self, requested: &StreamConfig) -> bool {
        let content_type_matches = match (&requested.content_type, &requested.forked_from) {
            // A fork that names no type takes the source's, whatever it was.
            (None, Some(_)) => true,
            _ => content_type::same(self.content_type_or_default(), requested.content_type_or_default()),
        };
        content_type_matches
            && self.lifetime.ttl_seconds == requested.lifetime.ttl_seconds
            && self.lifetime.expires_at.as_ref().map(|e| &e.0) == requested.lifetime.expires_at.as_ref().map(|e| &e.0)
            && self.closed == requested.closed
            && self.forked_from == requested.forked_from
            && requested.fork_offset.is_none_or(|offset| self.fork_offset == Some(offset))
            && self.fork_sub_offset == requested.fork_sub_offset
    }
}

/// A fork's lifetime: its own if it asks for one, otherwise its source's (never capped by it).
pub fn fork_lifetime(requested: &Lifetime, source: &Lifetime) -> Lifetime {
    if requested.ttl_seconds.is_some() || requested.expires_at.is_some() {
        requested.clone()
    } else {
        source.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ct: Option<&str>) -> StreamConfig {
        StreamConfig { content_type: ct.map(Into::into), ..Default::default() }
    }

    #[test]
    fn repeated_creates() {
        assert!(cfg(Some("application/json")).accepts_repeat(&cfg(Some("APPLICATION/JSON"))));
        assert!(cfg(None).accepts_repeat(&cfg(Some("application/octet-stream"))));
        assert!(!cfg(Some("text/plain")).accepts_repeat(&cfg(Some("application/json"))));
        let ttl = StreamConfig { lifetime: Lifetime { ttl_seconds: Some(3600), expires_at: None }, ..cfg(Some("text/plain")) };
        assert!(ttl.accepts_repeat(&ttl.clone()));
        assert!(!ttl.accepts_repeat(&StreamConfig { lifetime: Lifetime { ttl_seconds: Some(7200), expires_at: None }, ..ttl.clone() }));
        assert!(!ttl.accepts_repeat(&cfg(Some("text/plain"))));
        let closed = StreamConfig { closed: true, ..cfg(None) };
        assert!(!closed.accepts_repeat(&cfg(None)));
    }

    #[test]
    fn repeated_forks() {
        let fork = StreamConfig {
            content_type: Some("text/plain".into()),
            forked_from: Some("src".into()),
            fork_offset: Some(3),
            fork_sub_offset: 2,
            ..Default::default()
        };
        let again = StreamConfig { content_type: None, fork_offset: Some(3), ..fork.clone() };
        assert!(fork.accepts_repeat(&again));
        assert!(fork.accepts_repeat(&StreamConfig { fork_offset: None, ..again.clone() }));
        assert!(!fork.accepts_repeat(&StreamConfig { fork_sub_offset: 3, ..again.clone() }));
        assert!(!fork.accepts_repeat(&StreamConfig { fork_offset: Some(2), ..again.clone() }));
        assert!(!fork.accepts_repeat(&StreamConfig { forked_from: None, ..again }));
    }

    #[test]
    fn fork_lifetimes() {
        let source = Lifetime { ttl_seconds: Some(3600), expires_at: None };
        assert_eq!(fork_lifetime(&Lifetime::default(), &source), source);
        let own = Lifetime { ttl_seconds: None, expires_at: Some(("x".into(), 5)) };
        assert_eq!(fork_lifetime(&own, &source), own);
    }
}
