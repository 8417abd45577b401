//! Per-target cooldowns and per-provider circuit breakers. Keyed by the providers'
//! `health_key` (name + kind + base_url), so state survives a reload exactly for the
//! providers that did not change.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{CircuitPolicy, Snapshot, Target};

const SWEEP_AT: usize = 1024;
const MAX_LATENCY_ENTRIES: usize = 4096;

#[derive(Default)]
pub struct Health {
    cooldowns: Mutex<HashMap<String, Cooldown>>,
    circuits: Mutex<HashMap<String, Circuit>>,
    /// Smoothed time to first byte per target, for the lowest-latency strategy.
    latency: Mutex<HashMap<String, f64>>,
    /// Where what this replica learns goes when replicas share state (DESIGN §9).
    fleet: ArcSwapOption<mpsc::Sender<Learned>>,
}

/// What this replica learned that the rest of the fleet should know. Sent on changes
/// of state only, never per request, so the hot path pays no network round trip.
#[derive(Debug, Clone, PartialEq)]
pub enum Learned {
    Cooled {
        key: String,
        until: SystemTime,
        rate_limited: bool,
    },
    Opened {
        provider: String,
        until: SystemTime,
        /// The open period, so the fleet backs off from where this replica is.
        open_for: Duration,
    },
    Closed {
        provider: String,
    },
    /// The circuit's open time is over here: ask the fleet for the one trial.
    WantTrial {
        provider: String,
    },
}

/// How long a replica waits for the fleet's trial lease (asked for, or held by
/// another replica) before it asks again.
pub const TRIAL_LEASE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
pub struct Cooldown {
    pub until: Instant,
    pub rate_limited: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CircuitState {
    Closed,
    Open {
        until: Instant,
    },
    HalfOpen {
        trial_in_flight: bool,
    },
    /// Half-open, with the fleet's single trial asked for or held by another
    /// replica, until then.
    Leasing {
        until: Instant,
    },
}

#[derive(Debug, Clone, Copy)]
struct Circuit {
    state: CircuitState,
    consecutive_failures: u32,
    /// The latest open period; zero until the circuit first opens. A failed trial
    /// doubles it (probation), a success resets it.
    open_for: Duration,
}

impl Default for Circuit {
    fn default() -> Self {
        Circuit {
            state: CircuitState::Closed,
            consecutive_failures: 0,
            open_for: Duration::ZERO,
        }
    }
}

/// Whether a request may go to a provider now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    Closed,
    /// The one half-open trial: its result closes or re-opens the circuit.
    Trial,
    Open {
        until: Instant,
    },
    /// Half-open with its trial already in flight.
    TrialBusy,
}

/// Replicas share deadlines as wall-clock times; each keeps its own as `Instant`s.
pub fn to_wall(at: Instant) -> SystemTime {
    SystemTime::now() + at.saturating_duration_since(Instant::now())
}

pub fn from_wall(at: SystemTime) -> Instant {
    Instant::now() + at.duration_since(SystemTime::now()).unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Health {
    pub fn new() -> Arc<Health> {
        Arc::new(Health::default())
    }

    /// When the target is cooling down, until when.
    pub fn cooldown(&self, target: &Target) -> Option<Cooldown> {
        let key = target.health_key();
        let mut map = lock(&self.cooldowns);
        match map.get(key) {
            Some(c) if c.until > Instant::now() => Some(*c),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn cool(&self, target: &Target, for_: Duration, rate_limited: bool) {
        let until = Instant::now() + for_;
        if self.cool_until(target.health_key(), until, rate_limited) {
            self.tell(Learned::Cooled {
                key: target.health_key().to_string(),
                until: to_wall(until),
                rate_limited,
            });
        }
    }

    /// A cooldown another replica learned.
    pub fn remote_cooled(&self, key: &str, until: SystemTime, rate_limited: bool) {
        self.cool_until(key, from_wall(until), rate_limited);
    }

    /// Sets the cooldown unless a later one is in force (the later deadline always
    /// wins). True when it changed.
    fn cool_until(&self, key: &str, until: Instant, rate_limited: bool) -> bool {
        let now = Instant::now();
        if until <= now {
            return false;
        }
        let mut map = lock(&self.cooldowns);
        // Expired entries go when looked up; direct `provider/model` targets may
        // never be looked up again, so sweep once the map has grown.
        if map.len() >= SWEEP_AT {
            map.retain(|_, c| c.until > now);
        }
        match map.get_mut(key) {
            Some(c) if c.until > now && c.until >= until => false,
            Some(c) => {
                *c = Cooldown {
                    until,
                    rate_limited,
                };
                true
            }
            None => {
                map.insert(
                    key.to_string(),
                    Cooldown {
                        until,
                        rate_limited,
                    },
                );
                true
            }
        }
    }

    /// Connects this replica's health to the fleet's (`None`: on its own again).
    pub fn set_fleet(&self, tx: Option<mpsc::Sender<Learned>>) {
        self.fleet.store(tx.map(Arc::new));
    }

    fn tell(&self, learned: Learned) {
        if let Some(tx) = self.fleet.load().as_ref() {
            // Full means the engine is far behind; this replica's own state already
            // holds what it learned, and the next re-sync spreads the rest.
            let _ = tx.try_send(learned);
        }
    }

    pub fn admit(&self, provider_key: &str) -> Admission {
        let mut map = lock(&self.circuits);
        let Some(c) = map.get_mut(provider_key) else {
            return Admission::Closed;
        };
        match c.state {
            CircuitState::Closed => Admission::Closed,
            CircuitState::Open { until } if Instant::now() < until => Admission::Open { until },
            // With a fleet, the one trial is a lease the fleet grants (`grant_trial`);
            // until it does, this replica skips the provider like an open circuit.
            CircuitState::Open { .. } if self.fleet.load().is_some() => {
                c.state = CircuitState::Leasing {
                    until: Instant::now() + TRIAL_LEASE,
                };
                self.tell(Learned::WantTrial {
                    provider: provider_key.to_string(),
                });
                Admission::TrialBusy
            }
            CircuitState::Leasing { until } if Instant::now() < until => Admission::TrialBusy,
            CircuitState::Leasing { .. } => {
                c.state = CircuitState::Leasing {
                    until: Instant::now() + TRIAL_LEASE,
                };
                self.tell(Learned::WantTrial {
                    provider: provider_key.to_string(),
                });
                Admission::TrialBusy
            }
            CircuitState::Open { .. }
            | CircuitState::HalfOpen {
                trial_in_flight: false,
            } => {
                c.state = CircuitState::HalfOpen {
                    trial_in_flight: true,
                };
                Admission::Trial
            }
            CircuitState::HalfOpen {
                trial_in_flight: true,
            } => Admission::TrialBusy,
        }
    }

    /// The fleet granted this replica the half-open trial: the next request is it.
    pub fn grant_trial(&self, provider_key: &str) {
        let mut map = lock(&self.circuits);
        if let Some(c) = map.get_mut(provider_key) {
            if matches!(c.state, CircuitState::Leasing { .. }) {
                c.state = CircuitState::HalfOpen {
                    trial_in_flight: false,
                };
            }
        }
    }

    /// The provider answered: close its circuit.
    pub fn success(&self, provider_key: &str) {
        let mut map = lock(&self.circuits);
        if let Some(c) = map.get_mut(provider_key) {
            let was_closed = c.state == CircuitState::Closed;
            *c = Circuit::default();
            drop(map);
            if !was_closed {
                self.tell(Learned::Closed {
                    provider: provider_key.to_string(),
                });
            }
        }
    }

    /// Another replica closed the provider's circuit.
    pub fn remote_closed(&self, provider_key: &str) {
        if let Some(c) = lock(&self.circuits).get_mut(provider_key) {
            *c = Circuit::default();
        }
    }

    /// Another replica opened the provider's circuit; a later open-until wins, and
    /// the longer open period (zero from a replica that does not send one), so the
    /// next re-open anywhere doubles from the fleet's longest.
    pub fn remote_opened(&self, provider_key: &str, until: SystemTime, open_for: Duration) {
        let until = from_wall(until);
        if until <= Instant::now() {
            return;
        }
        let mut map = lock(&self.circuits);
        let c = map.entry(provider_key.to_string()).or_default();
        c.open_for = c.open_for.max(open_for);
        match c.state {
            CircuitState::Open { until: mine } if mine >= until => {}
            _ => c.state = CircuitState::Open { until },
        }
    }

    /// A 5xx, timeout, connect or protocol failure. Returns true if this opened the circuit.
    pub fn failure(&self, provider_key: &str, policy: CircuitPolicy) -> bool {
        let mut map = lock(&self.circuits);
        let c = map.entry(provider_key.to_string()).or_default();
        c.consecutive_failures = c.consecutive_failures.saturating_add(1);
        let open_for = match c.state {
            CircuitState::HalfOpen { .. } => Some(reopen_period(c.open_for, policy)),
            CircuitState::Closed if c.consecutive_failures >= policy.failures => {
                Some(policy.open_for)
            }
            CircuitState::Closed | CircuitState::Open { .. } | CircuitState::Leasing { .. } => None,
        };
        let open = open_for.is_some();
        if let Some(open_for) = open_for {
            let until = Instant::now() + open_for;
            c.state = CircuitState::Open { until };
            c.open_for = open_for;
            drop(map);
            self.tell(Learned::Opened {
                provider: provider_key.to_string(),
                until: to_wall(until),
                open_for,
            });
        }
        open
    }

    /// An attempt ended with neither verdict on the provider's health (a 429, a
    /// client error, a cancelled request): a trial it held is given back.
    pub fn neutral(&self, provider_key: &str, admission: Admission) {
        if admission != Admission::Trial {
            return;
        }
        let mut map = lock(&self.circuits);
        if let Some(c) = map.get_mut(provider_key) {
            if c.state
                == (CircuitState::HalfOpen {
                    trial_in_flight: true,
                })
            {
                c.state = CircuitState::HalfOpen {
                    trial_in_flight: false,
                };
            }
        }
    }

    /// A permit for one attempt on an admitted provider (`Closed` or `Trial`): the
    /// attempt's result must reach the circuit, and a trial whose request is dropped
    /// (the client went away) must be given back, or the provider would be skipped
    /// for good.
    pub fn permit(&self, provider_key: &str, admission: Admission) -> Permit<'_> {
        Permit {
            health: self,
            key: provider_key.to_string(),
            admission,
            resolved: false,
        }
    }

    /// `closed`, `open` or `half_open`, and the consecutive failure count.
    pub fn circuit(&self, provider_key: &str) -> (&'static str, u32) {
        let map = lock(&self.circuits);
        match map.get(provider_key) {
            None => ("closed", 0),
            Some(c) => (
                match c.state {
                    CircuitState::Closed => "closed",
                    CircuitState::Open { until } if Instant::now() < until => "open",
                    CircuitState::Open { .. }
                    | CircuitState::HalfOpen { .. }
                    | CircuitState::Leasing { .. } => "half_open",
                },
                c.consecutive_failures,
            ),
        }
    }

    /// The latest open period while the circuit is not closed (open or on
    /// probation: half-open); `None` when closed.
    pub fn open_period(&self, provider_key: &str) -> Option<Duration> {
        let map = lock(&self.circuits);
        let c = map.get(provider_key)?;
        (c.state != CircuitState::Closed && !c.open_for.is_zero()).then_some(c.open_for)
    }

    /// Open (not yet half-open-eligible) until when.
    pub fn open_until(&self, provider_key: &str) -> Option<Instant> {
        match lock(&self.circuits).get(provider_key)?.state {
            CircuitState::Open { until } if Instant::now() < until => Some(until),
            _ => None,
        }
    }

    pub fn observe_latency(&self, target: &Target, secs: f64) {
        let mut map = lock(&self.latency);
        // Only routes' targets need it; past this size, client-named direct targets
        // would just grow the map.
        if map.len() >= MAX_LATENCY_ENTRIES && !map.contains_key(target.health_key()) {
            return;
        }
        let e = map.entry(target.health_key().to_string()).or_insert(secs);
        *e = 0.8 * *e + 0.2 * secs;
    }

    /// Unknown targets report 0 so they get tried and measured.
    pub fn latency(&self, target: &Target) -> f64 {
        lock(&self.latency)
            .get(target.health_key())
            .copied()
            .unwrap_or(0.0)
    }

    /// Cooling targets with their time left, for `/status` and metrics.
    pub fn cooldowns(&self) -> Vec<(String, Duration)> {
        let now = Instant::now();
        let mut v: Vec<_> = lock(&self.cooldowns)
            .iter()
            .filter(|(_, c)| c.until > now)
            .map(|(k, c)| (k.clone(), c.until - now))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// After a reload: forget state of providers and targets the new config no longer
    /// has (removed, or their kind/base_url changed and so their key).
    pub fn retain(&self, snapshot: &Snapshot) {
        let providers: HashSet<String> =
            snapshot.providers.iter().map(|p| p.health_key()).collect();
        lock(&self.circuits).retain(|k, _| providers.contains(k));
        let targets_ok = |k: &String| {
            providers
                .iter()
                .any(|p| k.starts_with(p.as_str()) && k[p.len()..].starts_with('|'))
        };
        lock(&self.cooldowns).retain(|k, _| targets_ok(k));
        lock(&self.latency).retain(|k, _| targets_ok(k));
    }
}

/// A failed half-open trial: twice the last open period, capped at `max_open_for`
/// (or `open_for`, should the cap be below it), and never below `open_for` (the
/// policy may have changed on a reload since).
fn reopen_period(last: Duration, policy: CircuitPolicy) -> Duration {
    let cap = policy.max_open_for.max(policy.open_for);
    last.saturating_mul(2).clamp(policy.open_for, cap)
}

pub struct Permit<'a> {
    health: &'a Health,
    key: String,
    admission: Admission,
    resolved: bool,
}

impl Permit<'_> {
    pub fn success(mut self) {
        self.resolved = true;
        self.health.success(&self.key);
        if matches!(self.admission, Admission::Trial) {
            let provider = self.key.split('|').next().unwrap_or_default();
            tracing::info!(%provider, "circuit closed: the half-open trial request succeeded");
        }
    }

    /// Returns true if this failure opened the circuit.
    pub fn failure(mut self, policy: CircuitPolicy) -> bool {
        self.resolved = true;
        self.health.failure(&self.key, policy)
    }

    pub fn neutral(mut self) {
        self.resolved = true;
        self.health.neutral(&self.key, self.admission);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.resolved {
            self.health.neutral(&self.key, self.admission);
        }
    }
}

#[cfg(test)]
#[path = "health_backoff_tests.rs"]
mod backoff_tests;

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: CircuitPolicy = CircuitPolicy {
        failures: 3,
        open_for: Duration::from_secs(30),
        max_open_for: Duration::from_secs(300),
    };

    #[tokio::test(start_paused = true)]
    async fn circuit_opens_half_opens_and_closes() {
        let h = Health::default();
        assert_eq!(h.admit("p"), Admission::Closed);
        assert!(!h.failure("p", POLICY));
        assert!(!h.failure("p", POLICY));
        assert!(h.failure("p", POLICY), "third consecutive failure opens");
        assert!(matches!(h.admit("p"), Admission::Open { .. }));
        assert_eq!(h.circuit("p"), ("open", 3));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(h.admit("p"), Admission::Trial, "exactly one trial");
        assert_eq!(h.admit("p"), Admission::TrialBusy);
        assert!(h.failure("p", POLICY), "a failed trial re-opens");
        assert!(matches!(h.admit("p"), Admission::Open { .. }));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(h.admit("p"), Admission::Trial);
        h.neutral("p", Admission::Trial);
        assert_eq!(
            h.admit("p"),
            Admission::Trial,
            "a neutral trial is given back"
        );
        h.success("p");
        assert_eq!(h.admit("p"), Admission::Closed);
        assert_eq!(h.circuit("p"), ("closed", 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_trial_permit_gives_the_trial_back() {
        let h = Health::default();
        h.failure("p", POLICY);
        h.failure("p", POLICY);
        h.failure("p", POLICY);
        tokio::time::advance(Duration::from_secs(30)).await;
        let admission = h.admit("p");
        assert_eq!(admission, Admission::Trial);
        drop(h.permit("p", admission));
        assert_eq!(h.admit("p"), Admission::Trial, "not stuck half-open");
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_failure_count() {
        let h = Health::default();
        h.failure("p", POLICY);
        h.failure("p", POLICY);
        h.success("p");
        assert!(!h.failure("p", POLICY));
        assert_eq!(h.admit("p"), Admission::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn with_a_fleet_the_trial_waits_for_the_lease() {
        let h = Health::default();
        let (tx, mut rx) = mpsc::channel(16);
        h.set_fleet(Some(tx));
        for _ in 0..3 {
            h.failure("p", POLICY);
        }
        assert!(matches!(rx.try_recv(), Ok(Learned::Opened { .. })));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(
            h.admit("p"),
            Admission::TrialBusy,
            "not before the fleet grants it"
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            Learned::WantTrial {
                provider: "p".into()
            }
        );
        assert_eq!(h.admit("p"), Admission::TrialBusy);
        assert!(rx.try_recv().is_err(), "asked once per lease period");
        h.grant_trial("p");
        assert_eq!(h.admit("p"), Admission::Trial);
        assert_eq!(h.admit("p"), Admission::TrialBusy);
        h.success("p");
        assert_eq!(
            rx.try_recv().unwrap(),
            Learned::Closed {
                provider: "p".into()
            }
        );
        assert_eq!(h.admit("p"), Admission::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_held_elsewhere_is_asked_for_again_when_it_runs_out() {
        let h = Health::default();
        let (tx, mut rx) = mpsc::channel(16);
        h.set_fleet(Some(tx));
        h.remote_opened(
            "p",
            SystemTime::now() + Duration::from_secs(10),
            Duration::ZERO,
        );
        assert!(matches!(h.admit("p"), Admission::Open { .. }));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(h.admit("p"), Admission::TrialBusy);
        assert!(matches!(rx.try_recv(), Ok(Learned::WantTrial { .. })));
        // the holder never reported: its lease ran out
        tokio::time::advance(TRIAL_LEASE).await;
        assert_eq!(h.admit("p"), Admission::TrialBusy);
        assert!(matches!(rx.try_recv(), Ok(Learned::WantTrial { .. })));
        // and the holder's verdict, when it comes, settles it for everyone
        h.remote_closed("p");
        assert_eq!(h.admit("p"), Admission::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn remote_deadlines_only_ever_extend() {
        let h = Health::default();
        h.remote_opened(
            "p",
            SystemTime::now() + Duration::from_secs(60),
            Duration::ZERO,
        );
        h.remote_opened(
            "p",
            SystemTime::now() + Duration::from_secs(5),
            Duration::ZERO,
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(
            matches!(h.admit("p"), Admission::Open { .. }),
            "60 s, not 5"
        );
        h.remote_cooled("t", SystemTime::now() + Duration::from_secs(60), true);
        h.remote_cooled("t", SystemTime::now() + Duration::from_secs(5), false);
        let left = h.cooldowns();
        assert_eq!(left.len(), 1);
        assert!(left[0].1 > Duration::from_secs(50));
        h.remote_cooled("gone", SystemTime::now() - Duration::from_secs(1), true);
        assert_eq!(h.cooldowns().len(), 1, "a past deadline is ignored");
    }

    #[tokio::test(start_paused = true)]
    async fn only_changes_are_told_not_every_request() {
        let h = Health::default();
        let (tx, mut rx) = mpsc::channel(16);
        h.set_fleet(Some(tx));
        h.success("p");
        h.failure("p", POLICY);
        h.success("p");
        assert!(
            rx.try_recv().is_err(),
            "a closed circuit staying closed is no news"
        );
    }
}
