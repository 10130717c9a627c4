//! The amqps listeners' TLS: builds a rustls server configuration from the PEM files and
//! settings in `Config` (TLS 1.2/1.3 only, chosen cipher suites, optional client
//! certificates verified against a CA), swaps it on reload without touching open
//! connections, and reads the user name SASL EXTERNAL logs in with off a verified client
//! certificate. It never speaks AMQP; the accept loop hands the decrypted stream on.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::broker::connections::TlsDetails;
use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("amqps listeners need tls_cert and tls_key")]
    MissingFiles,
    #[error("tls_verify_peer needs tls_ca (the CA that signs client certificates)")]
    MissingCa,
    #[error("cannot read {what} from {path}: {why}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        why: String,
    },
    #[error("unknown TLS cipher suite '{0}' (see tls_ciphers in config/warren.toml)")]
    UnknownCipher(String),
    #[error("no cipher suite of tls_ciphers works with tls_versions")]
    NoUsableCipher,
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verification: {0}")]
    Verifier(String),
}

/// OpenSSL's names for the suites rustls implements, as RabbitMQ's `ssl_options.ciphers`
/// uses them.
const OPENSSL_NAMES: &[(&str, &str)] = &[
    ("TLS_AES_256_GCM_SHA384", "TLS13_AES_256_GCM_SHA384"),
    ("TLS_AES_128_GCM_SHA256", "TLS13_AES_128_GCM_SHA256"),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS13_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
];

/// Where SASL EXTERNAL finds the user name in a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertLogin {
    CommonName,
    SubjectAlternativeName,
}

/// Everything needed to (re)build the server configuration.
#[derive(Debug, Clone)]
struct Settings {
    cert: PathBuf,
    key: PathBuf,
    ca: Option<PathBuf>,
    verify_peer: bool,
    fail_if_no_peer_cert: bool,
    versions: Vec<String>,
    ciphers: Vec<String>,
}

/// The current TLS configuration of the amqps listeners; `reload` replaces it.
#[derive(Debug)]
pub struct Tls {
    settings: Settings,
    current: RwLock<Arc<ServerConfig>>,
    pub cert_login: CertLogin,
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_err = |why: String| TlsError::Pem {
        what,
        path: path.to_owned(),
        why,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err("no CERTIFICATE section".into()));
    }
    Ok(certs)
}

fn provider(settings: &Settings) -> Result<CryptoProvider, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    if settings.ciphers.is_empty() {
        return Ok(provider);
    }
    let mut wanted = Vec::new();
    for name in &settings.ciphers {
        let iana = OPENSSL_NAMES
            .iter()
            .find(|(openssl, _)| openssl.eq_ignore_ascii_case(name))
            .map(|(_, iana)| *iana)
            .unwrap_or(name.as_str());
        let suite = provider
            .cipher_suites
            .iter()
            .find(|s| format!("{:?}", s.suite()).eq_ignore_ascii_case(iana))
            .ok_or_else(|| TlsError::UnknownCipher(name.clone()))?;
        wanted.push(*suite);
    }
    provider.cipher_suites = wanted;
    Ok(provider)
}

fn build(settings: &Settings) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read_certs(&settings.cert, "the certificate chain")?;
    let key = PrivateKeyDer::from_pem_file(&settings.key).map_err(|e| TlsError::Pem {
        what: "the private key",
        path: settings.key.clone(),
        why: e.to_string(),
    })?;
    let provider = Arc::new(provider(settings)?);
    let versions: Vec<&'static SupportedProtocolVersion> = settings
        .versions
        .iter()
        .filter_map(|v| match v.as_str() {
            "tlsv1.3" => Some(&rustls::version::TLS13),
            "tlsv1.2" => Some(&rustls::version::TLS12),
            _ => None,
        })
        .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| match e {
            rustls::Error::General(_) => TlsError::NoUsableCipher,
            other => TlsError::Rustls(other),
        })?;
    let builder = if settings.verify_peer {
        let ca = settings.ca.as_ref().ok_or(TlsError::MissingCa)?;
        let mut roots = RootCertStore::empty();
        for c in read_certs(ca, "the CA bundle")? {
            roots.add(c).map_err(|e| TlsError::Pem {
                what: "the CA bundle",
                path: ca.clone(),
                why: e.to_string(),
            })?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if settings.fail_if_no_peer_cert {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        builder.with_client_cert_verifier(
            verifier
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?,
        )
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(chain, key)?;
    // AMQP has no ALPN id; RabbitMQ offers none either.
    config.alpn_protocols.clear();
    Ok(Arc::new(config))
}

impl Tls {
    /// The TLS setup the configuration asks for; None when there are no amqps listeners.
    pub fn from_config(config: &Config) -> Result<Option<Arc<Self>>, TlsError> {
        if config.amqps_listen.is_empty() {
            return Ok(None);
        }
        let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
            return Err(TlsError::MissingFiles);
        };
        let settings = Settings {
            cert: cert.clone(),
            key: key.clone(),
            ca: config.tls_ca.clone(),
            verify_peer: config.tls_verify_peer,
            fail_if_no_peer_cert: config.tls_fail_if_no_peer_cert,
            versions: config.tls_versions.clone(),
            ciphers: config.tls_ciphers.clone(),
        };
        let current = RwLock::new(build(&settings)?);
        let cert_login = if config.ssl_cert_login_from == "subject_alternative_name" {
            CertLogin::SubjectAlternativeName
        } else {
            CertLogin::CommonName
        };
        Ok(Some(Arc::new(Self {
            settings,
            current,
            cert_login,
        })))
    }

    /// The configuration new connections get.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-read the certificate, key and CA files. On any error the old configuration
    /// stays and the error says why; open connections are never affected.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = build(&self.settings)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }
}

/// The user name a verified client certificate carries, as `ssl_cert_login_from` says.
pub fn cert_user(der: &[u8], from: CertLogin) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    match from {
        CertLogin::CommonName => cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned),
        CertLogin::SubjectAlternativeName => {
            let san = cert.subject_alternative_name().ok()??;
            san.value.general_names.iter().find_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(s)
                | x509_parser::extensions::GeneralName::RFC822Name(s) => Some((*s).to_owned()),
                _ => None,
            })
        }
    }
}

/// The session's protocol and suite and the client's certificate, named as RabbitMQ's
/// management API names them (`tlsv1.3`, `aes_256_gcm`, `aead`).
pub fn details(session: &rustls::ServerConnection, leaf: Option<&CertificateDer>) -> TlsDetails {
    let protocol = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "tlsv1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "tlsv1.2".to_owned(),
        Some(other) => format!("{other:?}").to_lowercase(),
        None => String::new(),
    };
    let suite = session
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str())
        .unwrap_or("");
    let (key_exchange, cipher, hash) = suite_parts(suite);
    let cert = leaf.and_then(|der| {
        x509_parser::parse_x509_certificate(der)
            .ok()
            .map(|(_, c)| c)
    });
    TlsDetails {
        protocol,
        cipher,
        key_exchange,
        hash,
        peer_cert_subject: cert.as_ref().map(|c| c.subject().to_string()),
        peer_cert_issuer: cert.as_ref().map(|c| c.issuer().to_string()),
        peer_cert_validity: cert.as_ref().map(|c| {
            let v = c.validity();
            format!("{} - {}", v.not_before, v.not_after)
        }),
    }
}

/// (key exchange, cipher, hash) of an IANA suite name: `TLS13_AES_256_GCM_SHA384` is
/// (any, aes_256_gcm, aead), `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256` (ecdhe_rsa,
/// aes_128_gcm, aead).
fn suite_parts(suite: &str) -> (String, String, String) {
    let (key_exchange, rest) = match suite.strip_prefix("TLS13_") {
        Some(rest) => ("any".to_owned(), rest),
        None => match suite
            .strip_prefix("TLS_")
            .and_then(|s| s.split_once("_WITH_"))
        {
            Some((kx, rest)) => (kx.to_lowercase(), rest),
            None => (String::new(), suite),
        },
    };
    let (cipher, mac) = rest.rsplit_once('_').unwrap_or((rest, ""));
    let aead = cipher.contains("GCM") || cipher.contains("POLY1305") || cipher.contains("CCM");
    let hash = if aead {
        "aead".to_owned()
    } else {
        mac.to_lowercase()
    };
    (key_exchange, cipher.to_lowercase(), hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_are_named_as_erlangs_ssl_names_them() {
        let parts = |s: &str| suite_parts(s);
        assert_eq!(
            parts("TLS13_AES_256_GCM_SHA384"),
            ("any".into(), "aes_256_gcm".into(), "aead".into())
        );
        assert_eq!(
            parts("TLS13_CHACHA20_POLY1305_SHA256"),
            ("any".into(), "chacha20_poly1305".into(), "aead".into())
        );
        assert_eq!(
            parts("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            ("ecdhe_rsa".into(), "aes_128_gcm".into(), "aead".into())
        );
    }

    #[test]
    fn openssl_and_iana_cipher_names_both_select_a_suite() {
        let s = |ciphers: &[&str]| Settings {
            cert: PathBuf::new(),
            key: PathBuf::new(),
            ca: None,
            verify_peer: false,
            fail_if_no_peer_cert: false,
            versions: vec!["tlsv1.2".into()],
            ciphers: ciphers.iter().map(|c| c.to_string()).collect(),
        };
        let p = provider(&s(&[
            "ECDHE-RSA-AES256-GCM-SHA384",
            "TLS13_AES_128_GCM_SHA256",
        ]))
        .unwrap();
        assert_eq!(p.cipher_suites.len(), 2);
        assert!(matches!(
            provider(&s(&["RC4-MD5"])),
            Err(TlsError::UnknownCipher(c)) if c == "RC4-MD5"
        ));
    }

    #[test]
    fn a_certificate_names_its_user_by_cn_or_san() {
        let mut params = rcgen::CertificateParams::new(vec!["orders.shop.example".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "orders-service");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            cert_user(cert.der(), CertLogin::CommonName).as_deref(),
            Some("orders-service")
        );
        assert_eq!(
            cert_user(cert.der(), CertLogin::SubjectAlternativeName).as_deref(),
            Some("orders.shop.example")
        );
        assert_eq!(cert_user(b"not a certificate", CertLogin::CommonName), None);
    }
}
