//! Hostile clients through the real server, over raw sockets: oversized headers get
//! 431 and request smuggling 400, with nothing sent upstream; a silent connection,
//! a trickled HTTP/2 preface and a slowloris head are cut at the header timeout
//! counted from accept; idle keep-alive connections close at the idle timeout; past
//! `server.max_connections` new connections are closed and counted. Every wait here
//! is on the socket itself (bounded by a hang guard), never on a clock.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::*;

/// Short deadlines, so a test waits for the proxy to close rather than for a clock.
const SHORT: &str = "header_timeout = \"300ms\"\nidle_timeout = \"300ms\"\n";
const HANG_GUARD: Duration = Duration::from_secs(20);

async fn proxy(extra: &str) -> (Mock, Proxy) {
    let a = Mock::start().await;
    let p = Proxy::start(&openai_config(&[("a", a.url())], extra), &[UPSTREAM_KEY]).await;
    (a, p)
}

/// Reads until the proxy closes the connection; what it sent before that.
async fn until_closed(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(HANG_GUARD, read)
        .await
        .expect("the proxy closed the connection");
    String::from_utf8_lossy(&got).into_owned()
}

/// Sends `head` (and `body`) on a fresh connection; the status line's code.
async fn status_of(p: &Proxy, head: &str, body: &[u8]) -> u16 {
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let got = until_closed_or_answered(&mut s).await;
    got.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {got:?}"))
}

/// Reads one response head (or up to the close).
async fn until_closed_or_answered(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(HANG_GUARD, read)
        .await
        .expect("an answer or a close");
    String::from_utf8_lossy(&got).into_owned()
}

const CHAT: &str = r#"{"model":"default","messages":[{"role":"user","content":"hi"}]}"#;

fn chat_head(extra_headers: &str, framing: &str) -> String {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{extra_headers}{framing}\r\n"
    )
}

fn content_length() -> String {
    format!("content-length: {}\r\n", CHAT.len())
}

#[tokio::test]
async fn headers_over_the_limits_get_431_before_anything_goes_upstream() {
    let (a, p) = proxy("").await;
    a.always(Reply::json(200, completion("m-a", "ok")));
    // Just under the per-header limit (16 KiB, name and value): served.
    let fits = format!("x-big: {}\r\n", "v".repeat(16 * 1024 - 5));
    assert_eq!(
        status_of(&p, &chat_head(&fits, &content_length()), CHAT.as_bytes()).await,
        200
    );
    assert_eq!(a.count(), 1);
    // One header of 16 KiB + 1.
    let one = format!("x-big: {}\r\n", "v".repeat(16 * 1024 - 4));
    assert_eq!(
        status_of(&p, &chat_head(&one, &content_length()), CHAT.as_bytes()).await,
        431
    );
    // Five headers of 15 KiB: each fits, together over 64 KiB.
    let many: String = (0..5)
        .map(|i| format!("x-part-{i}: {}\r\n", "v".repeat(15 * 1024)))
        .collect();
    assert_eq!(
        status_of(&p, &chat_head(&many, &content_length()), CHAT.as_bytes()).await,
        431
    );
    assert_eq!(a.count(), 1, "nothing over the limits went upstream");
}

#[tokio::test]
async fn over_http2_headers_over_the_limits_get_431_and_nothing_goes_upstream() {
    let (a, p) = proxy("").await;
    a.always(Reply::json(200, completion("m-a", "ok")));
    let s = TcpStream::connect(p.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(s),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let req = |extra: Option<(&str, String)>| {
        let mut b = http::Request::post(format!("http://{}/v1/chat/completions", p.addr))
            .header("content-type", "application/json");
        if let Some((k, v)) = extra {
            b = b.header(k, v);
        }
        b.body(Full::new(Bytes::from(CHAT))).unwrap()
    };
    let ok = send.send_request(req(None)).await.expect("answered");
    assert_eq!(ok.status(), 200);
    let big = send
        .send_request(req(Some(("x-big", "v".repeat(17 * 1024)))))
        .await
        .expect("answered");
    assert_eq!(big.status(), 431);
    let body = big.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("request_header_fields_too_large"),
        "{body:?}"
    );
    // Five headers of 15 KiB: each fits, together over 64 KiB.
    let mut many = req(None);
    for i in 0..5 {
        many.headers_mut().insert(
            http::HeaderName::from_bytes(format!("x-part-{i}").as_bytes()).unwrap(),
            http::HeaderValue::from_str(&"v".repeat(15 * 1024)).unwrap(),
        );
    }
    match send.send_request(many).await {
        Ok(r) => assert_eq!(r.status(), 431),
        // h2 may refuse the stream itself rather than answer it.
        Err(e) => assert!(e.to_string().contains("stream"), "{e}"),
    }
    assert_eq!(a.count(), 1, "nothing over the limits went upstream");
}

#[tokio::test]
async fn request_smuggling_gets_400_and_nothing_goes_upstream() {
    let (a, p) = proxy("").await;
    a.always(Reply::json(200, completion("m-a", "ok")));
    let chunked = format!("{:x}\r\n{CHAT}\r\n0\r\n\r\n", CHAT.len());
    let cases = [
        (
            "two different content-lengths",
            chat_head(&content_length(), "content-length: 3\r\n"),
            CHAT.to_string(),
        ),
        (
            "an obs-folded header",
            chat_head("x-folded: one\r\n two\r\n", &content_length()),
            CHAT.to_string(),
        ),
        (
            "transfer-encoding not ending in chunked",
            chat_head("", "transfer-encoding: chunked, identity\r\n"),
            chunked,
        ),
        (
            "a space before the colon",
            chat_head("content-length : 3\r\n", &content_length()),
            CHAT.to_string(),
        ),
    ];
    for (what, head, body) in cases {
        let status = status_of(&p, &head, body.as_bytes()).await;
        assert_eq!(status, 400, "{what}");
    }
    assert_eq!(a.count(), 0, "no smuggled request went upstream");
}

/// Content-Length and Transfer-Encoding together: hyper reads the body by
/// Transfer-Encoding alone and closes the connection after answering (RFC 9112
/// §6.1), so what a Content-Length reader would take for a second request is never
/// read as one.
#[tokio::test]
async fn both_framings_are_read_by_transfer_encoding_and_the_connection_closes() {
    let (a, p) = proxy("").await;
    a.always(Reply::json(200, completion("m-a", "ok")));
    let smuggled = r#"{"model":"smuggled","messages":[{"role":"user","content":"x"}]}"#;
    let body = format!(
        "{:x}\r\n{CHAT}\r\n0\r\n\r\nPOST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{smuggled}",
        CHAT.len(),
        smuggled.len()
    );
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(chat_head("content-length: 4\r\n", "transfer-encoding: chunked\r\n").as_bytes())
        .await
        .unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let got = until_closed(&mut s).await;
    assert_eq!(
        got.matches("HTTP/1.1 ").count(),
        1,
        "one answer, then closed: {got}"
    );
    let sent: Vec<_> = a
        .received()
        .iter()
        .map(|r| r.json()["model"].clone())
        .collect();
    assert_eq!(
        sent,
        vec![serde_json::json!("m-a")],
        "only the chunked body went upstream"
    );
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_header_timeout() {
    let (_a, p) = proxy(SHORT).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    assert_eq!(until_closed(&mut s).await, "", "closed without a word");
    let metrics = get(&p.url("/metrics")).await.text();
    assert!(
        metrics.contains("understudy_connections 1"),
        "only the metrics request: {metrics}"
    );
}

#[tokio::test]
async fn a_trickled_http2_preface_is_closed_at_the_header_timeout() {
    let (_a, p) = proxy(SHORT).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    // Enough for the protocol to be guessed, never the whole preface.
    s.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    until_closed(&mut s).await;
}

#[tokio::test]
async fn a_slowloris_head_is_cut_while_it_still_trickles() {
    let (a, p) = proxy(SHORT).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // One more header byte each time the proxy has said nothing for a while; the
    // proxy must close the connection though bytes keep coming.
    let mut sent = 0;
    let mut buf = [0u8; 64];
    let cut = loop {
        assert!(sent < 2000, "still open after {sent} trickled bytes");
        match tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(_)) => continue, // an answer (a 408, say) before the close
            Err(_) => {}
        }
        if s.write_all(b"x").await.is_err() {
            break true;
        }
        sent += 1;
    };
    assert!(cut);
    assert!(sent > 0, "the head was still trickling when it was cut");
    assert_eq!(a.count(), 0);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
    let (a, p) = proxy(SHORT).await;
    a.always(Reply::json(200, completion("m-a", "ok")));
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(chat_head("", &content_length()).as_bytes())
        .await
        .unwrap();
    s.write_all(CHAT.as_bytes()).await.unwrap();
    let got = until_closed(&mut s).await;
    assert!(
        got.starts_with("HTTP/1.1 200"),
        "served, then closed: {got}"
    );
    assert!(
        !got.contains("connection: close"),
        "kept alive until idle: {got}"
    );
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_at_the_idle_timeout() {
    let (a, p) = proxy(SHORT).await;
    a.always(Reply::json(200, completion("m-a", "ok")));
    let s = TcpStream::connect(p.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(s),
    )
    .await
    .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let req = http::Request::post(format!("http://{}/v1/chat/completions", p.addr))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(CHAT)))
        .unwrap();
    let resp = send.send_request(req).await.expect("answered");
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
    // The server's GOAWAY ends the connection; the client's future resolves.
    tokio::time::timeout(HANG_GUARD, conn)
        .await
        .expect("the proxy closed the idle h2 connection")
        .unwrap()
        .ok();
}

#[tokio::test]
async fn past_max_connections_new_connections_are_closed_and_counted() {
    let (a, p) = proxy("max_connections = 2\n").await;
    a.always(Reply::json(200, completion("m-a", "ok")));
    // Two connections, each proven admitted by an answer, kept open.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let got = until_closed_or_answered(&mut s).await;
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        held.push(s);
    }
    let mut third = TcpStream::connect(p.addr).await.unwrap();
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    assert_eq!(until_closed(&mut third).await, "", "closed unanswered");
    assert_eq!(p.app.metrics.shed_connections.get(), 1);
    // One closes: a new connection is served again.
    drop(held.pop());
    assert!(
        eventually(Duration::from_secs(10), || p.app.metrics.connections.get()
            == 1)
        .await,
        "the closed connection gave its place back"
    );
    let metrics = get(&p.url("/metrics")).await.text();
    assert!(
        metrics.contains("understudy_shed_connections_total 1"),
        "{metrics}"
    );
}
