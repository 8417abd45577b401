//! The cheapest reverse-proxy hop hyper 1.x can make, for `scripts/bench.sh` to put
//! beside nginx `proxy_pass` and understudy: what any proxy built on the stack this
//! project is bound to (hyper server + hyper-util's pooled client on tokio) spends
//! before it does any work of its own. Two modes:
//!
//! - `pass`: the request and the answer stream through untouched (nginx's job);
//! - `read`: the request body is read whole first, as a proxy that routes on the
//!   body's `model` must, then sent on; the answer still streams through.
//!
//! Usage: `hyper_hop <listen port> <upstream port> [pass|read] [multi|current]`: the
//! last picks tokio's runtime, multi-thread (understudy's) or current-thread (one
//! thread, no work stealing: the cheapest a one-core hop can run on). Plain HTTP/1.1
//! on 127.0.0.1 only; no error handling beyond a 502 — a yardstick, not a proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, hyper::Error>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen: u16 = args
        .get(1)
        .and_then(|p| p.parse().ok())
        .expect("listen port");
    let upstream: u16 = args
        .get(2)
        .and_then(|p| p.parse().ok())
        .expect("upstream port");
    let read = args.get(3).map(String::as_str) == Some("read");
    let mut runtime = match args.get(4).map(String::as_str) {
        Some("current") => tokio::runtime::Builder::new_current_thread(),
        // The runtime understudy runs on (main.rs).
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(serve(listen, upstream, read));
}

async fn serve(listen: u16, upstream: u16, read: bool) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(connector);
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], listen)))
        .await
        .expect("bind");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        stream.set_nodelay(true).ok();
        let client = client.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| hop(client.clone(), upstream, read, req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn hop(
    client: Client<HttpConnector, Body>,
    upstream: u16,
    read: bool,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("http://127.0.0.1:{upstream}{path}")
        .parse()
        .unwrap();
    parts.headers.remove(hyper::header::HOST);
    let body: Body = if read {
        match body.collect().await {
            Ok(b) => Full::new(b.to_bytes()).map_err(|e| match e {}).boxed(),
            Err(_) => return Ok(bad_gateway()),
        }
    } else {
        body.boxed()
    };
    Ok(
        match client.request(Request::from_parts(parts, body)).await {
            Ok(resp) => resp.map(BodyExt::boxed),
            Err(_) => bad_gateway(),
        },
    )
}

fn bad_gateway() -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::new()).map_err(|e| match e {}).boxed());
    *resp.status_mut() = StatusCode::BAD_GATEWAY;
    resp
}
