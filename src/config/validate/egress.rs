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
            (Some(_), None) => return Err(format!(
                "{key}.client_key: required with client_cert (the certificate's private key, PEM)"
            )),
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
