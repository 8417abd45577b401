//! Builders shared by the adapters' unit tests.

use std::sync::Arc;

use bytes::Bytes;

use super::{Kind, KindSettings};
use crate::canonical::{ChatRequest, EmbedRequest};
use crate::providers::{Provider, Secret, Target, Timeouts};

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
        settings: settings(kind, ""),
        egress: Arc::new(crate::upstream::Egress::direct().expect("default egress")),
        prices: Default::default(),
        concurrency: None,
    };
    adjust(&mut provider);
    Target::new(Arc::new(provider), model, 1, Timeouts::default())
}

/// A kind's settings from the TOML text of its own keys; panics if invalid (tests only).
pub(crate) fn settings(kind: Kind, toml_text: &str) -> Box<dyn KindSettings> {
    let table: toml::Table = toml::from_str(toml_text).expect("valid TOML");
    super::adapter_for(kind)
        .settings(table)
        .expect("valid settings")
}

/// A client request from its JSON text; panics on invalid input (tests only).
pub(crate) fn request(json: &str) -> ChatRequest {
    ChatRequest::parse(Bytes::from(json.to_string())).expect("valid test request")
}

/// An embeddings request from its JSON text; panics on invalid input (tests only).
pub(crate) fn embed_request(json: &str) -> EmbedRequest {
    EmbedRequest::parse(Bytes::from(json.to_string())).expect("valid test request")
}

/// `fixtures/{path}` as text (tests only).
pub(crate) fn fixture(path: &str) -> String {
    let path = format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
