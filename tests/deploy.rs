//! The files in deploy/ are what operators copy: their configs must load as they
//! stand (with the environment they document), so a change of the config schema
//! cannot leave them behind.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check(path: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(["--check", "--config"])
        .arg(path)
        .env("UNDERSTUDY_REDIS_URL", "redis://valkey:6379/0")
        .env("OPENAI_API_KEY", "sk-test")
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_compose_config_is_valid_and_shares_state() {
    let path = root().join("deploy/proxy.toml");
    let (ok, out) = check(&path);
    assert!(ok, "{out}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("backend = \"redis\""));
    assert!(
        text.contains("listen = \"0.0.0.0:8080\""),
        "reachable from the load balancer"
    );
}

#[test]
fn the_kubernetes_configmap_holds_a_valid_config() {
    let manifest =
        std::fs::read_to_string(root().join("deploy/kubernetes/understudy.yaml")).unwrap();
    // the block scalar under `proxy.toml: |`, up to the next document
    let start = manifest.find("proxy.toml: |").expect("a proxy.toml key") + "proxy.toml: |".len();
    let block = &manifest[start
        ..manifest[start..]
            .find("\n---")
            .map_or(manifest.len(), |e| start + e)];
    let toml: String = block
        .lines()
        .skip(1)
        .map(|l| l.strip_prefix("    ").unwrap_or(l.trim()))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = std::env::temp_dir().join(format!("understudy-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy.toml");
    std::fs::write(&path, &toml).unwrap();
    let (ok, out) = check(&path);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(ok, "{out}\n{toml}");
    for probe in ["path: /readyz", "path: /healthz"] {
        assert!(manifest.contains(probe), "{probe}");
    }
}

#[test]
fn the_image_runs_as_non_root_with_a_healthcheck() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("USER 10001"));
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("/healthz"));
    assert!(dockerfile.matches("FROM ").count() >= 2, "multi-stage");
}
