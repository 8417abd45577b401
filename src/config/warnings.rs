//! Legal but surprising configurations, reported as warnings rather than errors.

use super::{Route, Snapshot};

impl Snapshot {
    /// Routes whose every target is disabled: legal, but worth a warning.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.routes.is_empty() {
            out.push("no [[routes]]: only \"provider/model\" requests can be served".into());
        }
        if let Some(i) = self.routes.iter().position(|r| r.model == "*") {
            if !self.providers.is_empty() {
                out.push(
                    "direct \"PROVIDER/MODEL\" requests are shadowed by the \"*\" route: they go to its targets, not to the provider they name".into(),
                );
            }
            for r in &self.routes[i + 1..] {
                out.push(format!(
                    "route {:?} can never match: the \"*\" route before it takes every model",
                    r.model
                ));
            }
        }
        if self.failover.default_cooldown > self.failover.max_cooldown {
            out.push(format!(
                "failover.default_cooldown ({:?}) exceeds max_cooldown ({:?}) and is capped by it",
                self.failover.default_cooldown, self.failover.max_cooldown
            ));
        }
        if self.circuit.max_open_for < self.circuit.open_for {
            out.push(format!(
                "circuit_breaker.max_open_for ({:?}) is below open_for ({:?}): a re-opened circuit stays open for open_for, without backoff",
                self.circuit.max_open_for, self.circuit.open_for
            ));
        }
        if self.server.api_keys.is_empty() {
            out.push(match &self.server.api_keys_env {
                Some(var) => format!(
                    "server.api_keys_env: {var} is not set or empty: /v1/* is open to anyone who can reach the proxy"
                ),
                None => "no client keys (server.api_keys_env): /v1/* is open to anyone who can reach the proxy".into(),
            });
        }
        if let Some(pt) = &self.passthrough {
            if let Some(why) = &pt.provider.disabled_reason {
                out.push(format!(
                    "passthrough.provider: {:?} is disabled ({why}): other /v1/* paths answer 503",
                    pt.provider.name
                ));
            }
        }
        for r in &self.routes {
            if r.targets.iter().all(|t| !t.provider.enabled()) {
                out.push(format!(
                    "route {:?}: every target's provider is disabled",
                    r.model
                ));
            }
        }
        out.extend(self.routes.iter().filter_map(mixed_embedding_models));
        out
    }
}

/// A route that serves embeddings should fail over only between targets of one
/// embedding model: another model's vectors live in another space, so they would not
/// match what the application already stored. A route counts as an embeddings route
/// when its model or a target's names an embedding model (`…embed…`, as OpenAI,
/// Gemini, Ollama, Cohere and Mistral name theirs); models are compared without
/// Gemini's `models/` prefix and Ollama's `:latest` tag.
fn mixed_embedding_models(route: &Route) -> Option<String> {
    let is_embed = |m: &str| m.to_ascii_lowercase().contains("embed");
    if !is_embed(&route.model) && !route.targets.iter().any(|t| is_embed(&t.model)) {
        return None;
    }
    let name = |m: &str| {
        let m = m.strip_prefix("models/").unwrap_or(m);
        m.strip_suffix(":latest").unwrap_or(m).to_string()
    };
    let first = name(&route.targets.first()?.model);
    if route.targets.iter().all(|t| name(&t.model) == first) {
        return None;
    }
    let labels: Vec<&str> = route.targets.iter().map(|t| t.label.as_str()).collect();
    Some(format!(
        "route {:?}: its targets name different embedding models ({}): a failover would \
         answer with vectors from another model's space; list only targets that serve \
         the same model (an Azure deployment counts by its name: name it after its model)",
        route.model,
        labels.join(", ")
    ))
}
