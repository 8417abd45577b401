//! Client keys: `/v1/*` needs one when `server.api_keys_env` names any, sent as
//! `Authorization: Bearer KEY` or `x-api-key: KEY`.

use hyper::body::Incoming;
use subtle::ConstantTimeEq;

use crate::app::App;

/// Constant-time comparison against every configured key.
pub fn authorized(app: &App, req: &http::Request<Incoming>) -> bool {
    let snap = app.config.load();
    let keys = &snap.server.api_keys;
    if keys.is_empty() {
        return true;
    }
    // `Authorization: Bearer` (OpenAI's SDKs), or `x-api-key` (Anthropic's).
    let bearer = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let api_key = req.headers().get("x-api-key").and_then(|v| v.to_str().ok());
    let Some(given) = bearer.or(api_key).map(str::trim) else {
        return false;
    };
    let mut ok = subtle::Choice::from(0u8);
    for k in keys {
        ok |= k.expose().as_bytes().ct_eq(given.as_bytes());
    }
    ok.into()
}
