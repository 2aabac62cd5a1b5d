//! TLS on `secureClientPort`, configured as ZooKeeper's is: `ssl.keyStore.*`
//! holds the server's key and certificate chain, `ssl.trustStore.*` the
//! certificates client certificates must chain to, `ssl.clientAuth` whether a
//! client must present one (`need`, the default), may (`want`) or is not asked
//! (`none`). Stores are JKS (what ZooKeeper's documentation and keytool make)
//! or PEM; the type comes from `ssl.*.type` or, when unset, from the file.
//!
//! Once the handshake is done the connection is served exactly like one on
//! `clientPort` (`connection::serve_stream`), holding one more identity when
//! the client sent a certificate: `x509:<its subject, RFC 2253>`, as
//! ZooKeeper's X509AuthenticationProvider (registered whenever TLS is
//! configured) names it.

mod dn;
mod jks;
mod verify;

pub use verify::subject_name;

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::{ClientAuth, SecureClientConfig, StoreConfig};

/// Why the secure client port cannot be set up; each names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{what} {path}: {reason}")]
    Store {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("{0}")]
    Setting(String),
    #[error("TLS set-up failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The acceptor for `secureClientPort`.
pub fn acceptor(cfg: &SecureClientConfig) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (chain, key) = load_key_store(&cfg.key_store)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match cfg.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let anchors = load_trust_store(&cfg.trust_store)?;
            let verifier = verify::TrustStoreVerifier::new(
                anchors,
                auth == ClientAuth::Need,
                provider.clone(),
            )
            .map_err(|reason| store_error("trust store", &cfg.trust_store, reason))?;
            builder.with_client_cert_verifier(Arc::new(verifier))
        }
    };
    let certified = certified_key(&provider, chain, key)
        .map_err(|reason| store_error("key store", &cfg.key_store, reason))?;
    let config = builder.with_cert_resolver(Arc::new(OneCertificate(Arc::new(certified))));
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The server's chain with its signing key, after checking that the key is the
/// certificate's. Not rustls's `with_single_cert`: its check parses the
/// certificate with webpki, which refuses X.509 v1 certificates (which Java's
/// key stores hold happily).
fn certified_key(
    provider: &rustls::crypto::CryptoProvider,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::sign::CertifiedKey, String> {
    let leaf = chain.first().ok_or("holds no certificate for the key")?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("unusable private key: {e}"))?;
    let cert_spki = verify::subject_public_key_info(leaf)
        .map_err(|e| format!("the server certificate cannot be read: {e}"))?;
    if let Some(key_spki) = signing_key.public_key() {
        if key_spki.as_ref() != cert_spki.as_slice() {
            return Err(
                "the private key does not belong to the first certificate of its chain".into(),
            );
        }
    }
    Ok(rustls::sign::CertifiedKey::new(chain, signing_key))
}

/// Every client gets the one certificate chain of the key store.
#[derive(Debug)]
struct OneCertificate(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for OneCertificate {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Which format a store file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    Jks,
    Pem,
    /// What `keytool` writes unless told `-storetype JKS` (since Java 9), and OpenSSL's
    /// `pkcs12 -export`.
    Pkcs12,
}

fn store_kind(store: &StoreConfig, bytes: &[u8]) -> Result<StoreKind, String> {
    match store
        .kind
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        Some("JKS") => return Ok(StoreKind::Jks),
        Some("PEM") => return Ok(StoreKind::Pem),
        Some("PKCS12") | Some("P12") | Some("PFX") => return Ok(StoreKind::Pkcs12),
        Some(other) => {
            return Err(format!(
                "unknown store type {other:?}; expected JKS, PKCS12 or PEM"
            ))
        }
        None => {}
    }
    if jks::is_jks(bytes) {
        Ok(StoreKind::Jks)
    } else if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        Ok(StoreKind::Pem)
    } else if bytes.first() == Some(&0x30) {
        // A DER SEQUENCE: a PKCS#12 PFX is the only binary store left.
        Ok(StoreKind::Pkcs12)
    } else {
        Err("neither a JKS, a PKCS12 nor a PEM store".into())
    }
}

fn display(store: &StoreConfig) -> String {
    store
        .location
        .as_deref()
        .map(Path::display)
        .map(|d| d.to_string())
        .unwrap_or_default()
}

fn read_store(store: &StoreConfig, what: &'static str) -> Result<Vec<u8>, TlsError> {
    let Some(path) = &store.location else {
        return Err(TlsError::Setting(match what {
            "key store" => "secureClientPort needs ssl.keyStore.location".into(),
            _ => "ssl.clientAuth need/want needs ssl.trustStore.location \
                  (or set ssl.clientAuth=none)"
                .into(),
        }));
    };
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.display().to_string(),
        source,
    })
}

/// A store's contents and format.
fn open_store(store: &StoreConfig, what: &'static str) -> Result<(Vec<u8>, StoreKind), TlsError> {
    let bytes = read_store(store, what)?;
    let kind = store_kind(store, &bytes).map_err(|reason| store_error(what, store, reason))?;
    Ok((bytes, kind))
}

fn store_error(what: &'static str, store: &StoreConfig, reason: String) -> TlsError {
    TlsError::Store {
        what,
        path: display(store),
        reason,
    }
}

fn jks_entries(store: &StoreConfig, bytes: &[u8]) -> Result<Vec<jks::JksEntry>, String> {
    let password = store.password.as_deref().unwrap_or("");
    jks::parse(bytes, password, None).map_err(|e| e.to_string())
}

/// A PKCS#12 store's entries. `raw`: every certificate as it is, linked to no key (for trust
/// stores: OpenSSL marks no certificate trusted, only Java does).
fn pkcs12_store(
    store: &StoreConfig,
    bytes: &[u8],
    raw: bool,
) -> Result<p12_keystore::KeyStore, String> {
    let password = store.password.as_deref().unwrap_or("");
    let policy = if raw {
        p12_keystore::Pkcs12ImportPolicy::Raw
    } else {
        p12_keystore::Pkcs12ImportPolicy::Strict
    };
    p12_keystore::KeyStore::from_pkcs12(bytes, password, policy).map_err(|e| {
        format!("cannot open it as PKCS12 ({e}): is ssl.keyStore/trustStore.password right?")
    })
}

fn pem_certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("holds no certificate".into());
    }
    Ok(certs)
}

/// The server's certificate chain and private key.
fn load_key_store(
    store: &StoreConfig,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let what = "key store";
    let (bytes, kind) = open_store(store, what)?;
    let fail = |reason: String| store_error(what, store, reason);
    match kind {
        StoreKind::Jks => {
            for entry in jks_entries(store, &bytes).map_err(fail)? {
                if let jks::JksEntry::PrivateKey {
                    key_pkcs8, chain, ..
                } = entry
                {
                    let chain = chain.into_iter().map(CertificateDer::from).collect();
                    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pkcs8));
                    return Ok((chain, key));
                }
            }
            Err(fail("holds no private key entry".into()))
        }
        StoreKind::Pkcs12 => {
            let p12 = pkcs12_store(store, &bytes, false).map_err(fail)?;
            let (_, entry) = p12
                .private_key_chain()
                .ok_or_else(|| fail("holds no private key with its certificate".into()))?;
            let chain = entry
                .certs()
                .iter()
                .map(|c| CertificateDer::from(c.as_der().to_vec()))
                .collect();
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(entry.key().as_der().to_vec()));
            Ok((chain, key))
        }
        StoreKind::Pem => {
            let chain = pem_certificates(&bytes).map_err(fail)?;
            let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
                fail(format!(
                    "no usable private key ({e}); an encrypted PEM key is not supported"
                ))
            })?;
            Ok((chain, key))
        }
    }
}

/// The certificates client certificates must chain to.
fn load_trust_store(store: &StoreConfig) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let what = "trust store";
    let (bytes, kind) = open_store(store, what)?;
    let fail = |reason: String| store_error(what, store, reason);
    let anchors: Vec<CertificateDer<'static>> = match kind {
        StoreKind::Jks => jks_entries(store, &bytes)
            .map_err(fail)?
            .into_iter()
            .flat_map(|entry| match entry {
                jks::JksEntry::TrustedCert { cert, .. } => vec![CertificateDer::from(cert)],
                // A key entry's chain counts too, as in Java's trust managers.
                jks::JksEntry::PrivateKey { chain, .. } => {
                    chain.into_iter().map(CertificateDer::from).collect()
                }
            })
            .collect(),
        StoreKind::Pkcs12 => pkcs12_store(store, &bytes, true)
            .map_err(fail)?
            .entries()
            .flat_map(|(_, entry)| match entry {
                p12_keystore::KeyStoreEntry::Certificate(cert) => {
                    vec![CertificateDer::from(cert.as_der().to_vec())]
                }
                p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => chain
                    .certs()
                    .iter()
                    .map(|c| CertificateDer::from(c.as_der().to_vec()))
                    .collect(),
                p12_keystore::KeyStoreEntry::Secret(_) => Vec::new(),
            })
            .collect(),
        StoreKind::Pem => pem_certificates(&bytes).map_err(fail)?,
    };
    if anchors.is_empty() {
        return Err(fail("holds no certificate".into()));
    }
    Ok(anchors)
}
