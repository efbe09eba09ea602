//! Step 2: TLS termination with rustls (aws-lc-rs), ALPN `h2` and `http/1.1`; and the TLS
//! client settings of https upstreams.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Installs aws-lc-rs as the process-wide rustls provider (the one crypto library in the binary).
pub fn install_crypto_provider() {
    // Err means a provider is already installed (tests start several gateways): nothing to do.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Loads a certificate chain and private key (PEM) into a server config with ALPN h2, http/1.1.
pub fn server_config(certificate: &Path, private_key: &Path) -> Result<Arc<ServerConfig>, String> {
    let (chain, key) = load_pair(certificate, private_key)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            format!(
                "certificate {} and key {} do not form a usable pair: {e}",
                certificate.display(),
                private_key.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS client settings of an https upstream: trust `ca_file` (PEM) or the Mozilla roots,
/// present `client_identity` (certificate chain, key) when given. ALPN is set by the connector.
pub fn client_config(
    ca_file: Option<&Path>,
    client_identity: Option<(&Path, &Path)>,
) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in load_chain(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .with_root_certificates(roots);
    let config = match client_identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let (chain, key_der) = load_pair(cert, key)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| format!("client certificate {}: {e}", cert.display()))?
        }
    };
    Ok(config)
}

fn load_pair(
    certificate: &Path,
    private_key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain = load_chain(certificate)?;
    let key = PrivateKeyDer::from_pem_file(private_key).map_err(|e| {
        format!(
            "cannot read a private key from {}: {e}",
            private_key.display()
        )
    })?;
    Ok((chain, key))
}

fn load_chain(certificate: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .map_err(|e| {
            format!(
                "cannot read certificate file {}: {e}",
                certificate.display()
            )
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate file {}: {e}", certificate.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "certificate file {} holds no CERTIFICATE block",
            certificate.display()
        ));
    }
    Ok(chain)
}
