//! Azure OpenAI: the OpenAI wire format behind a deployment URL, an `api-version`
//! query parameter and an `api-key` header. The target's model is the deployment.

use bytes::Bytes;
use http::HeaderName;

use serde::Deserialize;

use super::openai::{Endpoint, OpenAiWire};
use super::openai_responses::Mode;
use super::settings::{check_version, typed};
use super::{join_url, set_secret, AdapterError, Kind, KindSettings, Provider, Target};

pub(super) struct Azure;

pub(super) static ADAPTER: OpenAiWire<Azure> = OpenAiWire(Azure);

const DEFAULT_API_VERSION: &str = "2024-10-21";
const API_KEY: HeaderName = HeaderName::from_static("api-key");

/// `[providers.NAME]` keys of kind "azure".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Settings {
    /// The `api-version` query parameter.
    api_version: Option<String>,
    /// `"native"`: Responses-API clients reach the deployment's `/openai/v1/responses`.
    #[serde(default)]
    responses: Mode,
}

fn api_version(provider: &Provider) -> &str {
    provider
        .settings::<Settings>()
        .and_then(|s| s.api_version.as_deref())
        .unwrap_or(DEFAULT_API_VERSION)
}

/// `{base_url}/openai/deployments/{deployment}/{operation}?api-version=…`: the
/// target's model is the deployment.
fn deployment_url(target: &Target, operation: &str) -> Result<http::Uri, AdapterError> {
    if target.model.contains(['/', '?', '#']) {
        return Err(AdapterError::InvalidRequest(format!(
            "azure deployment name {:?} may not contain '/', '?' or '#'",
            target.model
        )));
    }
    let path = format!(
        "/openai/deployments/{}/{operation}?api-version={}",
        target.model,
        api_version(&target.provider)
    );
    join_url(&target.provider.base_url, &path)
}

impl Endpoint for Azure {
    fn settings(&self, table: toml::Table) -> Result<Box<dyn KindSettings>, String> {
        let s: Settings = typed(Kind::Azure, table)?;
        if let Some(v) = &s.api_version {
            check_version("api_version", v, DEFAULT_API_VERSION)?;
        }
        Ok(Box::new(s))
    }

    fn chat_url(&self, target: &Target) -> Result<http::Uri, AdapterError> {
        deployment_url(target, "chat/completions")
    }

    fn embeddings_url(&self, target: &Target) -> Result<http::Uri, AdapterError> {
        deployment_url(target, "embeddings")
    }

    fn probe_url(&self, provider: &Provider) -> Result<http::Uri, AdapterError> {
        let path = format!("/openai/models?api-version={}", api_version(provider));
        join_url(&provider.base_url, &path)
    }

    fn responses_mode(&self, provider: &Provider) -> Mode {
        provider
            .settings::<Settings>()
            .map_or(Mode::Translate, |s| s.responses)
    }

    fn responses_url(&self, target: &Target) -> Result<http::Uri, AdapterError> {
        join_url(&target.provider.base_url, "/openai/v1/responses")
    }

    /// Azure serves audio and images per deployment, with an `api-version`, under
    /// `/openai/…`: a client's OpenAI path cannot be forwarded as it is.
    fn passthrough_url(
        &self,
        _provider: &Provider,
        _rest: &str,
    ) -> Option<Result<http::Uri, AdapterError>> {
        None
    }

    fn base_url_hint(&self, provider: &Provider) -> Option<&'static str> {
        let path = super::url_path(&provider.base_url);
        (!path.is_empty()).then_some(
            "base_url is the resource root (https://RESOURCE.openai.azure.com): remove its path",
        )
    }

    fn authorize(&self, req: &mut http::Request<Bytes>, key: &str) -> Result<(), AdapterError> {
        set_secret(req, API_KEY, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::ChatRequest;
    use crate::providers::testing::target;
    use crate::providers::Adapter;
    use crate::providers::Kind;

    #[test]
    fn deployment_url_and_api_key_header() {
        let t = target(Kind::Azure, "https://res.openai.azure.com");
        let req = ChatRequest::parse(Bytes::from_static(
            br#"{"model":"default","messages":[{"role":"user","content":"hi"}]}"#,
        ))
        .unwrap();
        let out = ADAPTER.build_request(&req, &t).unwrap();
        assert_eq!(
            out.uri(),
            "https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(out.headers()["api-key"], "sk-secret");
        assert!(out.headers().get("authorization").is_none());
        let embed = crate::canonical::EmbedRequest::parse(Bytes::from_static(
            br#"{"model":"default","input":["hi"],"dimensions":8}"#,
        ))
        .unwrap();
        let out = ADAPTER.build_embeddings(&embed, &t).unwrap();
        assert_eq!(
            out.uri(),
            "https://res.openai.azure.com/openai/deployments/gpt-4o/embeddings?api-version=2024-10-21"
        );
        assert_eq!(out.headers()["api-key"], "sk-secret");
        let body: serde_json::Value = serde_json::from_slice(out.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"model": "gpt-4o", "input": ["hi"], "dimensions": 8})
        );
        let probe = ADAPTER.probe_request(&t.provider).unwrap();
        assert_eq!(
            probe.uri(),
            "https://res.openai.azure.com/openai/models?api-version=2024-10-21"
        );
    }
}
