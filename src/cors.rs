//! CORS for every route (`/v1` and `/ds`), so web pages can call the API: preflights are answered
//! without a key, and every answer, errors included, tells the browser whether the page's origin
//! may read it. Credentials are never allowed: the API key travels in a header, never in a cookie.

use crate::routes::Route;
use worker::worker_sys::web_sys;
use worker::{console_error, Headers, Request, Response};

/// The `[vars]` variable listing the origins allowed to call the API.
pub const ORIGINS_VAR: &str = "CORS_ALLOWED_ORIGINS";

/// Request headers a page may send: the API key's, the native API's and the Durable Streams
/// protocol's, and the file metadata an upload stores.
const ALLOW_HEADERS: &str = "authorization, x-api-key, content-type, idempotency-key, expected-last-seq, \
nats-expected-last-sequence, if-match, if-none-match, \
if-range, range, content-language, content-disposition, content-encoding, cache-control, expires, stream-seq, \
stream-ttl, stream-expires-at, stream-closed, producer-id, producer-epoch, producer-seq, stream-forked-from, \
stream-fork-offset, stream-fork-sub-offset";
/// Response headers a page may read beyond the CORS-safelisted ones.
const EXPOSE_HEADERS: &str = "etag, location, content-type, content-range, accept-ranges, content-disposition, \
content-encoding, allow, retry-after, stream-next-offset, stream-cursor, stream-up-to-date, stream-closed, stream-ttl, \
stream-expires-at, stream-sse-data-encoding, producer-epoch, producer-seq, producer-expected-seq, producer-received-seq";
/// How long a browser may reuse a preflight's answer (seconds).
const PREFLIGHT_MAX_AGE: &str = "86400";

/// The origins `CORS_ALLOWED_ORIGINS` allows: `*` (the default) or a comma-separated list.
#[derive(Debug, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    Only(Vec<String>),
}

impl AllowedOrigins {
    pub fn parse(configured: Option<&str>) -> Result<AllowedOrigins, String> {
        let Some(configured) = configured else { return Ok(AllowedOrigins::Any) };
        if configured.trim() == "*" {
            return Ok(AllowedOrigins::Any);
        }
        let origins: Vec<String> =
            configured.split(',').map(str::trim).filter(|entry| !entry.is_empty()).map(str::to_owned).collect();
        // An entry that is not a bare origin (a trailing slash, a path, a missing scheme) would
        // never match a browser's Origin header and silently lock pages out.
        if let Some(bad) = origins.iter().find(|origin| !is_origin(origin)) {
            return Err(format!("{bad:?} is not an origin like https://app.example.com"));
        }
        Ok(AllowedOrigins::Only(origins))
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it is allowed.
    pub fn allow_origin(&self, origin: Option<&str>) -> Option<String> {
        match self {
            AllowedOrigins::Any => Some("*".to_owned()),
            AllowedOrigins::Only(origins) => origin.filter(|o| origins.iter().any(|allowed| allowed == o)).map(str::to_owned),
        }
    }
}

fn is_origin(entry: &str) -> bool {
    let rest = entry.strip_prefix("https://").or_else(|| entry.strip_prefix("http://"));
    rest.is_some_and(|host| !host.is_empty() && !host.contains(['/', ' ', '?', '#']))
}

/// The CORS answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    allow_origin: Option<String>,
    /// The answer depends on the request's `Origin` (so caches must key on it).
    varies: bool,
}

impl Cors {
    pub fn new(allowed: &AllowedOrigins, origin: Option<&str>) -> Cors {
        Cors { allow_origin: allowed.allow_origin(origin), varies: matches!(allowed, AllowedOrigins::Only(_)) }
    }

    /// Reads the configuration. An invalid one allows no origin (closed, not open) and is logged
    /// with its variable on every request from a page.
    pub fn for_request(req: &Request, env: &worker::Env) -> worker::Result<Cors> {
        let origin = req.headers().get("origin")?;
        let configured = env.var(ORIGINS_VAR).ok().map(|value| value.to_string());
        let allowed = AllowedOrigins::parse(configured.as_deref()).unwrap_or_else(|reason| {
            if origin.is_some() {
                console_error!("invalid configuration variable {ORIGINS_VAR}: {reason}; no origin is allowed");
            }
            AllowedOrigins::Only(Vec::new())
        });
        Ok(Cors::new(&allowed, origin.as_deref()))
    }

    /// The CORS headers of the answer, as (name, value) pairs.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let vary = self.varies.then_some(("vary", "Origin"));
        let allow = self.allow_origin.as_deref().into_iter().flat_map(|origin| {
            [("access-control-allow-origin", origin), ("access-control-expose-headers", EXPOSE_HEADERS)]
        });
        vary.into_iter().chain(allow)
    }

    /// Sets the CORS headers on `headers` (adding to a `Vary` already there).
    pub fn decorate(&self, headers: &Headers) -> worker::Result<()> {
        for (name, value) in self.headers() {
            if name == "vary" {
                headers.append(name, value)?;
            } else {
                headers.set(name, value)?;
            }
        }
        Ok(())
    }

    /// The response as sent: a fresh copy (a Durable Object's response has immutable headers)
    /// with the CORS headers.
    pub fn finish(&self, response: Response) -> web_sys::Response {
        let response = web_sys::Response::from(response);
        if let Err(error) = self.decorate(&Headers(response.headers())) {
            console_error!("could not set the CORS headers: {error}");
        }
        response
    }
}

/// The answer to a preflight on `route` (the origin headers are added by [`Cors::finish`]).
pub fn preflight(route: Route) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("access-control-allow-methods", &route.allow())?;
    headers.set("access-control-allow-headers", ALLOW_HEADERS)?;
    headers.set("access-control-max-age", PREFLIGHT_MAX_AGE)?;
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_or_star_allows_every_origin() {
        assert_eq!(AllowedOrigins::parse(None), Ok(AllowedOrigins::Any));
        assert_eq!(AllowedOrigins::parse(Some(" * ")), Ok(AllowedOrigins::Any));
        assert_eq!(AllowedOrigins::Any.allow_origin(Some("https://a.example")), Some("*".into()));
        assert_eq!(AllowedOrigins::Any.allow_origin(None), Some("*".into()));
    }

    #[test]
    fn a_list_allows_exactly_its_origins() {
        let allowed = AllowedOrigins::parse(Some("https://a.example, http://localhost:5173,")).unwrap();
        assert_eq!(allowed, AllowedOrigins::Only(vec!["https://a.example".into(), "http://localhost:5173".into()]));
        assert_eq!(allowed.allow_origin(Some("http://localhost:5173")), Some("http://localhost:5173".into()));
        assert_eq!(allowed.allow_origin(Some("https://b.example")), None);
        assert_eq!(allowed.allow_origin(Some("https://a.example.evil")), None);
        assert_eq!(allowed.allow_origin(None), None);
    }

    #[test]
    fn an_empty_list_allows_no_origin() {
        let allowed = AllowedOrigins::parse(Some("")).unwrap();
        assert_eq!(allowed.allow_origin(Some("https://a.example")), None);
    }

    #[test]
    fn entries_that_are_not_origins_are_refused() {
        for bad in ["https://a.example/", "a.example", "https://a.example/app", "ftp://a.example", "https://"] {
            assert!(AllowedOrigins::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}

// Headers and responses are JavaScript objects: these run under Node (wasm-bindgen-test).
#[cfg(all(test, target_arch = "wasm32"))]
mod wasm_tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn header(response: &web_sys::Response, name: &str) -> Option<String> {
        response.headers().get(name).unwrap()
    }

    fn listing(origin: &str) -> Cors {
        let allowed = AllowedOrigins::parse(Some("https://app.example")).unwrap();
        Cors::new(&allowed, Some(origin))
    }

    #[wasm_bindgen_test]
    fn an_allowed_origin_is_echoed_and_the_api_headers_exposed() {
        let response = listing("https://app.example").finish(Response::empty().unwrap());
        assert_eq!(header(&response, "access-control-allow-origin").as_deref(), Some("https://app.example"));
        assert_eq!(header(&response, "vary").as_deref(), Some("Origin"));
        assert!(header(&response, "access-control-expose-headers").unwrap().contains("etag"));
        assert_eq!(header(&response, "access-control-allow-credentials"), None);
    }

    #[wasm_bindgen_test]
    fn another_origin_gets_no_cors_headers() {
        let response = listing("https://elsewhere.example").finish(Response::empty().unwrap());
        assert_eq!(header(&response, "access-control-allow-origin"), None);
        assert_eq!(header(&response, "access-control-expose-headers"), None);
        assert_eq!(header(&response, "vary").as_deref(), Some("Origin"));
    }

    #[wasm_bindgen_test]
    fn responses_with_immutable_headers_are_copied_before_they_are_decorated() {
        // Like a Durable Object's response, a redirect's headers cannot be changed.
        let immutable = web_sys::Response::redirect("https://example.com/").unwrap();
        assert!(immutable.headers().set("x-probe", "1").is_err());
        let response = Cors::new(&AllowedOrigins::Any, None).finish(Response::from(immutable));
        assert_eq!(response.status(), 302);
        assert_eq!(header(&response, "location").as_deref(), Some("https://example.com/"));
        assert_eq!(header(&response, "access-control-allow-origin").as_deref(), Some("*"));
    }

    #[wasm_bindgen_test]
    fn a_preflight_names_the_routes_methods_and_the_allowed_headers() {
        let response = preflight(Route::SubjectState).unwrap();
        assert_eq!(response.status_code(), 204);
        let headers = response.headers();
        assert_eq!(headers.get("access-control-allow-methods").unwrap().as_deref(), Some("GET, PUT, OPTIONS"));
        assert_eq!(headers.get("access-control-max-age").unwrap().as_deref(), Some("86400"));
        let allowed = headers.get("access-control-allow-headers").unwrap().unwrap();
        for name in ["authorization", "x-api-key", "if-match", "idempotency-key", "stream-seq"] {
            assert!(allowed.split(", ").any(|h| h == name), "{name}");
        }
    }
}
