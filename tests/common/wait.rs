//! Time in tests, kept out of the verdicts: waiting for a condition (bounded, the
//! bound only a hang guard), jumping the runtime's clock instead of sleeping, and
//! bounds that allow for however long the test took.

use std::future::Future;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// Polls `cond` every 20 ms for at most `within`.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like [`eventually`], for a condition that awaits (a request to the proxy): polled
/// every 20 ms, for at most `within` in all.
pub async fn eventually_async<F, Fut>(within: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let poll = async {
        while !cond().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(within, poll).await.is_ok()
}

/// Moves the runtime's clock `d` ahead at once, in place of sleeping through a
/// cooldown, an `open_for` or a cache `ttl`: the proxy keeps all of those in
/// `tokio::time::Instant`s, which then read `d` later, and timers due by then fire.
/// Real time is untouched, so sockets and the `Instant`s of `std` carry on as before.
///
/// Needs `#[tokio::test]`'s current-thread runtime. Call it between requests, or with
/// `d` below every timeout of the requests in flight (a client's 30 s, the proxy's
/// `first_byte`, `idle`, `total`): a jump past a deadline fires it.
pub async fn skip(d: Duration) {
    tokio::time::pause();
    tokio::time::advance(d).await;
    tokio::time::resume();
}

/// The least `seconds_left` `/status` may show now for a cooldown of `secs` that began
/// after `since`: `secs` less the time since then, and the tenth `/status` rounds to.
pub fn least_left(secs: f64, since: Instant) -> f64 {
    secs - since.elapsed().as_secs_f64() - 0.1
}

/// The `Retry-After` values (whole seconds, rounded up) a wait of `secs` that began
/// after `since` may show now.
pub fn retry_after_range(secs: u64, since: Instant) -> RangeInclusive<u64> {
    secs.saturating_sub(since.elapsed().as_secs())..=secs
}
