//! `[passthrough]`: the rest of OpenAI's `/v1` surface — moderations, audio, files —
//! forwarded as it is to one OpenAI-kind provider, bodies streamed both ways, with the
//! official openai SDK as the client where it has a call for the path.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use serde_json::json;

const CLIENT_KEY: &str = "client-key";
const AUTH: (&str, &str) = ("authorization", "Bearer client-key");

/// Provider `openai` (OpenAI kind, key [`UPSTREAM_KEY`]) at `mock`, client keys on,
/// and `[passthrough]` with `passthrough` as its body when given.
fn config(mock: &str, passthrough: Option<&str>) -> String {
    let mut s = format!(
        r#"
[server]
listen = "127.0.0.1:0"
api_keys_env = "CLIENT_KEYS"
[providers.openai]
kind = "openai"
base_url = "{mock}/v1"
api_key_env = "TEST_KEY"
[[routes]]
model = "default"
targets = ["openai/gpt-4o"]
"#
    );
    if let Some(pt) = passthrough {
        s.push_str(&format!("[passthrough]\n{pt}\n"));
    }
    s
}

async fn start(mock: &Mock, passthrough: Option<&str>) -> Proxy {
    Proxy::start(
        &config(&mock.url(), passthrough),
        &[UPSTREAM_KEY, ("CLIENT_KEYS", CLIENT_KEY)],
    )
    .await
}

const ON: Option<&str> = Some("provider = \"openai\"");

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n).map(|_| rng.u8(..)).collect()
}

/// A binary answer sent in 16 KiB pieces.
fn binary_reply(content_type: &str, bytes: &[u8]) -> Reply {
    let mut r = Reply::raw(200, content_type, &[]);
    r.events = bytes
        .chunks(16 * 1024)
        .map(|c| (Duration::ZERO, Bytes::copy_from_slice(c)))
        .collect();
    r
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The content of the multipart part named `name`, split at the boundary that
/// `content_type` (as the upstream received it) declares.
fn multipart_part(content_type: &str, body: &[u8], name: &str) -> Vec<u8> {
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("a multipart boundary")
        .trim_matches('"');
    let delim = format!("\r\n--{boundary}");
    // The first delimiter has no CRLF before it.
    let mut rest =
        &body[find(body, &delim.as_bytes()[2..]).expect("first boundary") + delim.len() - 2..];
    while let Some(end) = find(rest, delim.as_bytes()) {
        let part = &rest[..end];
        let head_end = find(part, b"\r\n\r\n").expect("part headers");
        let head = String::from_utf8_lossy(&part[..head_end]);
        if head.contains(&format!("name=\"{name}\"")) {
            return part[head_end + 4..].to_vec();
        }
        rest = &rest[end + delim.len()..];
    }
    panic!("no multipart part named {name}");
}

fn moderation_answer() -> String {
    let categories = [
        "harassment",
        "harassment/threatening",
        "hate",
        "hate/threatening",
        "illicit",
        "illicit/violent",
        "self-harm",
        "self-harm/instructions",
        "self-harm/intent",
        "sexual",
        "sexual/minors",
        "violence",
        "violence/graphic",
    ];
    let map =
        |f: &dyn Fn(&str) -> serde_json::Value| -> serde_json::Map<String, serde_json::Value> {
            categories.iter().map(|c| (c.to_string(), f(c))).collect()
        };
    json!({
        "id": "modr-7f3a", "model": "omni-moderation-2024-09-26",
        "results": [{
            "flagged": true,
            "categories": map(&|c| json!(c == "harassment")),
            "category_scores": map(&|c| json!(if c == "harassment" { 0.91 } else { 0.001 })),
            "category_applied_input_types": map(&|_| json!(["text"])),
        }]
    })
    .to_string()
}

fn files_page() -> String {
    let file = |id: &str| {
        json!({"id": id, "object": "file", "bytes": 120, "created_at": 1_700_000_000u64,
               "filename": format!("{id}.jsonl"), "purpose": "batch", "status": "processed"})
    };
    json!({"object": "list", "data": [file("file-1"), file("file-2")],
           "first_id": "file-1", "last_id": "file-2", "has_more": false})
    .to_string()
}

/// The `(name, value)` pairs of a received path's query.
fn query_pairs(path: &str) -> Vec<(String, String)> {
    let query = path.split_once('?').map_or("", |(_, q)| q);
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    pairs.sort();
    pairs
}

#[tokio::test]
async fn the_sdk_moderates_transcribes_speaks_and_manages_files_through_the_passthrough() {
    let a = Mock::start().await;
    let p = start(&a, ON).await;
    let dir = TempDir::new();
    let clip = random_bytes(300 * 1024, 1);
    let audio = random_bytes(400 * 1024, 2);
    let clip_path = dir.path.join("clip.mp3");
    std::fs::write(&clip_path, &clip).unwrap();
    let speech_path = dir.path.join("speech.mp3");
    a.push(Reply::json(200, moderation_answer()));
    a.push(Reply::json(200, r#"{"text":"hello from the clip"}"#));
    a.push(binary_reply("audio/mpeg", &audio));
    a.push(Reply::json(200, files_page()));
    a.push(Reply::json(
        200,
        r#"{"id":"file-abc","object":"file","deleted":true}"#,
    ));
    let results = sdk_script(
        "passthrough_client.py",
        &p,
        CLIENT_KEY,
        json!([
            {"kind": "moderation", "request": {"model": "omni-moderation-latest", "input": "you are awful"}},
            {"kind": "transcription", "file": clip_path, "request": {"model": "whisper-1", "language": "en"}},
            {"kind": "speech", "out": speech_path, "request": {"model": "tts-1", "voice": "alloy", "input": "Hello!"}},
            {"kind": "files_list", "request": {"purpose": "batch", "limit": 2, "after": "file-0"}},
            {"kind": "files_delete", "file_id": "file-abc"},
        ]),
    )
    .await;

    let r = &results[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["id"], "modr-7f3a");
    assert_eq!(r["model"], "omni-moderation-2024-09-26");
    assert_eq!(r["flagged"], json!([true]));
    assert_eq!(r["harassment"], true);
    assert_eq!(r["headers"]["x-understudy-provider"], "openai");
    assert_eq!(r["headers"]["x-understudy-attempts"], "1");
    assert_eq!(results[1]["text"], "hello from the clip", "{}", results[1]);
    assert_eq!(results[2]["ok"], true, "{}", results[2]);
    assert_eq!(results[2]["content_type"], "audio/mpeg");
    let spoken = std::fs::read(&speech_path).unwrap();
    assert!(
        spoken == audio,
        "the speech arrives byte for byte ({} of {} bytes)",
        spoken.len(),
        audio.len()
    );
    assert_eq!(
        results[3]["ids"],
        json!(["file-1", "file-2"]),
        "{}",
        results[3]
    );
    assert_eq!(results[4]["deleted"], true, "{}", results[4]);
    assert_eq!(results[4]["id"], "file-abc");

    let got = a.received();
    assert_eq!(got.len(), 5);
    for g in &got {
        assert_eq!(
            g.headers["authorization"], "Bearer sk-upstream-secret",
            "{}",
            g.path
        );
        assert!(
            !g.headers.values().any(|v| v.contains(CLIENT_KEY)),
            "the client's key never goes upstream: {:?}",
            g.headers
        );
    }
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("POST", "/v1/moderations")
    );
    assert_eq!(got[0].json()["input"], "you are awful");
    assert_eq!(
        (got[1].method.as_str(), got[1].path.as_str()),
        ("POST", "/v1/audio/transcriptions")
    );
    let ct = &got[1].headers["content-type"];
    assert!(ct.starts_with("multipart/form-data; boundary="), "{ct}");
    let uploaded = multipart_part(ct, &got[1].body, "file");
    assert!(
        uploaded == clip,
        "the upload arrives byte for byte ({} of {} bytes)",
        uploaded.len(),
        clip.len()
    );
    assert_eq!(multipart_part(ct, &got[1].body, "model"), b"whisper-1");
    assert_eq!(
        (got[2].method.as_str(), got[2].path.as_str()),
        ("POST", "/v1/audio/speech")
    );
    assert_eq!(got[2].json()["voice"], "alloy");
    assert_eq!(got[3].method, "GET");
    assert!(got[3].path.starts_with("/v1/files?"), "{}", got[3].path);
    let pairs = query_pairs(&got[3].path);
    for want in [("after", "file-0"), ("limit", "2"), ("purpose", "batch")] {
        assert!(
            pairs.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} in {pairs:?}"
        );
    }
    assert_eq!(
        (got[4].method.as_str(), got[4].path.as_str()),
        ("DELETE", "/v1/files/file-abc")
    );

    let metrics = get(&p.url("/metrics")).await.text();
    assert!(
        metrics.contains(
            "understudy_requests_total{route=\"passthrough\",status=\"200\",api=\"passthrough\"} 5"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("understudy_attempts_total{provider=\"openai\",outcome=\"ok\"} 5"),
        "{metrics}"
    );
}

/// Requests no route serves, each with the client key.
async fn other_paths(p: &Proxy) -> Vec<Resp> {
    let mut out = Vec::new();
    for (method, path, body) in [
        ("POST", "/v1/moderations", r#"{"input":"x"}"#),
        (
            "POST",
            "/v1/audio/speech",
            r#"{"model":"tts-1","voice":"alloy","input":"x"}"#,
        ),
        ("GET", "/v1/files?limit=1", ""),
        ("DELETE", "/v1/files/file-abc", ""),
    ] {
        out.push(send(&p.url(path), method, &[AUTH], body).await);
    }
    out
}

#[tokio::test]
async fn without_passthrough_other_paths_stay_404_and_with_it_the_proxys_own_stay_its_own() {
    let a = Mock::start().await;
    a.always(Reply::json(200, "{}"));
    let p = start(&a, None).await;
    for r in other_paths(&p).await {
        assert_eq!(r.status, 404, "{}", r.text());
        assert_eq!(r.error_code(), "not_found");
    }
    assert_eq!(a.count(), 0);

    let p = start(&a, ON).await;
    for (method, path, status, code) in [
        // the proxy's own namespaces: their ids are the proxy's or another API's
        ("POST", "/v1/responses/resp_1/cancel", 404, "not_found"),
        ("POST", "/v1/messages/batches", 404, "not_found"),
        ("GET", "/v1/chat/completions", 405, "method_not_allowed"),
        ("GET", "/v1", 404, "not_found"),
        // nothing that could leave the provider's base path with its key
        ("GET", "/v1/files/..%2F..%2Fadmin", 400, "invalid_request"),
        ("GET", "/v1/files/%2e%2e/admin", 400, "invalid_request"),
    ] {
        let r = send(&p.url(path), method, &[AUTH], "").await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        // (`/v1/messages` answers in Anthropic's shape: `not_found_error`)
        assert!(r.text().contains(code), "{method} {path}: {}", r.text());
    }
    assert_eq!(a.count(), 0);
    for r in other_paths(&p).await {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(a.count(), 4);
}

#[tokio::test]
async fn client_keys_are_enforced_and_never_forwarded() {
    let a = Mock::start().await;
    a.always(Reply::json(
        200,
        r#"{"id":"modr-1","model":"m","results":[]}"#,
    ));
    let p = start(&a, ON).await;
    let url = p.url("/v1/moderations");
    for headers in [
        vec![],
        vec![("authorization", "Bearer wrong")],
        vec![("x-api-key", "wrong")],
    ] {
        let r = send(&url, "POST", &headers, r#"{"input":"x"}"#).await;
        assert_eq!(r.status, 401, "{headers:?}");
        assert_eq!(r.error_code(), "invalid_api_key");
    }
    assert_eq!(a.count(), 0);
    let r = send(
        &url,
        "POST",
        &[
            ("x-api-key", CLIENT_KEY),
            ("openai-organization", "org-client"),
        ],
        r#"{"input":"x"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = &a.received()[0];
    assert_eq!(got.headers["authorization"], "Bearer sk-upstream-secret");
    assert!(!got.headers.contains_key("x-api-key"));
    assert!(!got.headers.contains_key("openai-organization"));
}

/// Sends `body` as a chunked request (no content-length), in pieces of `piece` bytes.
async fn send_chunked(url: &str, body: &[u8], piece: usize) -> http::Response<Incoming> {
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = body
        .chunks(piece)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    let req = http::Request::post(url)
        .header("authorization", "Bearer client-key")
        .header("content-type", "application/octet-stream")
        .body(body)
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("answered within 10 s")
        .expect("proxy reachable")
}

#[tokio::test]
async fn uploads_over_the_passthrough_limit_are_413_and_never_reach_the_upstream_whole() {
    let a = Mock::start().await;
    a.always(Reply::json(200, r#"{"text":"ok"}"#));
    // The passthrough limit is its own: server.max_body_bytes stays 10 MiB.
    let p = start(&a, Some("provider = \"openai\"\nmax_body_bytes = 1000")).await;
    let url = p.url("/v1/audio/transcriptions");
    let big = random_bytes(5000, 3);
    // declared by Content-Length: refused before any upstream call
    let r = send(&url, "POST", &[AUTH], big.clone()).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.error_code(), "request_too_large");
    assert_eq!(
        r.header("x-understudy-attempts"),
        None,
        "no upstream request"
    );
    assert_eq!(a.count(), 0);
    // chunked: the upload streams until it crosses the limit, then is cut off, which
    // aborts the upstream request before its end
    let resp = send_chunked(&url, &big, 100).await;
    assert_eq!(resp.status(), 413);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("request_too_large"));
    assert!(
        a.received().iter().all(|g| g.body.is_empty()),
        "no byte of a body over the limit reached the upstream as a request"
    );
    let before = a.count();
    // just within the limit, chunked too: it passes whole
    let resp = send_chunked(&url, &big[..1000], 100).await;
    assert_eq!(resp.status(), 200);
    let got = a.received();
    assert_eq!(got.len(), before + 1);
    assert!(got[before].body[..] == big[..1000]);
    assert!(!got[before].headers.contains_key("content-length"));
}

#[tokio::test]
async fn an_upload_that_stalls_gets_408_and_its_upstream_request_is_cut() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = Mock::start().await;
    a.always(Reply::json(200, r#"{"text":"ok"}"#));
    let toml = config(&a.url(), ON).replace(
        "api_keys_env = \"CLIENT_KEYS\"\n",
        "api_keys_env = \"CLIENT_KEYS\"\nbody_timeout = \"300ms\"\n",
    );
    let p = Proxy::start(&toml, &[UPSTREAM_KEY, ("CLIENT_KEYS", CLIENT_KEY)]).await;
    let mut conn = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let head = "POST /v1/audio/transcriptions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer client-key\r\ncontent-type: multipart/form-data; boundary=b\r\ncontent-length: 1000\r\n\r\n--b\r\n";
    conn.write_all(head.as_bytes()).await.unwrap();
    // the rest of the body never comes
    let mut answer = String::new();
    let read = async {
        let mut buf = vec![0u8; 4096];
        loop {
            let n = conn.read(&mut buf).await.unwrap();
            answer.push_str(&String::from_utf8_lossy(&buf[..n]));
            if n == 0 || answer.contains("request_timeout") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("answered within 20 s");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        a.received().iter().all(|g| g.body.is_empty()),
        "the upstream never got the request whole"
    );
}

#[tokio::test]
async fn a_streamed_answer_is_forwarded_as_it_arrives() {
    let a = Mock::start().await;
    let gate = Gate::new();
    let first = r#"{"type":"transcript.text.delta","delta":"Hel"}"#;
    let last = r#"{"type":"transcript.text.done","text":"Hello"}"#;
    a.push(Reply::sse(&[first, last]).hold_before(1, &gate));
    let p = start(&a, ON).await;
    let req = http::Request::post(p.url("/v1/audio/transcriptions"))
        .header("authorization", "Bearer client-key")
        .header("content-type", "multipart/form-data; boundary=b")
        .body(http_body_util::Full::new(Bytes::from_static(
            b"--b\r\ncontent-disposition: form-data; name=\"stream\"\r\n\r\ntrue\r\n--b--\r\n",
        )))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    // the first event reaches the client while the upstream still holds the second
    let seen = read_until(&mut body, "Hel").await;
    assert_eq!(gate.reached(), 1);
    assert!(!seen.contains("text.done"), "{seen}");
    gate.open();
    let rest = read_until(&mut body, "text.done").await;
    assert!(rest.contains(last), "{rest}");
}

#[tokio::test]
async fn a_binary_answer_that_breaks_reaches_the_client_broken_not_short() {
    let a = Mock::start().await;
    let audio = random_bytes(100 * 1024, 4);
    a.push(binary_reply("audio/mpeg", &audio).end(End::Drop));
    let p = start(&a, ON).await;
    let req = http::Request::post(p.url("/v1/audio/speech"))
        .header("authorization", "Bearer client-key")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let read = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .unwrap();
    assert!(
        read.is_err(),
        "a cut body is an error, never a short success"
    );
    let metrics = get(&p.url("/metrics")).await.text();
    assert!(
        metrics.contains("understudy_attempts_total{provider=\"openai\",outcome=\"stream\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_upstream_error_passes_through_without_the_key() {
    let a = Mock::start().await;
    a.push(Reply::json(
        401,
        r#"{"error":{"message":"Incorrect API key provided: sk-upstream-secret. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
    ));
    let p = start(&a, ON).await;
    let r = send(
        &p.url("/v1/moderations"),
        "POST",
        &[AUTH],
        r#"{"input":"x"}"#,
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "invalid_api_key");
    assert!(!r.text().contains("sk-upstream-secret"), "{}", r.text());
    assert!(r.text().contains("[redacted]"), "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("openai"));
}

#[tokio::test]
async fn an_unreachable_provider_is_502_a_silent_one_504_a_disabled_one_503() {
    let refused = refused_url().await;
    let p = Proxy::start(
        &config(&refused, ON),
        &[UPSTREAM_KEY, ("CLIENT_KEYS", CLIENT_KEY)],
    )
    .await;
    let r = send(
        &p.url("/v1/moderations"),
        "POST",
        &[AUTH],
        r#"{"input":"x"}"#,
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.error_code(), "upstream_failed");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.starts_with("passthrough to openai: connect error"),
        "{msg}"
    );

    let a = Mock::start().await;
    let gate = Gate::new();
    a.push(Reply::json(200, "{}").hold(&gate));
    let toml = with_timeouts(&config(&a.url(), ON), "openai", "first_byte = \"200ms\"");
    let p = Proxy::start(&toml, &[UPSTREAM_KEY, ("CLIENT_KEYS", CLIENT_KEY)]).await;
    let r = send(&p.url("/v1/files"), "GET", &[AUTH], "").await;
    gate.open();
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.error_code(), "upstream_timeout");
    assert!(r.text().contains("timeout (first_byte)"), "{}", r.text());

    let p = Proxy::start(&config(&a.url(), ON), &[("CLIENT_KEYS", CLIENT_KEY)]).await;
    let r = send(&p.url("/v1/files"), "GET", &[AUTH], "").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.error_code(), "no_provider_available");
    assert!(r.text().contains("TEST_KEY is not set"), "{}", r.text());
    assert_eq!(a.count(), 1);
}

#[tokio::test]
async fn a_reload_turns_passthrough_on_and_off() {
    let a = Mock::start().await;
    a.always(Reply::json(
        200,
        r#"{"object":"list","data":[],"has_more":false}"#,
    ));
    let p = start(&a, None).await;
    let files = p.url("/v1/files");
    assert_eq!(send(&files, "GET", &[AUTH], "").await.status, 404);
    p.write_by_rename(&config(&a.url(), ON));
    assert!(understudy::config::watch::reload(&p.app));
    assert_eq!(send(&files, "GET", &[AUTH], "").await.status, 200);
    assert_eq!(a.count(), 1);
    p.write_by_rename(&config(&a.url(), None));
    assert!(understudy::config::watch::reload(&p.app));
    assert_eq!(send(&files, "GET", &[AUTH], "").await.status, 404);
    assert_eq!(a.count(), 1);
}
