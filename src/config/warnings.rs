//! Legal but surprising configurations, reported as warnings rather than errors.

use super::Snapshot;

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
        out
    }
}
