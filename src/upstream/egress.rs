//! How one provider's requests leave the process: through which proxy, trusting
//! which roots, presenting which client certificate. Built at config load (files
//! read, keys checked); the upstream client keeps one connection pool per distinct
//! egress, found by its fingerprint.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::proxy::ProxyRule;
use super::trust::{Trust, TrustError};

pub struct Egress {
    pub proxy: ProxyRule,
    pub tls: Arc<rustls::ClientConfig>,
    /// Equal for equal settings (file contents, not paths).
    fingerprint: [u8; 32],
}

impl Egress {
    pub fn new(proxy: ProxyRule, trust: &Trust) -> Result<Egress, TrustError> {
        let tls = Arc::new(trust.client_config()?);
        let mut h = Sha256::new();
        // Each piece length-prefixed, so no two different settings hash alike by
        // running into each other.
        let mut piece = |b: &[u8]| {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        };
        piece(proxy.spec().as_bytes());
        trust.digest(&mut piece);
        Ok(Egress {
            proxy,
            tls,
            fingerprint: h.finalize().into(),
        })
    }

    /// No proxy, the public web roots, no client certificate.
    pub fn direct() -> Result<Egress, TrustError> {
        Egress::new(ProxyRule::direct(), &Trust::default())
    }

    pub(super) fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}
