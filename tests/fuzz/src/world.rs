//! One proxy with a provider of every kind — and of every mode a kind has — built
//! from TOML through `config::from_str`, exactly as `proxy.toml` is at startup.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use understudy::config::{self, EnvLookup, Resolved, Snapshot, Target};
use understudy::App;

/// Every provider of [`CONFIG`], one per kind and mode.
pub const PROVIDERS: [&str; 7] = [
    "openai",
    "openai_native",
    "azure",
    "azure_native",
    "anthropic",
    "gemini",
    "ollama",
];

/// Nothing listens at these addresses: the targets only build and read, never send.
const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"

[responses]
max_bytes = 1048576   # stored Responses answers must not grow over a long run

[providers.openai]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "FUZZ_KEY"

[providers.openai_native]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "FUZZ_KEY"
responses = "native"

[providers.azure]
kind = "azure"
base_url = "http://127.0.0.1:9"
api_key_env = "FUZZ_KEY"
api_version = "2024-10-21"

[providers.azure_native]
kind = "azure"
base_url = "http://127.0.0.1:9"
api_key_env = "FUZZ_KEY"
responses = "native"

[providers.anthropic]
kind = "anthropic"
base_url = "http://127.0.0.1:9"
api_key_env = "FUZZ_KEY"

[providers.gemini]
kind = "gemini"
base_url = "http://127.0.0.1:9"
api_key_env = "FUZZ_KEY"

[providers.ollama]
kind = "ollama"
base_url = "http://127.0.0.1:9"
"#;

pub struct World {
    pub rt: tokio::runtime::Runtime,
    pub app: Arc<App>,
    /// One target per entry of [`PROVIDERS`], in that order.
    pub targets: Vec<Arc<Target>>,
}

/// An environment with every variable set — a Redis URL for names that ask for one,
/// a key for the others — and never the process's own.
pub fn env() -> EnvLookup {
    Arc::new(|name| {
        Some(match name.contains("REDIS") {
            true => "redis://127.0.0.1:6379/0".to_string(),
            false => "sk-fuzz".to_string(),
        })
    })
}

/// The process's one world; a broken [`CONFIG`] is a bug of this crate, not a find.
#[allow(clippy::expect_used)]
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a tokio runtime");
        let snapshot = config::from_str(CONFIG, Path::new("/fuzz/proxy.toml"), &env())
            .expect("the fuzz config is valid");
        let targets = PROVIDERS
            .iter()
            .map(|p| direct(&snapshot, &format!("{p}/fuzz-model")))
            .collect();
        let app = {
            let _guard = rt.enter();
            App::new(snapshot, env())
        };
        World { rt, app, targets }
    })
}

#[allow(clippy::panic)]
fn direct(snapshot: &Snapshot, model: &str) -> Arc<Target> {
    match snapshot.resolve(model) {
        Some(Resolved::Direct(t)) => t,
        _ => panic!("{model} resolves to no provider of the fuzz config"),
    }
}
