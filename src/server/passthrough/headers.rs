//! Which headers cross the proxy on a forwarded request, each way.

use http::header::{HeaderMap, HeaderName, CONNECTION};

/// Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, not the
/// message.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Client headers never forwarded beyond those: what hyper sets for the upstream
/// connection itself (`host`, framing), the client's credentials (the provider gets
/// the proxy's key), the org and project that key bills (the operator's choice, in
/// the provider's `headers`), and `accept-encoding`, so error bodies arrive as text
/// the proxy can take keys out of.
const NOT_FORWARDED: [&str; 10] = [
    "host",
    "content-length",
    "transfer-encoding",
    "expect",
    "authorization",
    "x-api-key",
    "api-key",
    "openai-organization",
    "openai-project",
    "accept-encoding",
];

/// Upstream headers not passed back beyond the hop-by-hop ones: framing hyper sets
/// for the client's connection, and the request id (the proxy answers with its own).
const NOT_RETURNED: [&str; 2] = ["transfer-encoding", "x-request-id"];

/// Copies the client's headers that may go upstream into `to`, except where `to`
/// already has the header (the provider's own headers and key win).
pub fn forward_request(from: &HeaderMap, to: &mut HeaderMap) {
    let named = connection_tokens(from);
    for name in from.keys() {
        let s = name.as_str();
        if HOP_BY_HOP.contains(&s)
            || NOT_FORWARDED.contains(&s)
            || named.contains(name)
            || to.contains_key(name)
        {
            continue;
        }
        for value in from.get_all(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Copies the upstream's answer headers that go back to the client into `to`.
pub fn return_response(from: &HeaderMap, to: &mut HeaderMap) {
    let named = connection_tokens(from);
    for name in from.keys() {
        let s = name.as_str();
        if HOP_BY_HOP.contains(&s) || NOT_RETURNED.contains(&s) || named.contains(name) {
            continue;
        }
        for value in from.get_all(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Headers a `Connection` header names are hop-by-hop too.
fn connection_tokens(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn the_client_keeps_its_content_headers_and_loses_its_credentials() {
        let client = map(&[
            ("content-type", "multipart/form-data; boundary=xyz"),
            ("accept", "application/json"),
            ("accept", "text/event-stream"),
            ("openai-beta", "assistants=v2"),
            ("x-stainless-lang", "python"),
            ("authorization", "Bearer client-key"),
            ("x-api-key", "client-key"),
            ("api-key", "client-key"),
            ("openai-organization", "org-client"),
            ("openai-project", "proj-client"),
            ("host", "proxy:8080"),
            ("content-length", "12"),
            ("transfer-encoding", "chunked"),
            ("expect", "100-continue"),
            ("accept-encoding", "gzip"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic abc"),
        ]);
        let mut up = map(&[
            ("authorization", "Bearer sk-provider"),
            ("x-stainless-lang", "operator"),
        ]);
        forward_request(&client, &mut up);
        let mut names: Vec<&str> = up.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "accept",
                "authorization",
                "content-type",
                "openai-beta",
                "x-stainless-lang"
            ]
        );
        assert_eq!(up["authorization"], "Bearer sk-provider");
        assert_eq!(
            up["x-stainless-lang"], "operator",
            "the provider's headers win"
        );
        assert_eq!(up["content-type"], "multipart/form-data; boundary=xyz");
        assert_eq!(up.get_all("accept").iter().count(), 2);
    }

    #[test]
    fn the_answer_keeps_its_headers_but_hop_by_hop_ones_and_the_request_id() {
        let upstream = map(&[
            ("content-type", "audio/mpeg"),
            ("content-length", "300000"),
            ("openai-processing-ms", "12"),
            ("x-ratelimit-remaining-requests", "99"),
            ("x-request-id", "req_upstream"),
            ("transfer-encoding", "chunked"),
            ("connection", "close, x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
        ]);
        let mut out = HeaderMap::new();
        return_response(&upstream, &mut out);
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "content-length",
                "content-type",
                "openai-processing-ms",
                "x-ratelimit-remaining-requests"
            ]
        );
    }
}
