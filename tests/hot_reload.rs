//! Hot reload of proxy.toml while traffic flows: rename and in-place saves, bad files,
//! state that survives, and no lost requests.
//!
//! Every wait is for an event (the new lead answering, a reload counted, a mock
//! holding a request) with a generous bound that is only a hang guard. How soon a
//! reload lands is a property of the machine, measured by `cargo bench --bench
//! reload`, not asserted here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

fn config(lead: &str, a: &Mock, b: &Mock) -> String {
    let (first, second) = if lead == "a" { ("a", "b") } else { ("b", "a") };
    format!(
        r#"
[providers.a]
kind = "openai"
base_url = "{}/v1"
api_key_env = "KEY_A"
[providers.b]
kind = "openai"
base_url = "{}/v1"
api_key_env = "KEY_B"
[[routes]]
model = "default"
targets = ["{first}/m-{first}", "{second}/m-{second}"]
"#,
        a.url(),
        b.url()
    )
}

async fn mocks() -> (Mock, Mock) {
    let (a, b) = (Mock::start().await, Mock::start().await);
    a.always(Reply::json(200, completion("m-a", "a")));
    b.always(Reply::json(200, completion("m-b", "b")));
    (a, b)
}

fn keys() -> EnvLookupHandle {
    EnvLookupHandle::new(&[("KEY_A", "ka"), ("KEY_B", "kb")])
}

/// An environment the test can change while the proxy runs.
#[derive(Clone)]
struct EnvLookupHandle(Arc<Mutex<HashMap<String, String>>>);

impl EnvLookupHandle {
    fn new(pairs: &[(&str, &str)]) -> Self {
        EnvLookupHandle(Arc::new(Mutex::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )))
    }
    fn lookup(&self) -> understudy::config::EnvLookup {
        let m = self.0.clone();
        Arc::new(move |k| m.lock().unwrap().get(k).cloned())
    }
}

async fn lead(p: &Proxy) -> String {
    p.chat(user("default"))
        .await
        .header("x-understudy-provider")
        .unwrap_or("none")
        .to_string()
}

/// Polls until the lead is `want` (bounded: 1000 requests, 20 s).
async fn wait_for_lead(p: &Proxy, want: &str) {
    let t = Instant::now();
    for _ in 0..1000 {
        if lead(p).await == want {
            return;
        }
        if t.elapsed() > Duration::from_secs(20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("lead did not become {want} within 20 s");
}

/// Waits until the proxy has counted `n` successful reloads (bounded: 20 s).
async fn wait_for_reloads(p: &Proxy, n: u64) {
    let app = p.app.clone();
    assert!(
        eventually(Duration::from_secs(20), || app.reload_status().reloads >= n).await,
        "no reload {n} within 20 s: {:?}",
        app.reload_status()
    );
}

#[tokio::test]
async fn a_save_by_rename_changes_the_lead_within_a_second() {
    let (a, b) = mocks().await;
    let p = Proxy::start_watched(&config("a", &a, &b), keys().lookup()).await;
    assert_eq!(lead(&p).await, "a");
    p.write_by_rename(&config("b", &a, &b));
    wait_for_lead(&p, "b").await;
    let status = get(&p.url("/status")).await.json();
    assert_eq!(status["config"]["reloads"], 1);
    assert!(status["config"]["last_error"].is_null());
    assert_eq!(status["routes"][0]["targets"][0], "b/m-b");
}

#[tokio::test]
async fn an_in_place_write_changes_the_lead_within_a_second() {
    let (a, b) = mocks().await;
    let p = Proxy::start_watched(&config("a", &a, &b), keys().lookup()).await;
    p.write_in_place(&config("b", &a, &b));
    wait_for_lead(&p, "b").await;
}

#[tokio::test]
async fn a_kubernetes_configmap_update_reloads_through_its_symlink_swap() {
    let (a, b) = mocks().await;
    let p = Proxy::start_configmap(&config("a", &a, &b), keys().lookup()).await;
    assert_eq!(lead(&p).await, "a");
    p.swap_configmap(1, &config("b", &a, &b));
    wait_for_lead(&p, "b").await;
    p.swap_configmap(2, &config("a", &a, &b));
    wait_for_lead(&p, "a").await;
}

#[tokio::test]
async fn a_bad_file_keeps_the_old_config_and_a_fix_loads() {
    let (a, b) = mocks().await;
    let p = Proxy::start_watched(&config("a", &a, &b), keys().lookup()).await;
    let bad_files = [
        ("[providers.a\nkind = ", "line 1, column"),
        (
            &*config("a", &a, &b).replace("\"b/m-b\"", "\"opneai/m-b\""),
            "routes[0].targets[1]: unknown provider \"opneai\"",
        ),
        // what a watcher sees of a file an editor has just truncated
        ("", "declares no providers"),
        ("# rewriting\n", "declares no providers"),
    ];
    for (i, (bad, want)) in bad_files.iter().enumerate() {
        p.write_by_rename(bad);
        let st = p.app.clone();
        let shown = eventually(Duration::from_secs(20), || {
            st.reload_status().last_error.is_some()
        })
        .await;
        assert!(shown, "the error shows in /status");
        let status = get(&p.url("/status")).await.json();
        let err = status["config"]["last_error"].as_str().unwrap().to_string();
        assert!(err.contains(want), "{err}");
        assert!(err.contains("proxy.toml"), "names the file: {err}");
        assert_eq!(lead(&p).await, "a", "the old config keeps serving");
        let metrics = get(&p.url("/metrics")).await.text();
        assert!(
            metrics.contains(&format!(
                "understudy_config_reloads_total{{result=\"error\"}} {}",
                i + 1
            )),
            "{metrics}"
        );
        // fix it (back to a good file), so the next bad file is a change again
        p.write_by_rename(&config("a", &a, &b).replace("m-a", &format!("m-a{i}")));
        let st = p.app.clone();
        assert!(
            eventually(Duration::from_secs(20), || st
                .reload_status()
                .last_error
                .is_none())
            .await
        );
    }
    p.write_by_rename(&config("b", &a, &b));
    wait_for_lead(&p, "b").await;
}

#[tokio::test]
async fn no_request_fails_while_the_file_is_rewritten_under_load() {
    let (a, b) = mocks().await;
    let p = Arc::new(Proxy::start_watched(&config("a", &a, &b), keys().lookup()).await);
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (p, stop, answered) = (p.clone(), stop.clone(), answered.clone());
        clients.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            let t = Instant::now();
            // bounded: until told to stop, and never past 60 s or 100 000 requests
            for _ in 0..100_000 {
                if stop.load(Ordering::SeqCst) || t.elapsed() > Duration::from_secs(60) {
                    break;
                }
                let r = p.chat(user("default")).await;
                if r.status == 200 {
                    ok += 1;
                } else {
                    failed.push(r.status);
                }
                answered.fetch_add(1, Ordering::SeqCst);
            }
            (ok, failed)
        }));
    }
    // ten more answers before each rewrite and after the last, each rewrite in force
    // before the next: load across every reload, however fast the machine
    let ten_more = || {
        let answered = answered.clone();
        let from = answered.load(Ordering::SeqCst);
        async move {
            let more = eventually(Duration::from_secs(20), || {
                answered.load(Ordering::SeqCst) >= from + 10
            })
            .await;
            assert!(more, "the clients stalled");
        }
    };
    for i in 0..10 {
        ten_more().await;
        let lead = if i % 2 == 0 { "b" } else { "a" };
        if i % 3 == 0 {
            p.write_in_place(&config(lead, &a, &b));
        } else {
            p.write_by_rename(&config(lead, &a, &b));
        }
        wait_for_reloads(&p, i + 1).await;
    }
    ten_more().await;
    stop.store(true, Ordering::SeqCst);
    let (mut ok, mut failed) = (0, Vec::new());
    for c in clients {
        let (o, f) = c.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(ok > 100, "load was applied: {ok} requests");
    assert!(
        p.app.reload_status().reloads >= 5,
        "{:?}",
        p.app.reload_status()
    );
    assert!(a.count() > 0 && b.count() > 0);
}

#[tokio::test]
async fn cooldowns_survive_for_unchanged_providers_and_drop_for_removed_ones() {
    let (a, b) = (Mock::start().await, Mock::start().await);
    a.push(Reply::json(429, "{}").header("retry-after", "600"));
    b.push(Reply::json(429, "{}").header("retry-after", "600"));
    let p = Proxy::start_watched(&config("a", &a, &b), keys().lookup()).await;
    assert_eq!(p.chat(user("default")).await.status, 429);
    let cooling = |s: &serde_json::Value| {
        let mut v: Vec<String> = s["cooldowns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["target"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        cooling(&get(&p.url("/status")).await.json()),
        ["a/m-a", "b/m-b"]
    );
    // b's base_url changes (a different provider now), a is untouched
    let c = Mock::start().await;
    p.write_by_rename(&config("a", &a, &b).replace(&b.url(), &c.url()));
    wait_for_reloads(&p, 1).await;
    assert_eq!(cooling(&get(&p.url("/status")).await.json()), ["a/m-a"]);
    c.push(Reply::json(200, completion("m-b", "c")));
    let r = p.chat(user("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    assert_eq!(a.count(), 1, "a is still cooling after the reload");
}

#[tokio::test]
async fn a_key_that_appears_enables_its_provider_on_the_next_reload() {
    let (a, b) = mocks().await;
    let env = EnvLookupHandle::new(&[("KEY_B", "kb")]);
    let p = Proxy::start_watched(&config("a", &a, &b), env.lookup()).await;
    assert_eq!(lead(&p).await, "b", "a is disabled");
    env.0.lock().unwrap().insert("KEY_A".into(), "ka".into());
    p.write_by_rename(&format!("{}\n# touched\n", config("a", &a, &b)));
    wait_for_lead(&p, "a").await;
    env.0.lock().unwrap().remove("KEY_A");
    p.write_by_rename(&config("a", &a, &b));
    wait_for_lead(&p, "b").await;
    let status = get(&p.url("/status")).await.json();
    assert_eq!(
        status["providers"][0]["disabled_reason"],
        "KEY_A is not set"
    );
}

#[tokio::test]
async fn requests_in_flight_finish_on_the_config_they_started_with() {
    let (a, b) = (Mock::start().await, Mock::start().await);
    // a answers only once the new config is in force
    let answer = Gate::new();
    a.push(Reply::json(200, completion("m-a", "slow a")).hold(&answer));
    b.always(Reply::json(200, completion("m-b", "b")));
    let p = Arc::new(Proxy::start_watched(&config("a", &a, &b), keys().lookup()).await);
    let slow = tokio::spawn({
        let p = p.clone();
        async move { p.chat(user("default")).await }
    });
    // in flight on the old config once a holds it
    assert!(eventually(Duration::from_secs(20), || a.count() == 1).await);
    p.write_by_rename(&config("b", &a, &b));
    wait_for_reloads(&p, 1).await;
    wait_for_lead(&p, "b").await;
    answer.open();
    let r = slow.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-understudy-provider"), Some("a"));
}

#[tokio::test]
async fn readyz_follows_the_circuits() {
    let a = Mock::start().await;
    let toml = format!(
        "[circuit_breaker]\nfailures = 1\nopen_for = \"1h\"\n[providers.a]\nkind = \"openai\"\nbase_url = \"{}/v1\"\n[[routes]]\nmodel = \"default\"\ntargets = [\"a/m\"]\n",
        a.url()
    );
    let p = Proxy::start(&toml, &[]).await;
    assert_eq!(get(&p.url("/readyz")).await.status, 200);
    a.push(Reply::json(500, "{}"));
    assert_eq!(p.chat(user("default")).await.status, 502);
    assert_eq!(
        get(&p.url("/readyz")).await.status,
        503,
        "the only provider's circuit is open"
    );
}
