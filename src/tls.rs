//! Step 2: TLS termination with rustls (aws-lc-rs), ALPN `h2` and `http/1.1`; and the TLS
//! client settings of https upstreams.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Installs aws-lc-rs as the process-wide rustls provider (the one crypto library in the binary).
pub fn install_crypto_provider() {
    // Err means a provider is already installed (tests start several gateways): nothing to do.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// PEM text of a certificate chain and its private key, read at config load: the data a TLS
/// config is built from (and compared by, on reload). `Debug` shows sizes, never the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Pair {
    pub certificate: Vec<u8>,
    pub private_key: Vec<u8>,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pair {{ certificate: {} bytes, private_key: {} bytes }}",
            self.certificate.len(),
            self.private_key.len()
        )
    }
}

/// What a listener terminates TLS with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMaterial(pub Pair);

/// What an https upstream client trusts (`ca`, else the Mozilla roots) and presents.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientMaterial {
    pub ca: Option<Vec<u8>>,
    pub identity: Option<Pair>,
}

impl Pair {
    /// Reads both files; a problem names the file.
    pub fn read(certificate: &Path, private_key: &Path) -> Result<Pair, String> {
        let read = |path: &Path, what: &str| {
            std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
        };
        Ok(Pair {
            certificate: read(certificate, "certificate file")?,
            private_key: read(private_key, "private key file")?,
        })
    }

    fn parse(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        let chain = parse_chain(&self.certificate, "certificate file")?;
        let key = PrivateKeyDer::from_pem_slice(&self.private_key)
            .map_err(|e| format!("cannot read a private key: {e}"))?;
        Ok((chain, key))
    }
}

impl ServerMaterial {
    /// Reads a listener's certificate chain and key, checking that they form a usable pair.
    pub fn read(certificate: &Path, private_key: &Path) -> Result<ServerMaterial, String> {
        let material = ServerMaterial(Pair::read(certificate, private_key)?);
        material.server_config().map_err(|e| {
            format!(
                "certificate {} and key {}: {e}",
                certificate.display(),
                private_key.display()
            )
        })?;
        Ok(material)
    }

    /// The certificate chain and signing key, checked to belong together.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, String> {
        let (chain, key) = self.0.parse()?;
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        CertifiedKey::from_der(chain, key, &provider)
            .map(Arc::new)
            .map_err(|e| format!("do not form a usable pair: {e}"))
    }

    /// A server config with ALPN h2, http/1.1 that presents this certificate.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, String> {
        Ok(server_config(Arc::new(CertResolver::new(
            self.certified_key()?,
        ))))
    }
}

/// A listener's certificate, swapped whole when a reload brings a new one: handshakes after
/// the swap present the new certificate, connections already open keep theirs.
#[derive(Debug)]
pub struct CertResolver(ArcSwap<CertifiedKey>);

impl CertResolver {
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        CertResolver(ArcSwap::new(key))
    }

    /// Presents `key` from the next handshake on.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        self.0.store(key);
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// A server config with ALPN h2, http/1.1 whose certificate comes from `resolver`.
pub fn server_config(resolver: Arc<CertResolver>) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder =
        ServerConfig::builder_with_provider(provider).with_safe_default_protocol_versions();
    // aws-lc-rs supports the safe default versions, so this cannot fail; a builder error would
    // mean no TLS at all, and rustls' own default builder is the same call.
    let mut config = match builder {
        Ok(b) => b.with_no_client_auth().with_cert_resolver(resolver),
        Err(_) => ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(resolver),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

impl ClientMaterial {
    /// Reads an upstream's CA file and client identity, checking that they build a config.
    pub fn read(
        ca_file: Option<&Path>,
        client_identity: Option<(&Path, &Path)>,
    ) -> Result<ClientMaterial, String> {
        let ca = ca_file
            .map(|path| {
                std::fs::read(path)
                    .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))
            })
            .transpose()?;
        let identity = client_identity
            .map(|(cert, key)| Pair::read(cert, key))
            .transpose()?;
        let material = ClientMaterial { ca, identity };
        material
            .client_config()
            .map_err(|e| match (ca_file, client_identity) {
                (Some(ca), _) if e.starts_with("CA") => format!("{e} ({})", ca.display()),
                (_, Some((cert, _))) => format!("{e} ({})", cert.display()),
                _ => e,
            })?;
        Ok(material)
    }

    /// The TLS client settings of an https upstream. ALPN is set by the connector.
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        let mut roots = RootCertStore::empty();
        match &self.ca {
            Some(pem) => {
                for cert in parse_chain(pem, "CA file")? {
                    roots.add(cert).map_err(|e| format!("CA file: {e}"))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS protocol versions: {e}"))?
            .with_root_certificates(roots);
        Ok(match &self.identity {
            None => builder.with_no_client_auth(),
            Some(pair) => {
                let (chain, key) = pair.parse()?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("client certificate: {e}"))?
            }
        })
    }
}

/// The CERTIFICATE blocks of PEM text; none is an error.
fn parse_chain(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what}: {e}"))?;
    if chain.is_empty() {
        return Err(format!("{what} holds no CERTIFICATE block"));
    }
    Ok(chain)
}
