//! Test harness: the real proxy served in-process on 127.0.0.1:0, scriptable mock
//! upstreams that count what they receive, and a small HTTP client.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use understudy::config::{self, EnvLookup};
use understudy::App;

pub type MockBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

// ---------------------------------------------------------------------------------
// Mock upstreams

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
}

impl Reply {
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            delay: Duration::ZERO,
            events: vec![(Duration::ZERO, Bytes::from(body.into()))],
            end: End::Close,
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
}

#[derive(Clone, Debug)]
pub struct Received {
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
}

impl Mock {
    pub async fn start() -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mock = Mock {
            addr,
            state: Arc::default(),
            cancelled: Arc::default(),
        };
        let m = mock.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let m = m.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let m = m.clone();
                        async move { Ok::<_, Infallible>(m.respond(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        mock
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
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
        let mut builder = http::Response::builder().status(reply.status);
        for (k, v) in &reply.headers {
            builder = builder.header(k, v);
        }
        let cancelled = self.cancelled.clone();
        let stream = futures_util::stream::unfold(
            (
                VecDeque::from(reply.events),
                reply.end,
                CancelProbe(Some(cancelled)),
            ),
            |(mut events, end, mut probe)| async move {
                if let Some((wait, bytes)) = events.pop_front() {
                    tokio::time::sleep(wait).await;
                    return Some((Ok(Frame::data(bytes)), (events, end, probe)));
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
                            (events, End::Close, probe),
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

// ---------------------------------------------------------------------------------
// OpenAI-shaped mock answers

pub fn completion(model: &str, text: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-mock1", "object": "chat.completion", "created": 1_700_000_000u64,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": null}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    })
    .to_string()
}

pub fn chunk(model: &str, delta: serde_json::Value, finish: Option<&str>) -> String {
    serde_json::json!({
        "id": "chatcmpl-mock1", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]
    })
    .to_string()
}

/// A streamed OpenAI answer of `words`, then finish, usage and [DONE].
pub fn stream_reply(model: &str, words: &[&str]) -> Reply {
    let mut datas = vec![chunk(
        model,
        serde_json::json!({"role": "assistant", "content": ""}),
        None,
    )];
    for w in words {
        datas.push(chunk(model, serde_json::json!({"content": w}), None));
    }
    datas.push(chunk(model, serde_json::json!({}), Some("stop")));
    datas.push(
        serde_json::json!({"id": "chatcmpl-mock1", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
            "model": model, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
        .to_string(),
    );
    datas.push("[DONE]".into());
    let refs: Vec<&str> = datas.iter().map(String::as_str).collect();
    Reply::sse(&refs)
}

// ---------------------------------------------------------------------------------
// The proxy

/// The key variable of the providers [`openai_config`] declares, and its value.
pub const UPSTREAM_KEY: (&str, &str) = ("TEST_KEY", "sk-upstream-secret");

/// OpenAI-kind providers named `names` at the mocks' URLs, and a `default` route over
/// them in that order (`NAME/m-NAME`). `extra` follows `[server]`'s `listen`.
pub fn openai_config(mocks: &[(&str, String)], extra: &str) -> String {
    let mut s = String::from("[server]\nlisten = \"127.0.0.1:0\"\n");
    s.push_str(extra);
    for (name, url) in mocks {
        s.push_str(&format!(
            "\n[providers.{name}]\nkind = \"openai\"\nbase_url = \"{url}/v1\"\napi_key_env = \"TEST_KEY\"\n"
        ));
    }
    let targets: Vec<String> = mocks
        .iter()
        .map(|(n, _)| format!("\"{n}/m-{n}\""))
        .collect();
    s.push_str(&format!(
        "\n[[routes]]\nmodel = \"default\"\ntargets = [{}]\n",
        targets.join(", ")
    ));
    s
}

pub struct Proxy {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    pub config_path: PathBuf,
    _dir: TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub served: Option<tokio::task::JoinHandle<()>>,
    _watch: Option<understudy::config::watch::WatchGuard>,
}

pub fn env_of(pairs: &[(&str, &str)]) -> EnvLookup {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(move |k| map.get(k).cloned())
}

impl Proxy {
    /// Serves `toml` (written to a temp file) with the given environment.
    pub async fn start(toml: &str, env: &[(&str, &str)]) -> Proxy {
        Proxy::start_with_env(toml, env_of(env)).await
    }

    pub async fn start_with_env(toml: &str, env: EnvLookup) -> Proxy {
        let dir = TempDir::new();
        let config_path = dir.path.join("proxy.toml");
        std::fs::write(&config_path, toml).unwrap();
        let snapshot =
            config::load(&config_path, &env).unwrap_or_else(|e| panic!("test config invalid: {e}"));
        let app = App::new(snapshot, env);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let grace_app = app.clone();
        let served = tokio::spawn(understudy::serve(
            app.clone(),
            listener,
            async move {
                let _ = rx.await;
            },
            move || grace_app.config.load().server.shutdown_grace,
        ));
        Proxy {
            addr,
            app,
            config_path,
            _dir: dir,
            shutdown: Some(tx),
            served: Some(served),
            _watch: None,
        }
    }

    /// Like [`Proxy::start_with_env`], with the config file watched for changes.
    pub async fn start_watched(toml: &str, env: EnvLookup) -> Proxy {
        let mut p = Proxy::start_with_env(toml, env).await;
        p._watch = Some(understudy::config::watch::spawn_watcher(p.app.clone()).expect("watch"));
        p
    }

    /// Replaces the config the way editors that save by rename do.
    pub fn write_by_rename(&self, toml: &str) {
        let tmp = self
            .config_path
            .with_extension(format!("tmp{}", fastrand::u32(..)));
        std::fs::write(&tmp, toml).unwrap();
        std::fs::rename(&tmp, &self.config_path).unwrap();
    }

    /// Rewrites the config file in place (truncate + write).
    pub fn write_in_place(&self, toml: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.config_path)
            .unwrap();
        f.write_all(toml.as_bytes()).unwrap();
        f.sync_all().unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops accepting; in-flight requests get the configured grace.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub async fn chat(&self, body: serde_json::Value) -> Resp {
        send(
            &self.url("/v1/chat/completions"),
            "POST",
            &[],
            body.to_string(),
        )
        .await
    }

    /// A chat request carrying the client key `key`.
    pub async fn chat_as(&self, key: &str, body: serde_json::Value) -> Resp {
        let auth = format!("Bearer {key}");
        send(
            &self.url("/v1/chat/completions"),
            "POST",
            &[("authorization", &auth)],
            body.to_string(),
        )
        .await
    }
}

/// A directory removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "understudy-test-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------
// Client

pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `data:` payloads of an SSE body.
    pub fn sse_data(&self) -> Vec<String> {
        self.text()
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(str::to_string)
            .collect()
    }

    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// One request, whole answer, bounded by a 30 s timeout.
pub async fn send(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Resp {
    let mut b = http::Request::builder().method(method).uri(url);
    let mut has_ct = false;
    for (k, v) in headers {
        has_ct |= k.eq_ignore_ascii_case("content-type");
        b = b.header(*k, *v);
    }
    if !has_ct {
        b = b.header("content-type", "application/json");
    }
    let req = b.body(Full::new(body.into())).unwrap();
    let fut = async {
        let resp = client().request(req).await.expect("proxy reachable");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Resp {
            status,
            headers,
            body,
        }
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("request finished within 30 s")
}

pub async fn get(url: &str) -> Resp {
    send(url, "GET", &[], Bytes::new()).await
}

/// Starts a request and returns the response head with its body still streaming.
pub async fn open_stream(url: &str, body: serde_json::Value) -> http::Response<Incoming> {
    let req = http::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), client().request(req))
        .await
        .expect("head within 30 s")
        .expect("proxy reachable")
}

/// Reads body frames until one arrives that contains `needle` (bounded: 30 s).
pub async fn read_until(body: &mut Incoming, needle: &str) -> String {
    let mut seen = String::new();
    let fut = async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("frame").into_data() {
                seen.push_str(&String::from_utf8_lossy(&data));
                if seen.contains(needle) {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("needle within 30 s");
    seen
}

/// Polls `cond` every 20 ms for at most `within`.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn user(model: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

pub fn user_stream(model: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]})
}

// ---------------------------------------------------------------------------------
// The official openai SDK as the judge

/// The Python with the `openai` SDK: `$UNDERSTUDY_TEST_PYTHON`, else `.venv/bin/python`
/// (created by `scripts/test.sh`).
pub fn sdk_python() -> PathBuf {
    if let Ok(p) = std::env::var("UNDERSTUDY_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test.sh, which creates it with the openai SDK",
        p.display()
    );
    p
}

/// Runs `scenarios` (`[{"kind": "complete"|"stream", "request": {...}}]`) through the
/// openai SDK against `proxy`; one JSON result per scenario. Bounded: 90 s.
pub async fn openai_sdk(
    proxy: &Proxy,
    api_key: &str,
    scenarios: serde_json::Value,
) -> Vec<serde_json::Value> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/openai_client.py");
    let base = proxy.url("/v1");
    let key = api_key.to_string();
    let run = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(sdk_python())
            .arg(script)
            .arg(base)
            .arg(key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python starts");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(scenarios.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().expect("python finishes")
    });
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("SDK run within 90 s")
        .unwrap();
    assert!(
        out.status.success(),
        "SDK script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("SDK script prints JSON")
}
