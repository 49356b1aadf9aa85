//! HTTP requests with the client's current credential, and rate limits honoured.

use crate::credentials::Credentials;
use crate::error::{Error, Result};
use reqwest::header::{AUTHORIZATION, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use std::time::Duration;
use tokio::time::Instant;

/// A `reqwest::Client` whose requests carry the current credential: after a token refresh,
/// the next request uses the new token.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    credentials: Credentials,
    /// How long [`Http::send`] may keep retrying a rate-limited request.
    request_timeout: Duration,
}

impl Http {
    pub fn new(client: reqwest::Client, credentials: Credentials, request_timeout: Duration) -> Http {
        Http { client, credentials, request_timeout }
    }

    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.client.request(method, url).header(AUTHORIZATION, self.credentials.current().header)
    }

    pub fn get(&self, url: Url) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    pub fn head(&self, url: Url) -> RequestBuilder {
        self.request(Method::HEAD, url)
    }

    pub fn put(&self, url: Url) -> RequestBuilder {
        self.request(Method::PUT, url)
    }

    pub fn post(&self, url: Url) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    pub fn delete(&self, url: Url) -> RequestBuilder {
        self.request(Method::DELETE, url)
    }

    /// Sends a request; a `429` that says how long to wait is waited out and the request sent
    /// again (the server stored nothing), as long as the request timeout allows and the body
    /// can be sent twice (a streamed upload cannot). Other statuses are the caller's to check.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response> {
        let deadline = Instant::now() + self.request_timeout;
        let mut request = request;
        loop {
            let retry = request.try_clone();
            let response = request.send().await?;
            if response.status() != StatusCode::TOO_MANY_REQUESTS {
                return Ok(response);
            }
            let error = rate_limited(response).await;
            match (retry, &error) {
                (Some(again), Error::RateLimited { retry_after: Some(wait), .. }) if Instant::now() + *wait < deadline => {
                    tokio::time::sleep(*wait).await;
                    request = again;
                }
                _ => return Err(error),
            }
        }
    }
}

/// The error of a `429`: the wait comes from the body's `retryAfterMs`, else from the
/// `Retry-After` header (in seconds).
async fn rate_limited(response: Response) -> Error {
    let header = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    let body = response.bytes().await.unwrap_or_default();
    match Error::from_http(StatusCode::TOO_MANY_REQUESTS.as_u16(), &body) {
        Error::RateLimited { message, retry_after: None } => {
            Error::RateLimited { message, retry_after: header.map(Duration::from_secs) }
        }
        other => other,
    }
}
