//! Response builders shared by the handlers.

use http::{HeaderValue, Response, StatusCode};
use hyper::body::Incoming;

use crate::error::ProxyError;
use crate::frontdoor::Dialect;
use crate::http::body::{full, Body};

pub const REQUEST_ID: &str = "x-request-id";

/// The client's `x-request-id` when it is a sane header value, else a fresh one.
pub fn request_id(req: &http::Request<Incoming>) -> HeaderValue {
    req.headers()
        .get(REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&crate::canonical::random_id("req_", 24))
                .unwrap_or(HeaderValue::from_static("req_unknown"))
        })
}

pub fn json(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// An error in the front door's shape, with `Retry-After` where the error carries one.
pub fn error_response(
    door: &dyn Dialect,
    err: &ProxyError,
    request_id: &HeaderValue,
) -> Response<Body> {
    let r = door.render_error(err);
    let mut resp = json(r.status, r.body);
    if let Some(ra) = r.retry_after {
        resp.headers_mut().insert(http::header::RETRY_AFTER, ra);
    }
    resp.headers_mut().insert(REQUEST_ID, request_id.clone());
    resp
}
