//! Opening a connection to an upstream: straight there, through a proxy's CONNECT
//! tunnel (https upstreams), or to a forwarding proxy (http upstreams, requests in
//! absolute form). TLS goes on top (hyper-rustls); the whole of it — TCP, the proxy's
//! answer, the handshake — is bounded by the `connect` timeout.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Intercept;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tower_service::Service;

use super::proxy::{shown, ProxyRule};

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Connecting<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

/// A proxy that did not let the connection through. It names the proxy by
/// `host:port` only, and keeps no error source: nothing below it is a timeout of the
/// upstream's, whatever the proxy did.
#[derive(Debug, thiserror::Error)]
#[error("proxy {proxy}: {what}")]
pub struct ProxyFailure {
    pub proxy: String,
    pub what: String,
}

/// The TCP part of a connection: direct or through a proxy.
#[derive(Clone)]
pub(super) struct Connector {
    pub http: HttpConnector,
    pub proxy: ProxyRule,
    pub timeout: Duration,
}

impl Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Connecting<Conn>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        // Taken here, before the TLS layer's and [`Timed`]'s: a proxy that stalls
        // fails as the proxy's fault, not as a connect timeout of the upstream.
        let deadline = Instant::now() + self.timeout;
        let Some(via) = self.proxy.intercept(&dst) else {
            let connecting = self.http.call(dst);
            return Box::pin(async move {
                let io = connecting.await?;
                Ok(Conn {
                    io,
                    forwarding: false,
                })
            });
        };
        let proxy = shown(&via);
        let timeout = self.timeout;
        // https: a tunnel, TLS inside it; http: requests in absolute form to the proxy.
        let forwarding = dst.scheme() != Some(&http::uri::Scheme::HTTPS);
        let connecting: Pin<Box<dyn Future<Output = Result<_, String>> + Send>> = if forwarding {
            let tcp = self.http.call(via.uri().clone());
            Box::pin(async move {
                tcp.await
                    .map_err(|e| format!("cannot connect: {}", chain(&e)))
            })
        } else {
            Box::pin(tunnel(self.http.clone(), via, dst))
        };
        Box::pin(async move {
            match tokio::time::timeout_at(deadline, connecting).await {
                Err(_) => Err(stalled(proxy, timeout)),
                Ok(Err(what)) => Err(Box::new(ProxyFailure { proxy, what }) as BoxError),
                Ok(Ok(io)) => Ok(Conn { io, forwarding }),
            }
        })
    }
}

/// Opens a CONNECT tunnel to `dst` through the proxy `via`: hyper's HTTP/1 client
/// sends the CONNECT and hands the connection back once the proxy answers 200 (its
/// status, when it does not, is what the user needs to see: 403 is a policy, 407
/// the credentials, 502 the proxy's own way out).
async fn tunnel(
    mut http: HttpConnector,
    via: Intercept,
    dst: Uri,
) -> Result<TokioIo<TcpStream>, String> {
    let host = dst.host().ok_or("no host to tunnel to")?;
    let port = dst.port_u16().unwrap_or(443);
    let authority = format!("{host}:{port}");
    let tcp = http
        .call(via.uri().clone())
        .await
        .map_err(|e| format!("cannot connect: {}", chain(&e)))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(tcp)
        .await
        .map_err(|e| chain(&e))?;
    // Driven apart from this future; it ends once the tunnel is handed over, or with
    // `sender` when the proxy refused.
    tokio::spawn(conn.with_upgrades());
    let mut req = http::Request::connect(authority.as_str())
        .header(http::header::HOST, authority.as_str())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    if let Some(auth) = via.basic_auth() {
        req.headers_mut()
            .insert(http::header::PROXY_AUTHORIZATION, auth.clone());
    }
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("no answer to the CONNECT: {}", chain(&e)))?;
    match resp.status() {
        http::StatusCode::OK => {}
        http::StatusCode::PROXY_AUTHENTICATION_REQUIRED => {
            return Err(auth_refused(via.basic_auth().is_some()).into())
        }
        status => return Err(format!("answered {status} to the CONNECT for {authority}")),
    }
    let upgraded = hyper::upgrade::on(resp)
        .await
        .map_err(|e| format!("the tunnel did not open: {}", chain(&e)))?;
    let parts = upgraded
        .downcast::<TokioIo<TcpStream>>()
        .map_err(|_| "the tunnel did not open: not a TCP connection".to_string())?;
    if !parts.read_buf.is_empty() {
        // The upstream speaks only after the TLS client hello: these bytes are not its.
        return Err("sent data into the tunnel before it was used".into());
    }
    Ok(parts.io)
}

fn stalled(proxy: String, timeout: Duration) -> BoxError {
    Box::new(ProxyFailure {
        proxy,
        what: format!(
            "no tunnel within {} (timeouts.connect)",
            humantime::format_duration(timeout)
        ),
    })
}

pub(super) fn auth_refused(had_credentials: bool) -> &'static str {
    if had_credentials {
        "answered 407 Proxy Authentication Required: it refused the credentials in its URL"
    } else {
        "answered 407 Proxy Authentication Required: put credentials in its URL (http://user:pass@host:port)"
    }
}

/// An error and its sources, on one line.
pub(super) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A TCP connection, which tells hyper whether it leads to a forwarding proxy (then
/// requests go in absolute form: `POST http://host/path`).
pub(super) struct Conn {
    io: TokioIo<TcpStream>,
    forwarding: bool,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.forwarding)
    }
}

impl Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

/// Bounds a whole connect — TCP, a proxy's tunnel and the TLS handshake — by the
/// `connect` timeout; hyper's own connect timeout covers only TCP.
#[derive(Clone)]
pub(super) struct Timed<C> {
    pub inner: C,
    pub timeout: Duration,
}

impl<C> Service<Uri> for Timed<C>
where
    C: Service<Uri>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Connecting<C::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        // After the inner call: [`Connector`]'s deadline is never the later one.
        let deadline = Instant::now() + self.timeout;
        Box::pin(async move {
            match tokio::time::timeout_at(deadline, connecting).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect (TCP and TLS) timed out",
                )) as BoxError),
            }
        })
    }
}
