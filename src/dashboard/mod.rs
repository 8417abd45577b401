//! What the built-in dashboard (`GET /dashboard`) shows beyond `/status`: each
//! provider's last five minutes, the latest failed attempts and the reload history.
//! Fed where attempts are booked (the failover walk) and where configs are loaded;
//! read once a second or two by the page.

pub mod ring;
pub mod window;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::time::Instant;

use ring::Ring;
use window::{slot_of, Summary, Window};

/// How many failed attempts the page lists.
pub const FAILURES_KEPT: usize = 50;
/// How many reloads the page lists.
pub const RELOADS_KEPT: usize = 20;
/// A failure's reason is cut here: an upstream's error body may be long.
const REASON_MAX: usize = 500;

#[derive(Debug, Clone)]
pub struct FailedAttempt {
    pub at: SystemTime,
    /// `None` for a stream cut after commit: the stream no longer knows its route.
    pub route: Option<String>,
    /// `provider/model`.
    pub target: String,
    /// The metrics' outcome label (`error_status`, `timeout`, …).
    pub outcome: &'static str,
    /// What went wrong, as the logs say it (keys already redacted).
    pub reason: String,
    pub then: Then,
}

/// What became of the request after the failed attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Then {
    /// The walk went on to the next target (or a retry).
    FailedOver,
    /// The upstream's error was handed to the client.
    Returned,
    /// The stream had reached the client: it ended with an error event.
    StreamCut,
}

impl Then {
    pub fn as_str(self) -> &'static str {
        match self {
            Then::FailedOver => "failed over",
            Then::Returned => "returned to client",
            Then::StreamCut => "stream cut after content",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Reload {
    pub at: SystemTime,
    pub ok: bool,
    pub message: String,
}

pub struct Dashboard {
    /// Window slots count from here (tokio's clock, so paused-time tests move it).
    epoch: Instant,
    /// One window per provider name; replaced whole on the rare insert, so booking
    /// reads it without a lock.
    windows: ArcSwap<HashMap<String, Arc<Window>>>,
    pub failures: Ring<FailedAttempt>,
    pub reloads: Ring<Reload>,
}

impl Default for Dashboard {
    fn default() -> Self {
        Dashboard {
            epoch: Instant::now(),
            windows: ArcSwap::default(),
            failures: Ring::new(FAILURES_KEPT),
            reloads: Ring::new(RELOADS_KEPT),
        }
    }
}

impl Dashboard {
    fn slot(&self) -> u64 {
        slot_of(self.epoch.elapsed().as_secs())
    }

    fn window(&self, provider: &str) -> Arc<Window> {
        if let Some(w) = self.windows.load().get(provider) {
            return w.clone();
        }
        // Providers are few and named by the config: the map stays small.
        let mut made = None;
        self.windows.rcu(|map| {
            let mut map = HashMap::clone(map);
            let w = map.entry(provider.to_string()).or_default().clone();
            made = Some(w);
            map
        });
        made.unwrap_or_default()
    }

    /// An attempt on `provider` ended, well or not.
    pub fn attempt(&self, provider: &str, ok: bool) {
        self.window(provider).attempt(self.slot(), ok);
    }

    /// A good answer's time to head (streams: first event).
    pub fn latency(&self, provider: &str, secs: f64) {
        self.window(provider).latency(self.slot(), secs);
    }

    pub fn failed(&self, mut failure: FailedAttempt) {
        if failure.reason.len() > REASON_MAX {
            let mut cut = REASON_MAX;
            while !failure.reason.is_char_boundary(cut) {
                cut -= 1;
            }
            failure.reason.truncate(cut);
            failure.reason.push('…');
        }
        self.failures.push(failure);
    }

    pub fn reloaded(&self, ok: bool, message: String) {
        self.reloads.push(Reload {
            at: SystemTime::now(),
            ok,
            message,
        });
    }

    /// `provider`'s last five minutes.
    pub fn summary(&self, provider: &str) -> Summary {
        match self.windows.load().get(provider) {
            Some(w) => w.summary(self.slot()),
            None => Window::default().summary(0),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn failure(reason: String) -> FailedAttempt {
        FailedAttempt {
            at: SystemTime::now(),
            route: Some("default".into()),
            target: "a/m".into(),
            outcome: "error_status",
            reason,
            then: Then::FailedOver,
        }
    }

    #[test]
    fn providers_keep_their_own_windows() {
        let d = Dashboard::default();
        d.attempt("a", false);
        d.attempt("a", true);
        d.attempt("b", true);
        d.latency("b", 0.010);
        assert_eq!(d.summary("a").success_ratio(), Some(0.5));
        let b = d.summary("b");
        assert_eq!((b.ok, b.failed), (1, 0));
        assert!(b.p50_ms.is_some());
        assert_eq!(d.summary("none").success_ratio(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_slides_with_the_clock() {
        let d = Dashboard::default();
        d.attempt("a", false);
        tokio::time::advance(std::time::Duration::from_secs(290)).await;
        d.attempt("a", true);
        assert_eq!(d.summary("a").success_ratio(), Some(0.5));
        tokio::time::advance(std::time::Duration::from_secs(20)).await;
        assert_eq!(d.summary("a").success_ratio(), Some(1.0));
    }

    #[test]
    fn only_the_last_fifty_failures_are_kept() {
        let d = Dashboard::default();
        for i in 0..60 {
            d.failed(failure(format!("failure {i}")));
        }
        let kept = d.failures.newest_first();
        assert_eq!(kept.len(), FAILURES_KEPT);
        assert_eq!(kept[0].reason, "failure 59");
        assert_eq!(kept[49].reason, "failure 10");
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let d = Dashboard::default();
        d.failed(failure("é".repeat(400)));
        let kept = &d.failures.newest_first()[0].reason;
        assert!(kept.len() <= REASON_MAX + '…'.len_utf8());
        assert!(kept.ends_with('…'));
    }
}
