//! What answers cost: the tokens each upstream answer reports, priced by the
//! provider's table, booked into `understudy_tokens_total` and
//! `understudy_cost_usd_total`. A cached answer sent no upstream request and is never
//! booked: it costs nothing.

mod meter;
mod price;
mod tokens;

pub use meter::Meter;
pub use price::Price;
pub use tokens::Tokens;

use crate::canonical::Usage;
use crate::metrics::Metrics;
use crate::providers::Target;

/// Counts an answer's tokens for `target`, and its cost when the target has a price;
/// returns that cost in USD.
pub fn book(metrics: &Metrics, target: &Target, tokens: &Tokens) -> Option<f64> {
    let model = target.metric_model();
    metrics.tokens(&target.provider.name, model, tokens);
    let cost = target.price.as_ref()?.cost(tokens);
    metrics.cost(&target.provider.name, model, cost);
    Some(cost)
}

/// [`book`] for an answer's usage, when it reported any.
pub fn book_usage(metrics: &Metrics, target: &Target, usage: Option<&Usage>) -> Option<f64> {
    book(metrics, target, &Tokens::of(usage?))
}

/// A cost as the `x-understudy-cost-usd` header and log lines show it: plain decimal,
/// to a millionth of a cent, without trailing zeros.
pub fn format_usd(cost: f64) -> String {
    let s = format!("{:.8}", cost.max(0.0));
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() {
        "0".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::format_usd;

    #[test]
    fn costs_print_as_plain_decimals() {
        for (cost, shown) in [
            (0.0, "0"),
            (0.000_012_5, "0.0000125"),
            (0.1 + 0.2, "0.3"),
            (12.0, "12"),
            (0.000_000_001, "0"),
            (-1.0, "0"),
        ] {
            assert_eq!(format_usd(cost), shown, "{cost}");
        }
    }
}
