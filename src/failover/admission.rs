//! Admission: may a target be tried right now? Disabled providers, cooling targets
//! and open circuits are skipped with their reason; the rest get a circuit [`Permit`].

use std::time::Duration;

use tokio::time::Instant;

use super::health::{Admission, Permit};
use super::limit::NoSlot;
use crate::app::App;
use crate::error::SkipReason;
use crate::providers::Target;

pub(super) enum Candidate<'a> {
    Admitted(Permit<'a>),
    Skipped(Skip),
}

pub(super) struct Skip {
    pub(super) reason: SkipReason,
    /// When the target may be usable again, if that is known.
    pub(super) usable_at: Option<Instant>,
    /// Cooling from a rate limit (decides 429 vs 503 when nothing could be tried).
    pub(super) rate_limited: bool,
}

/// No slot under the provider's `max_concurrency`: skipped; worth another try in a
/// second, when slots have turned over.
pub(super) fn overloaded(target: &Target, full: NoSlot) -> Skip {
    let wait = target
        .provider
        .concurrency
        .map(|c| c.wait)
        .unwrap_or_default();
    Skip {
        reason: SkipReason::Overloaded {
            queue_full: full == NoSlot::QueueFull,
            wait,
        },
        usable_at: Some(Instant::now() + Duration::from_secs(1)),
        rate_limited: false,
    }
}

pub(super) fn admit<'a>(app: &'a App, target: &Target) -> Candidate<'a> {
    let skip = |reason, usable_at, rate_limited| {
        Candidate::Skipped(Skip {
            reason,
            usable_at,
            rate_limited,
        })
    };
    if let Some(reason) = &target.provider.disabled_reason {
        return skip(SkipReason::Disabled(reason.clone()), None, false);
    }
    if let Some(c) = app.health.cooldown(target) {
        let left = c.until.saturating_duration_since(Instant::now());
        return skip(SkipReason::Cooling { left }, Some(c.until), c.rate_limited);
    }
    let key = target.provider_key();
    match app.health.admit(key) {
        Admission::Open { until } => skip(SkipReason::CircuitOpen, Some(until), false),
        Admission::TrialBusy => skip(
            SkipReason::TrialBusy,
            Some(Instant::now() + Duration::from_secs(1)),
            false,
        ),
        admission @ (Admission::Closed | Admission::Trial) => {
            Candidate::Admitted(app.health.permit(key, admission))
        }
    }
}
