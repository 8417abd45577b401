//! The proxy served in-process on 127.0.0.1:0 from a config written to a temp dir.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use understudy::config::{self, EnvLookup};
use understudy::App;

use super::client::{send, Resp};
use super::mock::Mock;

pub const UPSTREAM_KEY: (&str, &str) = ("TEST_KEY", "sk-upstream-secret");

/// OpenAI-kind providers named `names` at the mocks' URLs, and a `default` route over
/// them in that order (`NAME/m-NAME`). `extra` follows `[server]`'s `listen`.
pub fn openai_config(mocks: &[(&str, String)], extra: &str) -> String {
    let mut s = String::from("[server]\nlisten = \"127.0.0.1:0\"\n");
    s.push_str(extra);
    for (name, url) in mocks {
        s.push_str(&format!(
            "\n[providers.{name}]\nkind = \"openai\"\nbase_url = \"{url}/v1\"\napi_key_env = \"TEST_KEY\"\n"
        ));
    }
    let targets: Vec<String> = mocks
        .iter()
        .map(|(n, _)| format!("\"{n}/m-{n}\""))
        .collect();
    s.push_str(&format!(
        "\n[[routes]]\nmodel = \"default\"\ntargets = [{}]\n",
        targets.join(", ")
    ));
    s
}

/// Two mocks, `a` and `b`, as [`openai_config`]'s providers of that name behind the
/// `default` route (`a` leads); `extra` follows `[server]`'s `listen`.
pub async fn two(extra: &str) -> (Mock, Mock, Proxy) {
    let a = Mock::start().await;
    let b = Mock::start().await;
    let p = Proxy::start(
        &openai_config(&[("a", a.url()), ("b", b.url())], extra),
        &[UPSTREAM_KEY],
    )
    .await;
    (a, b, p)
}

/// Like [`two`], with `timeouts` (`first_byte = "200ms"`, …) for `a` alone. A test
/// that wants a short timeout to fire on `a` sets it there, so `b`'s answers are never
/// timed against the machine's speed.
pub async fn two_with_a_timeouts(timeouts: &str, extra: &str) -> (Mock, Mock, Proxy) {
    let a = Mock::start().await;
    let b = Mock::start().await;
    let toml = with_timeouts(
        &openai_config(&[("a", a.url()), ("b", b.url())], extra),
        "a",
        timeouts,
    );
    let p = Proxy::start(&toml, &[UPSTREAM_KEY]).await;
    (a, b, p)
}

/// `toml` with `timeouts` (`connect = "200ms"`, …) set for provider `name` alone.
pub fn with_timeouts(toml: &str, name: &str, timeouts: &str) -> String {
    with_keys(toml, name, &format!("timeouts = {{ {timeouts} }}"))
}

/// `toml` with `keys` (TOML lines) added to provider `name`'s table.
pub fn with_keys(toml: &str, name: &str, keys: &str) -> String {
    let table = format!("[providers.{name}]\n");
    assert!(toml.contains(&table), "no {table} in {toml}");
    toml.replacen(&table, &format!("{table}{keys}\n"), 1)
}

pub struct Proxy {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    pub config_path: PathBuf,
    _dir: TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub served: Option<tokio::task::JoinHandle<()>>,
    _watch: Option<understudy::config::watch::WatchGuard>,
}

pub fn env_of(pairs: &[(&str, &str)]) -> EnvLookup {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(move |k| map.get(k).cloned())
}

impl Proxy {
    /// Serves `toml` (written to a temp file) with the given environment.
    pub async fn start(toml: &str, env: &[(&str, &str)]) -> Proxy {
        Proxy::start_with_env(toml, env_of(env)).await
    }

    pub async fn start_with_env(toml: &str, env: EnvLookup) -> Proxy {
        let dir = TempDir::new();
        let config_path = dir.path.join("proxy.toml");
        std::fs::write(&config_path, toml).unwrap();
        Proxy::start_at(dir, config_path, env).await
    }

    /// Like [`Proxy::start_with_env`], with `files` (name, contents) written beside the
    /// config first: keys that name files resolve against its directory.
    pub async fn start_with_files(toml: &str, files: &[(&str, String)], env: EnvLookup) -> Proxy {
        let dir = TempDir::new();
        for (name, text) in files {
            std::fs::write(dir.path.join(name), text).unwrap();
        }
        let config_path = dir.path.join("proxy.toml");
        std::fs::write(&config_path, toml).unwrap();
        Proxy::start_at(dir, config_path, env).await
    }

    /// Serves the config at `config_path` (inside `dir`, removed with the proxy).
    async fn start_at(dir: TempDir, config_path: PathBuf, env: EnvLookup) -> Proxy {
        let snapshot =
            config::load(&config_path, &env).unwrap_or_else(|e| panic!("test config invalid: {e}"));
        let app = App::new(snapshot, env);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let grace_app = app.clone();
        let served = tokio::spawn(understudy::serve(
            app.clone(),
            listener,
            async move {
                let _ = rx.await;
            },
            move || grace_app.config.load().server.shutdown_grace,
        ));
        Proxy {
            addr,
            app,
            config_path,
            _dir: dir,
            shutdown: Some(tx),
            served: Some(served),
            _watch: None,
        }
    }

    /// Like [`Proxy::start_with_env`], with the config file watched for changes.
    pub async fn start_watched(toml: &str, env: EnvLookup) -> Proxy {
        let mut p = Proxy::start_with_env(toml, env).await;
        p._watch = Some(understudy::config::watch::spawn_watcher(p.app.clone()).expect("watch"));
        p
    }

    /// Watched, with the config laid out as Kubernetes mounts a ConfigMap:
    /// `proxy.toml -> ..data/proxy.toml`, `..data -> ..<version>/`.
    pub async fn start_configmap(toml: &str, env: EnvLookup) -> Proxy {
        let dir = TempDir::new();
        write_configmap_version(&dir.path, 0, toml);
        std::os::unix::fs::symlink("..v0", dir.path.join("..data")).unwrap();
        let config_path = dir.path.join("proxy.toml");
        std::os::unix::fs::symlink("..data/proxy.toml", &config_path).unwrap();
        let mut p = Proxy::start_at(dir, config_path, env).await;
        p._watch = Some(understudy::config::watch::spawn_watcher(p.app.clone()).expect("watch"));
        p
    }

    /// Updates a [`Proxy::start_configmap`] config as the kubelet does: a new version
    /// directory, a temporary `..data_tmp` symlink to it renamed over `..data`, the old
    /// version removed. `proxy.toml` itself is never touched.
    pub fn swap_configmap(&self, version: u32, toml: &str) {
        let dir = self.config_path.parent().unwrap();
        let old = std::fs::read_link(dir.join("..data")).unwrap();
        write_configmap_version(dir, version, toml);
        let tmp = dir.join("..data_tmp");
        std::os::unix::fs::symlink(format!("..v{version}"), &tmp).unwrap();
        std::fs::rename(&tmp, dir.join("..data")).unwrap();
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }

    /// Replaces the config the way editors that save by rename do.
    pub fn write_by_rename(&self, toml: &str) {
        let tmp = self
            .config_path
            .with_extension(format!("tmp{}", fastrand::u32(..)));
        std::fs::write(&tmp, toml).unwrap();
        std::fs::rename(&tmp, &self.config_path).unwrap();
    }

    /// Rewrites the config file in place (same file, no rename): writes `toml` over it
    /// from the start, then cuts what is left of a longer old text. Not truncate, then
    /// write: an empty file is a valid config (no routes), so a watcher that read the
    /// file between the two, had the test been slow, would load it.
    pub fn write_in_place(&self, toml: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.config_path)
            .unwrap();
        f.write_all(toml.as_bytes()).unwrap();
        f.set_len(toml.len() as u64).unwrap();
        f.sync_all().unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops accepting; in-flight requests get the configured grace.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub async fn chat(&self, body: serde_json::Value) -> Resp {
        send(
            &self.url("/v1/chat/completions"),
            "POST",
            &[],
            body.to_string(),
        )
        .await
    }

    /// A chat request carrying the client key `key`.
    pub async fn chat_as(&self, key: &str, body: serde_json::Value) -> Resp {
        let auth = format!("Bearer {key}");
        send(
            &self.url("/v1/chat/completions"),
            "POST",
            &[("authorization", &auth)],
            body.to_string(),
        )
        .await
    }
}

fn write_configmap_version(dir: &std::path::Path, version: u32, toml: &str) {
    let v = dir.join(format!("..v{version}"));
    std::fs::create_dir(&v).unwrap();
    std::fs::write(v.join("proxy.toml"), toml).unwrap();
}

/// A directory removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "understudy-test-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
