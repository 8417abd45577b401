//! Optional TLS termination (`[server.tls]`): rustls with ALPN h2 and http/1.1.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// Reads the PEM files and builds the acceptor; the error names the file at fault.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, String> {
    let certs = crate::pem::certificates(&files.cert).map_err(|e| format!("cert {e}"))?;
    let key = crate::pem::private_key(&files.key).map_err(|e| format!("key {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("cert/key pair: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
