//! A throwaway certificate authority for TLS tests: a CA, a server
//! certificate for localhost and 127.0.0.1, a client certificate from the
//! same CA, and one from a CA the server does not trust. Also the
//! `dev_certs` example, for trying TLS by hand and for the interop tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// PEM files in a temporary directory (removed when dropped).
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// Generates every certificate and key into a temporary directory.
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path());
        Self { dir }
    }

    /// The path of one of the files: ca.pem, server.pem, server.key,
    /// client.pem, client.key, rogue-client.pem, rogue-client.key.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `path` as a `&str` argument.
    pub fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }

    /// The contents of one of the files.
    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }
}

/// Generates every certificate and key and writes them into `dir`.
pub fn write_all(dir: &Path) {
    let ca = authority("mnist test CA");
    let rogue_ca = authority("untrusted CA");
    write(dir, "ca.pem", &ca.pem());

    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    server.distinguished_name.push(DnType::CommonName, "mnist-server");
    write(dir, "server.pem", &server.signed_by(&server_key, &ca).unwrap().pem());
    write(dir, "server.key", &server_key.serialize_pem());

    for (name, issuer) in [("client", &ca), ("rogue-client", &rogue_ca)] {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![format!("{name}.example")]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        write(dir, &format!("{name}.pem"), &params.signed_by(&key, issuer).unwrap().pem());
        write(dir, &format!("{name}.key"), &key.serialize_pem());
    }
}

fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn write(dir: &Path, name: &str, content: &str) {
    std::fs::write(dir.join(name), content).unwrap();
}
