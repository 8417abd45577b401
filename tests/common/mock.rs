//! Scriptable mock upstreams: replies taken in order, what each received, and
//! whether a streamed body was cut off by its client.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub type MockBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// How a mock ends a streamed body after its events.
#[derive(Clone, Debug)]
pub enum End {
    Close,
    /// Abort the connection (a reset mid-stream).
    Drop,
    /// Keep the connection open and send nothing more.
    Hang,
}

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Before the response head.
    pub delay: Duration,
    /// Body pieces, each sent after its delay.
    pub events: Vec<(Duration, Bytes)>,
    pub end: End,
    /// Before the response head (after `delay`), wait until this gate opens.
    pub hold: Option<Gate>,
    /// Before the body piece at this index, wait until this gate opens.
    pub hold_before: Option<(usize, Gate)>,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            delay: Duration::ZERO,
            events: vec![(Duration::ZERO, Bytes::from(body.into()))],
            end: End::Close,
            hold: None,
            hold_before: None,
        }
    }

    /// An SSE body from `data:` payloads (each framed as its own event).
    pub fn sse(datas: &[&str]) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            delay: Duration::ZERO,
            events: datas
                .iter()
                .map(|d| (Duration::ZERO, Bytes::from(format!("data: {d}\n\n"))))
                .collect(),
            end: End::Close,
            hold: None,
            hold_before: None,
        }
    }

    /// A body sent verbatim in pieces (raw SSE or NDJSON text).
    pub fn raw(status: u16, content_type: &str, pieces: &[&str]) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            delay: Duration::ZERO,
            events: pieces
                .iter()
                .map(|p| (Duration::ZERO, Bytes::from(p.to_string())))
                .collect(),
            end: End::Close,
            hold: None,
            hold_before: None,
        }
    }

    /// `text` sent verbatim, cut into pieces of odd sizes (mid-line, mid-CRLF,
    /// mid-character), each its own write 1 ms apart.
    pub fn split(status: u16, content_type: &str, text: &str) -> Reply {
        const SIZES: [usize; 7] = [1, 7, 3, 29, 13, 101, 2];
        let bytes = text.as_bytes();
        let mut reply = Reply::raw(status, content_type, &[]);
        let (mut at, mut i) = (0, 0);
        while at < bytes.len() {
            let end = (at + SIZES[i % SIZES.len()]).min(bytes.len());
            let wait = if i == 0 {
                Duration::ZERO
            } else {
                Duration::from_millis(1)
            };
            reply
                .events
                .push((wait, Bytes::copy_from_slice(&bytes[at..end])));
            at = end;
            i += 1;
        }
        reply
    }

    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }

    /// Waits `d` before every body piece after the first.
    pub fn gap(mut self, d: Duration) -> Reply {
        for e in self.events.iter_mut().skip(1) {
            e.0 = d;
        }
        self
    }

    /// Waits `d` before the piece at `index`.
    pub fn gap_before(mut self, index: usize, d: Duration) -> Reply {
        self.events[index].0 = d;
        self
    }

    pub fn end(mut self, end: End) -> Reply {
        self.end = end;
        self
    }

    /// Holds the response head until `gate` opens.
    pub fn hold(mut self, gate: &Gate) -> Reply {
        self.hold = Some(gate.clone());
        self
    }

    /// Sends the pieces before `index` (the head too), then holds the rest until `gate`
    /// opens.
    pub fn hold_before(mut self, index: usize, gate: &Gate) -> Reply {
        self.hold_before = Some((index, gate.clone()));
        self
    }
}

/// Where a mock's reply waits until the test opens it: the test decides when an
/// upstream answers, instead of a delay racing the proxy's timers. Clones share the
/// gate; once open it stays open.
#[derive(Clone, Default)]
pub struct Gate(Arc<GateState>);

#[derive(Default)]
struct GateState {
    open: AtomicBool,
    reached: AtomicUsize,
    opened: Notify,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Lets every reply held here go on, now and later.
    pub fn open(&self) {
        self.0.open.store(true, Ordering::SeqCst);
        self.0.opened.notify_waiters();
    }

    /// How many replies have reached the gate. A reply held before a body piece has
    /// flushed what came before by the time the test sees it here.
    pub fn reached(&self) -> usize {
        self.0.reached.load(Ordering::SeqCst)
    }

    async fn pass(&self) {
        self.0.reached.fetch_add(1, Ordering::SeqCst);
        loop {
            let opened = self.0.opened.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            if self.0.open.load(Ordering::SeqCst) {
                return;
            }
            opened.await;
        }
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("open", &self.0.open.load(Ordering::SeqCst))
            .field("reached", &self.reached())
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct Received {
    pub version: http::Version,
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("mock received JSON")
    }
}

#[derive(Default)]
struct MockState {
    script: VecDeque<Reply>,
    fallback: Option<Reply>,
    received: Vec<Received>,
}

/// A scripted upstream: replies are taken in order; when the script runs out, the
/// fallback reply (if any) answers, else 500.
#[derive(Clone)]
pub struct Mock {
    pub addr: SocketAddr,
    state: Arc<Mutex<MockState>>,
    /// Streamed bodies dropped before their end (the client went away).
    pub cancelled: Arc<AtomicUsize>,
    /// Connections that got as far as HTTP (past the TLS handshake, for an HTTPS mock).
    pub connections: Arc<AtomicUsize>,
    scheme: &'static str,
}

impl Mock {
    pub async fn start() -> Mock {
        Mock::serve(None).await
    }

    /// An HTTPS mock: `tls` decides its certificate, ALPN and whether it wants a
    /// client certificate (see `tls.rs`).
    pub async fn start_tls(tls: Arc<rustls::ServerConfig>) -> Mock {
        Mock::serve(Some(tokio_rustls::TlsAcceptor::from(tls))).await
    }

    async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mock = Mock {
            addr,
            state: Arc::default(),
            cancelled: Arc::default(),
            connections: Arc::default(),
            scheme: if tls.is_some() { "https" } else { "http" },
        };
        let m = mock.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let m = m.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => m.serve_connection(TokioIo::new(stream)).await,
                        // A refused handshake (no client certificate) ends here.
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                m.serve_connection(TokioIo::new(stream)).await
                            }
                        }
                    }
                });
            }
        });
        mock
    }

    async fn serve_connection<I>(self, io: TokioIo<I>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        self.connections.fetch_add(1, Ordering::SeqCst);
        let svc = service_fn(move |req| {
            let m = self.clone();
            async move { Ok::<_, Infallible>(m.respond(req).await) }
        });
        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
            .serve_connection(io, svc)
            .await;
    }

    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    pub fn push(&self, reply: Reply) -> &Mock {
        self.state.lock().unwrap().script.push_back(reply);
        self
    }

    pub fn always(&self, reply: Reply) -> &Mock {
        self.state.lock().unwrap().fallback = Some(reply);
        self
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn count(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }

    async fn respond(&self, req: http::Request<Incoming>) -> http::Response<MockBody> {
        let version = req.version();
        let method = req.method().to_string();
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let reply = {
            let mut st = self.state.lock().unwrap();
            st.received.push(Received {
                version,
                method,
                path,
                headers,
                body,
            });
            st.script
                .pop_front()
                .or_else(|| st.fallback.clone())
                .unwrap_or_else(|| {
                    Reply::json(500, r#"{"error":{"message":"mock script exhausted"}}"#)
                })
        };
        tokio::time::sleep(reply.delay).await;
        if let Some(gate) = &reply.hold {
            gate.pass().await;
        }
        let mut builder = http::Response::builder().status(reply.status);
        for (k, v) in &reply.headers {
            builder = builder.header(k, v);
        }
        let cancelled = self.cancelled.clone();
        // The held piece's index counts down to 0 as pieces go out.
        let stream = futures_util::stream::unfold(
            (
                VecDeque::from(reply.events),
                reply.end,
                CancelProbe(Some(cancelled)),
                reply.hold_before,
            ),
            |(mut events, end, mut probe, mut hold)| async move {
                if let Some((wait, bytes)) = events.pop_front() {
                    match hold.take() {
                        Some((0, gate)) => gate.pass().await,
                        Some((n, gate)) => hold = Some((n - 1, gate)),
                        None => {}
                    }
                    tokio::time::sleep(wait).await;
                    return Some((Ok(Frame::data(bytes)), (events, end, probe, hold)));
                }
                match end {
                    End::Close => {
                        probe.0.take();
                        None
                    }
                    End::Drop => {
                        // Let what was sent reach the peer before the reset.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        probe.0.take();
                        Some((
                            Err(std::io::Error::other("mock drops the connection")),
                            (events, End::Close, probe, hold),
                        ))
                    }
                    End::Hang => {
                        std::future::pending::<()>().await;
                        None
                    }
                }
            },
        );
        builder
            .body(BodyExt::boxed(StreamBody::new(stream)))
            .unwrap()
    }
}

/// Counts a streamed body dropped before it finished.
struct CancelProbe(Option<Arc<AtomicUsize>>);

impl Drop for CancelProbe {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// An address on which nothing listens: connecting is refused.
pub async fn refused_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}
