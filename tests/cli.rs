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

use http_body_util::BodyExt;

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

#[test]
fn a_key_pasted_where_a_variable_name_belongs_is_refused_and_never_echoed() {
    let key = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789";
    for (needle, at) in [
        ("api_key_env = \"SET_KEY\"", "providers.main.api_key_env"),
        ("listen = \"127.0.0.1:1\"", "server.api_keys_env"),
    ] {
        let replacement = if at.starts_with("server") {
            format!("{needle}\napi_keys_env = \"{key}\"")
        } else {
            format!("api_key_env = \"{key}\"")
        };
        let (code, out, err) = check(&GOOD.replacen(needle, &replacement, 1));
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains(at), "{err}");
        assert!(err.contains("not an environment variable name"), "{err}");
        assert!(
            !out.contains("sk-proj") && !err.contains("sk-proj"),
            "{out}{err}"
        );
        assert!(!err.contains("AbCdEf"), "{err}");
    }
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

fn check_args(toml: &str, args: &[&str]) -> (i32, String, String) {
    let dir = TempDir::new();
    let path = dir.path.join("proxy.toml");
    std::fs::write(&path, toml).unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .args(args)
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

#[tokio::test]
async fn check_probe_says_per_provider_what_is_wrong_with_its_base_url_or_key() {
    let good = Mock::start().await;
    good.always(Reply::json(200, r#"{"object":"list","data":[]}"#));
    let badkey = Mock::start().await;
    badkey.always(Reply::json(
        401,
        r#"{"error":{"message":"Incorrect API key provided: sk-x"}}"#,
    ));
    let nov1 = Mock::start().await;
    nov1.always(Reply::json(404, "not found"));
    let extra_v1 = Mock::start().await;
    extra_v1.always(Reply::json(404, "not found"));
    let toml = format!(
        r#"
[providers.good]
kind = "openai"
base_url = "{}/v1"
api_key_env = "SET_KEY"
[providers.badkey]
kind = "openai"
base_url = "{}/v1"
api_key_env = "SET_KEY"
[providers.nov1]
kind = "openai"
base_url = "{}"
api_key_env = "SET_KEY"
[providers.claude]
kind = "anthropic"
base_url = "{}/v1"
api_key_env = "SET_KEY"
[providers.gone]
kind = "ollama"
base_url = "{}"
[providers.off]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "UNSET_KEY"
[[routes]]
model = "default"
targets = ["good/m", "badkey/m", "nov1/m", "claude/m", "gone/m"]
"#,
        good.url(),
        badkey.url(),
        nov1.url(),
        extra_v1.url(),
        refused_url().await
    );
    // The mocks run on this test's runtime: the blocking command goes elsewhere.
    let probe = |toml: String| tokio::task::spawn_blocking(move || check_args(&toml, &["--probe"]));
    let (code, out, err) = probe(toml).await.unwrap();
    assert_eq!(code, 1, "a failed probe fails the check: {out}{err}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("probe {name} ")))
            .unwrap_or_else(|| panic!("no probe line for {name}: {out}"))
            .to_string()
    };
    assert_eq!(line("good"), "probe good (openai): ok");
    let l = line("badkey");
    assert!(
        l.contains("401 (bad key?) from GET http://") && l.ends_with("/v1/models"),
        "{l}"
    );
    let l = line("nov1");
    assert!(
        l.contains("404 (wrong base_url?) from GET http://")
            && l.contains("/models: add /v1 to base_url"),
        "{l}"
    );
    let l = line("claude");
    assert!(
        l.contains("GET http://") && l.contains("/v1/v1/models: remove /v1 from base_url"),
        "{l}"
    );
    assert!(line("gone").starts_with("probe gone (ollama): unreachable: "));
    assert!(
        !out.contains("probe off "),
        "disabled providers are not probed: {out}"
    );
    assert!(!out.contains("sk-x") && !err.contains("sk-x"));
    // every provider fine: 0
    let toml = format!(
        "[providers.good]\nkind = \"openai\"\nbase_url = \"{}/v1\"\napi_key_env = \"SET_KEY\"\n[[routes]]\nmodel = \"default\"\ntargets = [\"good/m\"]\n",
        good.url()
    );
    let (code, out, err) = probe(toml).await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn localhost_port_is_an_address_for_listen_and_check() {
    let local = GOOD.replace("listen = \"127.0.0.1:1\"", "listen = \"localhost:1\"");
    assert_eq!(check(&local).0, 0, "{}", check(&local).2);
    assert_eq!(check_args(GOOD, &["--listen", "localhost:8080"]).0, 0);
    assert_eq!(check_args(GOOD, &["--listen", "[::1]:8080"]).0, 0);
    for bad in ["localhost", "localhost:http", ":8080", "local host:80"] {
        let (code, _, err) = check_args(GOOD, &["--listen", bad]);
        assert_eq!(code, 1, "{bad}");
        assert!(err.contains("is not an address like"), "{err}");
    }
}

#[tokio::test]
async fn the_proxy_binds_a_localhost_name() {
    let mock = Mock::start().await;
    mock.always(Reply::json(200, completion("gpt-4o", "hi")));
    let r = Running::start(&serving(&mock), &["--listen", "localhost:0"]);
    assert_eq!(get(&r.url("/healthz")).await.status, 200);
}

#[test]
fn check_fails_when_no_route_can_be_served_unless_allowed() {
    let all_off = GOOD.replace("api_key_env = \"SET_KEY\"", "api_key_env = \"UNSET_KEY\"");
    let (code, _, err) = check(&all_off);
    assert_eq!(code, 1);
    assert!(
        err.contains("no route has an enabled provider") && err.contains("--allow-disabled"),
        "{err}"
    );
    let (code, out, err) = check_args(&all_off, &["--allow-disabled"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok:"), "{out}");
}

#[test]
fn a_star_route_warns_that_it_shadows_direct_provider_model_requests() {
    let star = GOOD.replace("model = \"default\"", "model = \"*\"");
    let (code, _, err) = check(&star);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: direct \"PROVIDER/MODEL\" requests are shadowed by the \"*\" route"),
        "{err}"
    );
    let (_, _, err) = check(GOOD);
    assert!(!err.contains("shadowed"), "{err}");
}

#[test]
fn help_describes_flags_environment_signals_and_endpoints_and_the_license_matches() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--config",
        "--listen",
        "--check",
        "--probe",
        "--allow-disabled",
        "--log-format",
        "UNDERSTUDY_CONFIG",
        "RUST_LOG",
        "NO_COLOR",
        "api_key_env",
        "api_keys_env",
        "SIGHUP",
        "SIGTERM",
        "shutdown_grace",
        "/v1/chat/completions",
        "/v1/models",
        "/healthz",
        "/readyz",
        "/status",
        "/metrics",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
    let license = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/LICENSE")).unwrap();
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    assert!(manifest.contains("license = \"MIT\""));
    assert!(license.starts_with("MIT License"));
}
