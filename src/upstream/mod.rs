//! The pooled HTTP client every provider request goes through: hyper-util's client
//! with hyper-rustls (HTTP/2 or HTTP/1.1 by ALPN), one pool per distinct egress
//! (proxy, trust, client certificate) and connect timeout, and typed failures so the
//! failover loop can tell a refused connection from a timeout.

mod connect;
pub mod egress;
pub mod proxy;
pub mod trust;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Intercept;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use self::connect::{BoxError, Connector, ProxyFailure, Timed};
pub use self::egress::Egress;
use crate::config::Snapshot;

/// A request body that streams from the client (`[passthrough]` uploads); an error
/// from it aborts the upstream request.
pub type Streamed = UnsyncBoxBody<Bytes, BoxError>;
/// Whole bodies (every translated request) stay unboxed.
type HttpsClient = Client<Timed<HttpsConnector<Connector>>, Either<Full<Bytes>, Streamed>>;

/// Which of an attempt's deadlines ran out (the `timeouts` keys of DESIGN §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// TCP, a proxy's CONNECT, TLS.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ClientKey {
    egress: [u8; 32],
    connect: Duration,
}

/// One pooled client per distinct egress and connect timeout (hyper's connector holds
/// both).
#[derive(Default)]
pub struct Upstream {
    clients: Mutex<HashMap<ClientKey, Arc<HttpsClient>>>,
}

impl Upstream {
    pub fn new() -> Upstream {
        Upstream::default()
    }

    fn key(egress: &Egress, connect: Duration) -> ClientKey {
        ClientKey {
            egress: egress.fingerprint(),
            connect,
        }
    }

    fn build(egress: &Egress, connect: Duration) -> HttpsClient {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect));
        let tcp = Connector {
            http,
            proxy: egress.proxy.clone(),
            timeout: connect,
        };
        // The config's ALPN (h2, http/1.1) is set where it is built.
        let https = HttpsConnector::from((tcp, egress.tls.clone()));
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(Timed {
                inner: https,
                timeout: connect,
            })
    }

    fn client(&self, egress: &Egress, connect: Duration) -> Arc<HttpsClient> {
        let mut map = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(Upstream::key(egress, connect))
            .or_insert_with(|| Arc::new(Upstream::build(egress, connect)))
            .clone()
    }

    /// Builds the clients a new snapshot's providers and targets need and drops those
    /// none of them uses: a reload keeps the pool (the open connections) of every
    /// provider whose egress did not change. Requests in flight keep the client they
    /// hold.
    pub fn prepare(&self, snap: &Snapshot) {
        let mut wanted: HashMap<ClientKey, (&Egress, Duration)> = HashMap::new();
        let providers = snap.providers.iter().map(|p| (p, p.timeouts.connect));
        let targets = (snap.routes.iter().flat_map(|r| &r.targets))
            .map(|t| (&t.provider, t.timeouts.connect));
        for (p, connect) in providers.chain(targets) {
            let key = Upstream::key(&p.egress, connect);
            wanted.insert(key, (&p.egress, connect));
        }
        let mut map = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let old = std::mem::take(&mut *map);
        *map = wanted
            .into_iter()
            .map(|(key, (egress, connect))| {
                let client = old.get(&key).cloned();
                let client = client.unwrap_or_else(|| Arc::new(Upstream::build(egress, connect)));
                (key, client)
            })
            .collect();
    }

    /// Sends `req` and waits for the response head until `head_deadline`; `total` is
    /// the attempt's overall deadline (whichever comes first names the timeout).
    pub async fn send(
        &self,
        mut req: http::Request<Bytes>,
        egress: &Egress,
        connect_timeout: Duration,
        head_deadline: Instant,
        total_deadline: Instant,
    ) -> Result<http::Response<Incoming>, SendError> {
        let client = self.client(egress, connect_timeout);
        let via = forwarded(egress, &mut req);
        let deadline = head_deadline.min(total_deadline);
        let fut = client.request(req.map(|b| Either::Left(Full::new(b))));
        match tokio::time::timeout_at(deadline, fut).await {
            Err(_) if deadline == total_deadline && total_deadline < head_deadline => {
                Err(SendError::Timeout(Phase::Total))
            }
            Err(_) => Err(SendError::Timeout(Phase::FirstByte)),
            Ok(Ok(resp)) => let_through(resp, via),
            Ok(Err(e)) => Err(classify(&e)),
        }
    }

    /// Sends `req`, whose body streams, and returns its response head. The caller
    /// bounds the wait: when the first byte is due depends on when the upload ends.
    pub async fn send_streamed(
        &self,
        mut req: http::Request<Streamed>,
        egress: &Egress,
        connect_timeout: Duration,
    ) -> Result<http::Response<Incoming>, SendError> {
        let client = self.client(egress, connect_timeout);
        let via = forwarded(egress, &mut req);
        match client.request(req.map(Either::Right)).await {
            Ok(resp) => let_through(resp, via),
            Err(e) => Err(classify(&e)),
        }
    }
}

/// The forwarding proxy an http:// request goes through, if any, with the proxy's
/// credentials added to the request (a tunnel carries them in its CONNECT instead).
fn forwarded<B>(egress: &Egress, req: &mut http::Request<B>) -> Option<Intercept> {
    if req.uri().scheme() != Some(&http::uri::Scheme::HTTP) {
        return None;
    }
    let via = egress.proxy.intercept(req.uri())?;
    if let Some(auth) = via.basic_auth() {
        req.headers_mut()
            .insert(http::header::PROXY_AUTHORIZATION, auth.clone());
    }
    Some(via)
}

/// A forwarding proxy's 407 is the proxy refusing, not the upstream answering: the
/// request never left, like a refused CONNECT.
fn let_through(
    resp: http::Response<Incoming>,
    via: Option<Intercept>,
) -> Result<http::Response<Incoming>, SendError> {
    match via {
        Some(via) if resp.status() == http::StatusCode::PROXY_AUTHENTICATION_REQUIRED => {
            Err(SendError::Refused(
                ProxyFailure {
                    proxy: proxy::shown(&via),
                    what: connect::auth_refused(via.basic_auth().is_some()).into(),
                }
                .to_string(),
            ))
        }
        _ => Ok(resp),
    }
}

fn classify(e: &hyper_util::client::legacy::Error) -> SendError {
    let mut timed_out = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
        }
        source = s.source();
    }
    let chain = connect::chain(e);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{from_str, EnvLookup};

    fn load(dir: &std::path::Path, text: &str) -> Snapshot {
        let env: EnvLookup = Arc::new(|_| None);
        from_str(text, &dir.join("proxy.toml"), &env).unwrap()
    }

    fn pem() -> String {
        rcgen::generate_simple_self_signed(vec!["ca.test".into()])
            .unwrap()
            .cert
            .pem()
    }

    #[test]
    fn a_reload_keeps_the_pool_of_an_unchanged_egress_and_rebuilds_a_changed_one() {
        let dir = std::env::temp_dir().join(format!("understudy-pools-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), pem()).unwrap();
        let text = "[providers.a]\nkind = \"openai\"\nbase_url = \"https://a.test\"\nca_file = \"ca.pem\"\n\
                    [providers.b]\nkind = \"openai\"\nbase_url = \"https://b.test\"\n\
                    [[routes]]\nmodel = \"m\"\ntargets = [\"a/x\", { target = \"b/y\", timeouts = { connect = \"1s\" } }]\n";
        let up = Upstream::new();
        let first = load(&dir, text);
        up.prepare(&first);
        let a = |s: &Snapshot| s.provider("a").unwrap().clone();
        let b = |s: &Snapshot| s.provider("b").unwrap().clone();
        let connect = a(&first).timeouts.connect;
        let pool_a = up.client(&a(&first).egress, connect);
        let pool_b = up.client(&b(&first).egress, Duration::from_secs(1));
        // a and b at the default connect timeout, b at the route's 1s
        assert_eq!(up.clients.lock().unwrap().len(), 3);

        let same = load(&dir, text);
        up.prepare(&same);
        assert!(Arc::ptr_eq(&pool_a, &up.client(&a(&same).egress, connect)));

        // Same path, new contents: a new pool for a, b's kept.
        std::fs::write(dir.join("ca.pem"), pem()).unwrap();
        let changed = load(
            &dir,
            &text.replace("connect = \"1s\"", "connect = \"1s\", idle = \"2s\""),
        );
        up.prepare(&changed);
        assert!(!Arc::ptr_eq(
            &pool_a,
            &up.client(&a(&changed).egress, connect)
        ));
        assert!(Arc::ptr_eq(
            &pool_b,
            &up.client(&b(&changed).egress, Duration::from_secs(1))
        ));

        // b's 1s target gone: its pool is dropped.
        up.prepare(&load(
            &dir,
            &text.replace(
                ", { target = \"b/y\", timeouts = { connect = \"1s\" } }",
                "",
            ),
        ));
        assert_eq!(up.clients.lock().unwrap().len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
