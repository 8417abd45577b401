//! A small HTTP proxy for egress tests: CONNECT tunnels and absolute-form forwarding,
//! to loopback addresses only; a log of every request line it got and the
//! credentials that came with it; modes that demand credentials (407) or never
//! answer. Its connections end when it is dropped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Debug)]
pub enum ProxyMode {
    Open,
    /// 407 unless `Proxy-Authorization` is Basic of this `user:pass`.
    Auth(String),
    /// Reads the request and never answers.
    Hang,
}

/// One request the proxy got: its request line (`CONNECT 127.0.0.1:443 HTTP/1.1`)
/// and the `user:pass` of its `Proxy-Authorization`, if any.
#[derive(Clone, Debug)]
pub struct Seen {
    pub line: String,
    pub credentials: Option<String>,
}

pub struct HttpProxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    _stop: watch::Sender<()>,
}

/// Longest a hanging proxy holds a connection, should its test never drop it.
const HANG_LIMIT: Duration = Duration::from_secs(60);
const HEAD_LIMIT: usize = 64 * 1024;

impl HttpProxy {
    pub async fn start(mode: ProxyMode) -> HttpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (stop, stopped) = watch::channel(());
        let log = seen.clone();
        let mut until_dropped = stopped.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = until_dropped.changed() => return,
                };
                let Ok((client, _)) = accepted else { return };
                let (mode, log, mut stopped) = (mode.clone(), log.clone(), stopped.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = serve(client, mode, log) => {}
                        _ = stopped.changed() => {}
                    }
                });
            }
        });
        HttpProxy {
            addr,
            seen,
            _stop: stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The proxy's URL with `user:pass@` in it.
    pub fn url_with(&self, userinfo: &str) -> String {
        format!("http://{userinfo}@{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn lines(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.line).collect()
    }
}

async fn serve(mut client: TcpStream, mode: ProxyMode, log: Arc<Mutex<Vec<Seen>>>) {
    let Some((head, rest)) = read_head(&mut client).await else {
        return;
    };
    let text = String::from_utf8_lossy(&head).to_string();
    let line = text.lines().next().unwrap_or_default().to_string();
    let credentials = text
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("proxy-authorization")
                .then(|| value.trim().strip_prefix("Basic ").map(str::to_string))?
        })
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .map(|raw| String::from_utf8_lossy(&raw).to_string());
    log.lock().unwrap().push(Seen {
        line: line.clone(),
        credentials: credentials.clone(),
    });
    match &mode {
        ProxyMode::Hang => {
            tokio::time::sleep(HANG_LIMIT).await;
            return;
        }
        ProxyMode::Auth(want) if credentials.as_deref() != Some(want.as_str()) => {
            let _ = client
                .write_all(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            return;
        }
        _ => {}
    }
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let authority = if method == "CONNECT" {
        target.to_string()
    } else {
        match target
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.authority().cloned())
        {
            Some(a) => a.to_string(),
            None => return refuse(&mut client, "400 Bad Request").await,
        }
    };
    let Some(mut upstream) = connect_loopback(&authority).await else {
        return refuse(&mut client, "502 Bad Gateway").await;
    };
    if method == "CONNECT" {
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    } else if upstream.write_all(&head).await.is_err() {
        return;
    }
    if upstream.write_all(&rest).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Only loopback destinations: these tests never reach anything else.
async fn connect_loopback(authority: &str) -> Option<TcpStream> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(authority).await.ok()?.collect();
    let addr = addrs.into_iter().find(|a| a.ip().is_loopback())?;
    TcpStream::connect(addr).await.ok()
}

async fn refuse(client: &mut TcpStream, status: &str) {
    let _ = client
        .write_all(
            format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
}

/// The request head (through its blank line) and whatever followed it in the same
/// reads; `None` if the client went away or sent too much.
async fn read_head(client: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while buf.len() < HEAD_LIMIT {
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((buf, rest));
        }
    }
    None
}
