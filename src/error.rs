//! Every error the client can see, as data: what happened and the HTTP status it is
//! answered with. Each front door renders it in its own API's shape.

use std::fmt;
use std::time::Duration;

use http::{HeaderValue, StatusCode};

use crate::failover::classify::Outcome;
use crate::failover::fit::Estimate;
use crate::providers::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    BadRequest(String),
    /// A bad request whose fault is one field, named the way OpenAI's `param` names
    /// it (`input[3].type`), so a client can point at it.
    #[error("{message}")]
    InvalidParam { param: String, message: String },
    /// The upstream refused the request itself (400/422): returned, not failed over.
    #[error("{provider}: {}", error.message)]
    ProviderRejected {
        provider: String,
        error: Box<UpstreamError>,
    },
    #[error("invalid or missing API key; send `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("the model `{0}` does not exist or no route serves it")]
    ModelNotFound(String),
    #[error("unknown path {0}")]
    NotFound(String),
    #[error("method {0} is not allowed on this path")]
    MethodNotAllowed(String),
    #[error("request body exceeds the limit of {0} bytes")]
    TooLarge(u64),
    /// A request header, or all of them together, over `server.max_header_*`.
    #[error("request headers too large: {0}")]
    HeadersTooLarge(String),
    #[error("the request body did not arrive within {0} seconds")]
    BodyTimeout(u64),
    /// An upstream error passed on without failover (status not in `on_status`).
    #[error("{provider}: {}", error.message)]
    Upstream {
        provider: String,
        error: Box<UpstreamError>,
    },
    /// The walk ended without an answer; it says why and lists every step.
    #[error("{0}")]
    Exhausted(Exhausted),
    /// The request is too long for every target that could take it: each said so,
    /// or was skipped because the request clearly exceeds its `context_window`.
    #[error("{0}")]
    ContextTooLong(TooLong),
    /// A committed stream's upstream failed after content reached the client.
    #[error("{}", mid_stream(provider, failure))]
    MidStream {
        provider: String,
        failure: Box<Outcome>,
    },
    /// `previous_response_id` names no stored response (unknown, deleted, expired).
    #[error("Previous response with id '{0}' not found.")]
    PreviousResponseNotFound(String),
    /// `GET`/`DELETE /v1/responses/{id}` of an unknown id.
    #[error("Response with id '{0}' not found.")]
    ResponseNotFound(String),
    /// Stored state is out of reach (a shared engine down or slow).
    #[error("{0}")]
    StateUnavailable(String),
    /// `[passthrough]` names a provider that is disabled (its key is not set).
    #[error("the passthrough provider {provider} is disabled: {reason}")]
    PassthroughDisabled { provider: String, reason: String },
    /// `[passthrough]`: its one provider could not be reached or did not answer in
    /// time (there is no other to fail over to).
    #[error("passthrough to {provider}: {}", failure.describe())]
    PassthroughFailed {
        provider: String,
        failure: Box<Outcome>,
    },
    /// The proxy is shutting down and its grace period ran out.
    #[error("the proxy is shutting down; retry the request")]
    ShuttingDown,
}

fn mid_stream(provider: &str, failure: &Outcome) -> String {
    match failure {
        Outcome::Timeout(phase) => format!("{provider}: stream timed out ({phase})"),
        Outcome::Status { error, .. } => format!("{provider}: {}", error.message),
        Outcome::Protocol(m) => format!("{provider}: malformed stream: {m}"),
        Outcome::Stream(m) | Outcome::Refused(m) | Outcome::Reset(m) => {
            format!("{provider}: stream broke: {m}")
        }
    }
}

/// Why no target answered, and every step of the walk in priority order: what was
/// tried (target, outcome: class, status, phase) and what was skipped and why.
#[derive(Debug, Clone)]
pub struct Exhausted {
    pub why: Why,
    pub steps: Vec<Step>,
    /// When the soonest target is usable again (429/503 `Retry-After`).
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Every attempt was rate-limited (or out of quota).
    RateLimited,
    /// The last attempt timed out.
    TimedOut,
    /// Attempts failed otherwise.
    Failed,
    /// Nothing could be tried: every target's provider is disabled.
    AllDisabled,
    /// Nothing could be tried: cooling, circuits open. `rate_limited`: some target
    /// is cooling from a rate limit (429 rather than 503).
    NoneTried { rate_limited: bool },
    /// Nothing could be tried: the targets with capacity left were all at their
    /// provider's `max_concurrency` (load shed).
    Overloaded,
}

/// One target's part in a walk.
#[derive(Debug, Clone)]
pub struct Step {
    /// `provider/model`.
    pub target: String,
    pub what: StepKind,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Tried(Outcome),
    Skipped(SkipReason),
}

#[derive(Debug, Clone)]
pub enum SkipReason {
    Disabled(String),
    Cooling {
        left: Duration,
    },
    CircuitOpen,
    TrialBusy,
    /// This kind cannot express the request.
    Unsupported(String),
    /// The request clearly exceeds the target's declared context window.
    ContextWindow {
        window: u64,
        estimate: Estimate,
    },
    /// Its provider was at `max_concurrency`: the queue was full, or no slot came
    /// within `queue_wait`.
    Overloaded {
        queue_full: bool,
        wait: Duration,
    },
}

/// No target can take a request this long.
#[derive(Debug, Clone)]
pub struct TooLong {
    /// The last provider's own refusal (its name and error); `None` when every
    /// target was skipped by its declared window and none was asked.
    pub refused: Option<(String, Box<UpstreamError>)>,
    pub estimate: Option<Estimate>,
    pub steps: Vec<Step>,
}

/// The outcomes of the steps that were attempts, in order.
pub fn tried(steps: &[Step]) -> Vec<&Outcome> {
    steps
        .iter()
        .filter_map(|s| match &s.what {
            StepKind::Tried(o) => Some(o),
            StepKind::Skipped(_) => None,
        })
        .collect()
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.what {
            StepKind::Tried(o) => write!(f, "{}: {}", self.target, o.describe()),
            StepKind::Skipped(r) => {
                let why = match r {
                    SkipReason::Disabled(m) => format!("disabled: {m}"),
                    SkipReason::Cooling { left } => {
                        format!("cooling down, {:.1}s left", left.as_secs_f64())
                    }
                    SkipReason::CircuitOpen => "circuit open".into(),
                    SkipReason::TrialBusy => "circuit half-open, trial in flight".into(),
                    SkipReason::Unsupported(m) => format!("cannot express the request: {m}"),
                    SkipReason::ContextWindow { window, estimate } => format!(
                        "context window of {window} tokens clearly exceeded: {}",
                        estimate.describe()
                    ),
                    SkipReason::Overloaded {
                        queue_full: true, ..
                    } => "at max_concurrency, queue full".into(),
                    SkipReason::Overloaded { wait, .. } => format!(
                        "at max_concurrency, no slot within {:.1}s",
                        wait.as_secs_f64()
                    ),
                };
                write!(f, "{}: skipped ({why})", self.target)
            }
        }
    }
}

impl fmt::Display for Exhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.why {
            Why::RateLimited => "every target is rate-limited: ",
            Why::TimedOut => "upstream timed out: ",
            Why::Failed => "every target failed: ",
            Why::AllDisabled => "no provider available: every target is disabled: ",
            Why::NoneTried { .. } => "no target could be tried: ",
            Why::Overloaded => "overloaded, every target is at its concurrency limit: ",
        })?;
        for (i, step) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{step}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.refused {
            Some((provider, error)) => write!(f, "{provider}: {}", error.message)?,
            None => f.write_str("the request does not fit the context window of any target")?,
        }
        if let Some(e) = &self.estimate {
            write!(f, " (request estimated by size: {})", e.describe())?;
        }
        f.write_str("; ")?;
        for (i, step) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{step}")?;
        }
        Ok(())
    }
}

impl ProxyError {
    /// Every target failed or is waiting out a failure, as opposed to the request
    /// being refused or every target being disabled (a config problem that a
    /// degraded answer would hide).
    pub fn is_exhausted(&self) -> bool {
        match self {
            ProxyError::Exhausted(e) => match e.why {
                Why::RateLimited | Why::TimedOut | Why::Failed | Why::Overloaded => true,
                Why::NoneTried { .. } => e.retry_after.is_some(),
                Why::AllDisabled => false,
            },
            _ => false,
        }
    }

    /// The HTTP status this error is answered with, whatever the client's API.
    pub fn status(&self) -> StatusCode {
        use ProxyError::*;
        match self {
            BadRequest(_)
            | InvalidParam { .. }
            | ProviderRejected { .. }
            | ContextTooLong(_)
            | PreviousResponseNotFound(_) => StatusCode::BAD_REQUEST,
            ResponseNotFound(_) => StatusCode::NOT_FOUND,
            StateUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Unauthorized => StatusCode::UNAUTHORIZED,
            ModelNotFound(_) | NotFound(_) => StatusCode::NOT_FOUND,
            MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Upstream { error, .. } if error.status >= 500 => StatusCode::BAD_GATEWAY,
            Upstream { error, .. } => {
                StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            Exhausted(e) => match e.why {
                Why::RateLimited | Why::NoneTried { rate_limited: true } => {
                    StatusCode::TOO_MANY_REQUESTS
                }
                Why::TimedOut => StatusCode::GATEWAY_TIMEOUT,
                Why::Failed => StatusCode::BAD_GATEWAY,
                Why::AllDisabled | Why::NoneTried { .. } | Why::Overloaded => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            },
            MidStream { failure, .. } if matches!(**failure, Outcome::Timeout(_)) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            MidStream { .. } => StatusCode::BAD_GATEWAY,
            PassthroughFailed { failure, .. } if matches!(**failure, Outcome::Timeout(_)) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            PassthroughFailed { .. } => StatusCode::BAD_GATEWAY,
            ShuttingDown | PassthroughDisabled { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// `Retry-After` for 429/503 answers that know when to come back.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProxyError::Exhausted(e) => e.retry_after,
            _ => None,
        }
    }
}

/// Whole seconds, rounded up, at least 1.
pub fn retry_after_value(d: Duration) -> HeaderValue {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}
