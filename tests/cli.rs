//! The `understudy` binary itself: --check, startup logs, SIGHUP, graceful shutdown,
//! JSON logs and TLS termination.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_understudy");

fn check(toml: &str) -> (i32, String, String) {
    let dir = TempDir::new();
    let path = dir.path.join("proxy.toml");
    std::fs::write(&path, toml).unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .env_remove("UNSET_KEY")
        .env("SET_KEY", "sk-x")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:1"
[providers.main]
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "SET_KEY"
[providers.spare]
kind = "azure"
base_url = "https://x.openai.azure.com"
api_key_env = "UNSET_KEY"
[[routes]]
model = "default"
targets = ["main/gpt-4o", "spare/dep"]
"#;

#[test]
fn check_accepts_a_good_file_without_binding_its_port() {
    // port 1 cannot be bound without privileges: --check must not try
    let (code, out, err) = check(GOOD);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "one-line summary: {out}");
    assert!(out.contains("1 route(s) [default]"), "{out}");
    assert!(out.contains("2 provider(s) (1 enabled)"), "{out}");
    assert!(out.contains("spare (UNSET_KEY is not set)"), "{out}");
}

#[test]
fn check_rejects_each_kind_of_bad_file_with_its_key_path() {
    let cases = [
        (
            GOOD.replace("listen =", "lissen ="),
            "unknown field `lissen`",
        ),
        (
            format!("{GOOD}\n[timeouts]\nidle = \"forever\"\n"),
            "timeouts.idle: invalid duration \"forever\"",
        ),
        (
            GOOD.replace("\"spare/dep\"", "\"opneai/gpt-4o\""),
            "routes[0].targets[1]: unknown provider \"opneai\"",
        ),
        (
            GOOD.replace("[\"main/gpt-4o\", \"spare/dep\"]", "[]"),
            "routes[0].targets: empty",
        ),
        (
            GOOD.replace("https://api.openai.com/v1", "api.openai.com"),
            "providers.main.base_url",
        ),
        (
            GOOD.replace("kind = \"openai\"", "kind = \"openai\"\nversion = \"x\""),
            "providers.main: version: not a setting of kind \"openai\"",
        ),
        ("[server\n".to_string(), "line 1, column"),
    ];
    for (toml, want) in cases {
        let (code, out, err) = check(&toml);
        assert_eq!(code, 1, "{want}: {out}");
        assert!(out.is_empty(), "errors go to stderr");
        assert!(err.contains("proxy.toml: "), "names the file: {err}");
        assert!(err.contains(want), "{err:?} lacks {want:?}");
    }
    let out = Command::new(BIN)
        .args(["--check", "--config", "/nonexistent/proxy.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("/nonexistent/proxy.toml: cannot read config file"));
}

#[test]
fn the_shipped_proxy_toml_is_valid() {
    let out = Command::new(BIN)
        .args(["--check", "--config"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/proxy.toml"))
        .env_remove("ANTHROPIC_API_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 route(s) [default, *]"), "{stdout}");
    assert!(
        stdout.contains("anthropic (ANTHROPIC_API_KEY is not set)"),
        "{stdout}"
    );
}

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
            .args(["--listen", "127.0.0.1:0"])
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
