//! A provider's last five minutes: per-10 s buckets of attempt counts and a small
//! log-scale latency histogram, all atomics, so booking an attempt on the hot path
//! takes no lock and no allocation.

use std::sync::atomic::{AtomicU64, Ordering};

/// Each bucket covers this many seconds…
pub const BUCKET_SECS: u64 = 10;
/// …and this many of them make the window (5 minutes).
pub const BUCKETS: usize = 30;
/// Latency bins with edges √2 apart from 1 ms (so a p50 is within ~41 %): bin 0 is
/// under 1 ms, the last one holds everything from ~9 minutes up.
const BINS: usize = 40;
/// A bucket no slot has claimed yet.
const NEVER: u64 = u64::MAX;

struct Bucket {
    /// Which 10 s slot (since the clock's epoch) the counts belong to.
    slot: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    latency: [AtomicU64; BINS],
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            slot: AtomicU64::new(NEVER),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// What the window says about the last five minutes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub ok: u64,
    pub failed: u64,
    /// The median time to response head (streams: first event) of good answers, as
    /// the upper edge of its histogram bin; `None` without any.
    pub p50_ms: Option<f64>,
}

impl Summary {
    /// Good attempts over all attempts; `None` when there were none.
    pub fn success_ratio(&self) -> Option<f64> {
        let all = self.ok + self.failed;
        (all > 0).then(|| self.ok as f64 / all as f64)
    }
}

pub struct Window {
    buckets: [Bucket; BUCKETS],
}

impl Default for Window {
    fn default() -> Self {
        Window {
            buckets: std::array::from_fn(|_| Bucket::new()),
        }
    }
}

/// The slot a moment `secs` after the epoch falls in.
pub fn slot_of(secs: u64) -> u64 {
    secs / BUCKET_SECS
}

fn bin_of(ms: f64) -> usize {
    if ms.is_nan() || ms < 1.0 {
        return 0; // under 1 ms, or NaN
    }
    // bin i holds [2^((i-1)/2), 2^(i/2)) ms
    let i = (2.0 * ms.log2()).floor() + 1.0;
    (i.min((BINS - 1) as f64)) as usize
}

fn upper_ms(bin: usize) -> f64 {
    2f64.powf(bin as f64 / 2.0)
}

impl Window {
    /// The bucket of `slot`, emptied first if it still holds an older slot's counts.
    /// A count racing that turnover may be lost: the window is for a glance, not an
    /// audit, and the hot path stays lock-free.
    fn bucket(&self, slot: u64) -> &Bucket {
        let b = &self.buckets[(slot % BUCKETS as u64) as usize];
        let seen = b.slot.load(Ordering::Acquire);
        if (seen == NEVER || seen < slot)
            && b.slot
                .compare_exchange(seen, slot, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            b.ok.store(0, Ordering::Relaxed);
            b.failed.store(0, Ordering::Relaxed);
            for l in &b.latency {
                l.store(0, Ordering::Relaxed);
            }
        }
        b
    }

    pub fn attempt(&self, slot: u64, ok: bool) {
        let b = self.bucket(slot);
        let counter = if ok { &b.ok } else { &b.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn latency(&self, slot: u64, secs: f64) {
        let b = self.bucket(slot);
        b.latency[bin_of(secs * 1000.0)].fetch_add(1, Ordering::Relaxed);
    }

    /// The buckets of the `BUCKETS` slots up to and including `now`.
    pub fn summary(&self, now: u64) -> Summary {
        let mut s = Summary {
            ok: 0,
            failed: 0,
            p50_ms: None,
        };
        let mut hist = [0u64; BINS];
        for b in &self.buckets {
            let slot = b.slot.load(Ordering::Acquire);
            if slot == NEVER || slot > now || now - slot >= BUCKETS as u64 {
                continue;
            }
            s.ok += b.ok.load(Ordering::Relaxed);
            s.failed += b.failed.load(Ordering::Relaxed);
            for (h, l) in hist.iter_mut().zip(&b.latency) {
                *h += l.load(Ordering::Relaxed);
            }
        }
        let total: u64 = hist.iter().sum();
        if total > 0 {
            let half = total.div_ceil(2);
            let mut seen = 0;
            for (i, n) in hist.iter().enumerate() {
                seen += n;
                if seen >= half {
                    s.p50_ms = Some(upper_ms(i));
                    break;
                }
            }
        }
        s
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_ratio_over_the_window() {
        let w = Window::default();
        for _ in 0..3 {
            w.attempt(5, true);
        }
        w.attempt(7, false);
        let s = w.summary(7);
        assert_eq!((s.ok, s.failed), (3, 1));
        assert_eq!(s.success_ratio(), Some(0.75));
        assert_eq!(Window::default().summary(7).success_ratio(), None);
    }

    #[test]
    fn buckets_older_than_five_minutes_drop_out() {
        let w = Window::default();
        w.attempt(10, true);
        w.attempt(20, false);
        // slot 39 still sees slot 10 (29 slots back); slot 40 no longer does
        assert_eq!(w.summary(39).ok, 1);
        let s = w.summary(40);
        assert_eq!((s.ok, s.failed), (0, 1));
        assert_eq!(w.summary(50).failed, 0);
    }

    #[test]
    fn a_reused_bucket_starts_from_zero() {
        let w = Window::default();
        w.attempt(3, true);
        w.latency(3, 0.5);
        // slot 33 lands in slot 3's bucket, a whole window later
        w.attempt(33, false);
        let s = w.summary(33);
        assert_eq!((s.ok, s.failed, s.p50_ms), (0, 1, None));
    }

    #[test]
    fn p50_is_the_median_bin_upper_edge() {
        let w = Window::default();
        for _ in 0..10 {
            w.latency(1, 0.100); // 100 ms
        }
        for _ in 0..9 {
            w.latency(2, 2.0); // 2 s
        }
        let p50 = w.summary(2).p50_ms.unwrap();
        assert!((100.0..=100.0 * 2f64.sqrt()).contains(&p50), "{p50}");
        for _ in 0..2 {
            w.latency(2, 2.0);
        }
        let p50 = w.summary(2).p50_ms.unwrap();
        assert!((2000.0..=2000.0 * 2f64.sqrt()).contains(&p50), "{p50}");
    }

    #[test]
    fn latency_bins_cover_every_value() {
        assert_eq!(bin_of(0.0), 0);
        assert_eq!(bin_of(f64::NAN), 0);
        assert_eq!(bin_of(1.0), 1);
        assert_eq!(bin_of(1.5), 2);
        assert_eq!(bin_of(f64::INFINITY), BINS - 1);
        assert_eq!(bin_of(1e12), BINS - 1);
        for ms in [0.3, 1.0, 7.0, 99.0, 1234.0, 60_000.0] {
            let b = bin_of(ms);
            assert!(ms < upper_ms(b), "{ms} below bin {b}'s upper edge");
            assert!(
                b == 0 || ms >= upper_ms(b - 1),
                "{ms} at or above bin {b}'s lower edge"
            );
        }
    }

    #[test]
    fn concurrent_booking_loses_nothing_within_one_slot() {
        let w = std::sync::Arc::new(Window::default());
        w.attempt(4, true); // the bucket is claimed before the threads start
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        w.attempt(4, true);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(w.summary(4).ok, 4001);
    }
}
