//! The exporter's HTTP client: hyper, like every other outbound call of the proxy
//! (no second HTTP stack), with the platform's web roots for an https collector.

use bytes::buf::Chain;
use bytes::Bytes;
use std::time::Duration;

use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// An export request's body: its head and the batch's spans, not copied together.
pub(super) type Body = Chain<Bytes, Bytes>;

/// A collector's answer is a small status message; more is not a collector.
const ANSWER_LIMIT: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub(super) struct ExportClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Body>>,
}

impl ExportClient {
    pub(super) fn new() -> Result<ExportClient, String> {
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(ExportClient {
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }
}

impl ExportClient {
    /// POSTs `body`; the answer's status and the wait it asks for before a retry.
    /// The answer's body is read (and dropped) so the connection can be reused.
    pub(super) async fn post(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<(StatusCode, Option<Duration>), String> {
        let mut request = Request::post(uri.clone())
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        *request.headers_mut() = headers.clone();
        let resp = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("sending to the collector: {e}"))?;
        let status = resp.status();
        let wait = super::collector::retry_after(resp.headers());
        Limited::new(resp.into_body(), ANSWER_LIMIT)
            .collect()
            .await
            .map_err(|e| format!("reading the collector's answer: {e}"))?;
        Ok((status, wait))
    }
}
