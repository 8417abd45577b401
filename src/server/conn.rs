//! One client connection from accept to close: the connection limit, a deadline for
//! the first request head counted from accept (so a silent client, a trickled HTTP/2
//! preface or TLS hello is cut whatever the protocol), the idle keep-alive timeout
//! for HTTP/1.1 and HTTP/2 alike, and graceful shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::app::App;
use crate::config::ConnLimits;
use crate::http::body::Body;

/// hyper's settings for every connection, chosen for many idle or slow connections
/// in little memory.
pub(super) fn builder(limits: &ConnLimits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // The read buffer caps a request head: past it hyper answers 431 itself. Bodies
    // are read through it in pieces, so it need not be larger. hyper's own header
    // timer starts as soon as a keep-alive connection goes idle, which would cut idle
    // connections at the header timeout: the watchdog below keeps both deadlines.
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_total_bytes.max(8 * 1024));
    // Windows sized for chat requests, not bulk transfer: a client's unread data is
    // what the proxy must buffer per stream.
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_total_bytes).unwrap_or(u32::MAX))
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(256 * 1024)
        .max_send_buf_size(64 * 1024)
        .max_concurrent_streams(200);
    b
}

/// Open connections against `server.max_connections`.
#[derive(Clone)]
pub(super) struct Gauge {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// A connection's place under the limit, given back when it closes.
pub(super) struct Admitted {
    open: Arc<AtomicUsize>,
    metric: prometheus_client::metrics::gauge::Gauge,
}

impl Gauge {
    pub(super) fn new(max: usize) -> Gauge {
        Gauge {
            open: Arc::default(),
            max,
        }
    }

    /// A place for one more connection, or `None` past the limit (the caller closes
    /// it; the shed is counted here).
    pub(super) fn admit(&self, app: &App) -> Option<Admitted> {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if !taken {
            app.metrics.shed_connections.inc();
            return None;
        }
        app.metrics.connections.inc();
        Some(Admitted {
            open: self.open.clone(),
            metric: app.metrics.connections.clone(),
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.metric.dec();
    }
}

/// What the watchdog knows of a connection: has a request head arrived yet, and how
/// many responses are still being sent.
#[derive(Clone, Copy, Default)]
struct Activity {
    served: bool,
    inflight: u32,
}

/// Holds a response open in the connection's count until its body is done.
struct Busy(Arc<watch::Sender<Activity>>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0
            .send_modify(|a| a.inflight = a.inflight.saturating_sub(1));
    }
}

/// Why the watchdog ended a connection.
enum Expired {
    /// No complete request head within `header_timeout` of accept: cut.
    Silent,
    /// Keep-alive with nothing in flight for `idle_timeout`: closed gracefully.
    Idle,
}

/// Waits for the connection's next deadline; `None` while a response is in flight.
async fn watchdog(
    mut rx: watch::Receiver<Activity>,
    accepted: Instant,
    limits: ConnLimits,
) -> Expired {
    loop {
        let a = *rx.borrow_and_update();
        let deadline = if !a.served {
            Some((accepted + limits.header_timeout, Expired::Silent))
        } else if a.inflight == 0 {
            Some((Instant::now() + limits.idle_timeout, Expired::Idle))
        } else {
            None
        };
        match deadline {
            Some((at, why)) => tokio::select! {
                changed = rx.changed() => if changed.is_err() { return why },
                _ = tokio::time::sleep_until(at) => return why,
            },
            None => {
                if rx.changed().await.is_err() {
                    return Expired::Idle;
                }
            }
        }
    }
}

/// What a connection's task needs besides its socket.
pub(super) struct Conn {
    pub app: Arc<App>,
    pub builder: auto::Builder<TokioExecutor>,
    pub limits: ConnLimits,
    pub shutdown: watch::Receiver<bool>,
    pub peer: std::net::SocketAddr,
    /// The place under `max_connections`, given back when the task ends.
    pub admitted: Admitted,
}

/// Serves one accepted connection (after its TLS handshake, if any) until it
/// closes, is cut by the watchdog, or drains on shutdown. This future is the
/// connection's task, held for the connection's whole life, so it is kept small:
/// the place under the limit travels inside it rather than in a wrapping future (a
/// wrapper would hold this one twice), and the TLS path, larger by a TLS session
/// and its handshake, is boxed so that plain connections do not pay for it.
pub(super) async fn serve(conn: Conn, stream: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
    let accepted = Instant::now();
    match tls {
        None => run(conn, TokioIo::new(stream), accepted).await,
        Some(acceptor) => {
            Box::pin(async move {
                let handshake = tokio::time::timeout_at(
                    accepted + conn.limits.header_timeout,
                    acceptor.accept(stream),
                )
                .await;
                let Ok(Ok(stream)) = handshake else {
                    tracing::debug!(peer = %conn.peer, "TLS handshake failed or timed out");
                    return;
                };
                run(conn, TokioIo::new(stream), accepted).await
            })
            .await
        }
    }
}

async fn run<I>(conn: Conn, io: I, accepted: Instant)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let Conn {
        app,
        builder,
        limits,
        mut shutdown,
        peer,
        admitted: _admitted,
    } = conn;
    let (activity, seen) = watch::channel(Activity::default());
    let activity = Arc::new(activity);
    let service = service_fn(move |req: http::Request<Incoming>| {
        let app = app.clone();
        activity.send_modify(|a| {
            a.served = true;
            a.inflight += 1;
        });
        let busy = Busy(activity.clone());
        // Boxed: hyper keeps room for one in-flight request future per HTTP/1.1
        // connection for the connection's whole life; unboxed, that is the request
        // handler's state held by every idle keep-alive connection. Boxed, it is
        // allocated per request and freed with it (and kept small: see `handle`).
        let fut: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(async move {
            let resp = super::handle(app, req).await;
            Ok::<_, std::convert::Infallible>(resp.map(|body| hold(body, busy)))
        });
        fut
    });
    // Pinned where they are made: a binding moved into a pinned one would take room
    // in this (long-lived) future twice.
    let mut conn = std::pin::pin!(builder.serve_connection_with_upgrades(io, service));
    let mut dog = std::pin::pin!(watchdog(seen, accepted, limits));
    let mut closing = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            expired = &mut dog, if !closing => match expired {
                Expired::Silent => {
                    tracing::debug!(%peer, "no request head within the header timeout; closing");
                    return;
                }
                Expired::Idle => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            },
            _ = shutdown.wait_for(|s| *s), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// `body`, keeping the connection's in-flight count until it is done or dropped.
fn hold(body: Body, busy: Busy) -> Body {
    body.map_frame(move |f| {
        let _ = &busy;
        f
    })
    .boxed_unsync()
}
