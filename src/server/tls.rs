//! HTTPS: the certificate chain and key of `--tls-cert` and `--tls-key`, served with rustls
//! (its ring provider, the one sqlx's rustls already brings, so there is one crypto stack)
//! and read again on SIGHUP.
//!
//! The served certificate is one [`CertifiedKey`] behind an [`ArcSwap`], which every handshake
//! reads through [`ResolvesServerCert`]. A reload reads and checks both files whole, then
//! swaps it in one step: handshakes that start afterwards present the new certificate, while
//! connections made before keep going (their session keys were negotiated already; nothing
//! is closed). A reload that fails (a file missing or unreadable, no PEM certificate or key in
//! it, a key that is not the certificate's) changes nothing: the previous certificate is
//! still served and the error, naming the file and the problem, is logged.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// The served certificate and what makes TLS connections with it.
pub struct Tls {
    certificates: Arc<Certificates>,
    acceptor: TlsAcceptor,
}

impl Tls {
    /// Reads the certificate chain and key; an error says which file and what is wrong.
    pub fn load(files: TlsFiles) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = read_certified_key(&files, &provider)?;
        let certificates = Arc::new(Certificates {
            files,
            provider: provider.clone(),
            current: ArcSwap::from_pointee(current),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(certificates.clone());
        // Only HTTP/1.1 is served (see `connections`).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            certificates,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub(super) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reads both files again and serves what they hold from the next handshake on; on an
    /// error the previous certificate stays.
    pub fn reload(&self) -> Result<(), String> {
        let certificates = &self.certificates;
        let fresh = read_certified_key(&certificates.files, &certificates.provider)?;
        certificates.current.store(Arc::new(fresh));
        Ok(())
    }

    /// Until the returned task is aborted, reloads the certificate on every SIGHUP. The
    /// signal handler is installed before this returns, so a SIGHUP never ends the process.
    #[cfg(unix)]
    pub fn reload_on_sighup(self: Arc<Self>) -> std::io::Result<tokio::task::JoinHandle<()>> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup())?;
        Ok(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let files = &self.certificates.files;
                match self.reload() {
                    Ok(()) => tracing::info!(
                        cert = %files.cert.display(),
                        key = %files.key.display(),
                        "SIGHUP: reloaded the TLS certificate; new connections get it"
                    ),
                    Err(e) => tracing::error!(
                        error = %e,
                        "SIGHUP: the TLS certificate was not reloaded; the previous one is still served"
                    ),
                }
            }
        }))
    }
}

/// The certificate every handshake presents, whatever server name the client asks for.
#[derive(Debug)]
struct Certificates {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The chain of `files.cert` with the key of `files.key`, checked to belong together.
fn read_certified_key(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let (cert, key) = (&files.cert, &files.key);
    let cert_pem = std::fs::read(cert)
        .map_err(|e| format!("SERAC_TLS_CERT: cannot read '{}': {e}", cert.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("SERAC_TLS_CERT: '{}' is not valid PEM: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "SERAC_TLS_CERT: '{}' holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            cert.display()
        ));
    }
    let key_pem = std::fs::read(key)
        .map_err(|e| format!("SERAC_TLS_KEY: cannot read '{}': {e}", key.display()))?;
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => format!(
            "SERAC_TLS_KEY: '{}' holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)",
            key.display()
        ),
        e => format!("SERAC_TLS_KEY: '{}' is not valid PEM: {e}", key.display()),
    })?;
    CertifiedKey::from_der(chain, private_key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => format!(
            "SERAC_TLS_KEY: '{}' is not the private key of the certificate in '{}'",
            key.display(),
            cert.display()
        ),
        rustls::Error::InvalidCertificate(_) => format!(
            "SERAC_TLS_CERT: the first certificate in '{}' cannot be parsed: {e}",
            cert.display()
        ),
        e => format!("SERAC_TLS_KEY: '{}' cannot be used: {e}", key.display()),
    })
}
