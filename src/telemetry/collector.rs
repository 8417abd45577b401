//! The collector end of the export: one POST of an OTLP/HTTP protobuf body per batch,
//! with the headers of `OTEL_EXPORTER_OTLP_TRACES_HEADERS` / `OTEL_EXPORTER_OTLP_HEADERS`
//! and, for the answers OTLP calls retryable, a few retries with backoff.

use std::time::Duration;

use bytes::{Buf, Bytes};
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, StatusCode, Uri};
use opentelemetry_sdk::Resource;

use super::client::ExportClient;
use super::otlp;

const RETRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// A collector asking for longer than this is not waited for: the batch fails.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(super) struct Collector {
    client: ExportClient,
    endpoint: Uri,
    headers: HeaderMap,
    /// The resource's `Resource` message, encoded once: every batch carries it.
    resource: Vec<u8>,
    resource_schema: String,
    /// Our `InstrumentationScope` message, likewise.
    scope: Vec<u8>,
}

impl Collector {
    pub(super) fn new(
        endpoint: Uri,
        resource: &Resource,
        scope: &str,
    ) -> Result<Collector, String> {
        let configured = std::env::var("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_HEADERS"))
            .unwrap_or_default();
        let mut headers = headers(&configured);
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("understudy/", env!("CARGO_PKG_VERSION"))),
        );
        Ok(Collector {
            client: ExportClient::new()?,
            endpoint,
            headers,
            resource: otlp::resource(resource),
            resource_schema: resource.schema_url().unwrap_or_default().to_string(),
            scope: otlp::scope(scope),
        })
    }

    /// Sends one batch (spans as [`otlp::append_span`] wrote them); `Err` says why it
    /// was lost.
    pub(super) async fn export(&self, spans: Bytes) -> Result<(), String> {
        let head = Bytes::from(otlp::request_head(
            &self.resource,
            &self.resource_schema,
            &self.scope,
            spans.len(),
        ));
        let mut backoff = FIRST_BACKOFF;
        for retry in 0..=RETRIES {
            let failure = match self
                .client
                .post(
                    &self.endpoint,
                    &self.headers,
                    head.clone().chain(spans.clone()),
                )
                .await
            {
                Ok((status, _)) if status.is_success() => return Ok(()),
                Ok((status, asked)) if retryable(status) && retry < RETRIES => {
                    // The collector's own wait, when it names one in seconds.
                    if let Some(wait) = asked {
                        if wait > MAX_BACKOFF {
                            return Err(format!(
                                "collector answered {status}, retry after {wait:?}"
                            ));
                        }
                        backoff = backoff.max(wait);
                    }
                    format!("collector answered {status}")
                }
                Ok((status, _)) => return Err(format!("collector answered {status}")),
                Err(e) if retry < RETRIES => e,
                Err(e) => return Err(e),
            };
            tracing::debug!(error = %failure, retry = retry + 1, "telemetry: export retried");
            let jitter = Duration::from_millis(fastrand::u64(0..=backoff.as_millis() as u64 / 2));
            tokio::time::sleep(backoff + jitter).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        Err("collector unreachable".into())
    }
}

/// The answers OTLP/HTTP says to retry.
fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

/// A `Retry-After` given in seconds.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

/// `key=value,key2=value2` (values percent-encoded), as the OTLP exporter
/// specification reads `OTEL_EXPORTER_OTLP_HEADERS`; malformed entries are skipped.
fn headers(configured: &str) -> HeaderMap {
    let mut out = HeaderMap::new();
    for entry in configured.split(',') {
        let Some((key, value)) = entry.split_once('=') else {
            continue;
        };
        let value = percent_encoding::percent_decode_str(value.trim()).decode_utf8_lossy();
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(key.trim().as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            out.append(k, v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_headers_are_decoded_and_bad_entries_skipped() {
        let h = headers("api-key=a%20b , x-tenant = t1,broken,bad name=x,");
        assert_eq!(h.get("api-key").unwrap(), "a b");
        assert_eq!(h.get("x-tenant").unwrap(), "t1");
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn only_otlp_retryable_answers_are_retried() {
        for s in [429, 502, 503, 504] {
            assert!(retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 404, 413, 500] {
            assert!(!retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
