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
        Strategy::Cheapest => by_price(&mut v),
    }
    v
}

/// Cheapest first by input + output per million tokens; unpriced targets last; ties
/// keep the route's order (the sort is stable). Unhealthy targets stay in the list:
/// the walk skips them, so the cheapest healthy one is tried first.
fn by_price(targets: &mut [Arc<Target>]) {
    targets.sort_by(|a, b| {
        let rank = |t: &Target| t.price.map_or(f64::INFINITY, |p| p.rank());
        rank(a).total_cmp(&rank(b))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::target_with;
    use crate::providers::Kind;
    use crate::spend::Price;

    fn priced(model: &str, price: Option<(f64, f64)>) -> Arc<Target> {
        Arc::new(target_with(Kind::Openai, "http://x/v1", model, |p| {
            if let Some((input, output)) = price {
                p.prices.insert(
                    model.to_string(),
                    Price {
                        input,
                        output,
                        cached_input: input,
                    },
                );
            }
        }))
    }

    #[test]
    fn cheapest_by_input_plus_output_unpriced_last_ties_in_route_order() {
        let mut v = vec![
            priced("unpriced-1", None),
            priced("dear", Some((5.0, 15.0))),
            priced("cheap-a", Some((0.5, 1.5))),
            priced("unpriced-2", None),
            // Cheaper input, dearer output: 2.5 in all, so after the 2.0s.
            priced("mid", Some((0.1, 2.4))),
            priced("cheap-b", Some((1.0, 1.0))),
        ];
        by_price(&mut v);
        let order: Vec<&str> = v.iter().map(|t| t.model.as_str()).collect();
        assert_eq!(
            order,
            [
                "cheap-a",
                "cheap-b",
                "mid",
                "dear",
                "unpriced-1",
                "unpriced-2"
            ]
        );
    }
}
