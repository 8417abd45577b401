//! The engine link's health as this replica sees it: up or down, how many state
//! operations failed, and the last reason. A change of state is logged once, not
//! every failed operation: an engine that is down for an hour must not flood the log.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;

pub struct Link {
    up: AtomicBool,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// `understudy_state_errors_total`.
    counter: Counter,
    /// Removed from every message (DESIGN §9: the URL's credentials are secrets).
    password: Option<String>,
    /// `host:port/db`, for messages.
    pub endpoint: String,
}

impl Link {
    pub fn new(endpoint: String, password: Option<String>, counter: Counter) -> Link {
        Link {
            up: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
            counter,
            password: password.filter(|p| !p.is_empty()),
            endpoint,
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The engine answered.
    pub fn ok(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::info!(engine = %self.endpoint, "shared state: connected; replicas share cooldowns, circuits, cache and stored responses");
        }
    }

    /// A state operation failed; the caller goes on with local state.
    pub fn failed(&self, what: &str, err: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.counter.inc();
        let msg = self.scrub(format!("{what}: {err}"));
        let was_up = self.up.swap(false, Ordering::Relaxed);
        let first = {
            let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
            let first = last.is_none();
            *last = Some(msg.clone());
            first
        };
        if was_up || first {
            tracing::warn!(engine = %self.endpoint, error = %msg, "shared state: engine unreachable; serving from this replica's own state and reconnecting");
        } else {
            tracing::debug!(engine = %self.endpoint, error = %msg, "shared state: still unreachable");
        }
    }

    fn scrub(&self, msg: String) -> String {
        match &self.password {
            Some(p) => msg.replace(p.as_str(), "[redacted]"),
            None => msg,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_reaches_the_last_error() {
        let link = Link::new(
            "127.0.0.1:1/0".into(),
            Some("hunter2".into()),
            Counter::default(),
        );
        link.failed("connect", &"auth failed for hunter2");
        let last = link.last_error().unwrap();
        assert!(!last.contains("hunter2"), "{last}");
        assert_eq!(link.errors(), 1);
        assert!(!link.is_up());
        link.ok();
        assert!(link.is_up());
    }
}
