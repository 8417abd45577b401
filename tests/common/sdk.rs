//! The official openai SDK as the judge: Python clients in `tests/sdk/`.

use std::path::PathBuf;
use std::time::Duration;

use super::proxy::Proxy;

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
    sdk_script("openai_client.py", proxy, api_key, scenarios).await
}

/// Runs `tests/sdk/{script}` with the proxy's `/v1` base URL, `api_key` and
/// `scenarios` on stdin; one JSON result per scenario. Bounded: 90 s.
pub async fn sdk_script(
    script: &str,
    proxy: &Proxy,
    api_key: &str,
    scenarios: serde_json::Value,
) -> Vec<serde_json::Value> {
    run_sdk_script(script, proxy.url("/v1"), api_key, scenarios).await
}

/// Runs `tests/sdk/{script}` with `base` (the SDK's base URL), `api_key` and
/// `scenarios` on stdin; one JSON result per scenario. Bounded: 90 s. The SDKs read
/// credentials and base URLs from the environment too: theirs is cleared.
pub async fn run_sdk_script(
    script: &str,
    base: String,
    api_key: &str,
    scenarios: serde_json::Value,
) -> Vec<serde_json::Value> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(script);
    let key = api_key.to_string();
    let run = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(sdk_python());
        for (k, _) in std::env::vars() {
            if k.starts_with("ANTHROPIC_") || k.starts_with("OPENAI_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
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
