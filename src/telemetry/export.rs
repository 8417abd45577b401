//! The span queue: the request path only ever `try_send`s a finished span into a
//! bounded channel; one task batches and exports. A slow or dead collector fills the
//! queue and new spans are dropped and counted — never a request held.

use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio::time::Instant;

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
    pub(super) fn start<E>(exporter: E, capacity: usize, dropped: Counter, failed: Counter) -> Self
    where
        E: SpanExporter + 'static,
    {
        let (tx, rx) = mpsc::channel(capacity);
        tokio::spawn(export_loop(exporter, rx, failed));
        QueueProcessor { tx, dropped }
    }
}

async fn export_loop<E: SpanExporter>(
    exporter: E,
    mut rx: mpsc::Receiver<SpanData>,
    failed: Counter,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::with_capacity(64);
        batch.push(first);
        let until = Instant::now() + LINGER;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let spans = batch.len() as u64;
        match tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(batch)).await {
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
    }
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
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
