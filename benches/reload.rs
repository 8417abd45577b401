//! Hot reload under load: `cargo bench --bench reload`.
//!
//! In one process: a fixed-answer upstream, the proxy with its file watcher, and 8
//! clients sending requests back to back. Measures
//! - the time from a config write (by rename) to the new config in force, over 20
//!   reloads (median, max);
//! - requests failed and latency (p50/p99) over 5 s of load without reloads, and over
//!   5 s during which the file is rewritten 10 times (lead switched each time).
//!
//! Prints numbers; no assertions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use understudy::config::{self, watch};
use understudy::App;

const ANSWER: &str = r#"{"id":"chatcmpl-b","object":"chat.completion","created":1700000000,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

async fn upstream() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(ANSWER.as_bytes())))
                            .expect("response"),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

fn config(lead: usize, a: &str, b: &str) -> String {
    let order = if lead == 0 {
        "\"a/m\", \"b/m\""
    } else {
        "\"b/m\", \"a/m\""
    };
    format!(
        "[providers.a]\nkind = \"openai\"\nbase_url = \"{a}/v1\"\n[providers.b]\nkind = \"openai\"\nbase_url = \"{b}/v1\"\n[[routes]]\nmodel = \"default\"\ntargets = [{order}]\n"
    )
}

fn write_by_rename(path: &Path, text: &str, n: usize) {
    let tmp = path.with_extension(format!("tmp{n}"));
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

struct Load {
    latencies: Vec<Duration>,
    failed: usize,
}

async fn load(url: &str, clients: usize, stop: Arc<AtomicBool>) -> Load {
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let url = url.to_string();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            let body = Bytes::from_static(
                br#"{"model":"default","messages":[{"role":"user","content":"hi"}]}"#,
            );
            let (mut lat, mut failed) = (Vec::new(), 0);
            while !stop.load(Ordering::Relaxed) {
                let req = http::Request::post(&url)
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))
                    .expect("request");
                let t = Instant::now();
                let ok = match tokio::time::timeout(Duration::from_secs(10), client.request(req))
                    .await
                {
                    Ok(Ok(resp)) => {
                        let status = resp.status();
                        let _ = resp.into_body().collect().await;
                        status == 200
                    }
                    _ => false,
                };
                lat.push(t.elapsed());
                failed += usize::from(!ok);
            }
            (lat, failed)
        }));
    }
    let mut out = Load {
        latencies: Vec::new(),
        failed: 0,
    };
    for t in tasks {
        let (l, f) = t.await.expect("client task");
        out.latencies.extend(l);
        out.failed += f;
    }
    out.latencies.sort();
    out
}

fn pct(v: &[Duration], p: usize) -> f64 {
    v[(v.len() * p / 100).min(v.len() - 1)].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let (a, b) = (upstream().await, upstream().await);
    let dir = std::env::temp_dir().join(format!("understudy-reload-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("proxy.toml");
    std::fs::write(&path, config(0, &a, &b)).expect("write");
    let env = config::process_env();
    let app = App::new(config::load(&path, &env).expect("config"), env);
    let _watch = watch::spawn_watcher(app.clone()).expect("watch");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!(
        "http://{}/v1/chat/completions",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(understudy::serve(
        app.clone(),
        listener,
        std::future::pending(),
        || Duration::from_secs(1),
    ));

    // 1. write → in force, 20 times
    let mut took = Vec::new();
    for i in 0..20 {
        let before = app.reload_status().reloads;
        let t = Instant::now();
        write_by_rename(&path, &config((i + 1) % 2, &a, &b), i);
        while app.reload_status().reloads == before && t.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        took.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    took.sort();
    println!(
        "write -> in force over 20 reloads: median {:.0} ms, max {:.0} ms (debounce 200 ms)",
        took[10].as_secs_f64() * 1e3,
        took[19].as_secs_f64() * 1e3
    );

    // 2. load without reloads
    let stop = Arc::new(AtomicBool::new(false));
    let run = tokio::spawn({
        let (url, stop) = (url.clone(), stop.clone());
        async move { load(&url, 8, stop).await }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let quiet = run.await.expect("load");

    // 3. the same load while the file is rewritten 10 times
    let reloads_before = app.reload_status().reloads;
    let stop = Arc::new(AtomicBool::new(false));
    let run = tokio::spawn({
        let (url, stop) = (url.clone(), stop.clone());
        async move { load(&url, 8, stop).await }
    });
    for i in 0..10 {
        tokio::time::sleep(Duration::from_millis(450)).await;
        write_by_rename(&path, &config((i + 1) % 2, &a, &b), 100 + i);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let busy = run.await.expect("load");
    let reloads = app.reload_status().reloads - reloads_before;

    println!("8 clients, 5 s each:");
    println!(
        "  without reloads: {} requests, {} failed, p50 {:.3} ms, p99 {:.3} ms",
        quiet.latencies.len(),
        quiet.failed,
        pct(&quiet.latencies, 50),
        pct(&quiet.latencies, 99)
    );
    println!(
        "  during {reloads} reloads: {} requests, {} failed, p50 {:.3} ms, p99 {:.3} ms",
        busy.latencies.len(),
        busy.failed,
        pct(&busy.latencies, 50),
        pct(&busy.latencies, 99)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
