//! Several replicas, one mind (DESIGN §9): in-process proxies, each with its own
//! `App` (its own health, cache and store, exactly as separate processes have), share
//! state through a real `redis-server` started per test. What one replica learns is
//! in force on the others; with the engine gone each serves from its own state.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::Duration;

use serde_json::{json, Value};

use common::*;

const WAIT: Duration = Duration::from_secs(10);

fn shared(extra: &str) -> String {
    format!("[state]\nbackend = \"redis\"\ntimeout = \"500ms\"\n{extra}")
}

async fn replicas(n: usize, toml: &str, redis: &RedisServer) -> Vec<Proxy> {
    let url = redis.url();
    let mut v = Vec::new();
    for _ in 0..n {
        let p = Proxy::start(toml, &[UPSTREAM_KEY, ("UNDERSTUDY_REDIS_URL", &url)]).await;
        v.push(p);
    }
    for p in &v {
        assert!(
            connected(p).await,
            "replica did not reach the engine: {}",
            status(p).await
        );
    }
    v
}

async fn status(p: &Proxy) -> Value {
    get(&p.url("/status")).await.json()
}

async fn connected(p: &Proxy) -> bool {
    eventually_async(WAIT, || async {
        status(p).await["state"]["connected"] == true
    })
    .await
}

async fn cooling(p: &Proxy, target: &str) -> bool {
    status(p).await["cooldowns"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["target"] == target)
}

#[tokio::test]
async fn a_retry_after_learned_by_one_replica_keeps_every_replica_off_the_target() {
    let redis = RedisServer::start().await;
    let a = Mock::start().await;
    let b = Mock::start().await;
    a.push(Reply::json(429, r#"{"error":{"message":"slow down"}}"#).header("retry-after", "30"));
    a.always(Reply::json(200, completion("m-a", "a")));
    b.always(Reply::json(200, completion("m-b", "b")));
    let toml = openai_config(&[("a", a.url()), ("b", b.url())], &shared(""));
    let ps = replicas(3, &toml, &redis).await;

    let r = ps[0].chat(user("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    for p in &ps[1..] {
        assert!(
            eventually_async(WAIT, || cooling(p, "a/m-a")).await,
            "the cooldown reached this replica"
        );
    }
    for i in 0..30 {
        let r = ps[i % 3].chat(user("default")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-understudy-provider"), Some("b"), "request {i}");
    }
    assert_eq!(a.count(), 1, "one 429 keeps the whole fleet off the target");
    // the engine holds the later deadline for replicas yet to come
    let keys = redis.command(&["KEYS", "understudy:cool:*"]).await;
    assert!(keys.contains("m-a"), "{keys}");
}

#[tokio::test]
async fn an_earlier_deadline_never_replaces_a_later_one_in_the_engine() {
    let redis = RedisServer::start().await;
    let a = Mock::start().await;
    let b = Mock::start().await;
    a.push(Reply::json(429, "{}").header("retry-after", "5"));
    b.always(Reply::json(200, completion("m-b", "b")));
    let toml = openai_config(&[("a", a.url()), ("b", b.url())], &shared(""));
    let ps = replicas(1, &toml, &redis).await;
    // another replica learned 300 s a moment ago (its announcement still in flight)
    let key = format!("understudy:cool:{}", cool_key(&ps[0]));
    let until = std::time::SystemTime::now() + Duration::from_secs(300);
    let until_ms = until
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let wire = json!({"ev": "cooled", "from": "elsewhere", "key": cool_key(&ps[0]), "until_ms": until_ms as u64, "rate_limited": true});
    let set = redis
        .command(&[
            "SET",
            &key,
            &wire.to_string(),
            "PXAT",
            &until_ms.to_string(),
        ])
        .await;
    assert!(set.contains("OK"), "{set}");
    // this replica now learns 5 s: the engine keeps 300
    ps[0].chat(user("default")).await;
    assert!(cooling(&ps[0], "a/m-a").await);
    let pttl = redis.command(&["PTTL", &key]).await;
    let ms: i64 = pttl.trim().trim_start_matches(':').parse().unwrap();
    assert!(ms > 200_000, "the later deadline stays: {pttl}");
    // a replica that joins now reads the later one
    let late = replicas(1, &toml, &redis).await;
    let left = status(&late[0]).await["cooldowns"][0]["seconds_left"].as_f64();
    assert!(left.unwrap_or(0.0) > 200.0, "{}", status(&late[0]).await);
}

fn cool_key(p: &Proxy) -> String {
    let snap = p.app.config.load();
    snap.routes[0].targets[0].health_key().to_string()
}

#[tokio::test]
async fn a_circuit_opened_on_one_replica_is_open_on_the_others() {
    let redis = RedisServer::start().await;
    let a = Mock::start().await;
    let b = Mock::start().await;
    a.always(Reply::json(500, r#"{"error":{"message":"down"}}"#));
    b.always(Reply::json(200, completion("m-b", "b")));
    let extra = shared(
        "[circuit_breaker]\nfailures = 1\nopen_for = \"300s\"\n[failover]\ndefault_cooldown = \"0s\"\n",
    );
    let toml = openai_config(&[("a", a.url()), ("b", b.url())], &extra);
    let ps = replicas(2, &toml, &redis).await;
    assert_eq!(
        ps[0]
            .chat(user("default"))
            .await
            .header("x-understudy-provider"),
        Some("b")
    );
    let open_on = |p: &Proxy| {
        let p = p.url("/status");
        async move {
            let s = get(&p).await.json();
            s["providers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["name"] == "a" && x["circuit"] == "open")
        }
    };
    assert!(eventually_async(WAIT, || open_on(&ps[1])).await);
    let before = a.count();
    for _ in 0..5 {
        assert_eq!(
            ps[1]
                .chat(user("default"))
                .await
                .header("x-understudy-provider"),
            Some("b")
        );
    }
    assert_eq!(a.count(), before, "the open circuit keeps replica 1 off a");
}

#[tokio::test]
async fn a_responses_conversation_started_on_one_replica_continues_on_the_others() {
    let redis = RedisServer::start().await;
    let a = Mock::start().await;
    for i in 0..3 {
        a.push(Reply::json(200, completion("m-a", &format!("answer {i}"))));
    }
    let toml = openai_config(&[("a", a.url())], &shared(""));
    let ps = replicas(3, &toml, &redis).await;
    let post = |p: &Proxy, body: Value| {
        let url = p.url("/v1/responses");
        async move { send(&url, "POST", &[], body.to_string()).await }
    };
    let r1 = post(&ps[0], json!({"model": "default", "input": "first"})).await;
    assert_eq!(r1.status, 200, "{}", r1.text());
    let id1 = r1.json()["id"].as_str().unwrap().to_string();
    let r2 = post(
        &ps[1],
        json!({"model": "default", "input": "second", "previous_response_id": id1}),
    )
    .await;
    assert_eq!(r2.status, 200, "{}", r2.text());
    let id2 = r2.json()["id"].as_str().unwrap().to_string();
    let r3 = post(
        &ps[2],
        json!({"model": "default", "input": "third", "previous_response_id": id2}),
    )
    .await;
    assert_eq!(r3.status, 200, "{}", r3.text());
    let sent = a.received()[2].json();
    let texts: Vec<String> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].to_string())
        .collect();
    let all = texts.join(" ");
    for needle in ["first", "answer 0", "second", "answer 1", "third"] {
        assert!(all.contains(needle), "turn 3 carries {needle:?}: {all}");
    }
    // and any replica shows it, or deletes it for all
    let got = get(&ps[2].url(&format!("/v1/responses/{id1}"))).await;
    assert_eq!(got.status, 200);
    let del = send(
        &ps[1].url(&format!("/v1/responses/{id1}")),
        "DELETE",
        &[],
        String::new(),
    )
    .await;
    assert_eq!(del.status, 200);
    assert_eq!(
        get(&ps[0].url(&format!("/v1/responses/{id1}")))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn with_the_engine_killed_replicas_serve_from_their_own_state_then_resync() {
    let mut redis = RedisServer::start().await;
    let a = Mock::start().await;
    let b = Mock::start().await;
    a.always(Reply::json(200, completion("m-a", "a")));
    b.always(Reply::json(200, completion("m-b", "b")));
    let toml = openai_config(&[("a", a.url()), ("b", b.url())], &shared(""));
    let ps = replicas(2, &toml, &redis).await;
    let stored = send(
        &ps[0].url("/v1/responses"),
        "POST",
        &[],
        json!({"model": "default", "input": "hi"}).to_string(),
    )
    .await;
    let id = stored.json()["id"].as_str().unwrap().to_string();

    // load on both replicas while the engine dies: nothing that local state can
    // serve may fail
    let urls: Vec<String> = ps.iter().map(|p| p.url("/v1/chat/completions")).collect();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..120 {
                let r = send(&urls[i % 2], "POST", &[], user("default").to_string()).await;
                statuses.push(r.status);
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            statuses
        })
    };
    assert!(
        eventually(WAIT, || done.load(std::sync::atomic::Ordering::SeqCst)
            >= 30)
        .await
    );
    redis.kill();
    let statuses = load.await.unwrap();
    assert_eq!(statuses.len(), 120);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // replica 0 still has its own copy; replica 1 had it only in the engine
    assert_eq!(
        get(&ps[0].url(&format!("/v1/responses/{id}"))).await.status,
        200
    );
    let gone = get(&ps[1].url(&format!("/v1/responses/{id}"))).await;
    assert_eq!(gone.status, 503, "{}", gone.text());
    assert_eq!(gone.error_code(), "state_unavailable");
    let s = status(&ps[1]).await;
    assert_eq!(s["state"]["connected"], false, "{s}");
    assert!(s["state"]["errors"].as_u64().unwrap() > 0);
    let metrics = get(&ps[1].url("/metrics")).await.text();
    assert!(
        metrics.contains("understudy_state_errors_total"),
        "{metrics}"
    );

    redis.restart().await;
    for p in &ps {
        assert!(connected(p).await, "reconnected: {}", status(p).await);
    }
    // what one learns now reaches the other again
    a.push(Reply::json(429, "{}").header("retry-after", "60"));
    ps[0].chat(user("default")).await;
    assert!(eventually_async(WAIT, || cooling(&ps[1], "a/m-a")).await);
}

#[tokio::test]
async fn an_unreachable_engine_or_a_wrong_password_at_start_still_serves() {
    let redis = RedisServer::start_with(Some("right-pass")).await;
    let a = Mock::start().await;
    a.always(Reply::json(200, completion("m-a", "a")));
    let toml = openai_config(&[("a", a.url())], &shared(""));
    let wrong = format!("redis://:wrong-pass-123@127.0.0.1:{}/0", redis.port);
    let unreachable = format!("redis://:secret-456@127.0.0.1:{}/0", refused_port().await);
    for (url, secret) in [(wrong, "wrong-pass-123"), (unreachable, "secret-456")] {
        let p = Proxy::start(&toml, &[UPSTREAM_KEY, ("UNDERSTUDY_REDIS_URL", &url)]).await;
        for _ in 0..3 {
            assert_eq!(p.chat(user("default")).await.status, 200);
        }
        let ok = eventually_async(WAIT, || async {
            status(&p).await["state"]["last_error"].is_string()
        })
        .await;
        let s = status(&p).await;
        assert!(ok, "{s}");
        assert_eq!(s["state"]["connected"], false);
        let shown = format!("{s}{}", get(&p.url("/metrics")).await.text());
        assert!(!shown.contains(secret), "the password never shows: {shown}");
        assert!(shown.contains(&format!(
            "127.0.0.1:{}",
            url.rsplit(':').next().unwrap().trim_end_matches("/0")
        )));
    }
}

async fn refused_port() -> u16 {
    let url = refused_url().await;
    url.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_reload_switches_between_memory_and_the_engine() {
    let redis = RedisServer::start().await;
    let a = Mock::start().await;
    a.always(Reply::json(200, completion("m-a", "a")));
    let memory = openai_config(&[("a", a.url())], "");
    let env = env_of(&[UPSTREAM_KEY, ("UNDERSTUDY_REDIS_URL", &redis.url())]);
    let p = Proxy::start_watched(&memory, env).await;
    assert_eq!(status(&p).await["state"]["backend"], "memory");
    p.write_by_rename(&openai_config(&[("a", a.url())], &shared("")));
    assert!(connected(&p).await, "{}", status(&p).await);
    assert_eq!(p.chat(user("default")).await.status, 200);
    p.write_by_rename(&memory);
    assert!(
        eventually_async(WAIT, || async {
            status(&p).await["state"]["backend"] == "memory"
        })
        .await
    );
    assert_eq!(p.chat(user("default")).await.status, 200);
}

#[tokio::test]
async fn the_half_open_trial_is_one_request_for_the_whole_fleet() {
    let redis = RedisServer::start().await;
    let a = Mock::start().await;
    let b = Mock::start().await;
    let gate = Gate::new();
    a.push(Reply::json(500, r#"{"error":{"message":"down"}}"#));
    a.always(Reply::json(200, completion("m-a", "a")).hold(&gate));
    b.always(Reply::json(200, completion("m-b", "b")));
    let extra = shared(
        "[circuit_breaker]\nfailures = 1\nopen_for = \"1s\"\n[failover]\ndefault_cooldown = \"0s\"\n",
    );
    let toml = openai_config(&[("a", a.url()), ("b", b.url())], &extra);
    let ps = replicas(2, &toml, &redis).await;
    ps[0].chat(user("default")).await;
    let circuit = |p: &Proxy| {
        let url = p.url("/status");
        async move {
            let s = get(&url).await.json();
            s["providers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == "a")
                .unwrap()["circuit"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    // open everywhere, then (open_for later) eligible for a trial everywhere
    for p in &ps {
        assert!(eventually_async(WAIT, || async { circuit(p).await != "closed" }).await);
        assert!(eventually_async(WAIT, || async { circuit(p).await == "half_open" }).await);
    }
    // requests on both replicas until one of them sends the trial (held at the mock)
    let mut pending = Vec::new();
    let reached = eventually_async(WAIT, || {
        for p in &ps {
            let url = p.url("/v1/chat/completions");
            pending.push(tokio::spawn(async move {
                send(&url, "POST", &[], user("default").to_string()).await
            }));
        }
        let gate = gate.clone();
        async move { gate.reached() >= 1 }
    })
    .await;
    assert!(reached, "a trial was sent");
    for i in 0..10 {
        let r = ps[i % 2].chat(user("default")).await;
        assert_eq!(r.header("x-understudy-provider"), Some("b"), "request {i}");
    }
    assert_eq!(
        gate.reached(),
        1,
        "one trial for the fleet, not one per replica"
    );
    assert_eq!(
        a.count(),
        2,
        "the failure that opened it, and the one trial"
    );
    gate.open();
    for p in &ps {
        assert!(eventually_async(WAIT, || async { circuit(p).await == "closed" }).await);
    }
    for t in pending {
        assert_eq!(t.await.unwrap().status, 200);
    }
}

#[tokio::test]
async fn an_answer_cached_via_one_replica_is_a_hit_on_the_others() {
    let redis = RedisServer::start().await;
    let a = Mock::start().await;
    a.always(Reply::json(200, completion("m-a", "cached answer")));
    let toml = openai_config(
        &[("a", a.url())],
        &shared("[cache]\nenabled = true\nmode = \"all\"\n"),
    );
    let ps = replicas(3, &toml, &redis).await;
    let first = ps[0].chat(user("default")).await;
    assert_eq!(first.header("x-understudy-cache"), Some("miss"));
    // written to the engine in the background, just after the answer went out
    let key_written = eventually_async(WAIT, || async {
        redis
            .command(&["KEYS", "understudy:cache:*"])
            .await
            .contains("cache:")
    })
    .await;
    assert!(key_written);
    for p in &ps[1..] {
        let r = p.chat(user("default")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-understudy-cache"), Some("hit"));
        assert_eq!(r.header("x-understudy-provider"), Some("a"));
        assert!(r.text().contains("cached answer"));
    }
    assert_eq!(a.count(), 1, "one upstream call for the fleet");
    // a streamed request is the same question
    let streamed = send(
        &ps[2].url("/v1/chat/completions"),
        "POST",
        &[],
        user_stream("default").to_string(),
    )
    .await;
    assert_eq!(streamed.header("x-understudy-cache"), Some("hit"));
    assert_eq!(a.count(), 1);
}

#[tokio::test]
async fn a_stalled_engine_costs_no_request_and_is_counted() {
    let redis = RedisServer::start().await;
    let a = Mock::start().await;
    a.always(Reply::json(200, completion("m-a", "a")));
    let toml = openai_config(
        &[("a", a.url())],
        "[state]\nbackend = \"redis\"\ntimeout = \"50ms\"\n[cache]\nenabled = true\nmode = \"all\"\n",
    );
    let ps = replicas(1, &toml, &redis).await;
    // the engine stops answering anyone (as a stalled or overloaded server does)
    let paused = redis.command(&["CLIENT", "PAUSE", "3000", "ALL"]).await;
    assert!(paused.contains("OK"), "{paused}");
    for i in 0..5 {
        let body =
            json!({"model": "default", "messages": [{"role": "user", "content": format!("q{i}")}]});
        let r = ps[0].chat(body).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.header("x-understudy-cache"), Some("miss"));
    }
    let s = status(&ps[0]).await;
    assert!(s["state"]["errors"].as_u64().unwrap() >= 1, "{s}");
    assert!(
        s["state"]["last_error"]
            .as_str()
            .unwrap()
            .contains("shared cache"),
        "{s}"
    );
    let _ = redis.command(&["CLIENT", "UNPAUSE"]).await;
    assert!(
        connected(&ps[0]).await,
        "back once the engine answers: {}",
        status(&ps[0]).await
    );
}

#[tokio::test]
async fn the_hot_path_sends_nothing_to_the_engine() {
    // Admission reads the local mirror; only news (a cooldown, a circuit) is written.
    let redis = RedisServer::start().await;
    let a = Mock::start().await;
    a.always(Reply::json(200, completion("m-a", "a")));
    let toml = openai_config(&[("a", a.url())], &shared(""));
    let ps = replicas(1, &toml, &redis).await;
    let commands = || async {
        let info = redis.command(&["INFO", "stats"]).await;
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let before = commands().await;
    for _ in 0..50 {
        assert_eq!(ps[0].chat(user("default")).await.status, 200);
    }
    let after = commands().await;
    // the INFO asking is one command
    assert!(
        after - before <= 2,
        "{} engine commands for 50 requests",
        after - before
    );
}
