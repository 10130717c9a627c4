//! Test certificates made on the spot with rcgen (no private key is ever committed): a CA,
//! a server certificate for localhost/127.0.0.1, client certificates by common name, all
//! written as PEM files into a temp dir, plus a rustls client config that trusts the CA.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

pub struct Pki {
    pub dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    pub ca_pem: String,
}

pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl Pki {
    pub fn new(ca_name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, ca_name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca_pem = ca.pem();
        Self {
            dir: tempfile::tempdir().unwrap(),
            ca,
            ca_pem,
        }
    }

    fn leaf(&self, sans: Vec<String>, cn: &str) -> Leaf {
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    pub fn server(&self, cn: &str) -> Leaf {
        self.leaf(vec!["localhost".into(), "127.0.0.1".into()], cn)
    }

    pub fn client(&self, cn: &str) -> Leaf {
        self.leaf(Vec::new(), cn)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write the server's files (server.pem, server.key, ca.pem); returns their paths.
    pub fn write_server(&self, leaf: &Leaf) -> (PathBuf, PathBuf, PathBuf) {
        std::fs::write(self.path("server.pem"), &leaf.cert_pem).unwrap();
        std::fs::write(self.path("server.key"), &leaf.key_pem).unwrap();
        std::fs::write(self.path("ca.pem"), &self.ca_pem).unwrap();
        (
            self.path("server.pem"),
            self.path("server.key"),
            self.path("ca.pem"),
        )
    }

    /// A rustls client trusting this CA, optionally presenting a client certificate.
    pub fn client_config(&self, identity: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
        self.client_config_with(rustls::DEFAULT_VERSIONS, identity)
    }

    /// The same, speaking only the given TLS versions.
    pub fn client_config_with(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
        identity: Option<&Leaf>,
    ) -> Arc<rustls::ClientConfig> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls_pki_types::CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        Arc::new(match identity {
            None => builder.with_no_client_auth(),
            Some(leaf) => builder
                .with_client_auth_cert(
                    vec![rustls_pki_types::CertificateDer::from(leaf.der.clone())],
                    rustls_pki_types::PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes())
                        .unwrap(),
                )
                .unwrap(),
        })
    }
}

/// Do a TLS handshake with `addr` and return the server's leaf certificate (DER).
pub async fn server_certificate(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<Vec<u8>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    Ok(tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default())
}
