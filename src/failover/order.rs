//! The order a route's strategy wants its targets tried in.

use std::cmp::Reverse;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::app::App;
use crate::config::{Resolved, Route, Strategy};
use crate::providers::Target;

pub(super) fn targets(app: &App, resolved: &Resolved<'_>) -> Vec<Arc<Target>> {
    match resolved {
        Resolved::Direct(t) => vec![t.clone()],
        Resolved::Route(r) => arrange(app, r, true),
    }
}

/// The order the next request on `route` would walk, for the dashboard: round-robin's
/// cursor is read, not advanced; weighted draws afresh per request, so its preview
/// lists the heaviest first (the likeliest lead).
pub fn preview(app: &App, route: &Route) -> Vec<Arc<Target>> {
    arrange(app, route, false)
}

fn arrange(app: &App, route: &Route, for_a_request: bool) -> Vec<Arc<Target>> {
    let mut v = route.targets.clone();
    match route.strategy {
        Strategy::Priority => {}
        Strategy::RoundRobin => {
            if !v.is_empty() {
                // Advanced once per request; per snapshot, so a reload restarts it.
                let n = if for_a_request {
                    route.cursor.fetch_add(1, Ordering::Relaxed)
                } else {
                    route.cursor.load(Ordering::Relaxed)
                };
                let len = v.len();
                v.rotate_left(n % len);
            }
        }
        Strategy::Weighted if for_a_request => v = weighted_draw(v),
        Strategy::Weighted => v.sort_by_key(|t| Reverse(t.weight)),
        Strategy::LowestLatency => {
            v.sort_by(|a, b| app.health.latency(a).total_cmp(&app.health.latency(b)));
        }
    }
    v
}

/// Targets drawn one by one, each with a chance proportional to its weight.
fn weighted_draw(mut rest: Vec<Arc<Target>>) -> Vec<Arc<Target>> {
    let mut v = Vec::with_capacity(rest.len());
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
    v
}
