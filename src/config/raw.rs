//! A serde mirror of proxy.toml. Everything is optional here with the defaults of
//! DESIGN §2; unknown keys are rejected so a typo is an error, not a silent default.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::providers::Kind;

/// A duration written the way `humantime` parses it: `250ms`, `5s`, `1m 30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim()).map(Dur).map_err(|e| {
            de::Error::custom(format!(
                "invalid duration {s:?}: {e} (write e.g. \"250ms\", \"5s\", \"2m\")"
            ))
        })
    }
}

fn secs(s: u64) -> Dur {
    Dur(Duration::from_secs(s))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub failover: RawFailover,
    #[serde(default)]
    pub circuit_breaker: RawCircuitBreaker,
    #[serde(default)]
    pub health: RawHealth,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub fallback: RawFallback,
    #[serde(default)]
    pub responses: RawResponses,
    pub passthrough: Option<RawPassthrough>,
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub telemetry: RawTelemetry,
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    pub api_keys_env: Option<String>,
    pub max_body_bytes: u64,
    /// How long a client may take to send its request body.
    pub body_timeout: Dur,
    pub shutdown_grace: Dur,
    pub tls: Option<RawTls>,
    /// Open client connections; past it new ones are closed at accept.
    pub max_connections: usize,
    /// From accept until the first request head is complete, whatever the protocol.
    pub header_timeout: Dur,
    /// A keep-alive connection with no request in flight is closed after this.
    pub idle_timeout: Dur,
    /// One request header (name + value), and all of them together.
    pub max_header_bytes: usize,
    pub max_header_total_bytes: usize,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:8080".into(),
            api_keys_env: None,
            max_body_bytes: 10 * 1024 * 1024,
            body_timeout: secs(30),
            shutdown_grace: secs(30),
            tls: None,
            max_connections: 10_000,
            header_timeout: secs(30),
            idle_timeout: secs(75),
            max_header_bytes: 16 * 1024,
            max_header_total_bytes: 64 * 1024,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: String,
    pub key: String,
}

/// Every field optional: the same table serves as global defaults and as a
/// per-provider or per-target override.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<Dur>,
    pub first_byte: Option<Dur>,
    pub idle: Option<Dur>,
    pub total: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFailover {
    pub on_status: Vec<u16>,
    pub max_attempts: u32,
    pub retries_per_target: u32,
    pub backoff: Dur,
    pub default_cooldown: Dur,
    pub max_cooldown: Dur,
    pub max_wait: Dur,
    pub hedge_after: Dur,
    pub budget_ratio: f64,
    pub budget_min_per_s: u32,
    pub resume_streams: bool,
}

impl Default for RawFailover {
    fn default() -> Self {
        RawFailover {
            on_status: vec![401, 403, 404, 408, 429, 500, 502, 503, 504, 529],
            max_attempts: 4,
            retries_per_target: 0,
            backoff: Dur(Duration::from_millis(200)),
            default_cooldown: secs(30),
            max_cooldown: secs(600),
            max_wait: secs(0),
            hedge_after: secs(0),
            budget_ratio: 0.2,
            budget_min_per_s: 10,
            resume_streams: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCircuitBreaker {
    pub failures: u32,
    pub open_for: Dur,
    pub max_open_for: Dur,
}

impl Default for RawCircuitBreaker {
    fn default() -> Self {
        RawCircuitBreaker {
            failures: 5,
            open_for: secs(30),
            max_open_for: secs(300),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHealth {
    pub interval: Dur,
}

impl Default for RawHealth {
    fn default() -> Self {
        RawHealth { interval: secs(0) }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCache {
    pub enabled: bool,
    pub mode: Option<String>,
    pub max_entries: u64,
    pub ttl: Dur,
    pub stale_ttl: Dur,
}

impl Default for RawCache {
    fn default() -> Self {
        RawCache {
            enabled: false,
            mode: None,
            max_entries: 10_000,
            ttl: secs(300),
            stale_ttl: secs(86_400),
        }
    }
}

/// `[responses]`: how long stored Responses-API answers live, and how much memory
/// they may take.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawResponses {
    pub ttl: Dur,
    pub max_bytes: u64,
}

impl Default for RawResponses {
    fn default() -> Self {
        RawResponses {
            ttl: secs(86_400),
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// `[state]`: where what replicas share lives (DESIGN §9).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawState {
    pub backend: String,
    pub url_env: String,
    pub key_prefix: String,
    pub timeout: Dur,
}

impl Default for RawState {
    fn default() -> Self {
        RawState {
            backend: "memory".into(),
            url_env: "UNDERSTUDY_REDIS_URL".into(),
            key_prefix: "understudy:".into(),
            timeout: Dur(Duration::from_millis(50)),
        }
    }
}

/// `[telemetry]`: OpenTelemetry traces, off unless an endpoint is given.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTelemetry {
    pub otlp_endpoint: Option<String>,
    pub capture_content: bool,
    pub service_name: String,
    pub queue_size: usize,
    pub sample_ratio: f64,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        RawTelemetry {
            otlp_endpoint: None,
            capture_content: false,
            service_name: "understudy".into(),
            queue_size: 2048,
            sample_ratio: 1.0,
        }
    }
}

/// `[passthrough]`: forward the rest of OpenAI's `/v1` surface to one provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPassthrough {
    pub provider: String,
    /// Uploads (audio, images, files) are larger than chat requests: a limit of their
    /// own rather than `server.max_body_bytes`.
    #[serde(default = "passthrough_body_limit")]
    pub max_body_bytes: u64,
}

/// A 25 MB audio file (OpenAI's limit for transcriptions) in its multipart envelope,
/// with room to spare.
fn passthrough_body_limit() -> u64 {
    32 * 1024 * 1024
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawFallback {
    pub message: Option<String>,
}

/// The keys every kind has; the rest of the table is the kind's own, typed by its
/// adapter ([`crate::providers::Adapter::settings`]), which rejects unknown keys.
#[derive(Debug, Deserialize)]
pub struct RawProvider {
    pub kind: Kind,
    pub base_url: String,
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    /// `"http://[user:pass@]host:port"` or `"none"`; unset: the `*_PROXY` variables.
    #[serde(default)]
    pub proxy: Option<String>,
    /// A PEM bundle of CA certificates trusted on top of `tls_roots`.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// `webpki` (default), `native` or `both`.
    #[serde(default)]
    pub tls_roots: Option<String>,
    /// PEM certificate (chain) and key for mutual TLS.
    #[serde(default)]
    pub client_cert: Option<String>,
    #[serde(default)]
    pub client_key: Option<String>,
    /// USD per million tokens, by the provider's model name.
    #[serde(default)]
    pub prices: BTreeMap<String, RawPrice>,
    /// Upstream requests in flight to this provider at once; unset: no limit.
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// Requests that may wait for a slot (default: `max_concurrency`), and how long.
    #[serde(default)]
    pub max_queue: Option<u32>,
    #[serde(default)]
    pub queue_wait: Option<Dur>,
    #[serde(flatten)]
    pub settings: toml::Table,
}

/// `[providers.X.prices."model"]`, USD per million tokens; `output` may be left out
/// for embedding models, `cached_input` defaults to `input`.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input: f64,
    #[serde(default)]
    pub output: f64,
    pub cached_input: Option<f64>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    #[default]
    Priority,
    RoundRobin,
    Weighted,
    LowestLatency,
    /// By price (input + output per million tokens), unpriced targets last.
    Cheapest,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Priority => "priority",
            Strategy::RoundRobin => "round-robin",
            Strategy::Weighted => "weighted",
            Strategy::LowestLatency => "lowest-latency",
            Strategy::Cheapest => "cheapest",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub model: String,
    pub targets: Vec<RawTarget>,
    #[serde(default)]
    pub strategy: Strategy,
}

/// `"provider/model"` or `{ target = "provider/model", weight = 1, timeouts = {...},
/// context_window = 128000 }`.
#[derive(Debug)]
pub struct RawTarget {
    pub target: String,
    pub weight: u32,
    pub timeouts: RawTimeouts,
    /// Signed so that a negative value gets our message, not serde's.
    pub context_window: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargetTable {
    target: String,
    #[serde(default = "one")]
    weight: u32,
    #[serde(default)]
    timeouts: RawTimeouts,
    #[serde(default)]
    context_window: Option<i64>,
}

fn one() -> u32 {
    1
}

// Written by hand rather than `#[serde(untagged)]` so a bad table reports its real
// problem ("unknown field `wieght`") instead of "did not match any variant".
impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTarget;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a \"provider/model\" string or a { target = ... } table")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawTarget, E> {
                Ok(RawTarget {
                    target: s.to_string(),
                    weight: 1,
                    timeouts: RawTimeouts::default(),
                    context_window: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawTarget, A::Error> {
                let t = RawTargetTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawTarget {
                    target: t.target,
                    weight: t.weight,
                    timeouts: t.timeouts,
                    context_window: t.context_window,
                })
            }
        }
        d.deserialize_any(V)
    }
}
