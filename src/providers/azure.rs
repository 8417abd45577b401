//! Azure OpenAI: the OpenAI wire format behind a deployment URL, an `api-version`
//! query parameter and an `api-key` header. The target's model is the deployment.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode};

use super::openai::{parse_completion, reject_foreign_settings, with_model, PassThrough};
use super::{
    get, join_url, json_post, openai_style_error, set_secret, Adapter, AdapterError,
    StreamTranslator, UpstreamError,
};
use crate::config::{Provider, Target};
use crate::openai::{ChatRequest, ChatResponse};

pub struct Azure;

const DEFAULT_API_VERSION: &str = "2024-10-21";
const API_KEY: HeaderName = HeaderName::from_static("api-key");

fn api_version(provider: &Provider) -> &str {
    provider
        .api_version
        .as_deref()
        .unwrap_or(DEFAULT_API_VERSION)
}

impl Adapter for Azure {
    fn validate(&self, provider: &Provider) -> Result<(), String> {
        reject_foreign_settings(provider, &["version", "max_tokens"])?;
        match &provider.api_version {
            Some(v)
                if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
            {
                Err(format!(
                    "api_version: {v:?} is not a version like \"2024-10-21\""
                ))
            }
            _ => Ok(()),
        }
    }

    fn build_request(
        &self,
        req: &ChatRequest,
        target: &Target,
    ) -> Result<http::Request<Bytes>, AdapterError> {
        let p = &target.provider;
        if target.model.contains(['/', '?', '#']) {
            return Err(AdapterError::InvalidRequest(format!(
                "azure deployment name {:?} may not contain '/', '?' or '#'",
                target.model
            )));
        }
        let path = format!(
            "/openai/deployments/{}/chat/completions?api-version={}",
            target.model,
            api_version(p)
        );
        let mut out = json_post(
            join_url(&p.base_url, &path)?,
            p,
            with_model(req, &target.model)?,
        )?;
        if let Some(key) = &p.api_key {
            set_secret(&mut out, API_KEY, key.expose())?;
        }
        Ok(out)
    }

    fn parse_response(
        &self,
        _req: &ChatRequest,
        target: &Target,
        body: &[u8],
    ) -> Result<ChatResponse, AdapterError> {
        parse_completion(body, target)
    }

    fn parse_error(&self, status: StatusCode, _headers: &HeaderMap, body: &[u8]) -> UpstreamError {
        openai_style_error(status, body)
    }

    fn stream_translator(&self, _req: &ChatRequest, target: &Target) -> Box<dyn StreamTranslator> {
        Box::new(PassThrough::new(target))
    }

    fn probe_request(&self, provider: &Provider) -> Result<http::Request<Bytes>, AdapterError> {
        let path = format!("/openai/models?api-version={}", api_version(provider));
        let mut req = get(join_url(&provider.base_url, &path)?, provider)?;
        if let Some(key) = &provider.api_key {
            set_secret(&mut req, API_KEY, key.expose())?;
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::target;
    use crate::providers::Kind;

    #[test]
    fn deployment_url_and_api_key_header() {
        let t = target(Kind::Azure, "https://res.openai.azure.com");
        let req = ChatRequest::parse(Bytes::from_static(
            br#"{"model":"default","messages":[{"role":"user","content":"hi"}]}"#,
        ))
        .unwrap();
        let out = Azure.build_request(&req, &t).unwrap();
        assert_eq!(
            out.uri(),
            "https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(out.headers()["api-key"], "sk-secret");
        assert!(out.headers().get("authorization").is_none());
        let probe = Azure.probe_request(&t.provider).unwrap();
        assert_eq!(
            probe.uri(),
            "https://res.openai.azure.com/openai/models?api-version=2024-10-21"
        );
    }
}
