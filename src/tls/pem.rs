//! PEM files: certificate chains, private keys and CA bundles, read with the
//! file's name in every error so a misconfigured path says which flag to fix.

use std::path::Path;

use anyhow::{bail, Context as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Every certificate in a PEM file, in order (leaf first for a chain).
pub fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no CERTIFICATE block in it", path.display());
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).with_context(|| {
        format!(
            "{}: no readable PRIVATE KEY block (PKCS#8, RSA or EC) in it",
            path.display()
        )
    })
}

/// A root store of the CA certificates in a PEM file.
pub fn root_store(path: &Path) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(path)? {
        roots
            .add(cert)
            .with_context(|| format!("{}: a CA certificate rustls cannot use", path.display()))?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        let e = format!("{:#}", certificates(&empty).unwrap_err());
        assert!(e.contains("empty.pem"), "{e}");
        let e = format!("{:#}", private_key(&empty).unwrap_err());
        assert!(e.contains("empty.pem"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = format!("{:#}", certificates(&missing).unwrap_err());
        assert!(e.contains("missing.pem"), "{e}");
    }

    #[test]
    fn reads_what_rcgen_writes() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        assert_eq!(certificates(&c).unwrap().len(), 1);
        private_key(&k).unwrap();
        assert_eq!(root_store(&c).unwrap().len(), 1);
    }
}
