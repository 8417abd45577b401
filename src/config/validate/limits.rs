//! `[server]`'s connection limits and a provider's `max_concurrency`: the keys that
//! bound what a client or a burst of requests can make the proxy hold.

use super::super::raw::{RawProvider, RawServer};
use super::super::ConnLimits;
use crate::providers::Concurrency;

/// What one connection may hold open and for how long.
pub(super) fn conn_limits(s: &RawServer) -> Result<ConnLimits, String> {
    if s.max_connections == 0 {
        return Err("server.max_connections: must be at least 1".into());
    }
    for (key, d) in [
        ("header_timeout", s.header_timeout),
        ("idle_timeout", s.idle_timeout),
    ] {
        if d.0.is_zero() {
            return Err(format!("server.{key}: must be greater than 0"));
        }
    }
    // hyper's HTTP/1.1 read buffer cannot be smaller than 8 KiB; a smaller total
    // would be a promise the listener does not keep.
    const MIN_TOTAL: usize = 8 * 1024;
    if s.max_header_total_bytes < MIN_TOTAL {
        return Err(format!(
            "server.max_header_total_bytes: must be at least {MIN_TOTAL}"
        ));
    }
    if s.max_header_bytes == 0 || s.max_header_bytes > s.max_header_total_bytes {
        return Err(
            "server.max_header_bytes: must be at least 1 and at most max_header_total_bytes".into(),
        );
    }
    Ok(ConnLimits {
        max_connections: s.max_connections,
        header_timeout: s.header_timeout.0,
        idle_timeout: s.idle_timeout.0,
        max_header_bytes: s.max_header_bytes,
        max_header_total_bytes: s.max_header_total_bytes,
    })
}

/// A second or so of queueing: long enough to ride out a burst, short enough that
/// failing over to the next target is still quick.
const DEFAULT_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// `providers.NAME.max_concurrency` with its queue; the queue keys alone are an error.
pub(super) fn concurrency(key: &str, p: &RawProvider) -> Result<Option<Concurrency>, String> {
    let Some(max) = p.max_concurrency else {
        if p.max_queue.is_some() || p.queue_wait.is_some() {
            return Err(format!(
                "{key}: max_queue and queue_wait need max_concurrency"
            ));
        }
        return Ok(None);
    };
    if max == 0 {
        return Err(format!("{key}.max_concurrency: must be at least 1"));
    }
    Ok(Some(Concurrency {
        max,
        queue: p.max_queue.unwrap_or(max),
        wait: p.queue_wait.map_or(DEFAULT_QUEUE_WAIT, |d| d.0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::RawConfig;

    fn raw(text: &str) -> RawConfig {
        toml::from_str(text).expect("valid TOML")
    }

    #[test]
    fn server_defaults_are_the_documented_ones() {
        let l = conn_limits(&raw("").server).expect("defaults are valid");
        assert_eq!(l.max_connections, 10_000);
        assert_eq!(l.header_timeout.as_secs(), 30);
        assert_eq!(l.idle_timeout.as_secs(), 75);
        assert_eq!(l.max_header_bytes, 16 * 1024);
        assert_eq!(l.max_header_total_bytes, 64 * 1024);
    }

    #[test]
    fn bad_server_limits_name_their_key() {
        for (text, key) in [
            ("[server]\nmax_connections = 0", "server.max_connections"),
            ("[server]\nheader_timeout = \"0s\"", "server.header_timeout"),
            ("[server]\nidle_timeout = \"0s\"", "server.idle_timeout"),
            (
                "[server]\nmax_header_total_bytes = 100",
                "server.max_header_total_bytes",
            ),
            (
                "[server]\nmax_header_bytes = 70000",
                "server.max_header_bytes",
            ),
        ] {
            let err = conn_limits(&raw(text).server).expect_err(text);
            assert!(err.starts_with(key), "{text}: {err}");
        }
    }

    fn provider(keys: &str) -> RawProvider {
        let mut c = raw(&format!(
            "[providers.p]\nkind = \"openai\"\nbase_url = \"http://x\"\n{keys}"
        ));
        c.providers.remove("p").expect("declared")
    }

    #[test]
    fn concurrency_defaults_its_queue_to_the_limit() {
        assert_eq!(concurrency("providers.p", &provider("")), Ok(None));
        let c = concurrency("providers.p", &provider("max_concurrency = 8"))
            .expect("valid")
            .expect("limited");
        assert_eq!((c.max, c.queue, c.wait), (8, 8, DEFAULT_QUEUE_WAIT));
        let c = concurrency(
            "providers.p",
            &provider("max_concurrency = 2\nmax_queue = 0\nqueue_wait = \"50ms\""),
        )
        .expect("valid")
        .expect("limited");
        assert_eq!((c.queue, c.wait.as_millis()), (0, 50));
    }

    #[test]
    fn bad_concurrency_names_its_key() {
        let err = concurrency("providers.p", &provider("max_concurrency = 0")).expect_err("0");
        assert!(err.starts_with("providers.p.max_concurrency"), "{err}");
        let err = concurrency("providers.p", &provider("max_queue = 3")).expect_err("alone");
        assert!(err.contains("need max_concurrency"), "{err}");
    }
}
