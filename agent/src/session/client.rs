//! The agent's one HTTP client for MCP targets: hyper's pooled client driven
//! directly, with the target's `Uri` parsed once per session and each request
//! built once per call. reqwest did the same over hyper, plus per request what
//! a load generator pays for on every call: the URL parsed again, a proxy
//! lookup, its redirect loop and a few boxed futures. reqwest stays for what
//! the direct path does not do: a target behind a proxy named in the
//! environment takes it throughout, and a redirect is sent again through it,
//! which follows it as before. Both speak HTTP/1.1, and HTTP/2 where TLS
//! negotiates it, with the same TLS settings (rustls, aws-lc, the platform's
//! verifier) and the same pool and TCP settings.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::LOCATION;
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use reqwest::Url;

/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keep-alive probes, as reqwest sends them by default.
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 3;

type Direct = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The pooled client every session of an agent shares; cloning shares the pools.
#[derive(Clone)]
pub struct HttpClient {
    direct: Direct,
    fallback: reqwest::Client,
    /// The proxies the environment names (`HTTP_PROXY`, `NO_PROXY`, …).
    proxies: Arc<Matcher>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

/// A client that could not be built (no TLS roots, no crypto provider).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    Reqwest(#[from] reqwest::Error),
}

/// Where one session's requests go: the URL as reqwest takes it, the same
/// as a `Uri` for hyper, and whether the direct path may carry them.
#[derive(Debug, Clone)]
pub struct Endpoint {
    url: Url,
    uri: Uri,
    direct: bool,
}

impl HttpClient {
    pub fn new() -> Result<Self, BuildError> {
        let fallback = reqwest::Client::builder()
            .pool_max_idle_per_host(usize::MAX)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()?;
        // As reqwest builds its own: the process's provider if one was
        // installed, else aws-lc; every TLS version; the platform's verifier.
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let verifier = rustls_platform_verifier::Verifier::new(provider.clone())?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        tcp.set_keepalive(Some(TCP_KEEPALIVE));
        tcp.set_keepalive_interval(Some(TCP_KEEPALIVE));
        tcp.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(tcp);
        let direct = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(usize::MAX)
            .build(connector);
        Ok(Self {
            direct,
            fallback,
            proxies: Arc::new(Matcher::from_system()),
        })
    }

    /// The reqwest client beside the direct one (for tools that want reqwest).
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.fallback
    }

    /// Parses a target URL once, for all the requests of a session.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, url::ParseError> {
        let url = Url::parse(url)?;
        // A URL hyper cannot take (another scheme, say) goes to reqwest,
        // which refuses it with the words it always had.
        let uri = url.as_str().parse::<Uri>().ok();
        let direct = matches!(url.scheme(), "http" | "https")
            && uri
                .as_ref()
                .is_some_and(|u| self.proxies.intercept(u).is_none());
        Ok(Endpoint {
            uri: uri.unwrap_or_default(),
            url,
            direct,
        })
    }

    /// Sends one request. A redirect the direct path met is the caller's to
    /// send again through [`HttpClient::send_following`].
    pub async fn send(
        &self,
        endpoint: &Endpoint,
        method: Method,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<Response, HttpError> {
        if !endpoint.direct {
            return self.send_following(endpoint, method, headers, body).await;
        }
        let mut request = http::Request::new(Full::new(body.unwrap_or_default()));
        *request.method_mut() = method;
        *request.uri_mut() = endpoint.uri.clone();
        *request.headers_mut() = headers;
        match self.direct.request(request).await {
            Ok(response) => Ok(Response(Inner::Direct(response))),
            Err(source) => Err(HttpError::Send {
                url: endpoint.url.clone(),
                source,
            }),
        }
    }

    /// Sends through reqwest, which follows redirects (up to 10, the
    /// credentials dropped when one leaves the origin) and takes proxies.
    pub async fn send_following(
        &self,
        endpoint: &Endpoint,
        method: Method,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<Response, HttpError> {
        let mut request = reqwest::Request::new(method, endpoint.url.clone());
        *request.headers_mut() = headers;
        *request.body_mut() = body.map(reqwest::Body::from);
        match self.fallback.execute(request).await {
            Ok(response) => Ok(Response(Inner::Fallback(response))),
            Err(e) => Err(HttpError::Reqwest(e)),
        }
    }
}

/// An answer's status and headers, and its body to read chunk by chunk.
pub struct Response(Inner);

enum Inner {
    Direct(http::Response<Incoming>),
    Fallback(reqwest::Response),
}

impl Response {
    pub fn status(&self) -> StatusCode {
        match &self.0 {
            Inner::Direct(r) => r.status(),
            Inner::Fallback(r) => r.status(),
        }
    }

    pub fn headers(&self) -> &HeaderMap {
        match &self.0 {
            Inner::Direct(r) => r.headers(),
            Inner::Fallback(r) => r.headers(),
        }
    }

    /// The body's length when the answer says it up front.
    pub fn content_length(&self) -> Option<u64> {
        match &self.0 {
            Inner::Direct(r) => hyper::body::Body::size_hint(r.body()).exact(),
            Inner::Fallback(r) => r.content_length(),
        }
    }

    /// A redirect the direct path met (reqwest's answers are past theirs):
    /// the statuses reqwest follows, with somewhere to go.
    pub fn is_redirect(&self) -> bool {
        matches!(&self.0, Inner::Direct(_))
            && matches!(self.status().as_u16(), 301 | 302 | 303 | 307 | 308)
            && self.headers().contains_key(LOCATION)
    }

    /// The next chunk of the body; `None` at its end (trailers are skipped).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        match &mut self.0 {
            Inner::Direct(r) => loop {
                match r.body_mut().frame().await {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(HttpError::Body(e)),
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            return Ok(Some(data));
                        }
                    }
                }
            },
            Inner::Fallback(r) => r.chunk().await.map_err(HttpError::Reqwest),
        }
    }
}

/// A request that got no answer, or an answer whose body broke off. The
/// words are reqwest's, as they were before the direct path.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("error sending request for url ({url})")]
    Send {
        url: Url,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("error decoding response body")]
    Body(#[source] hyper::Error),
    #[error(transparent)]
    Reqwest(reqwest::Error),
}

impl HttpError {
    /// Whether a timeout caused it (connecting, or hyper's own), as reqwest tells.
    pub fn is_timeout(&self) -> bool {
        if let HttpError::Reqwest(e) = self {
            return e.is_timeout();
        }
        let mut current: Option<&(dyn StdError + 'static)> = Some(self);
        while let Some(e) = current {
            if e.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
                || e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            {
                return true;
            }
            current = e.source();
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoints_take_the_direct_path_unless_hyper_cannot() {
        let client = HttpClient::new().unwrap();
        let check = |url: &str, direct: bool| {
            let endpoint = client.endpoint(url).unwrap();
            assert_eq!(endpoint.direct, direct, "{url}");
            if direct {
                assert_eq!(endpoint.uri.to_string(), endpoint.url.as_str(), "{url}");
            }
        };
        // (No test sets a proxy variable: the environment is the process's.)
        if std::env::var_os("HTTP_PROXY").is_none()
            && std::env::var_os("http_proxy").is_none()
            && std::env::var_os("ALL_PROXY").is_none()
            && std::env::var_os("all_proxy").is_none()
        {
            check("http://127.0.0.1:8080/mcp", true);
            check("http://LocalHost:1/mcp?x=1", true);
        }
        check("ftp://127.0.0.1/mcp", false);
        assert!(client.endpoint("not a url").is_err());
    }
}
