//! A model's price, in USD per million tokens, as `[providers.X.prices."model"]`
//! declares it.

use super::Tokens;

const PER: f64 = 1_000_000.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Input tokens read from the provider's prompt cache; the input price when the
    /// table gives none.
    pub cached_input: f64,
}

impl Price {
    /// Cached input tokens are part of the input count: they are priced at
    /// `cached_input`, the rest of the input at `input`. Reasoning tokens are part
    /// of the output count and priced as output.
    pub fn cost(&self, t: &Tokens) -> f64 {
        let cached = t.cached.min(t.input);
        let fresh = t.input - cached;
        (fresh as f64 * self.input
            + cached as f64 * self.cached_input
            + t.output as f64 * self.output)
            / PER
    }

    /// What strategy `cheapest` compares: input + output per million tokens.
    pub fn rank(&self) -> f64 {
        self.input + self.output
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_input_is_priced_apart_and_reasoning_as_output() {
        let p = Price {
            input: 2.5,
            output: 10.0,
            cached_input: 1.25,
        };
        let t = Tokens {
            input: 1_000_000,
            output: 200_000,
            cached: 400_000,
            reasoning: 50_000,
        };
        // 600k fresh × 2.5 + 400k cached × 1.25 + 200k out × 10
        assert!((p.cost(&t) - (1.5 + 0.5 + 2.0)).abs() < 1e-9);
        assert_eq!(p.rank(), 12.5);
    }

    #[test]
    fn more_cached_than_input_never_goes_negative() {
        let p = Price {
            input: 1.0,
            output: 0.0,
            cached_input: 0.5,
        };
        let t = Tokens {
            input: 10,
            cached: 50,
            ..Tokens::default()
        };
        assert!((p.cost(&t) - 10.0 * 0.5 / PER).abs() < 1e-15);
    }
}
