//! Helpers shared by the binary's tests (`cli*.rs`): its path, a minimal good config
//! and `--check` runs of a config written to a temporary file.
#![allow(dead_code)]

use std::process::Command;

use crate::common::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_understudy");

pub fn check(toml: &str) -> (i32, String, String) {
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

pub const GOOD: &str = r#"
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

pub fn check_args(toml: &str, args: &[&str]) -> (i32, String, String) {
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
