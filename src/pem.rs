//! PEM files — certificates and private keys — read for the server's TLS and the
//! upstream client's trust and identity, with errors that name the file.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not valid PEM: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("{}: no certificate found (expected `-----BEGIN CERTIFICATE-----` blocks)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no private key found (expected a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)", path.display())]
    NoKey { path: PathBuf },
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in the file, in order; at least one.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let text = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Invalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PemError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key in the file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let text = read(path)?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => PemError::NoKey {
            path: path.to_path_buf(),
        },
        e => PemError::Invalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("understudy-pem-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn errors_name_the_file_and_what_is_missing() {
        let missing = Path::new("/nonexistent/ca.pem");
        let e = certificates(missing).unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/ca.pem: cannot read: "), "{e}");

        let empty = file("empty.pem", "just text\n");
        let e = certificates(&empty).unwrap_err().to_string();
        assert!(e.contains("empty.pem: no certificate found"), "{e}");
        let e = private_key(&empty).unwrap_err().to_string();
        assert!(e.contains("empty.pem: no private key found"), "{e}");

        let broken = file(
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
        );
        let e = certificates(&broken).unwrap_err().to_string();
        assert!(e.contains("broken.pem: not valid PEM"), "{e}");
    }

    #[test]
    fn reads_every_certificate_of_a_bundle_and_the_key() {
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).unwrap();
        let bundle = file("bundle.pem", &format!("{}{}", a.cert.pem(), b.cert.pem()));
        let certs = certificates(&bundle).unwrap();
        assert_eq!(certs, vec![a.cert.der().clone(), b.cert.der().clone()]);
        let key = file("key.pem", &a.signing_key.serialize_pem());
        assert_eq!(
            private_key(&key).unwrap().secret_der(),
            a.signing_key.serialized_der()
        );
    }
}
