//! A provider's egress keys (`proxy`, `ca_file`, `tls_roots`, `client_cert`,
//! `client_key`) → its [`Egress`]. Files are read here, at load and at every reload,
//! so a missing or bad one is a config error naming its key; paths resolve against
//! the config file's directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use super::super::raw::RawProvider;
use super::super::EnvLookup;
use crate::pem;
use crate::upstream::proxy::{EnvProxyError, ProxyRule};
use crate::upstream::trust::{native_roots, Identity, Roots, Trust, TrustError};
use crate::upstream::Egress;

/// Builds the egress of each provider of one load; what every provider reads alike
/// (the proxy variables, the system's roots) is read once.
pub(super) struct Egresses<'a> {
    dir: &'a Path,
    env: &'a EnvLookup,
    env_proxy: Option<Result<ProxyRule, EnvProxyError>>,
    native: Option<Arc<[CertificateDer<'static>]>>,
}

impl<'a> Egresses<'a> {
    pub fn new(config_path: &'a Path, env: &'a EnvLookup) -> Egresses<'a> {
        Egresses {
            dir: config_path.parent().unwrap_or(Path::new(".")),
            env,
            env_proxy: None,
            native: None,
        }
    }

    /// `key` is the provider's key path (`providers.NAME`).
    pub fn provider(&mut self, key: &str, p: &RawProvider) -> Result<Arc<Egress>, String> {
        let proxy = match p.proxy.as_deref().map(str::trim) {
            Some("none") => ProxyRule::direct(),
            Some(url) => ProxyRule::fixed(url)
                .map_err(|e| format!("{key}.proxy: {e}; or \"none\" for no proxy"))?,
            None => self.env_proxy(key)?,
        };
        let roots = match p.tls_roots.as_deref() {
            None => Roots::default(),
            Some(s) => Roots::parse(s).ok_or_else(|| {
                format!("{key}.tls_roots: {s:?} is not one of \"webpki\", \"native\", \"both\"")
            })?,
        };
        let native = if roots.uses_native() {
            self.native(key)?
        } else {
            Arc::from([])
        };
        let ca = p.ca_file.as_deref().map(|f| self.dir.join(f));
        let extra = match &ca {
            None => Vec::new(),
            Some(path) => pem::certificates(path).map_err(|e| format!("{key}.ca_file: {e}"))?,
        };
        let identity = match (&p.client_cert, &p.client_key) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(format!(
                "{key}.client_key: required with client_cert (the certificate's private key, PEM)"
            ))
            }
            (None, Some(_)) => {
                return Err(format!(
                    "{key}.client_cert: required with client_key (the certificate, PEM)"
                ))
            }
            (Some(cert), Some(k)) => Some(Identity {
                chain: pem::certificates(&self.dir.join(cert))
                    .map_err(|e| format!("{key}.client_cert: {e}"))?,
                key: pem::private_key(&self.dir.join(k))
                    .map_err(|e| format!("{key}.client_key: {e}"))?,
            }),
        };
        let trust = Trust {
            roots,
            native,
            extra,
            identity,
        };
        let shown = |path: &Option<PathBuf>| {
            path.as_ref()
                .map_or(String::new(), |p| format!("{}: ", p.display()))
        };
        Egress::new(proxy, &trust)
            .map(Arc::new)
            .map_err(|e| match e {
                TrustError::Ca { .. } => format!("{key}.ca_file: {}{e}", shown(&ca)),
                TrustError::Identity(_) => format!("{key}.client_key: {e}"),
                TrustError::Native(_) => format!("{key}.tls_roots: {e}"),
                TrustError::Setup(_) => format!("{key}: {e}"),
            })
    }

    fn env_proxy(&mut self, key: &str) -> Result<ProxyRule, String> {
        let env = self.env.clone();
        self.env_proxy
            .get_or_insert_with(|| ProxyRule::from_env(env.as_ref()))
            .clone()
            .map_err(|e| format!("{key}: {e}; or set {key}.proxy to override it"))
    }

    fn native(&mut self, key: &str) -> Result<Arc<[CertificateDer<'static>]>, String> {
        if let Some(n) = &self.native {
            return Ok(n.clone());
        }
        let roots: Arc<[CertificateDer<'static>]> = native_roots(self.env.as_ref())
            .map_err(|e| format!("{key}.tls_roots: {e}"))?
            .into();
        self.native = Some(roots.clone());
        Ok(roots)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::from_str;
    use super::*;
    use crate::config::Snapshot;

    /// A config directory holding a CA, a client certificate and key of it, and a
    /// key of another certificate.
    struct Files {
        dir: PathBuf,
    }

    impl Files {
        fn new() -> Files {
            let dir = std::env::temp_dir().join(format!("understudy-egress-{}", fastrand::u64(..)));
            std::fs::create_dir_all(&dir).unwrap();
            let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
            let client = rcgen::generate_simple_self_signed(vec!["client.test".into()]).unwrap();
            let other = rcgen::generate_simple_self_signed(vec!["other.test".into()]).unwrap();
            for (name, text) in [
                ("ca.pem", ca.cert.pem()),
                ("client.pem", client.cert.pem()),
                ("client.key", client.signing_key.serialize_pem()),
                ("other.key", other.signing_key.serialize_pem()),
            ] {
                std::fs::write(dir.join(name), text).unwrap();
            }
            Files { dir }
        }

        fn load(&self, provider_keys: &str, vars: &[(&str, &str)]) -> Result<Snapshot, String> {
            let map: HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let env: EnvLookup = Arc::new(move |k| map.get(k).cloned());
            let text = format!(
                "[providers.a]\nkind = \"openai\"\nbase_url = \"https://llm.internal.test/v1\"\n{provider_keys}\n\
                 [providers.b]\nkind = \"ollama\"\nbase_url = \"http://10.1.2.3:11434\"\n"
            );
            from_str(&text, &self.dir.join("proxy.toml"), &env).map_err(|e| e.to_string())
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let f = Files::new();
        let s = f
            .load(
                "ca_file = \"ca.pem\"\nclient_cert = \"client.pem\"\nclient_key = \"client.key\"\ntls_roots = \"both\"\nproxy = \"http://u:hunter2@corp-proxy:3128\"",
                &[("HTTP_PROXY", "http://env-proxy:8080"), ("SSL_CERT_FILE", &f.dir.join("ca.pem").display().to_string())],
            )
            .unwrap();
        let a = s.provider("a").unwrap();
        assert!(a.egress.tls.client_auth_cert_resolver.has_certs());
        assert_eq!(a.proxy_shown().as_deref(), Some("corp-proxy:3128"));
        // b has no proxy key: the environment's, for its http:// base URL
        assert_eq!(
            s.provider("b").unwrap().proxy_shown().as_deref(),
            Some("env-proxy:8080")
        );
        assert!(
            !format!("{s:?}").contains("hunter2"),
            "proxy credentials never print"
        );
    }

    #[test]
    fn errors_name_the_key_and_never_show_proxy_credentials() {
        let f = Files::new();
        let missing = f.dir.join("missing.pem").display().to_string();
        type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, String);
        let cases: Vec<Case> = vec![
            (
                "tls_roots = \"system\"",
                vec![],
                "providers.a.tls_roots: \"system\" is not one of \"webpki\", \"native\", \"both\""
                    .into(),
            ),
            (
                "ca_file = \"missing.pem\"",
                vec![],
                format!("providers.a.ca_file: {missing}: cannot read"),
            ),
            (
                "ca_file = \"client.key\"",
                vec![],
                "providers.a.ca_file: ".to_string()
                    + &f.dir.join("client.key").display().to_string()
                    + ": no certificate found",
            ),
            (
                "client_cert = \"client.pem\"",
                vec![],
                "providers.a.client_key: required with client_cert".into(),
            ),
            (
                "client_key = \"client.key\"",
                vec![],
                "providers.a.client_cert: required with client_key".into(),
            ),
            (
                "client_cert = \"client.pem\"\nclient_key = \"other.key\"",
                vec![],
                "providers.a.client_key: the key does not belong to the certificate".into(),
            ),
            (
                "client_cert = \"client.pem\"\nclient_key = \"ca.pem\"",
                vec![],
                "providers.a.client_key: ".to_string()
                    + &f.dir.join("ca.pem").display().to_string()
                    + ": no private key found",
            ),
            (
                "proxy = \"socks5://u:hunter2@p:1080\"",
                vec![],
                "providers.a.proxy: socks5:// proxies are not supported".into(),
            ),
            (
                "proxy = \"https://u:hunter2@p:443\"",
                vec![],
                "providers.a.proxy: https:// proxies (TLS to the proxy itself) are not supported"
                    .into(),
            ),
            (
                "proxy = \"http://u:hunter2@bad host:1\"",
                vec![],
                "providers.a.proxy: not a proxy URL".into(),
            ),
            (
                "",
                vec![("https_proxy", "http://u:hunter2@bad host:1")],
                "providers.a: environment variable https_proxy: not a proxy URL".into(),
            ),
            (
                "tls_roots = \"native\"",
                vec![("SSL_CERT_FILE", "/nonexistent/roots.pem")],
                "providers.a.tls_roots: no system root certificates could be read".into(),
            ),
        ];
        for (keys, vars, want) in cases {
            let e = f.load(keys, &vars).unwrap_err();
            assert!(e.contains(&want), "{keys}: {e}\nwanted: {want}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn proxy_none_overrides_the_environment_whose_variables_are_checked() {
        let f = Files::new();
        let e = f
            .load("", &[("HTTPS_PROXY", "socks5://p:1080")])
            .unwrap_err();
        assert!(
            e.contains("environment variable HTTPS_PROXY: socks5://"),
            "{e}"
        );
        let vars = [
            ("HTTPS_PROXY", "http://s:3128"),
            ("HTTP_PROXY", "http://p:3128"),
        ];
        let s = f.load("proxy = \"none\"", &vars).unwrap();
        assert_eq!(s.provider("a").unwrap().proxy_shown(), None);
        assert_eq!(
            s.provider("b").unwrap().proxy_shown().as_deref(),
            Some("p:3128")
        );
        let s = f.load("", &vars).unwrap();
        assert_eq!(
            s.provider("a").unwrap().proxy_shown().as_deref(),
            Some("s:3128")
        );
    }
}
