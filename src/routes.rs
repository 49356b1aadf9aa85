//! Every route the Worker serves and the methods each one answers: the one table checked before
//! authentication and before anything is forwarded, so no handler and no Durable Object sees a
//! method its route does not serve. The check uses the request's real method string, because
//! workers-rs turns methods it does not know (PROPFIND, MKCOL, PURGE, …) into `Method::Get`.

/// A path the Worker serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    FileList,
    File,
    /// `/v1/stream/{subject}`: info, publish, delete, and the WebSocket upgrade (a GET).
    Subject,
    SubjectMessages,
    /// `/v1/stream/{subject}/messages/{seq}` (or `…/messages/last`): one message.
    SubjectMessage,
    SubjectState,
    /// `/v1/stream/{subject}/consumers`: the subject's durable consumers.
    SubjectConsumers,
    /// `/v1/stream/{subject}/consumers/{name}`: reset or delete one.
    SubjectConsumer,
    /// `/v1/subjects`: the subject directory.
    Subjects,
    /// `/metrics`: Prometheus metrics (API key only).
    Metrics,
    /// `/ds/v1/stream/{name}`: the Durable Streams mount.
    DsStream,
    /// `/v1/tokens`: minting (API key only).
    Tokens,
    /// `/v1/tokens/revoke` (API key only).
    TokenRevoke,
    /// `/v1/tokens/revocations` (API key only).
    TokenRevocations,
    /// `/stream/{subject}…`: the original durable-stream protocol's WebSocket (`legacy`).
    LegacyStream,
    /// `/r2` and `/r2/{key}`: the original's file routes.
    LegacyFiles,
}

const PREFLIGHT: &str = "OPTIONS";
/// Where the Durable Streams mount's streams live: `/ds/v1/stream/{name}`.
pub const DS_STREAM_PREFIX: &str = "/ds/v1/stream/";

impl Route {
    pub fn parse(path: &str) -> Option<Route> {
        if path == "/health" {
            return Some(Route::Health);
        }
        if path == "/v1/files" {
            return Some(Route::FileList);
        }
        if path.starts_with("/v1/files/") {
            return Some(Route::File);
        }
        match path {
            "/v1/subjects" => return Some(Route::Subjects),
            "/metrics" => return Some(Route::Metrics),
            "/v1/tokens" => return Some(Route::Tokens),
            "/v1/tokens/revoke" => return Some(Route::TokenRevoke),
            "/v1/tokens/revocations" => return Some(Route::TokenRevocations),
            _ => {}
        }
        if path.starts_with(DS_STREAM_PREFIX) {
            return Some(Route::DsStream);
        }
        if path == "/r2" || path.starts_with("/r2/") {
            return Some(Route::LegacyFiles);
        }
        if path.strip_prefix("/stream/").is_some_and(|rest| !rest.starts_with('/') && !rest.is_empty()) {
            return Some(Route::LegacyStream);
        }
        let rest = path.strip_prefix("/v1/stream/")?;
        match rest.split_once('/') {
            None => Some(Route::Subject),
            Some((_, "messages")) => Some(Route::SubjectMessages),
            Some((_, "state")) => Some(Route::SubjectState),
            Some((_, "consumers")) => Some(Route::SubjectConsumers),
            Some((_, tail)) => match (tail.strip_prefix("messages/"), tail.strip_prefix("consumers/")) {
                (Some(message), _) if !message.is_empty() && !message.contains('/') => Some(Route::SubjectMessage),
                (_, Some(name)) if !name.is_empty() && !name.contains('/') => Some(Route::SubjectConsumer),
                _ => None,
            },
        }
    }

    /// The methods the route serves besides the CORS preflight (`OPTIONS`, served everywhere).
    fn served(self) -> &'static [&'static str] {
        match self {
            Route::Health => &["GET", "HEAD"],
            Route::LegacyStream => &["GET"],
            Route::LegacyFiles => &["GET", "HEAD", "POST", "DELETE"],
            Route::FileList | Route::TokenRevocations | Route::Subjects | Route::Metrics | Route::SubjectConsumers => &["GET"],
            Route::Tokens | Route::TokenRevoke => &["POST"],
            Route::File | Route::DsStream => &["GET", "HEAD", "PUT", "POST", "DELETE"],
            Route::Subject => &["GET", "POST", "DELETE"],
            Route::SubjectMessages => &["GET", "DELETE"],
            Route::SubjectMessage => &["GET"],
            Route::SubjectState => &["GET", "PUT"],
            Route::SubjectConsumer => &["PUT", "DELETE"],
        }
    }

    /// Whether the route serves `method` (method names are case-sensitive).
    pub fn serves(self, method: &str) -> bool {
        method == PREFLIGHT || self.served().contains(&method)
    }

    /// The value of the `Allow` header (and of `Access-Control-Allow-Methods`).
    pub fn allow(self) -> String {
        let mut methods = self.served().to_vec();
        methods.push(PREFLIGHT);
        methods.join(", ")
    }
}

pub fn is_preflight(method: &str) -> bool {
    method == PREFLIGHT
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path of every route, and what it parses to.
    const EXAMPLES: &[(&str, Route)] = &[
        ("/health", Route::Health),
        ("/v1/files", Route::FileList),
        ("/v1/files/a/b.txt", Route::File),
        ("/v1/stream/orders", Route::Subject),
        ("/v1/stream/orders/messages", Route::SubjectMessages),
        ("/v1/stream/orders/state", Route::SubjectState),
        ("/v1/stream/orders/messages/42", Route::SubjectMessage),
        ("/v1/stream/orders/messages/last", Route::SubjectMessage),
        ("/ds/v1/stream/a/b", Route::DsStream),
        ("/v1/tokens", Route::Tokens),
        ("/v1/tokens/revoke", Route::TokenRevoke),
        ("/v1/tokens/revocations", Route::TokenRevocations),
        ("/v1/subjects", Route::Subjects),
        ("/metrics", Route::Metrics),
        ("/v1/stream/orders/consumers", Route::SubjectConsumers),
        ("/v1/stream/orders/consumers/billing", Route::SubjectConsumer),
        ("/stream/orders", Route::LegacyStream),
        ("/stream/orders/ignored", Route::LegacyStream),
        ("/r2", Route::LegacyFiles),
        ("/r2/", Route::LegacyFiles),
        ("/r2//a/b.txt", Route::LegacyFiles),
    ];

    #[test]
    fn paths_map_to_routes() {
        for &(path, route) in EXAMPLES {
            assert_eq!(Route::parse(path), Some(route), "{path}");
        }
    }

    /// wrangler.toml sends these paths to the Worker without the static assets' lookup: a route
    /// missing from that list still works, but pays for a lookup on every request.
    #[test]
    fn every_route_runs_the_worker_first() {
        let config = include_str!("../wrangler.toml");
        let line = config.lines().find(|l| l.starts_with("run_worker_first")).expect("run_worker_first in wrangler.toml");
        let patterns: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
        let covered = |path: &str| {
            patterns.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == *p,
            })
        };
        for &(path, _) in EXAMPLES {
            assert!(covered(path), "{path} is not in run_worker_first {patterns:?}");
        }
    }

    #[test]
    fn unknown_paths_have_no_route() {
        for path in [
            "/",
            "/healthz",
            "/v1/files2",
            "/v1/stream/orders/",
            "/v1/stream/orders/acks",
            "/v1/stream/orders/messages/",
            "/v1/stream/orders/messages/1/2",
            "/ds",
            "/ds/v1/other",
            "/v1/tokens/",
            "/v1/tokens/x",
            "/v1/subjects/",
            "/v1/subjects/x",
            "/metrics/",
            "/v1/stream/orders/consumers/",
            "/v1/stream/orders/consumers/a/b",
            "/stream",
            "/stream/",
            "/stream//x",
            "/r2x",
        ] {
            assert_eq!(Route::parse(path), None, "{path}");
        }
    }

    #[test]
    fn only_listed_methods_are_served() {
        assert!(Route::File.serves("PUT"));
        assert!(Route::SubjectState.serves("OPTIONS"));
        assert!(!Route::SubjectState.serves("POST"));
        assert!(!Route::FileList.serves("HEAD"));
        for exotic in ["PROPFIND", "MKCOL", "COPY", "MOVE", "LOCK", "PURGE", "SEARCH", "QUERY", "PATCH", "TRACE", "get"] {
            assert!(!Route::DsStream.serves(exotic), "{exotic}");
        }
    }

    #[test]
    fn allow_lists_the_served_methods_and_the_preflight() {
        assert_eq!(Route::Subject.allow(), "GET, POST, DELETE, OPTIONS");
        assert_eq!(Route::File.allow(), "GET, HEAD, PUT, POST, DELETE, OPTIONS");
        assert_eq!(Route::FileList.allow(), "GET, OPTIONS");
        assert_eq!(Route::SubjectMessage.allow(), "GET, OPTIONS");
        assert_eq!(Route::SubjectConsumer.allow(), "PUT, DELETE, OPTIONS");
        assert_eq!(Route::Metrics.allow(), "GET, OPTIONS");
    }
}
