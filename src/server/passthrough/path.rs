//! Which paths `[passthrough]` forwards: any `/v1/*` outside the namespaces the proxy
//! serves itself, and nothing that could climb out of the provider's base path (the
//! request carries the provider's key, which may open other services on its host).

/// The proxy's own namespaces, everything under them included. Their ids are the
/// proxy's (stored responses), another API's (Anthropic's `/v1/messages/batches`),
/// or mean something only per route (models): a path under them that no route takes
/// stays 404, and a wrong method 405.
const OWNED: [&str; 5] = [
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/messages",
    "/v1/models",
    "/v1/embeddings",
];

/// What a request path is to passthrough.
#[derive(Debug, PartialEq, Eq)]
pub enum Forward<'p> {
    /// Not a passthrough path: 404, as without `[passthrough]`.
    No,
    /// Forward it; this follows the provider's `base_url` (`/audio/speech`).
    Yes(&'p str),
    /// A passthrough path the proxy will not forward, and why.
    Refused(&'static str),
}

pub fn classify(path: &str) -> Forward<'_> {
    let Some(rest) = path
        .strip_prefix("/v1")
        .filter(|r| r.len() > 1 && r.starts_with('/'))
    else {
        return Forward::No;
    };
    let owned = |o: &&str| {
        path.strip_prefix(*o)
            .is_some_and(|r| r.is_empty() || r.starts_with('/'))
    };
    if OWNED.iter().any(owned) {
        return Forward::No;
    }
    let segments: Vec<&str> = rest[1..].split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        if seg.is_empty() && i + 1 < segments.len() {
            return Forward::Refused("an empty path segment");
        }
        let lower = seg.to_ascii_lowercase();
        let dots = lower.replace("%2e", ".");
        if dots == "." || dots == ".." {
            return Forward::Refused("a '.' or '..' path segment");
        }
        if lower.contains("%2f") || lower.contains("%5c") || seg.contains('\\') {
            return Forward::Refused("an encoded '/' or a '\\' in the path");
        }
    }
    Forward::Yes(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_v1_paths_are_forwarded_after_their_v1() {
        for (path, rest) in [
            ("/v1/moderations", "/moderations"),
            ("/v1/audio/transcriptions", "/audio/transcriptions"),
            ("/v1/files/file-abc/content", "/files/file-abc/content"),
            ("/v1/completions", "/completions"),
            ("/v1/chat", "/chat"),
            ("/v1/modelsx", "/modelsx"),
            ("/v1/files/", "/files/"),
            ("/v1/files/a.b..c", "/files/a.b..c"),
        ] {
            assert_eq!(classify(path), Forward::Yes(rest), "{path}");
        }
    }

    #[test]
    fn the_proxys_own_namespaces_and_other_paths_are_not() {
        for path in [
            "/v1/chat/completions",
            "/v1/chat/completions/chatcmpl-1",
            "/v1/responses/resp_1/cancel",
            "/v1/messages/batches",
            "/v1/models/gpt-4o",
            "/v1/embeddings",
            "/v1",
            "/v1/",
            "/v2/files",
            "/status",
            "/V1/files",
        ] {
            assert_eq!(classify(path), Forward::No, "{path}");
        }
    }

    #[test]
    fn paths_that_could_leave_the_base_path_are_refused() {
        for path in [
            "/v1/../admin",
            "/v1/files/../../other",
            "/v1/files/%2e%2E/x",
            "/v1/files/.%2e",
            "/v1/./files",
            "/v1/files//x",
            "/v1/files/a%2Fb",
            "/v1/files/a%5cb",
            "/v1/files/a\\b",
        ] {
            assert!(
                matches!(classify(path), Forward::Refused(_)),
                "{path}: {:?}",
                classify(path)
            );
        }
    }
}
