//! An OTLP/HTTP trace collector on 127.0.0.1: decodes each protobuf export the way a
//! real collector does (opentelemetry-proto's generated types) and keeps the spans,
//! flattened for assertions. `stuck` accepts exports and never answers, like a
//! collector that hangs.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use prost::Message;
use serde_json::Value;
use tokio::net::TcpListener;

#[derive(Clone, Debug)]
pub struct SpanRecord {
    pub name: String,
    /// OTLP's SpanKind: 2 server, 3 client.
    pub kind: i32,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub attrs: BTreeMap<String, Value>,
    /// OTLP's status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
    pub status_message: String,
    pub service_name: Option<String>,
}

impl SpanRecord {
    pub fn attr(&self, key: &str) -> &Value {
        self.attrs.get(key).unwrap_or(&Value::Null)
    }
}

#[derive(Clone)]
pub struct Collector {
    pub addr: std::net::SocketAddr,
    spans: Arc<Mutex<Vec<SpanRecord>>>,
    /// Every byte of every export, for "nothing secret in here" checks.
    raw: Arc<Mutex<Vec<u8>>>,
    pub content_types: Arc<Mutex<Vec<String>>>,
    /// Export requests that arrived (a stuck collector counts them too).
    pub exports: Arc<std::sync::atomic::AtomicUsize>,
}

fn json(v: &AnyValue) -> Value {
    match &v.value {
        Some(Any::StringValue(s)) => Value::from(s.clone()),
        Some(Any::BoolValue(b)) => Value::from(*b),
        Some(Any::IntValue(i)) => Value::from(*i),
        Some(Any::DoubleValue(d)) => Value::from(*d),
        Some(Any::ArrayValue(a)) => Value::Array(a.values.iter().map(json).collect()),
        _ => Value::Null,
    }
}

impl Collector {
    pub async fn start() -> Collector {
        Collector::serve(false).await
    }

    pub async fn stuck() -> Collector {
        Collector::serve(true).await
    }

    async fn serve(stuck: bool) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = Collector {
            addr: listener.local_addr().unwrap(),
            spans: Arc::default(),
            raw: Arc::default(),
            content_types: Arc::default(),
            exports: Arc::default(),
        };
        let me = c.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let me = me.clone();
                        async move {
                            me.exports.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            if stuck {
                                std::future::pending::<()>().await;
                            }
                            let ct = req
                                .headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string();
                            let path = req.uri().path().to_string();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            me.content_types.lock().unwrap().push(ct);
                            assert_eq!(path, "/v1/traces");
                            me.take(&body);
                            Ok::<_, Infallible>(
                                http::Response::builder()
                                    .header("content-type", "application/x-protobuf")
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        c
    }

    fn take(&self, body: &[u8]) {
        self.raw.lock().unwrap().extend_from_slice(body);
        let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let mut spans = self.spans.lock().unwrap();
        for rs in req.resource_spans {
            let service_name = rs.resource.as_ref().and_then(|r| {
                r.attributes
                    .iter()
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| kv.value.as_ref())
                    .and_then(|v| json(v).as_str().map(str::to_string))
            });
            for ss in rs.scope_spans {
                for s in ss.spans {
                    let attrs = s
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, json)))
                        .collect();
                    let status = s.status.as_ref();
                    spans.push(SpanRecord {
                        name: s.name.clone(),
                        kind: s.kind,
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent_span_id: hex(&s.parent_span_id),
                        attrs,
                        status: status.map_or(0, |st| st.code),
                        status_message: status.map(|st| st.message.clone()).unwrap_or_default(),
                        service_name: service_name.clone(),
                    });
                }
            }
        }
    }

    /// The collector's base URL, as `otlp_endpoint` takes it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<SpanRecord> {
        self.spans.lock().unwrap().clone()
    }

    pub fn raw(&self) -> Vec<u8> {
        self.raw.lock().unwrap().clone()
    }

    /// Waits (bounded) until at least `n` spans arrived; returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<SpanRecord> {
        let got = super::wait::eventually(std::time::Duration::from_secs(20), || {
            self.spans.lock().unwrap().len() >= n
        })
        .await;
        let spans = self.spans();
        assert!(got, "expected {n} spans, got {}: {spans:#?}", spans.len());
        spans
    }
}
