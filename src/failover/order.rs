//! The order a route's strategy wants its targets tried in.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::app::App;
use crate::config::{Resolved, Strategy};
use crate::providers::Target;

pub(super) fn targets(app: &App, resolved: &Resolved<'_>) -> Vec<Arc<Target>> {
    let route = match resolved {
        Resolved::Direct(t) => return vec![t.clone()],
        Resolved::Route(r) => r,
    };
    let mut v = route.targets.clone();
    match route.strategy {
        Strategy::Priority => {}
        Strategy::RoundRobin => {
            if !v.is_empty() {
                // Advanced once per request; per snapshot, so a reload restarts it.
                let n = route.cursor.fetch_add(1, Ordering::Relaxed) % v.len();
                v.rotate_left(n);
            }
        }
        Strategy::Weighted => {
            let mut rest = v;
            v = Vec::with_capacity(rest.len());
            while !rest.is_empty() {
                let total: u64 = rest.iter().map(|t| u64::from(t.weight)).sum();
                let mut pick = fastrand::u64(0..total.max(1));
                let i = rest
                    .iter()
                    .position(|t| {
                        let w = u64::from(t.weight);
                        if pick < w {
                            true
                        } else {
                            pick -= w;
                            false
                        }
                    })
                    .unwrap_or(0);
                v.push(rest.remove(i));
            }
        }
        Strategy::LowestLatency => {
            v.sort_by(|a, b| app.health.latency(a).total_cmp(&app.health.latency(b)));
        }
    }
    v
}
