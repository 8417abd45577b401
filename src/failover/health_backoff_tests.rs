//! Breaker probation: each failed half-open trial doubles the open period up to
//! `max_open_for`; a success resets it. On paused time, so every period is exact.

use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::*;

const POLICY: CircuitPolicy = CircuitPolicy {
    failures: 2,
    open_for: Duration::from_secs(10),
    max_open_for: Duration::from_secs(50),
};

/// How long the circuit stays open from now: it is open one tick before, and offers
/// its trial at, the returned period.
async fn open_period(h: &Health) -> Duration {
    let until = match h.admit("p") {
        Admission::Open { until } => until,
        other => panic!("not open: {other:?}"),
    };
    let period = until - Instant::now();
    tokio::time::advance(period - Duration::from_millis(1)).await;
    assert!(matches!(h.admit("p"), Admission::Open { .. }));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(h.admit("p"), Admission::Trial);
    period
}

#[tokio::test(start_paused = true)]
async fn each_failed_trial_doubles_the_open_period_up_to_the_cap() {
    let h = Health::default();
    assert_eq!(h.open_period("p"), None);
    h.failure("p", POLICY);
    assert!(h.failure("p", POLICY));
    assert_eq!(h.open_period("p"), Some(Duration::from_secs(10)));
    let mut periods = vec![open_period(&h).await];
    for _ in 0..4 {
        assert!(h.failure("p", POLICY), "the failed trial re-opens");
        periods.push(open_period(&h).await);
    }
    let secs: Vec<u64> = periods.iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [10, 20, 40, 50, 50]);
    assert_eq!(
        h.open_period("p"),
        Some(Duration::from_secs(50)),
        "half-open"
    );
}

#[tokio::test(start_paused = true)]
async fn a_success_resets_the_period_to_open_for() {
    let h = Health::default();
    h.failure("p", POLICY);
    h.failure("p", POLICY);
    open_period(&h).await;
    h.failure("p", POLICY);
    assert_eq!(open_period(&h).await, Duration::from_secs(20));
    h.success("p");
    assert_eq!(h.open_period("p"), None);
    h.failure("p", POLICY);
    h.failure("p", POLICY);
    assert_eq!(open_period(&h).await, Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_cap_below_open_for_means_no_backoff() {
    let policy = CircuitPolicy {
        failures: 1,
        open_for: Duration::from_secs(60),
        max_open_for: Duration::from_secs(5),
    };
    let h = Health::default();
    h.failure("p", policy);
    assert_eq!(open_period(&h).await, Duration::from_secs(60));
    h.failure("p", policy);
    assert_eq!(open_period(&h).await, Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn the_fleet_hears_the_period_and_backs_off_from_the_longest() {
    let h = Health::default();
    let (tx, mut rx) = mpsc::channel(16);
    h.set_fleet(Some(tx));
    h.failure("p", POLICY);
    h.failure("p", POLICY);
    match rx.try_recv().unwrap() {
        Learned::Opened { open_for, .. } => assert_eq!(open_for, Duration::from_secs(10)),
        other => panic!("{other:?}"),
    }
    // another replica re-opened it after its own failed trials: 40 s
    h.remote_opened(
        "p",
        SystemTime::now() + Duration::from_secs(40),
        Duration::from_secs(40),
    );
    assert_eq!(h.open_period("p"), Some(Duration::from_secs(40)));
    tokio::time::advance(Duration::from_secs(40)).await;
    assert_eq!(h.admit("p"), Admission::TrialBusy);
    h.grant_trial("p");
    assert_eq!(h.admit("p"), Admission::Trial);
    h.failure("p", POLICY);
    let told: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert!(
        told.iter().any(|l| matches!(l, Learned::Opened { open_for, .. } if *open_for == Duration::from_secs(50))),
        "doubled from the fleet's 40 s, capped at 50: {told:?}"
    );
    // a replica that sends no period (an older version) changes nothing
    h.remote_opened(
        "p",
        SystemTime::now() + Duration::from_secs(1),
        Duration::ZERO,
    );
    assert_eq!(h.open_period("p"), Some(Duration::from_secs(50)));
}
