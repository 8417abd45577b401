//! The pooled HTTP client every provider request goes through: hyper-util's client
//! with hyper-rustls (HTTP/1.1 and HTTP/2 by ALPN), and typed failures so the
//! failover loop can tell a refused connection from a timeout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request body that streams from the client (`[passthrough]` uploads); an error
/// from it aborts the upstream request.
pub type Streamed = UnsyncBoxBody<Bytes, BoxError>;
/// Whole bodies (every translated request) stay unboxed.
type HttpsClient = Client<Timed<HttpsConnector<HttpConnector>>, Either<Full<Bytes>, Streamed>>;

/// Bounds a whole connect — TCP and the TLS handshake — by the `connect` timeout;
/// hyper's own connect timeout covers only TCP.
#[derive(Clone)]
struct Timed<C> {
    inner: C,
    timeout: Duration,
}

impl<C> tower_service::Service<http::Uri> for Timed<C>
where
    C: tower_service::Service<http::Uri>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect (TCP and TLS) timed out",
                )) as BoxError),
            }
        })
    }
}

/// Which of an attempt's deadlines ran out (the `timeouts` keys of DESIGN §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// TCP, TLS (and later a proxy's CONNECT).
    Connect,
    /// Until the response head, and for streams until the first event.
    FirstByte,
    /// Between two stream events.
    Idle,
    /// The whole attempt.
    Total,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::FirstByte => "first_byte",
            Phase::Idle => "idle",
            Phase::Total => "total",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why no response head arrived. Whether the request may have reached the upstream
/// is part of the answer: a connection that never opened sent nothing.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("timeout ({0})")]
    Timeout(Phase),
    /// No connection was made: nothing was sent.
    #[error("{0}")]
    Refused(String),
    /// The connection failed after the request may have been sent.
    #[error("{0}")]
    Reset(String),
}

/// One pooled client per distinct connect timeout (hyper's connector holds it).
#[derive(Default)]
pub struct Upstream {
    clients: Mutex<HashMap<Duration, HttpsClient>>,
}

impl Upstream {
    pub fn new() -> Upstream {
        Upstream::default()
    }

    fn client(&self, connect_timeout: Duration) -> Result<HttpsClient, SendError> {
        let mut map = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(&connect_timeout) {
            return Ok(c.clone());
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| SendError::Refused(format!("TLS setup: {e}")))?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let https = Timed {
            inner: https,
            timeout: connect_timeout,
        };
        let client: HttpsClient = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(https);
        map.insert(connect_timeout, client.clone());
        Ok(client)
    }

    /// Sends `req` and waits for the response head until `head_deadline`; `total` is
    /// the attempt's overall deadline (whichever comes first names the timeout).
    pub async fn send(
        &self,
        req: http::Request<Bytes>,
        connect_timeout: Duration,
        head_deadline: Instant,
        total_deadline: Instant,
    ) -> Result<http::Response<Incoming>, SendError> {
        let client = self.client(connect_timeout)?;
        let deadline = head_deadline.min(total_deadline);
        let fut = client.request(req.map(|b| Either::Left(Full::new(b))));
        match tokio::time::timeout_at(deadline, fut).await {
            Err(_) if deadline == total_deadline && total_deadline < head_deadline => {
                Err(SendError::Timeout(Phase::Total))
            }
            Err(_) => Err(SendError::Timeout(Phase::FirstByte)),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(classify(&e)),
        }
    }

    /// Sends `req`, whose body streams, and returns its response head. The caller
    /// bounds the wait: when the first byte is due depends on when the upload ends.
    pub async fn send_streamed(
        &self,
        req: http::Request<Streamed>,
        connect_timeout: Duration,
    ) -> Result<http::Response<Incoming>, SendError> {
        let client = self.client(connect_timeout)?;
        client
            .request(req.map(Either::Right))
            .await
            .map_err(|e| classify(&e))
    }
}

fn classify(e: &hyper_util::client::legacy::Error) -> SendError {
    let mut chain = String::new();
    let mut timed_out = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
        }
        if !chain.is_empty() {
            chain.push_str(": ");
        }
        chain.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_connect() {
        if timed_out {
            SendError::Timeout(Phase::Connect)
        } else {
            SendError::Refused(chain)
        }
    } else {
        SendError::Reset(chain)
    }
}
