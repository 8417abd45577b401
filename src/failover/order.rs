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
        Strategy::Cheapest => by_price(&mut v),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{from_str, EnvLookup};

    fn app(strategy: &str, targets: &str) -> Arc<App> {
        let text = format!(
            "[providers.a]\nkind = \"ollama\"\nbase_url = \"http://127.0.0.1:1\"\n\
             [providers.b]\nkind = \"ollama\"\nbase_url = \"http://127.0.0.1:2\"\n\
             [providers.c]\nkind = \"ollama\"\nbase_url = \"http://127.0.0.1:3\"\n\
             [[routes]]\nmodel = \"m\"\nstrategy = \"{strategy}\"\ntargets = [{targets}]\n"
        );
        let env: EnvLookup = Arc::new(|_: &str| None);
        let snap = from_str(&text, Path::new("proxy.toml"), &env).unwrap();
        App::new(snap, env)
    }

    fn labels(v: &[Arc<Target>]) -> Vec<&str> {
        v.iter().map(|t| t.label.as_str()).collect()
    }

    #[test]
    fn the_preview_shows_round_robins_next_start_without_moving_it() {
        let app = app("round-robin", r#""a/x", "b/x", "c/x""#);
        let snap = app.config.load();
        let route = &snap.routes[0];
        assert_eq!(labels(&preview(&app, route)), ["a/x", "b/x", "c/x"]);
        assert_eq!(labels(&preview(&app, route)), ["a/x", "b/x", "c/x"]);
        let first = targets(&app, &Resolved::Route(route));
        assert_eq!(labels(&first), ["a/x", "b/x", "c/x"]);
        // the request moved the cursor; the preview follows it
        assert_eq!(labels(&preview(&app, route)), ["b/x", "c/x", "a/x"]);
        assert_eq!(
            labels(&targets(&app, &Resolved::Route(route))),
            ["b/x", "c/x", "a/x"]
        );
    }

    #[test]
    fn the_weighted_preview_lists_the_heaviest_first() {
        let app = app(
            "weighted",
            r#"{ target = "a/x", weight = 1 }, { target = "b/x", weight = 5 }, { target = "c/x", weight = 1 }"#,
        );
        let snap = app.config.load();
        assert_eq!(
            labels(&preview(&app, &snap.routes[0])),
            ["b/x", "a/x", "c/x"]
        );
    }

    #[test]
    fn the_lowest_latency_preview_sorts_by_the_current_averages() {
        let app = app("lowest-latency", r#""a/x", "b/x", "c/x""#);
        let snap = app.config.load();
        let route = &snap.routes[0];
        app.health.observe_latency(&route.targets[0], 0.9);
        app.health.observe_latency(&route.targets[1], 0.1);
        app.health.observe_latency(&route.targets[2], 0.5);
        assert_eq!(labels(&preview(&app, route)), ["b/x", "c/x", "a/x"]);
    }
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
mod by_price_tests {
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
