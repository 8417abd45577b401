//! `[providers.X.prices."model"]` and strategy `cheapest`: every price a finite,
//! non-negative number; a cheapest route with at least one priced target.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::raw::RawPrice;
use crate::config::{Strategy, Target};
use crate::spend::Price;

/// A provider's price table; `key` is `providers.NAME`.
pub(super) fn table(
    key: &str,
    raw: &BTreeMap<String, RawPrice>,
) -> Result<BTreeMap<String, Price>, String> {
    raw.iter()
        .map(|(model, p)| {
            let at = format!("{key}.prices.{model:?}");
            if model.is_empty() {
                return Err(format!("{key}.prices: a model name must not be empty"));
            }
            let amount = |name: &str, v: f64| {
                if v.is_finite() && v >= 0.0 {
                    Ok(v)
                } else {
                    Err(format!(
                        "{at}.{name}: {v} is not a price (USD per million tokens, 0 or more)"
                    ))
                }
            };
            let input = amount("input", p.input)?;
            let price = Price {
                input,
                output: amount("output", p.output)?,
                cached_input: amount("cached_input", p.cached_input.unwrap_or(input))?,
            };
            Ok((model.clone(), price))
        })
        .collect()
}

/// A `cheapest` route must have a price to go by; `key` is `routes[i]`.
pub(super) fn check_strategy(
    key: &str,
    strategy: Strategy,
    targets: &[Arc<Target>],
) -> Result<(), String> {
    if strategy != Strategy::Cheapest || targets.iter().any(|t| t.price.is_some()) {
        return Ok(());
    }
    let labels: Vec<&str> = targets.iter().map(|t| t.label.as_str()).collect();
    Err(format!(
        "{key}.strategy: \"cheapest\" needs a price for at least one target ({}); declare [providers.NAME.prices.\"MODEL\"] input = ..., output = ...",
        labels.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use crate::config::validate::from_str;
    use crate::config::{EnvLookup, Resolved, Snapshot};
    use crate::spend::Price;

    fn check(prices: &str, strategy: &str) -> Result<Snapshot, String> {
        let text = format!(
            r#"
[providers.a]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
{prices}
[providers.b]
kind = "anthropic"
base_url = "http://127.0.0.1:9"
[[routes]]
model = "default"
strategy = "{strategy}"
targets = ["a/gpt-4o", "b/claude"]
"#
        );
        let env: EnvLookup = Arc::new(|_: &str| None);
        from_str(&text, Path::new("proxy.toml"), &env).map_err(|e| e.to_string())
    }

    #[test]
    fn prices_reach_the_targets_with_cached_input_defaulting_to_input() {
        let snap = check(
            "prices.\"gpt-4o\" = { input = 2.5, output = 10 }\nprices.\"gpt-4o-mini\" = { input = 0.15, output = 0.6, cached_input = 0.075 }",
            "cheapest",
        )
        .unwrap();
        let Some(Resolved::Route(route)) = snap.resolve("default") else {
            panic!("route")
        };
        assert_eq!(
            route.targets[0].price,
            Some(Price {
                input: 2.5,
                output: 10.0,
                cached_input: 2.5
            })
        );
        assert_eq!(route.targets[1].price, None);
        let Some(Resolved::Direct(mini)) = snap.resolve("a/gpt-4o-mini") else {
            panic!("direct")
        };
        assert_eq!(mini.price.map(|p| p.cached_input), Some(0.075));
        assert_eq!(mini.metric_model(), "gpt-4o-mini");
        let Some(Resolved::Direct(other)) = snap.resolve("a/whatever-the-client-sent") else {
            panic!("direct")
        };
        assert_eq!(
            other.metric_model(),
            "*",
            "unpriced direct models share a label"
        );
    }

    #[test]
    fn bad_prices_and_a_cheapest_route_without_one_are_named() {
        for (prices, strategy, expected) in [
            (
                "prices.\"gpt-4o\" = { input = -1, output = 1 }",
                "priority",
                "providers.a.prices.\"gpt-4o\".input: -1 is not a price",
            ),
            (
                "prices.\"gpt-4o\" = { input = 1, output = nan }",
                "priority",
                "providers.a.prices.\"gpt-4o\".output: NaN is not a price",
            ),
            (
                "prices.\"gpt-4o\" = { input = 1, output = 1, cached_input = inf }",
                "priority",
                "cached_input: inf is not a price",
            ),
            (
                "prices.\"gpt-4o\" = { input = 1, outptu = 1 }",
                "priority",
                "unknown field `outptu`",
            ),
            (
                "prices.\"gpt-4o\" = { output = 1 }",
                "priority",
                "missing field `input`",
            ),
            (
                "",
                "cheapest",
                "routes[0].strategy: \"cheapest\" needs a price for at least one target (a/gpt-4o, b/claude)",
            ),
            (
                "prices.\"gpt-4\" = { input = 1 }",
                "cheapest",
                "needs a price for at least one target",
            ),
        ] {
            let err = check(prices, strategy).err().unwrap_or_default();
            assert!(err.contains(expected), "{prices} / {strategy}: {err}");
        }
        check("", "priority").unwrap();
    }
}
