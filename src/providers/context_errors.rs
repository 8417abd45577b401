//! Each kind's "prompt too long" error, read by its own adapter into
//! [`FailureClass::ContextTooLong`] (recorded bodies in fixtures/), while the same
//! kind's other 400s stay the client's fault.

use http::{HeaderMap, StatusCode};

use super::{adapter_for, FailureClass, Kind};

fn class(kind: Kind, status: u16, body: &[u8]) -> (FailureClass, String) {
    let status = StatusCode::from_u16(status).unwrap();
    let e = adapter_for(kind).parse_error(status, &HeaderMap::new(), body);
    assert_eq!(e.status, status.as_u16(), "{kind:?}: the status is kept");
    (e.class, e.message)
}

#[test]
fn every_kind_reads_its_context_length_error_as_its_own_class() {
    let cases: &[(Kind, &[u8], &str)] = &[
        (
            Kind::Openai,
            include_bytes!("../../fixtures/openai/error_context_length_exceeded.json"),
            "maximum context length is 128000 tokens",
        ),
        (
            Kind::Azure,
            include_bytes!("../../fixtures/openai/error_azure_context_length_exceeded.json"),
            "maximum context length is 32768 tokens",
        ),
        // Embeddings: the older wording, with no code.
        (
            Kind::Openai,
            include_bytes!("../../fixtures/openai/error_embeddings_context_length.json"),
            "maximum context length is 8192 tokens, however you requested 8238",
        ),
        // OpenAI-compatible servers: vLLM (today's envelope and the one before it),
        // llama.cpp's server.
        (
            Kind::Openai,
            include_bytes!("../../fixtures/openai/error_vllm_context_length.json"),
            "maximum context length is 16384 tokens",
        ),
        (
            Kind::Openai,
            include_bytes!("../../fixtures/openai/error_vllm_legacy_context_length.json"),
            "maximum context length is 6048 tokens",
        ),
        (
            Kind::Openai,
            include_bytes!("../../fixtures/openai/error_llamacpp_context_size.json"),
            "exceeds the available context size",
        ),
        (
            Kind::Anthropic,
            include_bytes!("../../fixtures/anthropic/error_prompt_too_long.json"),
            "prompt is too long: 208656 tokens > 200000 maximum",
        ),
        (
            Kind::Anthropic,
            include_bytes!("../../fixtures/anthropic/error_context_limit.json"),
            "input length and `max_tokens` exceed context limit",
        ),
        (
            Kind::Gemini,
            include_bytes!("../../fixtures/gemini/error_400_input_token_count.json"),
            "The input token count (1200293) exceeds the maximum number of tokens allowed",
        ),
        (
            Kind::Ollama,
            include_bytes!("../../fixtures/ollama/error_context_length.json"),
            "the prompt is longer than the context length",
        ),
        (
            Kind::Ollama,
            br#"{"error":"the input length exceeds the context length"}"#,
            "the input length exceeds the context length",
        ),
    ];
    for (kind, body, message) in cases {
        let (class, got) = class(*kind, 400, body);
        assert_eq!(class, FailureClass::ContextTooLong, "{kind:?}: {got}");
        assert!(
            got.contains(message),
            "{kind:?}: the provider's message: {got}"
        );
    }
}

#[test]
fn other_bad_requests_stay_the_callers_fault() {
    let cases: &[(Kind, &[u8])] = &[
        (
            Kind::Openai,
            br#"{"error":{"message":"Invalid 'messages[0].role'","type":"invalid_request_error","param":"messages","code":"invalid_value"}}"#,
        ),
        (
            Kind::Anthropic,
            include_bytes!("../../fixtures/anthropic/error_invalid_request.json"),
        ),
        (
            Kind::Gemini,
            include_bytes!("../../fixtures/gemini/error_400_invalid_argument.json"),
        ),
        (Kind::Ollama, br#"{"error":"invalid options: num_predict"}"#),
    ];
    for (kind, body) in cases {
        let (class, got) = class(*kind, 400, body);
        assert_eq!(class, FailureClass::CallerFault, "{kind:?}: {got}");
    }
    // The wording only counts on a 400: a 500 that mentions it is the server's.
    let (class, _) = class(
        Kind::Ollama,
        500,
        br#"{"error":"input exceeds maximum context length and cannot be truncated further"}"#,
    );
    assert_eq!(class, FailureClass::Transient);
}
