//! Accepting connections: HTTP/1.1 and HTTP/2 (h2c) on one port via hyper-util's auto
//! builder, and a graceful shutdown that lets requests in flight finish.

mod admin;
mod auth;
mod conn;
mod dashboard;
mod embeddings;
mod exchange;
mod headers;
mod passthrough;
mod respond;
mod stored;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::app::App;
use crate::error::ProxyError;
use crate::frontdoor::chat::CHAT;
use crate::frontdoor::messages::{COUNT_TOKENS, MESSAGES};
use crate::frontdoor::responses::RESPONSES;
use crate::frontdoor::Dialect;
use crate::http::body::Body;
use passthrough::Forward;
use respond::error_response;

/// After the shutdown grace: how long the final error events get to reach clients.
const FINAL_EVENTS: Duration = Duration::from_secs(2);

/// Serves until `shutdown` resolves, then waits up to `grace` for connections in
/// flight (streams included) to finish.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    grace: impl Fn() -> Duration,
) {
    let limits = app.config.load().server.limits;
    let builder = conn::builder(&limits);
    let open = conn::Gauge::new(limits.max_connections);
    // Every connection holds a receiver: `closed()` is the moment the last one ends.
    let (shutting, _) = tokio::sync::watch::channel(false);
    let tls = match &app.config.load().server.tls {
        None => None,
        Some(files) => match tls::acceptor(files) {
            Ok(a) => Some(a),
            Err(e) => {
                // Validated at load; a file that vanished since is fatal for TLS.
                tracing::error!(error = %e, "TLS setup failed; not serving");
                return;
            }
        },
    };
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some(admitted) = open.admit(&app) else {
            // Past server.max_connections: closed at once, before any byte is read.
            tracing::debug!(%peer, "connection limit reached; closing");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = conn::Conn {
            app: app.clone(),
            builder: builder.clone(),
            limits,
            shutdown: shutting.subscribe(),
            peer,
            admitted,
        };
        tokio::spawn(conn::serve(conn, stream, tls.clone()));
    }
    drop(listener);
    let grace = grace();
    tracing::info!(
        grace_secs = grace.as_secs_f64(),
        "shutting down; waiting for requests in flight"
    );
    shutting.send_replace(true);
    let drained = shutting.closed();
    tokio::pin!(drained);
    if tokio::time::timeout(grace, &mut drained).await.is_err() {
        tracing::warn!(
            "shutdown grace elapsed with requests still in flight; ending their streams"
        );
        // Streams end with their front door's final error event rather than a cut
        // connection; a short bound lets those last frames reach the clients.
        app.draining.send_replace(true);
        if tokio::time::timeout(FINAL_EVENTS, &mut drained)
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the final events; closing them");
        }
    }
}

/// What a path serves; the methods it allows are [`Route::allow`].
enum Route<'p> {
    Front(&'static dyn Dialect),
    Models,
    Model(&'p str),
    /// `/v1/responses/{id}`: GET or DELETE.
    Stored(&'p str),
    /// `/v1/responses/{id}/input_items`.
    InputItems(&'p str),
    /// `POST /v1/embeddings`.
    Embeddings,
    Healthz,
    Readyz,
    Status,
    Metrics,
    Dashboard,
    DashboardData,
}

impl<'p> Route<'p> {
    fn of(path: &'p str) -> Option<Route<'p>> {
        Some(match path {
            "/v1/chat/completions" => Route::Front(&CHAT),
            "/v1/responses" => Route::Front(&RESPONSES),
            "/v1/messages" => Route::Front(&MESSAGES),
            "/v1/messages/count_tokens" => Route::Front(&COUNT_TOKENS),
            "/v1/embeddings" => Route::Embeddings,
            "/v1/models" => Route::Models,
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/status" => Route::Status,
            "/metrics" => Route::Metrics,
            "/dashboard" => Route::Dashboard,
            "/dashboard/data" => Route::DashboardData,
            p => {
                if let Some(id) = p.strip_prefix("/v1/models/") {
                    Route::Model(id)
                } else if let Some(rest) = p.strip_prefix("/v1/responses/") {
                    match rest.strip_suffix("/input_items") {
                        Some(id) if !id.is_empty() && !id.contains('/') => Route::InputItems(id),
                        _ if !rest.is_empty() && !rest.contains('/') => Route::Stored(rest),
                        _ => return None,
                    }
                } else {
                    return None;
                }
            }
        })
    }

    fn allow(&self) -> &'static str {
        match self {
            Route::Front(_) | Route::Embeddings => "POST",
            Route::Stored(_) => "GET, HEAD, DELETE",
            _ => "GET, HEAD",
        }
    }
}

/// Routing by method and path; `/v1/*` needs a client key when keys are configured.
///
/// This future is allocated per request, and moving a future into its box writes
/// all of its bytes: the rarer branches that wait on the network (passthrough,
/// stored responses) are boxed so they do not size it; the front doors (~5 KiB since
/// their futures stopped holding copies of themselves) are awaited in place.
async fn handle(app: Arc<App>, req: http::Request<Incoming>) -> http::Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let request_id = respond::request_id(&req);
    let route = Route::of(&path);
    // Errors answer in the shape of the API the client speaks.
    let door: &dyn Dialect = match &route {
        Some(Route::Front(d)) => *d,
        _ if path.starts_with("/v1/messages") => &MESSAGES,
        _ => &CHAT,
    };
    if let Err(e) = headers::check(req.headers(), &app.config.load().server.limits) {
        return error_response(door, &e, &request_id);
    }
    if path.starts_with("/v1/") && !auth::authorized(&app, &req) {
        return error_response(door, &ProxyError::Unauthorized, &request_id);
    }
    let Some(route) = route else {
        let snap = app.config.load_full();
        if let Some(policy) = &snap.passthrough {
            match passthrough::classify(&path) {
                Forward::Yes(rest) => {
                    return Box::pin(
                        passthrough::forward(&app, &snap, policy, req, rest, request_id.clone())
                            .instrument(request_span(&request_id)),
                    )
                    .await;
                }
                Forward::Refused(why) => {
                    let err = ProxyError::BadRequest(format!("not forwarded: {path} has {why}"));
                    return error_response(door, &err, &request_id);
                }
                Forward::No => {}
            }
        }
        return error_response(door, &ProxyError::NotFound(path.clone()), &request_id);
    };
    let allow = route.allow();
    let method_ok = allow.split(", ").any(|m| m == method.as_str());
    if !method_ok {
        let mut resp = error_response(
            door,
            &ProxyError::MethodNotAllowed(method.to_string()),
            &request_id,
        );
        resp.headers_mut()
            .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
        return resp;
    }
    match route {
        Route::Front(door) => {
            let span = request_span(&request_id);
            // A front door's future is large (kilobytes): it is wrapped where it is
            // awaited, as few moves as possible and no box (passing it to a helper
            // copied it twice more: ~40k instructions a request; boxing it cost a
            // large allocation a request).
            match app.telemetry.request(req.headers(), door.api()) {
                None => {
                    exchange::handle(app, req, request_id, door)
                        .instrument(span)
                        .await
                }
                Some(trace) => {
                    let resp = trace
                        .around(exchange::handle(app, req, request_id, door).instrument(span))
                        .await;
                    traced_answer(&trace, resp)
                }
            }
        }
        Route::Embeddings => {
            let span = request_span(&request_id);
            match app.telemetry.request(req.headers(), "embeddings") {
                None => {
                    embeddings::handle(app, req, request_id)
                        .instrument(span)
                        .await
                }
                Some(trace) => {
                    let resp = trace
                        .around(embeddings::handle(app, req, request_id).instrument(span))
                        .await;
                    traced_answer(&trace, resp)
                }
            }
        }
        // Anthropic's SDKs send anthropic-version: answer in their list shape.
        Route::Models if req.headers().contains_key("anthropic-version") => {
            admin::anthropic_models(&app)
        }
        Route::Models => admin::models(&app),
        Route::Model(id) => admin::model(&app, id, &request_id),
        Route::Stored(id) if method == http::Method::DELETE => {
            Box::pin(stored::delete(&app, id, &request_id)).await
        }
        Route::Stored(id) => Box::pin(stored::get(&app, id, &request_id)).await,
        Route::InputItems(id) => {
            Box::pin(stored::input_items(
                &app,
                id,
                req.uri().query(),
                &request_id,
            ))
            .await
        }
        Route::Healthz => admin::healthz(),
        Route::Readyz => admin::readyz(&app),
        Route::Status => admin::status(&app),
        Route::Metrics => admin::metrics(&app),
        Route::Dashboard => dashboard::page(),
        Route::DashboardData => dashboard::data(&app),
    }
}

/// Records on the request span what the client got.
fn traced_answer(
    trace: &crate::telemetry::RequestTrace,
    resp: http::Response<Body>,
) -> http::Response<Body> {
    let attempts = resp
        .headers()
        .get(const { http::HeaderName::from_static("x-understudy-attempts") })
        .and_then(|v| v.to_str().ok()?.parse().ok());
    trace.answered(resp.status(), attempts);
    resp
}

/// Every log line of a request carries the id the client sees.
fn request_span(request_id: &http::HeaderValue) -> tracing::Span {
    tracing::info_span!(
        "request",
        id = %String::from_utf8_lossy(request_id.as_bytes())
    )
}
