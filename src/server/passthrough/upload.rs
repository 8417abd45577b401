//! The client's request body on its way upstream, frame by frame. It is cut off —
//! which aborts the upstream request, so the provider never acts on part of it — when
//! it grows past the limit or is not all there within `server.body_timeout`; how it
//! ended is reported to the handler, which answers 413, 408 or 400.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;
use tokio::time::Sleep;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error("request body exceeds the limit of {0} bytes")]
    TooLarge(u64),
    #[error("the request body did not arrive within {0:?}")]
    TimedOut(Duration),
    #[error("could not read request body: {0}")]
    Client(String),
}

/// How the upload ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    Complete,
    Failed(UploadError),
}

pub struct Upload<B> {
    inner: B,
    limit: u64,
    seen: u64,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    report: Option<oneshot::Sender<End>>,
    failed: Option<UploadError>,
}

impl<B: Body> Upload<B> {
    /// The body and where its end is reported. A receiver whose sender went away
    /// without a word means the upstream connection dropped the body unfinished.
    pub fn new(inner: B, limit: u64, timeout: Duration) -> (Upload<B>, oneshot::Receiver<End>) {
        let (tx, rx) = oneshot::channel();
        let upload = Upload {
            inner,
            limit,
            seen: 0,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            report: Some(tx),
            failed: None,
        };
        (upload, rx)
    }

    fn end(&mut self, end: End) {
        if let Some(tx) = self.report.take() {
            let _ = tx.send(end);
        }
    }

    fn fail(&mut self, e: UploadError) -> Poll<Option<Result<Frame<Bytes>, UploadError>>> {
        self.end(End::Failed(e.clone()));
        self.failed = Some(e.clone());
        Poll::Ready(Some(Err(e)))
    }
}

impl<B> Body for Upload<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Display,
{
    type Data = Bytes;
    type Error = UploadError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UploadError>>> {
        let this = self.get_mut();
        if let Some(e) = &this.failed {
            return Poll::Ready(Some(Err(e.clone())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.seen > this.limit {
                        return this.fail(UploadError::TooLarge(this.limit));
                    }
                }
                if this.inner.is_end_stream() {
                    this.end(End::Complete);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => this.fail(UploadError::Client(e.to_string())),
            Poll::Ready(None) => {
                this.end(End::Complete);
                Poll::Ready(None)
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => this.fail(UploadError::TimedOut(this.timeout)),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed.is_none() && self.inner.is_end_stream()
    }

    /// The client's `Content-Length`, when it sent one, frames the upstream request.
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use http_body_util::{BodyExt, Full, StreamBody};

    type Frames = Vec<Result<Frame<Bytes>, std::io::Error>>;

    fn frames(sizes: &[usize]) -> Frames {
        sizes
            .iter()
            .map(|n| Ok(Frame::data(Bytes::from(vec![7u8; *n]))))
            .collect()
    }

    #[tokio::test]
    async fn a_body_within_the_limit_passes_whole_and_reports_complete() {
        let body = StreamBody::new(futures_util::stream::iter(frames(&[400, 600])));
        let (up, mut end) = Upload::new(body, 1000, Duration::from_secs(5));
        let got = up.collect().await.unwrap().to_bytes();
        assert_eq!(got.len(), 1000);
        assert_eq!(end.try_recv().unwrap(), End::Complete);
        let (up, mut end) = Upload::new(Full::new(Bytes::from("x")), 1, Duration::from_secs(5));
        assert_eq!(up.size_hint().exact(), Some(1));
        assert_eq!(up.collect().await.unwrap().to_bytes(), "x");
        assert_eq!(end.try_recv().unwrap(), End::Complete);
    }

    #[tokio::test]
    async fn crossing_the_limit_cuts_the_body_and_says_so() {
        let body = StreamBody::new(futures_util::stream::iter(frames(&[600, 401, 10])));
        let (mut up, mut end) = Upload::new(body, 1000, Duration::from_secs(5));
        assert_eq!(
            up.frame()
                .await
                .unwrap()
                .unwrap()
                .into_data()
                .unwrap()
                .len(),
            600
        );
        assert_eq!(
            up.frame().await.unwrap().unwrap_err(),
            UploadError::TooLarge(1000)
        );
        assert_eq!(
            up.frame().await.unwrap().unwrap_err(),
            UploadError::TooLarge(1000)
        );
        assert_eq!(
            end.try_recv().unwrap(),
            End::Failed(UploadError::TooLarge(1000))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stalls_is_cut_at_the_body_timeout() {
        let stalls =
            futures_util::stream::iter(frames(&[10])).chain(futures_util::stream::pending());
        let (mut up, mut end) = Upload::new(StreamBody::new(stalls), 1000, Duration::from_secs(30));
        assert!(up.frame().await.unwrap().is_ok());
        let started = tokio::time::Instant::now();
        let e = up.frame().await.unwrap().unwrap_err();
        assert_eq!(e, UploadError::TimedOut(Duration::from_secs(30)));
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert!(matches!(
            end.try_recv().unwrap(),
            End::Failed(UploadError::TimedOut(_))
        ));
    }

    #[tokio::test]
    async fn a_client_error_is_reported_as_its_own() {
        let broken: Frames = vec![Err(std::io::Error::other("reset by peer"))];
        let (mut up, mut end) = Upload::new(
            StreamBody::new(futures_util::stream::iter(broken)),
            10,
            Duration::from_secs(5),
        );
        let e = up.frame().await.unwrap().unwrap_err();
        assert_eq!(e.to_string(), "could not read request body: reset by peer");
        assert!(matches!(
            end.try_recv().unwrap(),
            End::Failed(UploadError::Client(_))
        ));
    }
}
