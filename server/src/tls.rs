//! TLS (rustls) for the gRPC port and the HTTP port, with optional client
//! certificates: the same files, the same rules.
//!
//! The PEM files are read and parsed here, before tonic sees them, so a
//! missing or malformed file stops start-up with an error that names the
//! file and what is wrong with it, instead of a handshake failure later.

use std::{fs, path::Path, sync::Arc, time::Duration};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{self, RootCertStore, server::WebPkiClientVerifier},
};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::error::ServerError;

/// A client that opens a connection and never finishes the handshake holds
/// a socket; this bounds how long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the server's certificate, key and (for mutual TLS) client CA are.
#[derive(Debug, Clone, Copy)]
pub struct TlsFiles<'a> {
    /// The certificate chain, leaf first (PEM).
    pub cert: &'a Path,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: &'a Path,
    /// CA certificates that client certificates must chain to; when set,
    /// a client without a valid certificate is refused during the handshake.
    pub client_ca: Option<&'a Path>,
}

/// Reads and checks the files and builds tonic's TLS settings.
pub fn server_config(files: TlsFiles<'_>) -> Result<ServerTlsConfig, ServerError> {
    let cert = read_certificates(files.cert, "certificate")?;
    let key = read(files.key)?;
    PrivateKeyDer::from_pem_slice(&key)
        .map_err(|e| tls_error(files.key, format!("contains no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}")))?;

    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key)).timeout(HANDSHAKE_TIMEOUT);
    if let Some(client_ca) = files.client_ca {
        config = config.client_ca_root(Certificate::from_pem(read_certificates(client_ca, "CA certificate")?));
    }
    Ok(config)
}

/// Reads a PEM file that must hold at least one certificate (`what` names
/// it in the error).
/// Reads and checks the files and builds the HTTP port's TLS acceptor
/// (rustls with ring, as tonic uses; HTTP/2 and HTTP/1.1 by ALPN).
pub fn http_acceptor(files: TlsFiles<'_>) -> Result<TlsAcceptor, ServerError> {
    let chain = parse_certificates(files.cert, &read_certificates(files.cert, "certificate")?)?;
    let key = PrivateKeyDer::from_pem_slice(&read(files.key)?)
        .map_err(|e| tls_error(files.key, format!("contains no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls { path: None, reason: e.to_string() })?;
    let builder = match files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for certificate in parse_certificates(path, &read_certificates(path, "CA certificate")?)? {
                roots.add(certificate).map_err(|e| tls_error(path, format!("unusable CA certificate: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| tls_error(path, format!("unusable CA certificate: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| tls_error(files.key, format!("does not match the certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn parse_certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(path, format!("not a PEM certificate file: {e}")))
}

fn read_certificates(path: &Path, what: &str) -> Result<Vec<u8>, ServerError> {
    let pem = read(path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(path, format!("not a PEM certificate file: {e}")))?;
    if certificates.is_empty() {
        return Err(tls_error(path, format!("contains no PEM {what} (-----BEGIN CERTIFICATE-----)")));
    }
    Ok(pem)
}

fn read(path: &Path) -> Result<Vec<u8>, ServerError> {
    fs::read(path).map_err(|e| tls_error(path, e.to_string()))
}

fn tls_error(path: &Path, reason: String) -> ServerError {
    ServerError::Tls { path: Some(path.to_path_buf()), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(content: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        fs::write(file.path(), content).unwrap();
        file
    }

    #[test]
    fn missing_and_malformed_files_are_named() {
        let garbage = write("not a certificate\n");
        let missing = Path::new("/nonexistent/server.pem");
        let error = server_config(TlsFiles { cert: missing, key: garbage.path(), client_ca: None }).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/server.pem"), "{error}");

        let error = server_config(TlsFiles { cert: garbage.path(), key: garbage.path(), client_ca: None }).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&garbage.path().display().to_string()) && message.contains("no PEM certificate"));
    }
}
