//! An embeddings request as the walk's [`Work`]: built and read by each target's
//! adapter; the answer is whole, so a bad one simply fails over.

use bytes::Bytes;

use super::fit::Estimate;
use super::{Answered, Outcome, Work};
use crate::canonical::{EmbedRequest, EmbedResponse};
use crate::providers::{adapter_for, build_embeddings_for, Target};

impl Work for EmbedRequest {
    type Answer = Box<EmbedResponse>;

    fn build(&self, target: &Target) -> Result<http::Request<Bytes>, String> {
        build_embeddings_for(self, target)
    }

    fn facts(answer: &Self::Answer, _capture: bool) -> Option<crate::telemetry::Facts> {
        Some(crate::telemetry::Facts {
            response_model: Some(answer.model.as_str().into()),
            input_tokens: Some(answer.usage.prompt_tokens),
            ..Default::default()
        })
    }

    fn estimate(&self) -> Option<Estimate> {
        Some(Estimate::of_embeddings(self))
    }

    async fn read(&self, answered: Answered<'_>) -> Result<Self::Answer, Outcome> {
        let target = answered.target.clone();
        let adapter = adapter_for(target.provider.kind);
        answered
            .whole(|body| adapter.parse_embeddings(self, &target, body))
            .await
            .map(Box::new)
    }
}
