//! What happened on an attempt ([`Outcome`]) and what to do about it ([`Verdict`]),
//! kept apart: the loop in `failover/mod.rs` only acts on verdicts.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use crate::config::FailoverPolicy;
use crate::providers::{FailureClass, UpstreamError};
use crate::upstream::{Phase, SendError};

/// How one upstream attempt ended, when it did not produce an answer.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A non-2xx answer, or an error the provider reported inside a 200.
    Status {
        error: UpstreamError,
        /// From headers (or the body) — already capped by the caller.
        retry_hint: Option<Duration>,
    },
    Timeout(Phase),
    /// No connection: the request never left.
    Refused(String),
    /// The connection failed after the request may have been sent.
    Reset(String),
    /// A 200 whose body or stream is not the provider's format.
    Protocol(String),
    /// The stream broke (or ended) before its first content event.
    Stream(String),
}

impl Outcome {
    /// The `outcome` label of `understudy_attempts_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Status { error, .. } if error.status == 429 => "rate_limited",
            Outcome::Status { .. } => "error_status",
            Outcome::Timeout(_) => "timeout",
            Outcome::Refused(_) | Outcome::Reset(_) => "connect",
            Outcome::Protocol(_) => "protocol",
            Outcome::Stream(_) => "stream",
        }
    }

    /// What kind of failure this is; everything but an upstream's own error says the
    /// provider is unwell.
    pub fn class(&self) -> FailureClass {
        match self {
            Outcome::Status { error, .. } => error.class,
            _ => FailureClass::Transient,
        }
    }

    /// The upstream's status (the one it amounts to), when it answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Status { error, .. } => Some(error.status),
            _ => None,
        }
    }

    /// The deadline that ran out, or `Connect` for a connection that never opened.
    pub fn phase(&self) -> Option<Phase> {
        match self {
            Outcome::Timeout(p) => Some(*p),
            Outcome::Refused(_) => Some(Phase::Connect),
            _ => None,
        }
    }

    /// One phrase for the client's error message and the logs.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Status { error, .. } => format!("{} {}", error.status, error.message),
            Outcome::Timeout(phase) => format!("timeout ({phase})"),
            Outcome::Refused(e) => format!("connect error: {e}"),
            Outcome::Reset(e) => format!("connection failed after sending: {e}"),
            Outcome::Protocol(e) => format!("protocol error: {e}"),
            Outcome::Stream(e) => format!("stream failed: {e}"),
        }
    }
}

impl From<SendError> for Outcome {
    fn from(e: SendError) -> Outcome {
        match e {
            SendError::Timeout(phase) => Outcome::Timeout(phase),
            SendError::Refused(m) => Outcome::Refused(m),
            SendError::Reset(m) => Outcome::Reset(m),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Hand the upstream's error to the client: the request itself is at fault,
    /// or the status is not one the policy fails over on.
    Return,
    FailOver {
        /// Put the target (provider + model) in cooldown for this long.
        cooldown: Option<Duration>,
        /// The cooldown comes from a rate limit or an exhausted quota (decides 429
        /// vs 503 later).
        rate_limited: bool,
        /// Counts toward the provider's circuit breaker.
        counts_as_failure: bool,
        /// May be retried on the same target (`retries_per_target`).
        retry_same: bool,
    },
}

/// The policy: what to do about an outcome, by its class.
pub fn decide(outcome: &Outcome, policy: &FailoverPolicy) -> Verdict {
    let cap = |d: Duration| d.min(policy.max_cooldown);
    let cool = |d: Duration, rate_limited: bool| Verdict::FailOver {
        cooldown: Some(cap(d)),
        rate_limited,
        counts_as_failure: false,
        retry_same: false,
    };
    let unwell = |retry_same: bool| Verdict::FailOver {
        cooldown: None,
        rate_limited: false,
        counts_as_failure: true,
        retry_same,
    };
    let Outcome::Status { error, retry_hint } = outcome else {
        // A connection or stream failure says the provider is unwell; a request that
        // may not have arrived (or was cut before its answer began) may be retried.
        let retry_same = !matches!(outcome, Outcome::Protocol(_) | Outcome::Stream(_));
        return unwell(retry_same);
    };
    let hinted = retry_hint.unwrap_or(policy.default_cooldown);
    match error.class {
        FailureClass::CallerFault => Verdict::Return,
        // Another target may have a larger window. The provider is healthy and the
        // same request would fail again: no cooldown, no circuit, no retry.
        FailureClass::ContextTooLong => Verdict::FailOver {
            cooldown: None,
            rate_limited: false,
            counts_as_failure: false,
            retry_same: false,
        },
        _ if !policy.on_status.contains(&error.status) => Verdict::Return,
        FailureClass::RateLimit => cool(hinted, true),
        // An account out of quota stays so for long: don't ask again soon.
        FailureClass::Quota => cool(policy.max_cooldown, true),
        // A bad key or a missing model: not the provider's health, but asking again
        // at once is wasted.
        FailureClass::Credential | FailureClass::ModelGone => cool(hinted, false),
        // A 503 that says when to come back is a cooldown, not only a failure.
        FailureClass::Transient if error.status == 503 && retry_hint.is_some() => {
            Verdict::FailOver {
                cooldown: Some(cap(hinted)),
                rate_limited: false,
                counts_as_failure: true,
                retry_same: false,
            }
        }
        FailureClass::Transient => unwell(true),
    }
}

/// The most precise retry hint in `headers`: `retry-after-ms`, `x-ms-retry-after-ms`,
/// `Retry-After` (seconds or HTTP-date), then rate-limit reset headers (any header
/// named `*ratelimit*reset*`: seconds, Go-style durations or RFC 3339 times; the
/// latest one wins, since we cannot tell which limit was hit). A hint in the past
/// means now; a garbage value is ignored.
pub fn retry_hint(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = get(name).and_then(|v| v.parse::<f64>().ok()) {
            if ms.is_finite() && ms >= 0.0 {
                return Some(Duration::from_secs_f64((ms / 1000.0).min(1e9)));
            }
        }
    }
    if let Some(v) = get("retry-after") {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = httpdate::parse_http_date(v) {
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    headers
        .iter()
        .filter(|(name, _)| {
            let n = name.as_str();
            n.contains("ratelimit") && n.contains("reset")
        })
        .filter_map(|(_, v)| v.to_str().ok().and_then(|v| parse_reset(v.trim(), now)))
        .max()
}

fn parse_reset(v: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = v.parse::<f64>() {
        // Large numbers are epoch timestamps, small ones delays.
        if secs.is_finite() && secs >= 0.0 {
            if secs > 1_000_000_000.0 {
                let at = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs.min(1e11));
                return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
            }
            return Some(Duration::from_secs_f64(secs));
        }
        return None;
    }
    if let Ok(at) = humantime::parse_rfc3339_weak(v) {
        return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
    }
    go_duration(v)
}

/// `1s`, `6m0s`, `1h2m3.5s`, `250ms`: what OpenAI puts in `x-ratelimit-reset-*`.
fn go_duration(v: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = v;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let (num, tail) = rest.split_at(num_len);
        let n: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += n * scale;
        rest = tail;
    }
    (total.is_finite() && total < 1e9).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(pairs: &[(&str, &str)]) -> Option<Duration> {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_784_000_000);
        retry_hint(&h, now)
    }

    #[test]
    fn retry_hints_in_every_form() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<Duration>);
        let cases: &[Case] = &[
            (&[("retry-after", "7")], Some(s(7))),
            (&[("retry-after-ms", "1500")], Some(ms(1500))),
            (&[("x-ms-retry-after-ms", "250")], Some(ms(250))),
            // most precise first
            (
                &[("retry-after", "9"), ("retry-after-ms", "100")],
                Some(ms(100)),
            ),
            // HTTP-date 20 s after `now` (2026-07-14T03:33:20Z)
            (
                &[("retry-after", "Tue, 14 Jul 2026 03:33:40 GMT")],
                Some(s(20)),
            ),
            // in the past: now
            (
                &[("retry-after", "Mon, 01 Jan 2024 00:00:00 GMT")],
                Some(s(0)),
            ),
            (
                &[
                    ("x-ratelimit-reset-requests", "6m0s"),
                    ("x-ratelimit-reset-tokens", "1.5s"),
                ],
                Some(s(360)),
            ),
            (&[("x-ratelimit-reset-tokens", "250ms")], Some(ms(250))),
            (
                &[("anthropic-ratelimit-requests-reset", "2026-07-14T03:33:50Z")],
                Some(s(30)),
            ),
            (&[("x-ratelimit-reset", "12")], Some(s(12))),
            // garbage is ignored, never a panic
            (&[("retry-after", "soon")], None),
            (&[("retry-after-ms", "-5")], None),
            (
                &[("retry-after-ms", "NaN"), ("retry-after", "3")],
                Some(s(3)),
            ),
            (&[("x-ratelimit-reset-requests", "9999999999999h")], None),
            (&[("x-ratelimit-reset-requests", "1x")], None),
            (&[], None),
        ];
        for (headers, want) in cases {
            assert_eq!(hint(headers), *want, "{headers:?}");
        }
    }

    fn policy() -> FailoverPolicy {
        FailoverPolicy {
            on_status: vec![401, 403, 404, 408, 429, 500, 502, 503, 504, 529],
            max_attempts: 4,
            retries_per_target: 0,
            backoff: Duration::from_millis(200),
            default_cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(600),
            max_wait: Duration::ZERO,
            hedge_after: Duration::ZERO,
            budget: crate::config::BudgetPolicy {
                ratio: 0.2,
                min_per_s: 10,
            },
            resume_streams: false,
        }
    }

    fn status(code: u16, hint: Option<Duration>) -> Outcome {
        Outcome::Status {
            error: UpstreamError::new(code, "x"),
            retry_hint: hint,
        }
    }

    #[test]
    fn verdicts_follow_the_policy() {
        let p = policy();
        assert_eq!(decide(&status(400, None), &p), Verdict::Return);
        assert_eq!(decide(&status(422, None), &p), Verdict::Return);
        assert_eq!(
            decide(&status(501, None), &p),
            Verdict::Return,
            "not in on_status"
        );
        assert!(matches!(
            decide(&status(429, None), &p),
            Verdict::FailOver { cooldown: Some(d), rate_limited: true, counts_as_failure: false, .. } if d == Duration::from_secs(30)
        ));
        assert!(matches!(
            decide(&status(429, Some(Duration::from_secs(100_000))), &p),
            Verdict::FailOver { cooldown: Some(d), .. } if d == Duration::from_secs(600)
        ));
        assert!(matches!(
            decide(&status(529, None), &p),
            Verdict::FailOver {
                cooldown: None,
                counts_as_failure: true,
                retry_same: true,
                ..
            }
        ));
        assert!(matches!(
            decide(&status(503, Some(Duration::from_secs(5))), &p),
            Verdict::FailOver {
                cooldown: Some(_),
                rate_limited: false,
                counts_as_failure: true,
                ..
            }
        ));
        assert!(matches!(
            decide(&status(401, None), &p),
            Verdict::FailOver { counts_as_failure: false, cooldown: Some(d), rate_limited: false, .. }
                if d == Duration::from_secs(30)
        ));
        let mut quota = UpstreamError::new(429, "You exceeded your current quota");
        quota.class = FailureClass::Quota;
        let quota = Outcome::Status {
            error: quota,
            retry_hint: Some(Duration::from_secs(2)),
        };
        assert!(
            matches!(
                decide(&quota, &p),
                Verdict::FailOver { cooldown: Some(d), rate_limited: true, counts_as_failure: false, .. }
                    if d == Duration::from_secs(600)
            ),
            "an account out of quota cools for max_cooldown, not the hint"
        );
        let mut long = UpstreamError::new(400, "context_length_exceeded");
        long.class = FailureClass::ContextTooLong;
        let long = Outcome::Status {
            error: long,
            retry_hint: None,
        };
        assert_eq!(
            decide(&long, &p),
            Verdict::FailOver {
                cooldown: None,
                rate_limited: false,
                counts_as_failure: false,
                retry_same: false,
            },
            "too long for this target: the next one may fit; this provider is healthy"
        );
        assert!(matches!(
            decide(&Outcome::Reset("reset".into()), &p),
            Verdict::FailOver {
                counts_as_failure: true,
                retry_same: true,
                ..
            }
        ));
        assert!(matches!(
            decide(&Outcome::Timeout(Phase::FirstByte), &p),
            Verdict::FailOver {
                counts_as_failure: true,
                retry_same: true,
                ..
            }
        ));
    }
}
