//! Which proxy a provider's connections go through: the `*_PROXY` variables as curl
//! reads them, or the provider's own `proxy` key. A proxy URL may carry credentials,
//! so only its `host:port` is ever shown.

use std::sync::Arc;

use http::Uri;
use hyper_util::client::proxy::matcher::{Intercept, Matcher};

/// curl's port for a proxy URL that names none.
const DEFAULT_PORT: u16 = 1080;

/// Where connections go first: straight to the upstream, or through a proxy chosen
/// per destination (hyper-util's matcher: `NO_PROXY` as curl reads it, CIDR ranges
/// included).
#[derive(Clone, Default)]
pub struct ProxyRule {
    matcher: Option<Arc<Matcher>>,
    /// Everything the rule was built from, credentials included: part of the client
    /// cache's key, never shown.
    spec: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyUrlError {
    #[error("not a proxy URL like http://[user:pass@]host:port (the value is not shown: it may hold a password)")]
    NotUrl,
    #[error("https:// proxies (TLS to the proxy itself) are not supported; use the proxy's http:// address (HTTPS upstreams are still tunnelled with CONNECT)")]
    Tls,
    #[error("{0}:// proxies are not supported; use an http:// proxy")]
    Scheme(String),
}

/// A `*_PROXY` variable that does not hold a usable proxy URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {var}: {error}")]
pub struct EnvProxyError {
    pub var: &'static str,
    pub error: ProxyUrlError,
}

impl ProxyRule {
    /// No proxy (`proxy = "none"`, or no proxy variable set).
    pub fn direct() -> ProxyRule {
        ProxyRule::default()
    }

    /// `proxy = "http://…"`: every connection of the provider goes through it,
    /// whatever `NO_PROXY` says — the provider's own setting is the more specific.
    pub fn fixed(url: &str) -> Result<ProxyRule, ProxyUrlError> {
        let url = normalize(url)?;
        Ok(ProxyRule {
            matcher: Some(Arc::new(Matcher::builder().all(url.as_str()).build())),
            spec: format!("fixed {url}"),
        })
    }

    /// The proxy variables as curl reads them: `https_proxy` for https upstreams,
    /// `http_proxy` for http ones, `all_proxy` for either when the specific one is
    /// unset, `no_proxy` for exceptions; the lower-case name wins over the upper-case
    /// one, and an empty value counts as unset.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<ProxyRule, EnvProxyError> {
        let first = |names: [&'static str; 2]| {
            names
                .into_iter()
                .find_map(|var| env(var).filter(|v| !v.trim().is_empty()).map(|v| (var, v)))
        };
        let url = |names| match first(names) {
            None => Ok(String::new()),
            Some((var, v)) => normalize(&v).map_err(|error| EnvProxyError { var, error }),
        };
        let https = url(["https_proxy", "HTTPS_PROXY"])?;
        let http = url(["http_proxy", "HTTP_PROXY"])?;
        let all = url(["all_proxy", "ALL_PROXY"])?;
        let no = first(["no_proxy", "NO_PROXY"]).map_or(String::new(), |(_, v)| v);
        // curl's `*` exempts every host; the matcher applies it to names but not to
        // IP addresses.
        let everything_exempt = no.split(',').any(|e| e.trim() == "*");
        if (https.is_empty() && http.is_empty() && all.is_empty()) || everything_exempt {
            return Ok(ProxyRule::direct());
        }
        let spec = format!("env https={https} http={http} all={all} no={no}");
        let matcher = Matcher::builder()
            .https(https)
            .http(http)
            .all(all)
            .no(no)
            .build();
        Ok(ProxyRule {
            matcher: Some(Arc::new(matcher)),
            spec,
        })
    }

    /// The proxy a connection to `dst` goes through, if any.
    pub fn intercept(&self, dst: &Uri) -> Option<Intercept> {
        self.matcher.as_ref()?.intercept(dst)
    }

    /// `host:port` of the proxy for `dst`, for `/status` and logs.
    pub fn shown_for(&self, dst: &Uri) -> Option<String> {
        self.intercept(dst).map(|via| shown(&via))
    }

    /// What the rule was built from, credentials included: hash it, never show it.
    pub(super) fn spec(&self) -> &str {
        &self.spec
    }
}

impl std::fmt::Debug for ProxyRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.spec.split(' ').next() {
            Some("fixed") => "fixed",
            Some("env") => "environment",
            _ => "direct",
        };
        write!(f, "ProxyRule({kind})")
    }
}

/// A proxy's `host:port`, never its credentials.
pub fn shown(via: &Intercept) -> String {
    via.uri()
        .authority()
        .map_or_else(String::new, |a| a.as_str().to_string())
}

/// `http://[userinfo@]host:port` from what a user wrote (`host:port`, a URL with a
/// path, …), port defaulting to curl's; anything but a plain-HTTP proxy refused.
fn normalize(value: &str) -> Result<String, ProxyUrlError> {
    let value = value.trim();
    let url = if value.contains("://") {
        value.to_string()
    } else {
        format!("http://{value}")
    };
    let uri: Uri = url.parse().map_err(|_| ProxyUrlError::NotUrl)?;
    match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http") => {}
        Some("https") => return Err(ProxyUrlError::Tls),
        Some(other) => return Err(ProxyUrlError::Scheme(other.to_string())),
        None => return Err(ProxyUrlError::NotUrl),
    }
    let authority = uri.authority().ok_or(ProxyUrlError::NotUrl)?;
    let host = authority.host();
    if host.is_empty() {
        return Err(ProxyUrlError::NotUrl);
    }
    let port = authority.port_u16().unwrap_or(DEFAULT_PORT);
    let userinfo = authority
        .as_str()
        .rsplit_once('@')
        .map_or_else(String::new, |(u, _)| format!("{u}@"));
    Ok(format!("http://{userinfo}{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn via(rule: &ProxyRule, dst: &str) -> Option<String> {
        rule.shown_for(&dst.parse().unwrap())
    }

    #[test]
    fn https_and_http_upstreams_use_their_own_variable_and_all_proxy_fills_in() {
        let rule = ProxyRule::from_env(&env(&[
            ("HTTPS_PROXY", "http://s.proxy:3128"),
            ("HTTP_PROXY", "h.proxy:8080"),
        ]))
        .unwrap();
        assert_eq!(
            via(&rule, "https://api.openai.com/v1").as_deref(),
            Some("s.proxy:3128")
        );
        assert_eq!(
            via(&rule, "http://10.0.0.5:11434").as_deref(),
            Some("h.proxy:8080")
        );

        let rule = ProxyRule::from_env(&env(&[
            ("ALL_PROXY", "http://all.proxy:1"),
            ("https_proxy", "http://s.proxy:2"),
        ]))
        .unwrap();
        assert_eq!(via(&rule, "https://x.test").as_deref(), Some("s.proxy:2"));
        assert_eq!(via(&rule, "http://x.test").as_deref(), Some("all.proxy:1"));
    }

    #[test]
    fn the_lower_case_variable_wins_and_an_empty_one_is_unset() {
        let rule = ProxyRule::from_env(&env(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "http://lower:2"),
        ]))
        .unwrap();
        assert_eq!(via(&rule, "https://x.test").as_deref(), Some("lower:2"));
        let rule = ProxyRule::from_env(&env(&[
            ("https_proxy", "  "),
            ("HTTPS_PROXY", "http://upper:1"),
        ]))
        .unwrap();
        assert_eq!(via(&rule, "https://x.test").as_deref(), Some("upper:1"));
        let rule = ProxyRule::from_env(&env(&[("NO_PROXY", "x.test")])).unwrap();
        assert_eq!(
            via(&rule, "https://y.test"),
            None,
            "no proxy variable: direct"
        );
    }

    #[test]
    fn no_proxy_matches_hosts_domain_suffixes_addresses_and_ranges_as_curl_does() {
        let rule = ProxyRule::from_env(&env(&[
            ("HTTPS_PROXY", "http://p:3128"),
            ("HTTP_PROXY", "http://p:3128"),
            (
                "NO_PROXY",
                "internal.corp, .svc.cluster.local,10.0.0.0/8, 192.168.1.7 ,::1",
            ),
        ]))
        .unwrap();
        let direct = [
            "https://internal.corp/v1",
            "https://llm.internal.corp",
            "https://INTERNAL.CORP",
            "https://svc.cluster.local",
            "http://vllm.ns.svc.cluster.local:8000",
            "http://10.20.30.40:11434",
            "https://192.168.1.7",
            "http://[::1]:8000",
        ];
        for dst in direct {
            assert_eq!(via(&rule, dst), None, "{dst} bypasses the proxy");
        }
        let proxied = [
            "https://notinternal.corp",
            "https://internal.corp.evil.test",
            "https://api.openai.com",
            "http://11.0.0.1",
            "https://192.168.1.8",
            "http://[::2]:8000",
        ];
        for dst in proxied {
            assert_eq!(
                via(&rule, dst).as_deref(),
                Some("p:3128"),
                "{dst} is proxied"
            );
        }
    }

    #[test]
    fn a_star_in_no_proxy_exempts_every_host_addresses_included() {
        let cases: [&'static [(&str, &str)]; 2] = [
            &[("HTTPS_PROXY", "http://p:3128"), ("NO_PROXY", "*")],
            &[
                ("HTTPS_PROXY", "http://p:3128"),
                ("no_proxy", "example.com, *"),
            ],
        ];
        for pairs in cases {
            let rule = ProxyRule::from_env(&env(pairs)).unwrap();
            assert_eq!(via(&rule, "https://api.openai.com"), None, "{pairs:?}");
            assert_eq!(via(&rule, "https://127.0.0.1:8443"), None, "{pairs:?}");
        }
    }

    #[test]
    fn a_fixed_proxy_ignores_no_proxy_and_serves_both_schemes() {
        let rule = ProxyRule::fixed("http://user:pa%40ss@corp-proxy:8080").unwrap();
        let https = rule
            .intercept(&"https://127.0.0.1".parse().unwrap())
            .unwrap();
        assert_eq!(shown(&https), "corp-proxy:8080");
        assert_eq!(
            https.basic_auth().unwrap(),
            // base64("user:pa@ss"): the URL's percent-encoding is undone
            "Basic dXNlcjpwYUBzcw=="
        );
        assert_eq!(
            via(&rule, "http://x.test").as_deref(),
            Some("corp-proxy:8080")
        );
        assert!(format!("{rule:?}").contains("fixed"));
        assert!(!format!("{rule:?}").contains("pa%40ss"));
    }

    #[test]
    fn proxy_urls_are_normalized_and_bad_ones_refused_without_echoing_them() {
        assert_eq!(normalize("proxy.corp").unwrap(), "http://proxy.corp:1080");
        assert_eq!(
            normalize(" http://u:p@[::1]:3128/ ").unwrap(),
            "http://u:p@[::1]:3128"
        );
        assert_eq!(normalize("HTTP://p:1").unwrap(), "http://p:1");
        assert_eq!(normalize("https://p:443"), Err(ProxyUrlError::Tls));
        assert_eq!(
            normalize("socks5h://u:secret@p:1080"),
            Err(ProxyUrlError::Scheme("socks5h".into()))
        );
        assert_eq!(
            normalize("http://u:sec ret@p:1"),
            Err(ProxyUrlError::NotUrl)
        );
        let e = ProxyRule::from_env(&env(&[("HTTPS_PROXY", "http://u:sec ret@p:1")])).unwrap_err();
        assert_eq!(e.var, "HTTPS_PROXY");
        assert!(!e.to_string().contains("sec"), "{e}");
    }
}
