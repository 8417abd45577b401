//! The span queue: the request path only ever `try_send`s a finished span into a
//! bounded channel; one task batches and exports. A slow or dead collector fills the
//! queue and new spans are dropped and counted — never a request held.

use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::collector::Collector;

/// Spans per OTLP request, at most.
const MAX_BATCH: usize = 512;
/// How long a batch waits for more spans before it is sent.
const LINGER: Duration = Duration::from_millis(500);
/// One export's limit; past it the batch counts as failed and the next one starts.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(super) struct QueueProcessor {
    tx: mpsc::Sender<SpanData>,
    dropped: Counter,
}

impl QueueProcessor {
    /// Spawns the export task: call inside a tokio runtime. The task ends when the
    /// processor (its sender) is dropped.
    pub(super) fn start(
        collector: Collector,
        capacity: usize,
        dropped: Counter,
        failed: Counter,
    ) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        tokio::spawn(export_loop(collector, rx, failed));
        QueueProcessor { tx, dropped }
    }
}

async fn export_loop(collector: Collector, mut rx: mpsc::Receiver<SpanData>, failed: Counter) {
    // One buffer for every batch: spans are moved in and dropped after the export,
    // its room kept.
    let mut batch = Vec::with_capacity(64);
    // `recv_many` takes every span already queued at once: one wake-up, not one each.
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let linger = tokio::time::sleep_until(Instant::now() + LINGER);
        tokio::pin!(linger);
        while batch.len() < MAX_BATCH {
            let room = MAX_BATCH - batch.len();
            tokio::select! {
                n = rx.recv_many(&mut batch, room) => if n == 0 { break },
                () = &mut linger => break,
            }
        }
        let spans = batch.len() as u64;
        match tokio::time::timeout(EXPORT_TIMEOUT, collector.export(&batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failed.inc_by(spans);
                tracing::warn!(error = %e, spans, "telemetry: export failed; spans lost");
            }
            Err(_) => {
                failed.inc_by(spans);
                tracing::warn!(spans, "telemetry: export timed out; spans lost");
            }
        }
        batch.clear();
    }
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        // Recorded but not sampled (a sampler's RecordOnly): not for export.
        if !span.span_context.is_sampled() {
            return;
        }
        if self.tx.try_send(span).is_err() {
            self.dropped.inc();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}
