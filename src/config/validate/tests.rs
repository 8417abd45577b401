//! Validation tests: a good file, defaults, errors naming their key path, warnings,
//! the cache policy, route resolution and kind-specific settings.

use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> EnvLookup {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(move |k| map.get(k).cloned())
}

fn check(text: &str) -> Result<Snapshot, String> {
    from_str(
        text,
        Path::new("proxy.toml"),
        &env(&[("OPENAI_API_KEY", "sk-x")]),
    )
    .map_err(|e| e.to_string())
}

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:0"
[timeouts]
first_byte = "20s"
[providers.openai]
kind = "openai"
base_url = "https://api.openai.com/v1/"
api_key_env = "OPENAI_API_KEY"
timeouts = { idle = "5s" }
[providers.backup]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "BACKUP_KEY"
[[routes]]
model = "default"
targets = ["openai/gpt-4o", { target = "backup/org/model:tag", weight = 3, timeouts = { total = "1m 30s" } }]
strategy = "weighted"
"#;

#[test]
fn a_good_file_round_trips_into_a_snapshot() {
    let s = check(GOOD).unwrap();
    let openai = s.provider("openai").unwrap();
    assert_eq!(openai.base_url, "https://api.openai.com/v1");
    assert_eq!(openai.api_key.as_ref().unwrap().expose(), "sk-x");
    assert_eq!(openai.timeouts.first_byte, Duration::from_secs(20));
    assert_eq!(openai.timeouts.idle, Duration::from_secs(5));
    let backup = s.provider("backup").unwrap();
    assert_eq!(
        backup.disabled_reason.as_deref(),
        Some("BACKUP_KEY is not set")
    );
    let t = &s.routes[0].targets[1];
    assert_eq!((t.model.as_str(), t.weight), ("org/model:tag", 3));
    assert_eq!(t.timeouts.total, Duration::from_secs(90));
    assert_eq!(t.timeouts.first_byte, Duration::from_secs(20));
    assert!(s.summary().contains("backup (BACKUP_KEY is not set)"));
    assert!(!format!("{s:?}").contains("sk-x"), "secrets never print");
}

#[test]
fn an_embeddings_route_mixing_models_is_warned_about() {
    let routes = |targets: &str| {
        let text = format!("{GOOD}\n[[routes]]\nmodel = \"docs\"\ntargets = [{targets}]\n");
        check(&text).unwrap().warnings().join("\n")
    };
    let mixed = routes(r#""openai/text-embedding-3-small", "openai/text-embedding-3-large""#);
    assert!(
        mixed.contains("route \"docs\": its targets name different embedding models (openai/text-embedding-3-small, openai/text-embedding-3-large)"),
        "{mixed}"
    );
    for same in [
        r#""openai/text-embedding-3-small", "backup/text-embedding-3-small""#,
        r#""openai/nomic-embed-text", "backup/nomic-embed-text:latest""#,
        r#""openai/gpt-4o", "backup/claude-sonnet-4-5""#,
    ] {
        let w = routes(same);
        assert!(!w.contains("different embedding models"), "{same}: {w}");
    }
    // the route's own name can say it is for embeddings
    let text = format!("{GOOD}\n[[routes]]\nmodel = \"embeddings\"\ntargets = [\"openai/all-minilm\", \"backup/bge-m3\"]\n");
    let w = check(&text).unwrap().warnings().join("\n");
    assert!(
        w.contains("route \"embeddings\": its targets name different"),
        "{w}"
    );
}

#[test]
fn warnings_point_at_legal_but_surprising_configs() {
    let w = check("").unwrap().warnings().join("\n");
    assert!(w.contains("no [[routes]]"), "{w}");
    assert!(w.contains("no client keys"), "{w}");
    let text = format!(
        "{}\n[failover]\ndefault_cooldown = \"20m\"\nmax_cooldown = \"1m\"\n[[routes]]\nmodel = \"*\"\ntargets = [\"openai/a\"]\n[[routes]]\nmodel = \"late\"\ntargets = [\"openai/b\"]\n",
        GOOD.replace("[server]\n", "[server]\napi_keys_env = \"UNSET_CLIENT_KEYS\"\n")
    );
    let w = check(&text).unwrap().warnings().join("\n");
    assert!(w.contains("route \"late\" can never match"), "{w}");
    assert!(w.contains("exceeds max_cooldown"), "{w}");
    assert!(w.contains("UNSET_CLIENT_KEYS is not set or empty"), "{w}");
    let empty = from_str(
        "[providers.a]\nkind = \"openai\"\nbase_url = \"http://x\"\napi_key_env = \"K\"",
        Path::new("p.toml"),
        &env(&[("K", "  ")]),
    )
    .unwrap();
    assert_eq!(
        empty.providers[0].disabled_reason.as_deref(),
        Some("K is empty")
    );
}

#[test]
fn defaults_match_the_contract() {
    let s = check("").unwrap();
    assert_eq!(s.server.listen, "127.0.0.1:8080");
    assert_eq!(s.server.max_body_bytes, 10_485_760);
    assert_eq!(
        s.failover.on_status,
        [401, 403, 404, 408, 429, 500, 502, 503, 504, 529]
    );
    assert_eq!(s.failover.max_attempts, 4);
    assert_eq!(s.failover.backoff, Duration::from_millis(200));
    assert_eq!(s.failover.max_cooldown, Duration::from_secs(600));
    assert_eq!(
        (s.circuit.failures, s.circuit.open_for),
        (5, Duration::from_secs(30))
    );
}

#[test]
fn errors_name_the_key_path() {
    let cases = [
        ("[server]\nlisten = 1", "server.listen"),
        ("[server]\nlistne = \"x\"", "unknown field `listne`"),
        ("[timeouts]\nidle = \"soon\"", "timeouts.idle: invalid duration \"soon\""),
        ("[timeouts]\nidle = \"0s\"", "timeouts.idle: must be greater than 0"),
        (
            "[providers.a]\nkind = \"openai\"\nbase_url = \"ftp://x\"",
            "providers.a.base_url",
        ),
        (
            "[providers.a]\nkind = \"opneai\"\nbase_url = \"http://x\"",
            "providers.a.kind",
        ),
        (
            "[providers.a]\nkind = \"openai\"\nbase_url = \"http://x\"\n[[routes]]\nmodel = \"m\"\ntargets = [\"a/x\", \"opneai/gpt\"]",
            "routes[0].targets[1]: unknown provider \"opneai\"",
        ),
        ("[[routes]]\nmodel = \"m\"\ntargets = []", "routes[0].targets: empty"),
        (
            "[providers.a]\nkind = \"openai\"\nbase_url = \"http://x\"\n[[routes]]\nmodel = \"m\"\ntargets = [{ target = \"a/x\", wieght = 2 }]",
            "unknown field `wieght`",
        ),
        ("[[routes]]\nmodel = \"m\"\ntargets = [\"nomodel\"]", "routes[0].targets[0]"),
        ("[failover]\nmax_attempts = 0", "failover.max_attempts"),
        ("server = [", "line 1, column"),
        ("[failover]\non_status = [429, 400]", "failover.on_status: 400 can never fail over"),
        ("[failover]\non_status = [200]", "failover.on_status: 200 can never fail over"),
        (
            "[providers.a]\nkind = \"openai\"\nbase_url = \"http://x\"\napi_key_env = \"\"",
            "providers.a.api_key_env: must name an environment variable",
        ),
        ("[server]\nbody_timeout = \"0s\"", "server.body_timeout"),
        ("[cache]\nenabled = true\nttl = \"0s\"", "cache.ttl: must be greater than 0"),
        ("[cache]\nenabled = true\nttl = \"1h\"\nstale_ttl = \"5m\"", "cache.stale_ttl"),
        ("[cache]\nenabled = true\nttl = \"later\"", "cache.ttl: invalid duration"),
        ("[cache]\nenabled = true\nmax_entries = 0", "cache.max_entries"),
        ("[cache]\nmode = \"some\"", "cache.mode"),
    ];
    for (text, want) in cases {
        let err = check(text).unwrap_err();
        assert!(err.starts_with("proxy.toml: "), "{err}");
        assert!(err.contains(want), "{text:?}: {err:?} lacks {want:?}");
    }
}

#[test]
fn the_cache_section_becomes_a_policy_only_when_enabled() {
    assert_eq!(check("").unwrap().cache, None);
    let s = check("[cache]\nenabled = true\nmode = \"all\"\nttl = \"200ms\"\nstale_ttl = \"1s\"")
        .unwrap();
    assert_eq!(
        s.cache,
        Some(CachePolicy {
            mode: CacheMode::All,
            max_entries: 10_000,
            ttl: Duration::from_millis(200),
            stale_ttl: Duration::from_secs(1),
        })
    );
    let d = check("[cache]\nenabled = true").unwrap().cache.unwrap();
    assert_eq!(d.mode, CacheMode::TemperatureZero);
    assert_eq!(
        (d.ttl, d.stale_ttl),
        (Duration::from_secs(300), Duration::from_secs(86_400))
    );
}

#[test]
fn resolve_follows_file_order_then_direct_provider_model() {
    let s = check(&format!(
        "{GOOD}\n[[routes]]\nmodel = \"*\"\ntargets = [\"openai/gpt-4o-mini\"]"
    ))
    .unwrap();
    let name = |m: &str| match s.resolve(m) {
        Some(super::super::Resolved::Route(r)) => r.model.clone(),
        Some(super::super::Resolved::Direct(t)) => format!("direct {}", t.label),
        None => "none".into(),
    };
    assert_eq!(name("default"), "default");
    assert_eq!(name("anything"), "*");
    let s = check(GOOD).unwrap();
    let direct = match s.resolve("openai/gpt-4.1") {
        Some(super::super::Resolved::Direct(t)) => t.label.clone(),
        _ => "none".into(),
    };
    assert_eq!(direct, "openai/gpt-4.1");
    assert!(s.resolve("nobody/x").is_none());
    assert!(s.resolve("unrouted").is_none());
}

#[test]
fn a_kinds_own_keys_reach_its_adapter_typed() {
    let snap = check(
        r#"
[providers.claude]
kind = "anthropic"
base_url = "https://api.anthropic.com"
version = "2024-01-01"
max_tokens = 77
[[routes]]
model = "m"
targets = ["claude/c"]
"#,
    )
    .unwrap();
    let target = &snap.routes[0].targets[0];
    let req = crate::canonical::ChatRequest::parse(bytes::Bytes::from_static(
        br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
    ))
    .unwrap();
    let out = adapter_for(target.provider.kind)
        .build_request(&req, target)
        .unwrap();
    assert_eq!(out.headers()["anthropic-version"], "2024-01-01");
    let body: serde_json::Value = serde_json::from_slice(out.body()).unwrap();
    assert_eq!(body["max_tokens"], 77);
    let err = check(
        "[providers.a]\nkind = \"anthropic\"\nbase_url = \"http://h\"\napi_version = \"x\"\n",
    )
    .unwrap_err();
    assert!(
        err.ends_with("providers.a: api_version: not a setting of kind \"anthropic\""),
        "{err}"
    );
}

fn with_state(state: &str, vars: &[(&str, &str)]) -> Result<Snapshot, String> {
    let mut pairs = vec![("OPENAI_API_KEY", "sk-x")];
    pairs.extend_from_slice(vars);
    from_str(
        &format!("{GOOD}\n[state]\n{state}\n"),
        Path::new("proxy.toml"),
        &env(&pairs),
    )
    .map_err(|e| e.to_string())
}

#[test]
fn state_defaults_to_memory_and_reads_the_engine_url_from_the_environment() {
    assert_eq!(check(GOOD).unwrap().state, StatePolicy::Memory);
    let s = with_state(
        "backend = \"redis\"\nkey_prefix = \"us:\"\ntimeout = \"20ms\"",
        &[("UNDERSTUDY_REDIS_URL", "redis://:pw@10.0.0.5:6380/2")],
    )
    .unwrap();
    let StatePolicy::Redis(p) = s.state else {
        panic!("redis expected")
    };
    assert_eq!(p.key_prefix, "us:");
    assert_eq!(p.timeout, Duration::from_millis(20));
    assert_eq!(p.url.display(), "10.0.0.5:6380/2");
    assert!(!format!("{p:?}").contains("pw"), "Debug hides the password");
}

#[test]
fn state_errors_name_their_key_and_never_show_the_url() {
    for (state, vars, expect) in [
        (
            "backend = \"etcd\"",
            vec![],
            "state.backend: \"etcd\" is not one of",
        ),
        (
            "backend = \"redis\"",
            vec![],
            "state.url_env: UNDERSTUDY_REDIS_URL is not set",
        ),
        (
            "backend = \"redis\"",
            vec![("UNDERSTUDY_REDIS_URL", "http://user:hunter2@x:1")],
            "state.url_env: UNDERSTUDY_REDIS_URL is not a redis:// or rediss:// URL",
        ),
        (
            "backend = \"redis\"\nurl_env = \"redis://x\"",
            vec![],
            "state.url_env: not an environment variable name",
        ),
        (
            "timeout = \"0s\"",
            vec![],
            "state.timeout: must be greater than 0",
        ),
    ] {
        let err = with_state(state, &vars).unwrap_err();
        assert!(err.contains(expect), "{state}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}

#[test]
fn passthrough_is_off_by_default_and_names_an_openai_kind_provider() {
    assert!(check("").unwrap().passthrough.is_none());
    let s = check(&format!("{GOOD}\n[passthrough]\nprovider = \"openai\"\n")).unwrap();
    let pt = s.passthrough.as_ref().unwrap();
    assert_eq!(pt.provider.name, "openai");
    assert_eq!(pt.max_body_bytes, 32 * 1024 * 1024);
    assert!(Arc::ptr_eq(&pt.provider, s.provider("openai").unwrap()));
    let s = check(&format!(
        "{GOOD}\n[passthrough]\nprovider = \"openai\"\nmax_body_bytes = 1000\n"
    ))
    .unwrap();
    assert_eq!(s.passthrough.unwrap().max_body_bytes, 1000);

    let azure = "[providers.az]\nkind = \"azure\"\nbase_url = \"https://r.openai.azure.com\"\n";
    let claude =
        "[providers.claude]\nkind = \"anthropic\"\nbase_url = \"https://api.anthropic.com\"\n";
    let cases = [
        (
            format!("{GOOD}\n[passthrough]\nprovider = \"opneai\"\n"),
            "passthrough.provider: unknown provider \"opneai\" (declared: backup, openai)",
        ),
        (
            format!("{azure}[passthrough]\nprovider = \"az\"\n"),
            "passthrough.provider: \"az\" is of kind \"azure\", whose API is not laid out like OpenAI's /v1; name a provider of kind \"openai\"",
        ),
        (
            format!("{claude}[passthrough]\nprovider = \"claude\"\n"),
            "passthrough.provider: \"claude\" is of kind \"anthropic\"",
        ),
        (
            format!("{GOOD}\n[passthrough]\nprovider = \"openai\"\nmax_body_bytes = 0\n"),
            "passthrough.max_body_bytes: must be greater than 0",
        ),
        (
            format!("{GOOD}\n[passthrough]\nprovider = \"openai\"\nmax_bytes = 5\n"),
            "passthrough.max_bytes: unknown field `max_bytes`",
        ),
        (
            format!("{GOOD}\n[passthrough]\nmax_body_bytes = 5\n"),
            "passthrough: missing field `provider`",
        ),
    ];
    for (text, want) in cases {
        let err = check(&text).unwrap_err();
        assert!(err.contains(want), "{err:?} lacks {want:?}");
    }
}

#[test]
fn a_disabled_passthrough_provider_is_legal_and_warned_about() {
    let s = check(&format!("{GOOD}\n[passthrough]\nprovider = \"backup\"\n")).unwrap();
    assert!(!s.passthrough.as_ref().unwrap().provider.enabled());
    let w = s.warnings().join("\n");
    assert!(
        w.contains("passthrough.provider: \"backup\" is disabled (BACKUP_KEY is not set)"),
        "{w}"
    );
    let s = check(&format!("{GOOD}\n[passthrough]\nprovider = \"openai\"\n")).unwrap();
    assert!(!s.warnings().join("\n").contains("passthrough"));
}

#[test]
fn the_retry_budget_and_breaker_backoff_have_their_defaults_and_checks() {
    let s = check("").unwrap();
    assert_eq!(
        s.failover.budget,
        BudgetPolicy {
            ratio: 0.2,
            min_per_s: 10
        }
    );
    assert_eq!(s.circuit.max_open_for, Duration::from_secs(300));
    let s = check("[failover]\nbudget_ratio = 0\nbudget_min_per_s = 0\n[circuit_breaker]\nmax_open_for = \"1h\"").unwrap();
    assert_eq!(
        s.failover.budget,
        BudgetPolicy {
            ratio: 0.0,
            min_per_s: 0
        }
    );
    assert_eq!(s.circuit.max_open_for, Duration::from_secs(3600));
    for bad in ["-0.5", "nan", "inf"] {
        let err = check(&format!("[failover]\nbudget_ratio = {bad}")).unwrap_err();
        assert!(
            err.contains("failover.budget_ratio: ") && err.contains("finite number of at least 0"),
            "{bad}: {err}"
        );
    }
    let err = check("[failover]\nbudget_min_per_s = -1").unwrap_err();
    assert!(err.contains("budget_min_per_s"), "{err}");
    let err = check("[circuit_breaker]\nmax_open_for = \"soon\"").unwrap_err();
    assert!(err.contains("circuit_breaker.max_open_for"), "{err}");
    let w = check("[circuit_breaker]\nopen_for = \"10m\"")
        .unwrap()
        .warnings()
        .join("\n");
    assert!(w.contains("circuit_breaker.max_open_for"), "{w}");
}

#[test]
fn a_targets_context_window_is_a_positive_token_count() {
    let route = |window: &str| {
        format!(
            "[providers.a]\nkind = \"openai\"\nbase_url = \"http://x\"\n[[routes]]\nmodel = \"m\"\ntargets = [\"a/big\", {{ target = \"a/small\", context_window = {window} }}]"
        )
    };
    let snap = check(&route("8192")).unwrap();
    let windows: Vec<Option<u64>> = snap.routes[0]
        .targets
        .iter()
        .map(|t| t.context_window)
        .collect();
    assert_eq!(windows, [None, Some(8192)]);
    for (window, want) in [
        (
            "0",
            "routes[0].targets[1].context_window: must be a positive number of tokens",
        ),
        ("-5", "got -5"),
        ("\"128k\"", "invalid type: string \"128k\""),
        ("1.5", "invalid type: floating point"),
    ] {
        let err = check(&route(window)).unwrap_err();
        assert!(err.contains(want), "{window}: {err:?} lacks {want:?}");
    }
}

#[test]
fn resume_streams_is_off_by_default_and_prefill_is_typed() {
    assert!(!check("").unwrap().failover.resume_streams);
    assert!(
        check("[failover]\nresume_streams = true")
            .unwrap()
            .failover
            .resume_streams
    );
    let openai = "[providers.v]\nkind = \"openai\"\nbase_url = \"http://h/v1\"\n";
    check(&format!("{openai}prefill = \"continue_final_message\"\n")).unwrap();
    let err = check(&format!("{openai}prefill = \"always\"\n")).unwrap_err();
    assert!(
        err.contains("providers.v") && err.contains("prefill"),
        "{err}"
    );
    let err = check(
        "[providers.c]\nkind = \"anthropic\"\nbase_url = \"http://h\"\nprefill = \"prefix\"\n",
    )
    .unwrap_err();
    assert!(err.contains("not a setting of kind \"anthropic\""), "{err}");
}
