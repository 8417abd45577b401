//! A configured provider and a route's target: what an adapter is handed. Built by
//! `config`, read by adapters and the failover walk.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::{Kind, KindSettings};
use crate::spend::Price;
use crate::upstream::Egress;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(30),
            total: Duration::from_secs(600),
        }
    }
}

/// A string that never prints: provider and client keys.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub kind: Kind,
    /// Without a trailing slash.
    pub base_url: String,
    pub api_key_env: Option<String>,
    pub api_key: Option<Secret>,
    /// `None` when enabled; else why not (e.g. `OPENAI_API_KEY is not set`).
    pub disabled_reason: Option<String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub timeouts: Timeouts,
    /// The kind's own keys (`version`, `api_version`, …), typed by its adapter.
    pub settings: Box<dyn KindSettings>,
    /// Proxy, trust and client certificate (`proxy`, `ca_file`, `tls_roots`,
    /// `client_cert`, `client_key`): how its requests and probes leave the process.
    pub egress: Arc<Egress>,
    /// `prices."model"`: what each of its models costs, by the provider's model name.
    pub prices: BTreeMap<String, Price>,
    /// `max_concurrency` and its queue; `None`: no limit.
    pub concurrency: Option<Concurrency>,
}

/// How many upstream requests may be in flight to one provider, how many more may
/// wait for a slot, and for how long before the walk skips the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    pub max: u32,
    pub queue: u32,
    pub wait: std::time::Duration,
}

impl Provider {
    /// This provider's kind-specific settings, if they are of type `T` (an adapter
    /// asks for its own type; a provider of another kind answers `None`).
    pub fn settings<T: 'static>(&self) -> Option<&T> {
        // Deref first: the Box itself also implements `KindSettings`.
        (*self.settings).as_any().downcast_ref()
    }

    pub fn enabled(&self) -> bool {
        self.disabled_reason.is_none()
    }

    /// `host:port` of the proxy its base URL is reached through, if any (never the
    /// proxy's credentials).
    pub fn proxy_shown(&self) -> Option<String> {
        let base: http::Uri = self.base_url.parse().ok()?;
        self.egress.proxy.shown_for(&base)
    }

    /// Health state (circuit, cooldowns) is keyed by this, so it survives a reload
    /// exactly when the provider's name, kind and base_url are unchanged.
    pub fn health_key(&self) -> String {
        format!("{}|{}|{}", self.name, self.kind.as_str(), self.base_url)
    }
}

#[derive(Debug)]
pub struct Target {
    pub provider: Arc<Provider>,
    /// The model exactly as the provider wants it.
    pub model: String,
    pub weight: u32,
    pub timeouts: Timeouts,
    /// `provider/model`, as written in the route.
    pub label: String,
    /// The model's context window in tokens, when the route declares it: a request
    /// that clearly exceeds it skips this target.
    pub context_window: Option<u64>,
    /// The provider's price for `model`, if its table has one.
    pub price: Option<Price>,
    /// Named by the client as `provider/model` rather than by a route.
    pub direct: bool,
    /// See [`Target::health_key`]; looked up several times per attempt.
    key: String,
    /// [`Provider::health_key`], made once: every request's admission asks for it.
    provider_key: String,
    /// Its attempt spans' fixed attributes, built on its first traced attempt.
    pub trace: crate::telemetry::TargetAttributes,
}

impl Target {
    pub fn new(provider: Arc<Provider>, model: &str, weight: u32, timeouts: Timeouts) -> Target {
        let provider_key = provider.health_key();
        Target {
            label: format!("{}/{}", provider.name, model),
            key: format!("{provider_key}|{model}"),
            provider_key,
            trace: Default::default(),
            model: model.to_string(),
            context_window: None,
            price: provider.prices.get(model).copied(),
            direct: false,
            weight,
            timeouts,
            provider,
        }
    }

    /// Cooldowns are per provider + model; keyed like [`Provider::health_key`].
    pub fn health_key(&self) -> &str {
        &self.key
    }

    /// Its provider's [`Provider::health_key`] (circuits are per provider).
    pub fn provider_key(&self) -> &str {
        &self.provider_key
    }

    /// The `model` label of token and cost metrics. A direct target's model is the
    /// client's string, and labels must not grow with whatever clients send: it is
    /// named only when the price table names it.
    pub fn metric_model(&self) -> &str {
        if self.direct && self.price.is_none() {
            "*"
        } else {
            &self.model
        }
    }
}
