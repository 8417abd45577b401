//! The upstream's answer on its way to the client, frame by frame (trailers too),
//! nothing buffered. An upstream that goes quiet for `idle`, runs past the attempt's
//! `total` or breaks cuts the client's body ([`Cut`]) rather than ending it as if it
//! were whole.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::failover::classify::Outcome;
use crate::http::body::Cut;
use crate::metrics::InflightGuard;
use crate::upstream::Phase;

type OnCut = Box<dyn FnOnce(&Outcome) + Send>;

pub struct Download<B> {
    inner: B,
    idle: Duration,
    total: Instant,
    timer: Pin<Box<Sleep>>,
    /// Whether `timer` runs for the current wait. It restarts when a wait begins, so
    /// time the client takes to read is not counted as the upstream's silence.
    waiting: bool,
    ended: bool,
    on_cut: Option<OnCut>,
    _inflight: Option<InflightGuard>,
}

impl<B> Download<B> {
    pub fn new(inner: B, idle: Duration, total: Instant) -> Download<B> {
        Download {
            inner,
            idle,
            total,
            timer: Box::pin(tokio::time::sleep_until(total)),
            waiting: false,
            ended: false,
            on_cut: None,
            _inflight: None,
        }
    }

    /// Told, once, why the body was cut.
    pub fn on_cut(mut self, f: impl FnOnce(&Outcome) + Send + 'static) -> Download<B> {
        self.on_cut = Some(Box::new(f));
        self
    }

    /// Counted in flight until the body ends or the client leaves.
    pub fn inflight(mut self, guard: InflightGuard) -> Download<B> {
        self._inflight = Some(guard);
        self
    }

    fn cut(&mut self, outcome: Outcome) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        self.ended = true;
        if let Some(f) = self.on_cut.take() {
            f(&outcome);
        }
        Poll::Ready(Some(Err(Cut(outcome.describe()))))
    }
}

impl<B> Body for Download<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Display,
{
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if !this.waiting {
            let due = (Instant::now() + this.idle).min(this.total);
            this.timer.as_mut().reset(due);
            this.waiting = true;
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.waiting = false;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => this.cut(Outcome::Stream(e.to_string())),
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let phase = if Instant::now() >= this.total {
                        Phase::Total
                    } else {
                        Phase::Idle
                    };
                    this.cut(Outcome::Timeout(phase))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use futures_util::StreamExt;
    use http_body_util::{BodyExt, StreamBody};

    type Frames = Vec<Result<Frame<Bytes>, std::io::Error>>;

    fn data(parts: &[&'static str]) -> Frames {
        parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from(*p))))
            .collect()
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test]
    async fn frames_pass_one_by_one_and_the_end_is_the_upstreams() {
        let body = StreamBody::new(futures_util::stream::iter(data(&["ab", "cd"])));
        let mut d = Download::new(body, Duration::from_secs(1), far());
        assert_eq!(d.frame().await.unwrap().unwrap().into_data().unwrap(), "ab");
        assert_eq!(d.frame().await.unwrap().unwrap().into_data().unwrap(), "cd");
        assert!(d.frame().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_upstream_quiet_for_idle_cuts_the_body_once() {
        let quiet =
            futures_util::stream::iter(data(&["ab"])).chain(futures_util::stream::pending());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let mut d = Download::new(StreamBody::new(quiet), Duration::from_secs(30), far())
            .on_cut(move |o| record.lock().unwrap().push(o.describe()));
        assert!(d.frame().await.unwrap().is_ok());
        // the client taking its time to read is not the upstream's silence
        tokio::time::sleep(Duration::from_secs(100)).await;
        let started = Instant::now();
        let e = d.frame().await.unwrap().unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert_eq!(e.to_string(), "response body cut short: timeout (idle)");
        assert!(d.frame().await.is_none());
        assert_eq!(*seen.lock().unwrap(), ["timeout (idle)"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_attempts_total_bounds_the_whole_body() {
        let total = Instant::now() + Duration::from_secs(10);
        let quiet =
            futures_util::stream::iter(data(&["ab"])).chain(futures_util::stream::pending());
        let mut d = Download::new(StreamBody::new(quiet), Duration::from_secs(30), total);
        assert!(d.frame().await.unwrap().is_ok());
        let e = d.frame().await.unwrap().unwrap_err();
        assert_eq!(Instant::now(), total);
        assert_eq!(e.to_string(), "response body cut short: timeout (total)");
    }

    #[tokio::test]
    async fn a_broken_upstream_cuts_the_body() {
        let mut frames = data(&["ab"]);
        frames.push(Err(std::io::Error::other("connection reset")));
        let body = StreamBody::new(futures_util::stream::iter(frames));
        let mut d = Download::new(body, Duration::from_secs(1), far());
        assert!(d.frame().await.unwrap().is_ok());
        let e = d.frame().await.unwrap().unwrap_err();
        assert_eq!(
            e.to_string(),
            "response body cut short: stream failed: connection reset"
        );
    }
}
