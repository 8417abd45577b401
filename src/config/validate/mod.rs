//! proxy.toml text → [`Snapshot`]. The one validation path for startup, `--check`
//! and reloads; every error names the file and the key path.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderName, HeaderValue};

use super::raw::{RawCache, RawConfig, RawPassthrough, RawState, RawTimeouts};
use super::{
    BudgetPolicy, CacheMode, CachePolicy, CircuitPolicy, EnvLookup, FailoverPolicy,
    PassthroughPolicy, Provider, RedisPolicy, RedisUrl, ResponsesPolicy, Route, Secret, Server,
    Snapshot, StatePolicy, Target, Timeouts, TlsFiles,
};
use crate::providers::adapter_for;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// `key.path: what is wrong`, or `line L, column C: ...` for syntax errors.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates the file at `path`.
pub fn load(path: &Path, env: &EnvLookup) -> Result<Snapshot, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        message: format!("cannot read config file: {e}"),
    })?;
    from_str(&text, path, env)
}

/// Validates `text` as if read from `path`.
pub fn from_str(text: &str, path: &Path, env: &EnvLookup) -> Result<Snapshot, ConfigError> {
    let fail = |message: String| ConfigError {
        file: path.to_path_buf(),
        message,
    };
    let raw: RawConfig = parse_toml(text).map_err(fail)?;
    build(raw, path, env).map_err(fail)
}

fn parse_toml(text: &str) -> Result<RawConfig, String> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let at = inner
            .span()
            .map(|span| {
                let (line, col) = line_col(text, span.start);
                format!("line {line}, column {col}: ")
            })
            .unwrap_or_default();
        let key = if key == "." || key.is_empty() {
            String::new()
        } else {
            format!("{key}: ")
        };
        format!("{at}{key}{}", inner.message().trim())
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn build(raw: RawConfig, path: &Path, env: &EnvLookup) -> Result<Snapshot, String> {
    check_listen(&raw.server.listen).map_err(|e| format!("server.listen: {e}"))?;
    if raw.server.body_timeout.0.is_zero() {
        return Err("server.body_timeout: must be greater than 0".into());
    }
    if raw.server.max_body_bytes == 0 {
        return Err("server.max_body_bytes: must be greater than 0".into());
    }
    let tls = match &raw.server.tls {
        None => None,
        Some(t) => {
            let base = path.parent().unwrap_or(Path::new("."));
            let files = TlsFiles {
                cert: base.join(&t.cert),
                key: base.join(&t.key),
            };
            crate::server::tls::acceptor(&files).map_err(|e| format!("server.tls: {e}"))?;
            Some(files)
        }
    };
    if let Some(var) = &raw.server.api_keys_env {
        env_var_name("server.api_keys_env", var)?;
    }
    let api_keys = match &raw.server.api_keys_env {
        Some(var) => env(var)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| Secret::new(k.to_string()))
            .collect(),
        None => Vec::new(),
    };

    let global = merge_timeouts(Timeouts::default(), &raw.timeouts, "timeouts")?;

    let f = &raw.failover;
    if let Some(s) = f.on_status.iter().find(|s| !(100..=599).contains(*s)) {
        return Err(format!("failover.on_status: {s} is not an HTTP status"));
    }
    // 400/422 mean the request itself is bad and are never failed over; a 1xx-3xx
    // is not an error at all.
    if let Some(s) = f.on_status.iter().find(|s| **s <= 400 || **s == 422) {
        return Err(format!(
            "failover.on_status: {s} can never fail over (400 and 422 are the request's own fault; below 400 is not an error)"
        ));
    }
    if f.max_attempts == 0 {
        return Err("failover.max_attempts: must be at least 1".into());
    }
    if !f.budget_ratio.is_finite() || f.budget_ratio < 0.0 {
        return Err(format!(
            "failover.budget_ratio: {} must be a finite number of at least 0 (0.2 = 20% extra attempts)",
            f.budget_ratio
        ));
    }
    if raw.circuit_breaker.failures == 0 {
        return Err("circuit_breaker.failures: must be at least 1".into());
    }
    let cache = cache_policy(&raw.cache)?;
    if raw.responses.ttl.0.is_zero() {
        return Err("responses.ttl: must be greater than 0".into());
    }
    if raw.responses.max_bytes == 0 {
        return Err("responses.max_bytes: must be greater than 0".into());
    }
    let state = state_policy(&raw.state, env.as_ref())?;
    let telemetry = telemetry::policy(&raw.telemetry)?;

    let mut providers = Vec::with_capacity(raw.providers.len());
    let mut egresses = egress::Egresses::new(path, env);
    for (name, p) in &raw.providers {
        let key = format!("providers.{name}");
        if name.is_empty() || name.contains('/') {
            return Err(format!(
                "{key}: a provider name must be non-empty and contain no '/'"
            ));
        }
        let base_url = p.base_url.trim_end_matches('/').to_string();
        let uri: http::Uri = base_url
            .parse()
            .map_err(|e| format!("{key}.base_url: {:?} is not a URL: {e}", p.base_url))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!(
                "{key}.base_url: {:?} must be an absolute http:// or https:// URL",
                p.base_url
            ));
        }
        let mut headers = Vec::with_capacity(p.headers.len());
        for (h, v) in &p.headers {
            let hn = HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| format!("{key}.headers: {h:?} is not a valid header name"))?;
            let hv = HeaderValue::from_str(v)
                .map_err(|_| format!("{key}.headers.{h}: not a valid header value"))?;
            headers.push((hn, hv));
        }
        let (api_key, disabled_reason) = match &p.api_key_env {
            None => (None, None),
            Some(var) if var.trim().is_empty() => {
                return Err(format!(
                    "{key}.api_key_env: must name an environment variable (omit it for a keyless endpoint)"
                ))
            }
            Some(var) => match env(env_var_name(&format!("{key}.api_key_env"), var)?) {
                Some(v) if !v.trim().is_empty() => (Some(Secret::new(v.trim().to_string())), None),
                Some(_) => (None, Some(format!("{var} is empty"))),
                None => (None, Some(format!("{var} is not set"))),
            },
        };
        let provider = Provider {
            name: name.clone(),
            kind: p.kind,
            base_url,
            api_key_env: p.api_key_env.clone(),
            api_key,
            disabled_reason,
            headers,
            timeouts: merge_timeouts(global, &p.timeouts, &format!("{key}.timeouts"))?,
            settings: adapter_for(p.kind)
                .settings(p.settings.clone())
                .map_err(|e| format!("{key}: {e}"))?,
            egress: egresses.provider(&key, p)?,
            prices: prices::table(&key, &p.prices)?,
            concurrency: limits::concurrency(&key, p)?,
        };
        providers.push(Arc::new(provider));
    }
    providers.sort_by(|a, b| a.name.cmp(&b.name));
    let find = |name: &str| {
        providers
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .ok()
            .map(|i| providers[i].clone())
    };

    let passthrough = match &raw.passthrough {
        None => None,
        Some(pt) => Some(passthrough(pt, &providers)?),
    };

    let mut routes: Vec<Route> = Vec::with_capacity(raw.routes.len());
    for (i, r) in raw.routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        if r.model.is_empty() {
            return Err(format!("{key}.model: must not be empty"));
        }
        if let Some(j) = routes.iter().position(|o| o.model == r.model) {
            return Err(format!(
                "{key}.model: {:?} is already routed by routes[{j}]",
                r.model
            ));
        }
        if r.targets.is_empty() {
            return Err(format!(
                "{key}.targets: empty; a route needs at least one \"provider/model\" target"
            ));
        }
        let mut targets = Vec::with_capacity(r.targets.len());
        for (j, t) in r.targets.iter().enumerate() {
            let tkey = format!("{key}.targets[{j}]");
            let (pname, model) = t
                .target
                .split_once('/')
                .filter(|(p, m)| !p.is_empty() && !m.is_empty())
                .ok_or_else(|| format!("{tkey}: {:?} is not \"provider/model\"", t.target))?;
            let provider = find(pname).ok_or_else(|| {
                format!(
                    "{tkey}: unknown provider {pname:?} (declared: {})",
                    names(&providers)
                )
            })?;
            if t.weight == 0 {
                return Err(format!("{tkey}.weight: must be at least 1"));
            }
            let timeouts =
                merge_timeouts(provider.timeouts, &t.timeouts, &format!("{tkey}.timeouts"))?;
            let mut target = Target::new(provider, model, t.weight, timeouts);
            target.context_window = context_window(t.context_window, &tkey)?;
            targets.push(Arc::new(target));
        }
        prices::check_strategy(&key, r.strategy, &targets)?;
        routes.push(Route {
            model: r.model.clone(),
            strategy: r.strategy,
            targets,
            cursor: Default::default(),
        });
    }

    Ok(Snapshot {
        path: path.to_path_buf(),
        loaded_at: SystemTime::now(),
        server: Server {
            listen: raw.server.listen.clone(),
            tls,
            api_keys,
            max_body_bytes: raw.server.max_body_bytes,
            body_timeout: raw.server.body_timeout.0,
            api_keys_env: raw.server.api_keys_env.clone(),
            shutdown_grace: raw.server.shutdown_grace.0,
            limits: limits::conn_limits(&raw.server)?,
        },
        failover: FailoverPolicy {
            on_status: f.on_status.clone(),
            max_attempts: f.max_attempts,
            retries_per_target: f.retries_per_target,
            backoff: f.backoff.0,
            default_cooldown: f.default_cooldown.0,
            max_cooldown: f.max_cooldown.0,
            max_wait: f.max_wait.0,
            hedge_after: f.hedge_after.0,
            budget: BudgetPolicy {
                ratio: f.budget_ratio,
                min_per_s: f.budget_min_per_s,
            },
            resume_streams: f.resume_streams,
        },
        circuit: CircuitPolicy {
            failures: raw.circuit_breaker.failures,
            open_for: raw.circuit_breaker.open_for.0,
            max_open_for: raw.circuit_breaker.max_open_for.0,
        },
        health_interval: raw.health.interval.0,
        fallback_message: raw.fallback.message.clone(),
        cache,
        responses: ResponsesPolicy {
            ttl: raw.responses.ttl.0,
            max_bytes: raw.responses.max_bytes,
        },
        state,
        telemetry,
        passthrough,
        providers,
        routes,
    })
}

/// `[state]`. The URL is read from the environment and checked here, so a typo is a
/// load error; whether the engine answers is found out at run time (a replica serves
/// from its own state while it does not).
fn state_policy(s: &RawState, env: &dyn Fn(&str) -> Option<String>) -> Result<StatePolicy, String> {
    if s.timeout.0.is_zero() {
        return Err("state.timeout: must be greater than 0".into());
    }
    match s.backend.as_str() {
        "memory" => return Ok(StatePolicy::Memory),
        "redis" => {}
        other => {
            return Err(format!(
                "state.backend: {other:?} is not one of \"memory\", \"redis\""
            ))
        }
    }
    let var = env_var_name("state.url_env", &s.url_env)?;
    let Some(url) = env(var).filter(|u| !u.trim().is_empty()) else {
        return Err(format!(
            "state.url_env: {var} is not set; with backend = \"redis\" it must hold the engine's URL, e.g. redis://127.0.0.1:6379/0"
        ));
    };
    let url = RedisUrl::new(url.trim().to_string());
    if !(url.expose().starts_with("redis://") || url.expose().starts_with("rediss://"))
        || url.display().is_empty()
    {
        return Err(format!(
            "state.url_env: {var} is not a redis:// or rediss:// URL (the value is not shown: it may hold a password)"
        ));
    }
    Ok(StatePolicy::Redis(RedisPolicy {
        url,
        url_env: var.to_string(),
        key_prefix: s.key_prefix.clone(),
        timeout: s.timeout.0,
    }))
}

/// The provider must exist and take passthrough (its kind's API is laid out like
/// OpenAI's `/v1`); a disabled one is legal, like a route's (a warning, and 503s).
fn passthrough(
    raw: &RawPassthrough,
    providers: &[Arc<Provider>],
) -> Result<PassthroughPolicy, String> {
    let name = raw.provider.as_str();
    let provider = providers.iter().find(|p| p.name == name).ok_or_else(|| {
        format!(
            "passthrough.provider: unknown provider {name:?} (declared: {})",
            names(providers)
        )
    })?;
    match adapter_for(provider.kind).passthrough(provider, &http::Method::GET, "/models") {
        None => {
            return Err(format!(
                "passthrough.provider: {name:?} is of kind {:?}, whose API is not laid out like OpenAI's /v1; name a provider of kind \"openai\"",
                provider.kind.as_str()
            ))
        }
        Some(Err(e)) => return Err(format!("passthrough.provider: {name:?}: {e}")),
        Some(Ok(_)) => {}
    }
    if raw.max_body_bytes == 0 {
        return Err("passthrough.max_body_bytes: must be greater than 0".into());
    }
    Ok(PassthroughPolicy {
        provider: provider.clone(),
        max_body_bytes: raw.max_body_bytes,
    })
}

/// Checked even while the cache is off, so turning it on later cannot surface an old
/// mistake in the middle of a reload.
fn cache_policy(c: &RawCache) -> Result<Option<CachePolicy>, String> {
    let mode = match c.mode.as_deref() {
        None | Some("temperature-zero") => CacheMode::TemperatureZero,
        Some("all") => CacheMode::All,
        Some(other) => {
            return Err(format!(
                "cache.mode: {other:?} is not one of \"all\", \"temperature-zero\""
            ))
        }
    };
    if c.max_entries == 0 {
        return Err("cache.max_entries: must be at least 1".into());
    }
    if c.ttl.0.is_zero() {
        return Err("cache.ttl: must be greater than 0".into());
    }
    if c.stale_ttl.0 < c.ttl.0 {
        return Err(format!(
            "cache.stale_ttl: {} is shorter than cache.ttl ({}); it must be at least as long",
            humantime::format_duration(c.stale_ttl.0),
            humantime::format_duration(c.ttl.0)
        ));
    }
    Ok(c.enabled.then_some(CachePolicy {
        mode,
        max_entries: c.max_entries,
        ttl: c.ttl.0,
        stale_ttl: c.stale_ttl.0,
    }))
}

/// `HOST:PORT` where HOST is an IP address or a name resolved when the listener binds
/// (`localhost:8080`); IPv6 literals in brackets (`[::1]:8080`).
pub fn check_listen(listen: &str) -> Result<(), String> {
    if listen.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let bad = || format!("{listen:?} is not an address like 127.0.0.1:8080 or localhost:8080");
    let (host, port) = listen.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !host_ok || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(())
}

/// `*_env` keys hold the NAME of a variable. Pasting the secret itself there is the
/// commonest config mistake: refuse anything that is not a variable name, and never
/// echo the value (it may be a key).
fn env_var_name<'v>(key: &str, var: &'v str) -> Result<&'v str, String> {
    let mut chars = var.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && var.len() <= 128;
    if ok {
        Ok(var)
    } else {
        Err(format!(
            "{key}: not an environment variable name (letters, digits and '_'; the value is not shown, in case it is a key). \
             Put the key in the environment and name the variable here, e.g. `export OPENAI_API_KEY=...` and `api_key_env = \"OPENAI_API_KEY\"`"
        ))
    }
}

fn names(providers: &[Arc<Provider>]) -> String {
    if providers.is_empty() {
        return "none".into();
    }
    providers
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A target's `context_window`, in tokens: a positive whole number when given.
fn context_window(raw: Option<i64>, tkey: &str) -> Result<Option<u64>, String> {
    match raw {
        None => Ok(None),
        Some(n) if n >= 1 => Ok(u64::try_from(n).ok()),
        Some(n) => Err(format!(
            "{tkey}.context_window: must be a positive number of tokens (e.g. 128000), got {n}"
        )),
    }
}

fn merge_timeouts(base: Timeouts, over: &RawTimeouts, key: &str) -> Result<Timeouts, String> {
    let pick = |v: Option<super::raw::Dur>, d: Duration, name: &str| -> Result<Duration, String> {
        match v {
            Some(v) if v.0.is_zero() => Err(format!("{key}.{name}: must be greater than 0")),
            Some(v) => Ok(v.0),
            None => Ok(d),
        }
    };
    Ok(Timeouts {
        connect: pick(over.connect, base.connect, "connect")?,
        first_byte: pick(over.first_byte, base.first_byte, "first_byte")?,
        idle: pick(over.idle, base.idle, "idle")?,
        total: pick(over.total, base.total, "total")?,
    })
}

mod egress;
mod limits;
mod prices;
mod telemetry;
#[cfg(test)]
mod tests;
