//! Builders shared by the adapters' unit tests.

use std::sync::Arc;

use bytes::Bytes;

use super::Kind;
use crate::canonical::ChatRequest;
use crate::config::{Provider, Secret, Target, Timeouts};

/// A target `p/gpt-4o` of `kind` at `base`, key `sk-secret`, extra header `x-extra: 1`.
pub(crate) fn target(kind: Kind, base: &str) -> Target {
    target_with(kind, base, "gpt-4o", |_| {})
}

/// Like [`target`] with another model and a chance to adjust the provider.
pub(crate) fn target_with(
    kind: Kind,
    base: &str,
    model: &str,
    adjust: impl FnOnce(&mut Provider),
) -> Target {
    let mut provider = Provider {
        name: "p".into(),
        kind,
        base_url: base.into(),
        api_key_env: Some("K".into()),
        api_key: Some(Secret::new("sk-secret".into())),
        disabled_reason: None,
        headers: vec![(
            http::HeaderName::from_static("x-extra"),
            http::HeaderValue::from_static("1"),
        )],
        timeouts: Timeouts::default(),
        version: None,
        max_tokens: None,
        api_version: None,
    };
    adjust(&mut provider);
    Target::new(Arc::new(provider), model, 1, Timeouts::default())
}

/// A client request from its JSON text; panics on invalid input (tests only).
pub(crate) fn request(json: &str) -> ChatRequest {
    ChatRequest::parse(Bytes::from(json.to_string())).expect("valid test request")
}
