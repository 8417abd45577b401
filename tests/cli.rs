//! The `understudy` binary's command line: --check (good and bad files, pasted keys,
//! routes no provider can serve, shadowing `*` routes, embeddings routes mixing
//! models), --probe, --listen addresses
//! and --help.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod cli_common;
mod common;

use std::process::Command;

use cli_common::*;
use common::*;

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
    assert!(
        stdout.contains("3 route(s) [default, embeddings, *]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("anthropic (ANTHROPIC_API_KEY is not set)"),
        "{stdout}"
    );
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
fn an_embeddings_route_mixing_models_is_warned_about_by_check() {
    let mixed = format!(
        "{GOOD}\n[[routes]]\nmodel = \"docs\"\ntargets = [\"main/text-embedding-3-small\", \"spare/text-embedding-ada-002\"]\n"
    );
    let (code, out, err) = check(&mixed);
    assert_eq!(code, 0, "a warning, not an error: {err}");
    assert!(out.contains("ok:"), "{out}");
    assert!(
        err.contains("warning: route \"docs\": its targets name different embedding models (main/text-embedding-3-small, spare/text-embedding-ada-002)"),
        "{err}"
    );
    let same = mixed.replace(
        "spare/text-embedding-ada-002",
        "spare/text-embedding-3-small",
    );
    let (code, _, err) = check(&same);
    assert_eq!(code, 0);
    assert!(!err.contains("embedding models"), "{err}");
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
