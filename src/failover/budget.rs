//! The retry budget (Envoy's): per route, failovers, retries and hedges together may
//! add at most `budget_ratio` extra upstream requests per client request over the
//! last ten seconds, or `budget_min_per_s` a second, whichever allows more. So an
//! outage of every provider cannot multiply the load sent to them, while low traffic
//! still fails over.
//!
//! The window is ten one-second buckets of atomics per route: the hot path takes no
//! lock. A check and its spend are not one atomic step, so concurrent requests may
//! overshoot the budget by at most their number — a bound, not a leak.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::time::Instant;

use crate::config::{BudgetPolicy, Snapshot};

/// Seconds the budget looks back over.
pub const WINDOW_SECS: u64 = 10;
const BUCKETS: usize = WINDOW_SECS as usize;

/// One route's recent client requests and extra attempts.
pub struct Window {
    start: Instant,
    /// Per second: `(second << 32) | count`, so a bucket is reset and counted in one
    /// compare-and-swap when its second comes round again.
    requests: [AtomicU64; BUCKETS],
    extras: [AtomicU64; BUCKETS],
}

fn pack(second: u64, count: u64) -> u64 {
    (second << 32) | count.min(u64::from(u32::MAX))
}

fn unpack(v: u64) -> (u64, u64) {
    (v >> 32, v & u64::from(u32::MAX))
}

impl Window {
    fn new() -> Window {
        Window {
            start: Instant::now(),
            requests: Default::default(),
            extras: Default::default(),
        }
    }

    fn second(&self) -> u64 {
        // Past 2^32 s (136 years) seconds would collide in the packing; saturate.
        Instant::now()
            .saturating_duration_since(self.start)
            .as_secs()
            .min(u64::from(u32::MAX))
    }

    fn add(buckets: &[AtomicU64; BUCKETS], second: u64) {
        let bucket = &buckets[(second % WINDOW_SECS) as usize];
        let mut cur = bucket.load(Ordering::Relaxed);
        loop {
            let (s, n) = unpack(cur);
            let new = match s.cmp(&second) {
                std::cmp::Ordering::Equal => pack(second, n + 1),
                std::cmp::Ordering::Less => pack(second, 1),
                // A newer second already took the bucket: this count is out of the
                // window by now.
                std::cmp::Ordering::Greater => return,
            };
            match bucket.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    fn sum(buckets: &[AtomicU64; BUCKETS], second: u64) -> u64 {
        buckets
            .iter()
            .map(|b| unpack(b.load(Ordering::Relaxed)))
            .filter(|(s, _)| *s <= second && second - s < WINDOW_SECS)
            .map(|(_, n)| n)
            .sum()
    }

    /// A client request reached the walk: it may send its first attempt freely, and
    /// it adds `ratio` to what the route may spend on extra ones.
    pub fn request(&self) {
        Self::add(&self.requests, self.second());
    }

    /// Whether one more attempt (a failover, retry or hedge) fits the budget; if it
    /// does, it is spent.
    pub fn try_extra(&self, policy: BudgetPolicy) -> bool {
        let second = self.second();
        let requests = Self::sum(&self.requests, second);
        let allowed =
            (policy.ratio * requests as f64).max(f64::from(policy.min_per_s) * WINDOW_SECS as f64);
        if (Self::sum(&self.extras, second) as f64) < allowed {
            Self::add(&self.extras, second);
            true
        } else {
            false
        }
    }
}

/// Every route's window, by its metrics label. Outside the snapshot so a reload
/// keeps the windows of the routes it keeps.
#[derive(Default)]
pub struct Budgets {
    routes: ArcSwap<HashMap<String, Arc<Window>>>,
}

impl Budgets {
    /// The route's window, made on its first request. Labels are bounded (the
    /// routes, and one `provider/*` per provider), so the map is too.
    pub fn route(&self, label: &str) -> Arc<Window> {
        if let Some(w) = self.routes.load().get(label) {
            return w.clone();
        }
        let mut made = None;
        self.routes.rcu(|map| {
            let mut map = HashMap::clone(map);
            let w = map
                .entry(label.to_string())
                .or_insert_with(|| Arc::new(Window::new()));
            made = Some(w.clone());
            map
        });
        made.unwrap_or_else(|| Arc::new(Window::new()))
    }

    /// After a reload: forget the windows of routes (and direct providers) the new
    /// config no longer has; the others keep counting where they were.
    pub fn retain(&self, snapshot: &Snapshot) {
        self.routes.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.retain(|label, _| {
                snapshot.routes.iter().any(|r| &r.model == label)
                    || label
                        .strip_suffix("/*")
                        .is_some_and(|p| snapshot.provider(p).is_some())
            });
            map
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const POLICY: BudgetPolicy = BudgetPolicy {
        ratio: 0.2,
        min_per_s: 1,
    };

    fn spend_all(w: &Window, policy: BudgetPolicy) -> u32 {
        let mut n = 0;
        while n < 100_000 && w.try_extra(policy) {
            n += 1;
        }
        n
    }

    #[tokio::test(start_paused = true)]
    async fn the_floor_allows_min_per_s_over_the_window_without_requests() {
        let w = Window::new();
        assert_eq!(spend_all(&w, POLICY), 10);
        let none = BudgetPolicy {
            ratio: 0.0,
            min_per_s: 0,
        };
        assert_eq!(spend_all(&Window::new(), none), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_floor_extras_follow_the_ratio_of_requests() {
        let w = Window::new();
        for _ in 0..100 {
            w.request();
        }
        assert_eq!(
            spend_all(&w, POLICY),
            20,
            "20% of 100, above the floor of 10"
        );
        for _ in 0..10 {
            w.request();
        }
        assert_eq!(spend_all(&w, POLICY), 2, "110 requests allow 22");
    }

    #[tokio::test(start_paused = true)]
    async fn counts_leave_the_window_after_ten_seconds() {
        let w = Window::new();
        for _ in 0..100 {
            w.request();
        }
        assert_eq!(spend_all(&w, POLICY), 20);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(spend_all(&w, POLICY), 0, "still inside the window");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(spend_all(&w, POLICY), 10, "only the floor is left");
        // a steady 10 requests a second: 100 in the window, so 20 extras, never more
        for _ in 0..30 {
            tokio::time::advance(Duration::from_secs(1)).await;
            for _ in 0..10 {
                w.request();
            }
        }
        assert_eq!(spend_all(&w, POLICY), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_is_reset_when_its_second_comes_round_again() {
        let w = Window::new();
        for _ in 0..50 {
            w.request();
        }
        tokio::time::advance(Duration::from_secs(WINDOW_SECS)).await;
        w.request();
        assert_eq!(Window::sum(&w.requests, w.second()), 1);
    }

    #[test]
    fn windows_survive_a_reload_for_the_routes_it_keeps() {
        let snap = |routes: &str| {
            crate::config::from_str(
                &format!("[providers.a]\nkind = \"openai\"\nbase_url = \"http://x\"\n{routes}"),
                std::path::Path::new("proxy.toml"),
                &crate::config::process_env(),
            )
            .unwrap()
        };
        let b = Budgets::default();
        let kept = b.route("kept");
        let direct = b.route("a/*");
        b.route("gone");
        assert!(Arc::ptr_eq(&kept, &b.route("kept")), "one window per route");
        b.retain(&snap("[[routes]]\nmodel = \"kept\"\ntargets = [\"a/m\"]\n"));
        assert!(Arc::ptr_eq(&kept, &b.route("kept")));
        assert!(Arc::ptr_eq(&direct, &b.route("a/*")));
        assert_eq!(
            b.routes.load().len(),
            2,
            "the removed route's window is gone"
        );
    }
}
