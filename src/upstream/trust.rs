//! What a provider's TLS trusts (the public web roots, the system's, a private CA)
//! and the certificate it presents for mutual TLS, turned into one rustls client
//! config with ALPN h2 and http/1.1.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// `tls_roots`: which root store a provider starts from (`ca_file` adds to it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Roots {
    /// Mozilla's roots compiled in: the same on every machine.
    #[default]
    Webpki,
    /// The system's store (or `SSL_CERT_FILE` / `SSL_CERT_DIR` when set).
    Native,
    Both,
}

impl Roots {
    pub fn parse(s: &str) -> Option<Roots> {
        match s {
            "webpki" => Some(Roots::Webpki),
            "native" => Some(Roots::Native),
            "both" => Some(Roots::Both),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Roots::Webpki => "webpki",
            Roots::Native => "native",
            Roots::Both => "both",
        }
    }

    pub fn uses_native(self) -> bool {
        matches!(self, Roots::Native | Roots::Both)
    }
}

/// A client certificate chain and its key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// Everything a provider's TLS is built from; file contents, not paths, so two
/// loads of the same files are equal.
#[derive(Default)]
pub struct Trust {
    pub roots: Roots,
    /// The system's roots, read once per load (only when `roots` uses them).
    pub native: Arc<[CertificateDer<'static>]>,
    /// `ca_file`'s certificates, trusted on top of `roots`.
    pub extra: Vec<CertificateDer<'static>>,
    pub identity: Option<Identity>,
}

/// Which input is at fault, so the config error can name its key.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("certificate {index} is not a usable CA certificate: {reason}")]
    Ca { index: usize, reason: String },
    #[error("{0}")]
    Identity(String),
    #[error("{0}")]
    Native(String),
    #[error("TLS setup: {0}")]
    Setup(String),
}

impl Trust {
    pub fn client_config(&self) -> Result<ClientConfig, TrustError> {
        let mut roots = RootCertStore::empty();
        if matches!(self.roots, Roots::Webpki | Roots::Both) {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        if self.roots.uses_native() {
            // System stores hold the odd certificate webpki cannot parse; skip those,
            // as every TLS client does.
            let (added, _skipped) = roots.add_parsable_certificates(self.native.iter().cloned());
            if added == 0 {
                return Err(TrustError::Native(
                    "none of the system's root certificates is usable".into(),
                ));
            }
        }
        for (i, cert) in self.extra.iter().enumerate() {
            roots.add(cert.clone()).map_err(|e| TrustError::Ca {
                index: i + 1,
                reason: e.to_string(),
            })?;
        }
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| TrustError::Setup(e.to_string()))?
                .with_root_certificates(roots);
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .map_err(|e| TrustError::Identity(identity_error(&e)))?,
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// Feeds everything the config is built from into `h` (the client cache's key).
    pub(super) fn digest(&self, h: &mut impl FnMut(&[u8])) {
        h(self.roots.as_str().as_bytes());
        if self.roots.uses_native() {
            self.native.iter().for_each(|c| h(c));
        }
        h(b"extra");
        self.extra.iter().for_each(|c| h(c));
        if let Some(id) = &self.identity {
            h(b"identity");
            id.chain.iter().for_each(|c| h(c));
            h(id.key.secret_der());
        }
    }
}

fn identity_error(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InconsistentKeys(_) => {
            "the key does not belong to the certificate (its public key differs)".into()
        }
        e => e.to_string(),
    }
}

/// The system's root certificates. `SSL_CERT_FILE` / `SSL_CERT_DIR` (read through
/// `env`, so tests can set them) replace the platform store when set, as OpenSSL and
/// rustls-native-certs have it.
pub fn native_roots(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    let set = |var| env(var).filter(|v| !v.trim().is_empty());
    let (file, dirs) = (set("SSL_CERT_FILE"), set("SSL_CERT_DIR"));
    let mut certs = Vec::new();
    let mut errors = Vec::new();
    let mut take = |r: rustls_native_certs::CertificateResult| {
        certs.extend(r.certs);
        errors.extend(r.errors.into_iter().map(|e| e.to_string()));
    };
    if file.is_none() && dirs.is_none() {
        take(rustls_native_certs::load_native_certs());
    } else {
        if let Some(f) = &file {
            take(rustls_native_certs::load_certs_from_paths(
                Some(Path::new(f)),
                None,
            ));
        }
        for dir in dirs
            .iter()
            .flat_map(|d| d.split(':'))
            .filter(|d| !d.is_empty())
        {
            take(rustls_native_certs::load_certs_from_paths(
                None,
                Some(Path::new(dir)),
            ));
        }
    }
    if certs.is_empty() {
        let why = if errors.is_empty() {
            "none found".to_string()
        } else {
            errors.join("; ")
        };
        return Err(TrustError::Native(format!(
            "no system root certificates could be read ({why})"
        )));
    }
    if !errors.is_empty() {
        tracing::warn!(errors = %errors.join("; "), "some system root certificates could not be read");
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_of_another_certificate_is_refused_by_name() {
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).unwrap();
        let key = PrivateKeyDer::try_from(b.signing_key.serialize_der()).unwrap();
        let trust = Trust {
            identity: Some(Identity {
                chain: vec![a.cert.der().clone()],
                key,
            }),
            ..Trust::default()
        };
        let e = trust.client_config().unwrap_err();
        assert!(
            matches!(&e, TrustError::Identity(m) if m.contains("does not belong")),
            "{e}"
        );
    }

    #[test]
    fn a_ca_file_that_holds_no_certificate_body_is_refused_with_its_index() {
        let good = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let trust = Trust {
            extra: vec![good.cert.der().clone(), CertificateDer::from(vec![1, 2, 3])],
            ..Trust::default()
        };
        let e = trust.client_config().unwrap_err();
        assert!(matches!(e, TrustError::Ca { index: 2, .. }), "{e}");
    }

    #[test]
    fn ssl_cert_file_replaces_the_system_store() {
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        let path = std::env::temp_dir().join(format!("understudy-roots-{}.pem", fastrand::u64(..)));
        std::fs::write(&path, ca.cert.pem()).unwrap();
        let file = path.display().to_string();
        let roots = native_roots(&move |k| (k == "SSL_CERT_FILE").then(|| file.clone())).unwrap();
        assert_eq!(roots, vec![ca.cert.der().clone()]);
        let e = native_roots(&|k| (k == "SSL_CERT_FILE").then(|| "/nonexistent.pem".into()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no system root certificates could be read"),
            "{e}"
        );
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn alpn_offers_h2_then_http1() {
        let config = Trust::default().client_config().unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
