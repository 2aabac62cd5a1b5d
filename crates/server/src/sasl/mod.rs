//! SASL authentication (opcode 102), as ZooKeeper's server does it with a
//! JAAS `Server` section holding a DigestLoginModule: DIGEST-MD5 against the
//! section's `user_<name>="<password>"` accounts. A client that
//! authenticates gets the identity `sasl:<name>` (and `super` when the name
//! is `zookeeper.superUser`). Kerberos (GSSAPI) is not offered.

pub mod digest_md5;
pub mod jaas;

use std::collections::BTreeMap;
use std::path::Path;

use thiserror::Error;

pub use digest_md5::{DigestMd5Server, Step};

/// ZooKeeper's DigestLoginModule, whose options hold the accounts.
const DIGEST_LOGIN_MODULE: &str = "org.apache.zookeeper.server.auth.DigestLoginModule";

#[derive(Debug, Error)]
pub enum SaslConfigError {
    #[error("cannot read the JAAS configuration {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Syntax {
        path: std::path::PathBuf,
        source: jaas::JaasError,
    },
}

/// The DIGEST-MD5 accounts the server accepts: name → password.
#[derive(Debug, Clone, Default)]
pub struct SaslAccounts {
    pub passwords: BTreeMap<String, String>,
}

impl SaslAccounts {
    /// Reads the accounts of section `section` of a JAAS file. `None` when
    /// the file has no such section or it has no DigestLoginModule (logged:
    /// SASL clients are then refused, as a ZooKeeper without a login is
    /// unable to authenticate them).
    pub fn load(path: &Path, section: &str) -> Result<Option<SaslAccounts>, SaslConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| SaslConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let sections = jaas::parse(&text).map_err(|source| SaslConfigError::Syntax {
            path: path.to_path_buf(),
            source,
        })?;
        let Some(modules) = sections.get(section) else {
            tracing::info!(jaas = %path.display(), section, "no JAAS section for the server: SASL is off");
            return Ok(None);
        };
        let Some(digest) = modules.iter().find(|m| m.class == DIGEST_LOGIN_MODULE) else {
            let classes: Vec<&str> = modules.iter().map(|m| m.class.as_str()).collect();
            tracing::warn!(
                jaas = %path.display(),
                section,
                ?classes,
                "the JAAS section has no {DIGEST_LOGIN_MODULE}: only DIGEST-MD5 is supported, SASL is off"
            );
            return Ok(None);
        };
        let passwords: BTreeMap<String, String> = digest
            .options
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("user_").map(|u| (u.to_string(), v.clone())))
            .collect();
        tracing::info!(
            jaas = %path.display(),
            section,
            accounts = passwords.len(),
            "SASL DIGEST-MD5 on"
        );
        Ok(Some(SaslAccounts { passwords }))
    }

    /// A new exchange for one client.
    pub fn begin(&self) -> DigestMd5Server {
        let nonce: String = {
            use rand::Rng;
            let mut rng = rand::thread_rng();
            (0..24)
                .map(|_| {
                    let i = rng.gen_range(0..62);
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"[i] as char
                })
                .collect()
        };
        DigestMd5Server::new(nonce)
    }
}
