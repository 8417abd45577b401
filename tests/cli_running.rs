//! The `understudy` binary running: startup logs, JSON logs, per-request log lines,
//! SIGHUP, graceful shutdown on SIGTERM, TLS termination and binding a localhost name.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod cli_common;
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use http_body_util::BodyExt;

use cli_common::*;
use common::*;

/// The binary serving `toml` on an ephemeral port, its stderr lines on a channel.
struct Running {
    child: Child,
    addr: String,
    logs: mpsc::Receiver<String>,
    _dir: TempDir,
    path: std::path::PathBuf,
}

impl Running {
    fn start(toml: &str, extra_args: &[&str]) -> Running {
        let dir = TempDir::new();
        let path = dir.path.join("proxy.toml");
        std::fs::write(&path, toml).unwrap();
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .args(if extra_args.contains(&"--listen") {
                &[][..]
            } else {
                &["--listen", "127.0.0.1:0"][..]
            })
            .args(extra_args)
            .env("RUST_LOG", "info")
            .env("SET_KEY", "sk-secret-value")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, logs) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut r = Running {
            child,
            addr: String::new(),
            logs,
            _dir: dir,
            path,
        };
        let line = r.wait_log("listening on ");
        let after = line.split("://").nth(1).unwrap();
        r.addr = after
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
            .collect();
        r
    }

    /// The next log line containing `needle` (bounded: 30 s).
    fn wait_log(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?} within 30 s"),
            }
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit (bounded: 30 s).
    fn wait_exit(&mut self) -> i32 {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("the proxy did not exit within 30 s");
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serving(mock: &Mock) -> String {
    format!(
        "[server]\nshutdown_grace = \"10s\"\n[providers.main]\nkind = \"openai\"\nbase_url = \"{}/v1\"\napi_key_env = \"SET_KEY\"\n[providers.off]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key_env = \"UNSET_KEY\"\n[[routes]]\nmodel = \"default\"\ntargets = [\"main/gpt-4o\", \"off/x\"]\n",
        mock.url()
    )
}

#[tokio::test]
async fn startup_logs_the_address_routes_and_disabled_providers() {
    let mock = Mock::start().await;
    let r = Running::start(&serving(&mock), &[]);
    let route = r.wait_log("route");
    assert!(
        route.contains("\"default\" -> [main/gpt-4o, off/x]"),
        "{route}"
    );
    let off = r.wait_log("disabled");
    assert!(
        off.contains("off") && off.contains("UNSET_KEY is not set"),
        "{off}"
    );
    assert_eq!(get(&r.url("/healthz")).await.status, 200);
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_and_never_show_secrets() {
    let mock = Mock::start().await;
    mock.always(Reply::json(200, completion("gpt-4o", "hi")));
    let r = Running::start(&serving(&mock), &["--log-format", "json"]);
    let line = r.wait_log("route");
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(v["level"], "INFO");
    let resp = get(&r.url("/status")).await;
    assert!(!resp.text().contains("sk-secret-value"));
    let mut r = r;
    r.signal("TERM");
    assert_eq!(r.wait_exit(), 0);
    while let Ok(line) = r.logs.try_recv() {
        assert!(!line.contains("sk-secret-value"), "{line}");
    }
}

#[tokio::test]
async fn sighup_reloads_the_config() {
    let mock = Mock::start().await;
    let r = Running::start(&serving(&mock), &[]);
    assert_eq!(get(&r.url("/status")).await.json()["config"]["reloads"], 0);
    r.signal("HUP");
    r.wait_log("config reloaded");
    let status = get(&r.url("/status")).await.json();
    assert_eq!(status["config"]["reloads"], 1);
    // and the file watcher works in the real process too
    std::fs::write(
        &r.path,
        serving(&mock).replace("\"main/gpt-4o\", \"off/x\"", "\"main/gpt-4.1\""),
    )
    .unwrap();
    let line = r.wait_log("config reloaded");
    assert!(
        line.contains("default -> [main/gpt-4.1]"),
        "logs what changed: {line}"
    );
}

#[tokio::test]
async fn sigterm_lets_a_slow_stream_finish_then_exits_zero() {
    let mock = Mock::start().await;
    let words: Vec<String> = (0..10).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    // the role chunk and "w0 " go out; the rest only once shutdown has begun
    let held = Gate::new();
    mock.push(stream_reply("gpt-4o", &refs).hold_before(2, &held));
    let mut r = Running::start(&serving(&mock), &[]);
    let mut resp = open_stream(&r.url("/v1/chat/completions"), user_stream("default")).await;
    read_until(resp.body_mut(), "w0 ").await;
    r.signal("TERM");
    r.wait_log("shutting down");
    // no new connections once shutdown began
    let refused = tokio::net::TcpStream::connect(&r.addr).await;
    assert!(refused.is_err(), "the listener is closed");
    held.open();
    let rest = read_until(resp.body_mut(), "[DONE]").await;
    assert!(rest.contains("w9 "), "the stream finished: {rest}");
    assert_eq!(r.wait_exit(), 0);
}

#[tokio::test]
async fn tls_termination_serves_https_with_h2_and_http1() {
    let mock = Mock::start().await;
    mock.always(Reply::json(200, completion("gpt-4o", "over tls")));
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = TempDir::new();
    std::fs::write(dir.path.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let toml = serving(&mock).replace(
        "[server]\n",
        &format!(
            "[server]\ntls = {{ cert = \"{}\", key = \"{}\" }}\n",
            dir.path.join("cert.pem").display(),
            dir.path.join("key.pem").display()
        ),
    );
    let r = Running::start(&toml, &[]);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, http_body_util::Full<bytes::Bytes>>(https);
    let port = r.addr.rsplit(':').next().unwrap();
    let req = http::Request::post(format!("https://localhost:{port}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            user("default").to_string(),
        )))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2, "ALPN h2");
    // a bad cert path is a config error naming the key
    let (code, _, err) = check(&GOOD.replace(
        "[server]\n",
        "[server]\ntls = { cert = \"/nope.pem\", key = \"/nope.pem\" }\n",
    ));
    assert_eq!(code, 1);
    assert!(err.contains("server.tls: cert /nope.pem"), "{err}");
}

#[tokio::test]
async fn a_stream_still_open_when_the_grace_runs_out_ends_with_a_shutting_down_event() {
    let mock = Mock::start().await;
    // Far slower than the grace: the stream is certainly open when it runs out.
    mock.push(stream_reply("gpt-4o", &["w0 ", "w1 ", "w2 "]).gap(Duration::from_secs(3)));
    let toml = serving(&mock).replace("shutdown_grace = \"10s\"", "shutdown_grace = \"100ms\"");
    let mut r = Running::start(&toml, &[]);
    let mut resp = open_stream(&r.url("/v1/chat/completions"), user_stream("default")).await;
    read_until(resp.body_mut(), "w0 ").await;
    r.signal("TERM");
    let rest = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .expect("the stream ends")
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).to_string())
        .unwrap_or_else(|e| format!("(cut: {e})"));
    let last = rest
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(last.starts_with("data: {\"error\""), "{rest}");
    assert!(last.contains("\"code\":\"shutting_down\""), "{last}");
    assert!(!rest.contains("[DONE]"), "{rest}");
    assert_eq!(r.wait_exit(), 0);
}

#[tokio::test]
async fn log_lines_name_their_request_say_what_happened_and_carry_no_colour_codes() {
    let main = Mock::start().await;
    let flaky = Mock::start().await;
    let toml = format!(
        "{}\n[providers.flaky]\nkind = \"openai\"\nbase_url = \"{}/v1\"\napi_key_env = \"SET_KEY\"\n[[routes]]\nmodel = \"flaky\"\ntargets = [\"flaky/f\"]\n[timeouts]\nidle = \"300ms\"\n[circuit_breaker]\nfailures = 1\nopen_for = \"50ms\"\n",
        serving(&main),
        flaky.url()
    );
    let r = Running::start(&toml, &[]);
    let chat = |id: &'static str, model: &'static str, stream: bool| {
        let url = r.url("/v1/chat/completions");
        async move {
            let body = json_body(model, stream);
            send(&url, "POST", &[("x-request-id", id)], body).await
        }
    };
    // answered: with the latency
    main.push(Reply::json(200, completion("gpt-4o", "hi")));
    assert_eq!(chat("rid-answer", "default", false).await.status, 200);
    let line = r.wait_log("answered");
    assert!(
        line.contains("rid-answer") && line.contains("latency_ms="),
        "{line}"
    );
    // a 429: how long the target now cools
    main.push(Reply::json(429, r#"{"error":{"message":"slow down"}}"#).header("retry-after", "7"));
    assert_eq!(chat("rid-429", "default", false).await.status, 429);
    let line = r.wait_log("cooling down");
    assert!(
        line.contains("rid-429") && line.contains("cooldown_secs=7"),
        "{line}"
    );
    // a stream that fails after content: the request id, and `idle` said plainly
    flaky.push(stream_reply("f", &["a ", "b "]).gap_before(2, Duration::from_secs(5)));
    let resp = chat("rid-idle", "flaky", true).await;
    assert!(
        resp.text().contains("stream timed out (idle)"),
        "{}",
        resp.text()
    );
    let line = r.wait_log("stream failed after its first content event");
    assert!(line.contains("rid-idle"), "{line}");
    assert!(
        !line.contains("Timeout(") && line.contains("idle"),
        "{line}"
    );
    // that failure opened flaky's circuit (failures = 1); after open_for a trial
    // request closes it, and the log says so
    let line = r.wait_log("circuit opened");
    assert!(line.contains("flaky"), "{line}");
    tokio::time::sleep(Duration::from_millis(100)).await; // past open_for
    flaky.push(Reply::json(200, completion("f", "back")));
    assert_eq!(chat("rid-trial", "flaky", false).await.status, 200);
    let line = r.wait_log("circuit closed");
    assert!(
        line.contains("flaky") && line.contains("rid-trial"),
        "{line}"
    );
    // stderr is a pipe here: no ANSI colour codes anywhere
    let mut r = r;
    r.signal("TERM");
    assert_eq!(r.wait_exit(), 0);
    while let Ok(line) = r.logs.try_recv() {
        assert!(!line.contains('\u{1b}'), "{line:?}");
    }
}

fn json_body(model: &str, stream: bool) -> String {
    serde_json::json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
}

#[tokio::test]
async fn the_proxy_binds_a_localhost_name() {
    let mock = Mock::start().await;
    mock.always(Reply::json(200, completion("gpt-4o", "hi")));
    let r = Running::start(&serving(&mock), &["--listen", "localhost:0"]);
    assert_eq!(get(&r.url("/healthz")).await.status, 200);
}
