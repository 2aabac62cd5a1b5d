//! Reader for Java KeyStore (JKS) files.
//!
//! ZooKeeper deployments configure TLS with `ssl.keyStore.location` and
//! `ssl.trustStore.location`, and many of them point at JKS files made with
//! `keytool`. Reading those files directly lets Corral replace a ZooKeeper
//! server without asking operators to convert their stores first.
//!
//! Oracle never published the format; this follows what the JDK's
//! `sun.security.provider.JavaKeyStore` and `KeyProtector` do. The format's
//! protection is weak (an iterated SHA-1 keystream), so the password mainly
//! guards against accidents; the file permissions are what keep keys secret.

use std::fmt;

use sha1::{Digest, Sha1};

const MAGIC: [u8; 4] = [0xFE, 0xED, 0xFE, 0xED];
const TAG_PRIVATE_KEY: u32 = 1;
const TAG_TRUSTED_CERT: u32 = 2;
/// Mixed into the integrity digest by the JDK; a fixed part of the format.
const INTEGRITY_WHITENER: &[u8] = b"Mighty Aphrodite";
const DIGEST_LEN: usize = 20;
const SALT_LEN: usize = 20;
/// DER contents of OID 1.3.6.1.4.1.42.2.17.1.1, Sun's proprietary key
/// protector: the only one the JDK writes into (and accepts from) JKS files.
const KEY_PROTECTOR_OID: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x2A, 0x02, 0x11, 0x01, 0x01];
const CERT_TYPE_X509: &str = "X.509";

const DER_OCTET_STRING: u8 = 0x04;
const DER_OID: u8 = 0x06;
const DER_SEQUENCE: u8 = 0x30;

/// One entry of a JKS keystore.
#[derive(Clone, PartialEq, Eq)]
pub enum JksEntry {
    /// A private key (PKCS#8 PrivateKeyInfo DER, decrypted) with its certificate chain (DER, leaf first).
    PrivateKey {
        alias: String,
        key_pkcs8: Vec<u8>,
        chain: Vec<Vec<u8>>,
    },
    /// A trusted certificate (DER).
    TrustedCert { alias: String, cert: Vec<u8> },
}

/// Hand-written so that logging an entry can never leak the private key.
impl fmt::Debug for JksEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JksEntry::PrivateKey {
                alias,
                key_pkcs8,
                chain,
            } => f
                .debug_struct("PrivateKey")
                .field("alias", alias)
                .field(
                    "key_pkcs8",
                    &format_args!("<{} bytes redacted>", key_pkcs8.len()),
                )
                .field("chain", &format_args!("<{} certificates>", chain.len()))
                .finish(),
            JksEntry::TrustedCert { alias, cert } => f
                .debug_struct("TrustedCert")
                .field("alias", alias)
                .field("cert", &format_args!("<{} bytes>", cert.len()))
                .finish(),
        }
    }
}

/// Why a keystore could not be read; each message points at what the
/// operator can fix (password, file, or store type).
#[derive(Debug, thiserror::Error)]
pub enum JksError {
    #[error(
        "not a JKS keystore: the file does not start with the magic number 0xFEEDFEED \
         (PKCS#12 and PEM files need their own store type)"
    )]
    NotJks,
    #[error("unsupported JKS keystore version {version} (only versions 1 and 2 exist)")]
    UnsupportedVersion { version: u32 },
    #[error(
        "JKS keystore is truncated or corrupt: {needed} bytes needed at byte offset {offset}, \
         but only {available} remain"
    )]
    Truncated {
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error("JKS keystore is malformed at byte offset {offset}: {reason}")]
    Malformed { offset: usize, reason: String },
    #[error(
        "JKS keystore has an entry of unknown type {tag} at byte offset {offset} \
         (JKS holds only private keys and trusted certificates; secret keys need PKCS#12)"
    )]
    UnknownEntryType { offset: usize, tag: u32 },
    #[error(
        "certificate of alias {alias:?} at byte offset {offset} has type {cert_type:?}; \
         only X.509 certificates are supported"
    )]
    UnsupportedCertType {
        alias: String,
        cert_type: String,
        offset: usize,
    },
    #[error(
        "JKS keystore integrity check failed: the store password is wrong or the file is corrupted"
    )]
    IntegrityMismatch,
    #[error(
        "cannot decrypt the private key of alias {alias:?}: wrong key password (the key \
         protector check failed; without a separate key password the store password is used)"
    )]
    WrongKeyPassword { alias: String },
    #[error(
        "cannot decrypt the private key of alias {alias:?}: it is protected with algorithm \
         OID {oid}, but only Sun's JKS key protector (1.3.6.1.4.1.42.2.17.1.1) is supported"
    )]
    UnsupportedKeyProtection { alias: String, oid: String },
}

/// Lets callers pick a parser by content, as the JDK does, rather than
/// trusting a configured store type or a file extension.
pub fn is_jks(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// Parses a whole keystore and decrypts every private key.
///
/// The store password is checked (through the integrity digest) before any
/// key is decrypted, so a wrong store password is reported as such instead
/// of as an undecryptable key. `key_password` defaults to the store password
/// because ZooKeeper uses that one password for both.
pub fn parse(
    bytes: &[u8],
    store_password: &str,
    key_password: Option<&str>,
) -> Result<Vec<JksEntry>, JksError> {
    if !is_jks(bytes) {
        return Err(JksError::NotJks);
    }
    let mut reader = Reader::new(bytes);
    reader.take(MAGIC.len())?;
    let version = reader.u32()?;
    let has_cert_types = match version {
        1 => false,
        2 => true,
        _ => return Err(JksError::UnsupportedVersion { version }),
    };
    let count = reader.count(min_entry_len(has_cert_types), "entry")?;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        entries.push(read_entry(&mut reader, has_cert_types)?);
    }

    let body = reader.consumed();
    let stored_digest = reader.take(DIGEST_LEN)?;
    // Anything after the digest is ignored, as the JDK does.
    let computed = Sha1::new()
        .chain_update(password_bytes(store_password))
        .chain_update(INTEGRITY_WHITENER)
        .chain_update(body)
        .finalize();
    if computed.as_slice() != stored_digest {
        return Err(JksError::IntegrityMismatch);
    }

    let key_password = password_bytes(key_password.unwrap_or(store_password));
    entries
        .into_iter()
        .map(|entry| entry.decrypt(&key_password))
        .collect()
}

/// An entry whose key is still encrypted: decryption waits until the
/// integrity digest has confirmed the store password.
enum RawEntry<'a> {
    PrivateKey {
        alias: String,
        key: ProtectedKey<'a>,
        chain: Vec<Vec<u8>>,
    },
    TrustedCert {
        alias: String,
        cert: Vec<u8>,
    },
}

struct ProtectedKey<'a> {
    oid: &'a [u8],
    data: &'a [u8],
    /// File offset of `data`, for error messages.
    offset: usize,
}

impl RawEntry<'_> {
    fn decrypt(self, password: &[u8]) -> Result<JksEntry, JksError> {
        match self {
            RawEntry::TrustedCert { alias, cert } => Ok(JksEntry::TrustedCert { alias, cert }),
            RawEntry::PrivateKey { alias, key, chain } => {
                if key.oid != KEY_PROTECTOR_OID {
                    return Err(JksError::UnsupportedKeyProtection {
                        alias,
                        oid: dotted_oid(key.oid),
                    });
                }
                let Some((salt, ciphertext, check)) = split_protected(key.data) else {
                    return Err(JksError::Malformed {
                        offset: key.offset,
                        reason: format!(
                            "protected key of alias {alias:?} is {} bytes, too short to hold \
                             its salt and check digest",
                            key.data.len()
                        ),
                    });
                };
                match recover_key(salt, ciphertext, check, password) {
                    Some(key_pkcs8) => Ok(JksEntry::PrivateKey {
                        alias,
                        key_pkcs8,
                        chain,
                    }),
                    None => Err(JksError::WrongKeyPassword { alias }),
                }
            }
        }
    }
}

/// The smallest possible entry (a trusted certificate with an empty alias and
/// an empty certificate); bounds a declared entry count by the bytes left.
fn min_entry_len(has_cert_types: bool) -> usize {
    4 + 2 + 8 + min_cert_len(has_cert_types)
}

fn min_cert_len(has_cert_types: bool) -> usize {
    if has_cert_types {
        2 + 4
    } else {
        4
    }
}

fn read_entry<'a>(reader: &mut Reader<'a>, has_cert_types: bool) -> Result<RawEntry<'a>, JksError> {
    let tag_offset = reader.pos;
    let tag = reader.u32()?;
    if tag != TAG_PRIVATE_KEY && tag != TAG_TRUSTED_CERT {
        return Err(JksError::UnknownEntryType {
            offset: tag_offset,
            tag,
        });
    }
    let alias = reader.utf()?;
    let _created_ms = reader.u64()?;
    if tag == TAG_TRUSTED_CERT {
        let cert = read_cert(reader, has_cert_types, &alias)?;
        return Ok(RawEntry::TrustedCert { alias, cert });
    }

    let (key_offset, key_der) = reader.u32_prefixed()?;
    let key = parse_encrypted_private_key_info(key_der, key_offset)?;
    let chain_len = reader.count(min_cert_len(has_cert_types), "certificate chain")?;
    let mut chain = Vec::with_capacity(chain_len);
    for _ in 0..chain_len {
        chain.push(read_cert(reader, has_cert_types, &alias)?);
    }
    Ok(RawEntry::PrivateKey { alias, key, chain })
}

fn read_cert(
    reader: &mut Reader<'_>,
    has_cert_types: bool,
    alias: &str,
) -> Result<Vec<u8>, JksError> {
    if has_cert_types {
        let offset = reader.pos;
        let cert_type = reader.utf()?;
        if cert_type != CERT_TYPE_X509 {
            return Err(JksError::UnsupportedCertType {
                alias: alias.to_owned(),
                cert_type,
                offset,
            });
        }
    }
    let (_, der) = reader.u32_prefixed()?;
    Ok(der.to_vec())
}

/// Unpacks `EncryptedPrivateKeyInfo ::= SEQUENCE { AlgorithmIdentifier,
/// OCTET STRING }` strictly: the bytes are covered by the integrity digest,
/// so anything unexpected means the writer was not the JDK.
fn parse_encrypted_private_key_info(
    der: &[u8],
    offset: usize,
) -> Result<ProtectedKey<'_>, JksError> {
    let mut outer = Der::new(der, offset);
    let info = outer.expect_tag(DER_SEQUENCE, "EncryptedPrivateKeyInfo SEQUENCE")?;
    outer.finish("EncryptedPrivateKeyInfo")?;

    let mut info = info.reader();
    let algorithm = info.expect_tag(DER_SEQUENCE, "AlgorithmIdentifier SEQUENCE")?;
    let data = info.expect_tag(DER_OCTET_STRING, "encrypted key OCTET STRING")?;
    info.finish("EncryptedPrivateKeyInfo contents")?;

    let mut algorithm = algorithm.reader();
    let oid = algorithm.expect_tag(DER_OID, "algorithm OID")?;
    if !algorithm.is_empty() {
        // Parameters: NULL for Sun's protector; other algorithms are refused
        // later, by OID, with a clearer message than a parameter mismatch.
        algorithm.element()?;
        algorithm.finish("AlgorithmIdentifier")?;
    }
    Ok(ProtectedKey {
        oid: oid.content,
        data: data.content,
        offset: data.offset,
    })
}

/// Sun's layout is `salt || ciphertext || check`; `None` when the data is too
/// short for that, which no password could fix.
fn split_protected(data: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (salt, rest) = data.split_at_checked(SALT_LEN)?;
    let (ciphertext, check) = rest.split_at_checked(rest.len().checked_sub(DIGEST_LEN)?)?;
    Some((salt, ciphertext, check))
}

/// Undoes Sun's key protector; `None` means the password is wrong, which the
/// format can only tell through the check digest over the plaintext.
fn recover_key(salt: &[u8], ciphertext: &[u8], check: &[u8], password: &[u8]) -> Option<Vec<u8>> {
    let mut plaintext = Vec::with_capacity(ciphertext.len());
    let mut digest = Sha1::new()
        .chain_update(password)
        .chain_update(salt)
        .finalize();
    for block in ciphertext.chunks(DIGEST_LEN) {
        plaintext.extend(block.iter().zip(digest.iter()).map(|(c, k)| c ^ k));
        digest = Sha1::new()
            .chain_update(password)
            .chain_update(digest)
            .finalize();
    }
    let computed = Sha1::new()
        .chain_update(password)
        .chain_update(&plaintext)
        .finalize();
    (computed.as_slice() == check).then_some(plaintext)
}

/// Java hashes passwords as the big-endian bytes of their UTF-16 `char`s.
fn password_bytes(password: &str) -> Vec<u8> {
    password.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// Renders an OID for error messages; falls back to hex so that a garbled
/// OID is still reported rather than hidden.
fn dotted_oid(content: &[u8]) -> String {
    decode_oid(content).unwrap_or_else(|| {
        let hex: String = content.iter().map(|b| format!("{b:02x}")).collect();
        format!("<malformed OID 0x{hex}>")
    })
}

/// An OID's dotted form; `None` when malformed.
pub(super) fn decode_oid(content: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    let mut pending = false;
    for &byte in content {
        value = value
            .checked_mul(128)?
            .checked_add(u64::from(byte & 0x7F))?;
        pending = true;
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
            pending = false;
        }
    }
    if pending || arcs.is_empty() {
        return None;
    }
    let arcs: Vec<String> = arcs.iter().map(u64::to_string).collect();
    Some(arcs.join("."))
}

/// Decodes Java's "modified UTF-8" (`DataInput.readUTF`): NUL is `C0 80` and
/// characters beyond the BMP arrive as two encoded surrogates. Unpaired
/// surrogates, which Java strings allow, become U+FFFD since aliases are
/// only informational. On error, returns the offset of the offending byte.
fn decode_modified_utf8(raw: &[u8]) -> Result<String, usize> {
    let continuation = |at: usize| {
        raw.get(at)
            .filter(|&&b| b & 0xC0 == 0x80)
            .map(|&b| u16::from(b & 0x3F))
            .ok_or(at)
    };
    let mut units = Vec::with_capacity(raw.len());
    let mut at = 0;
    while let Some(&lead) = raw.get(at) {
        let (unit, width) = match lead >> 4 {
            0..=7 => (u16::from(lead), 1),
            12 | 13 => ((u16::from(lead & 0x1F) << 6) | continuation(at + 1)?, 2),
            14 => (
                (u16::from(lead & 0x0F) << 12)
                    | (continuation(at + 1)? << 6)
                    | continuation(at + 2)?,
                3,
            ),
            _ => return Err(at),
        };
        units.push(unit);
        at += width;
    }
    Ok(String::from_utf16_lossy(&units))
}

/// Bounds-checked big-endian cursor over the keystore file.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn consumed(&self) -> &'a [u8] {
        self.bytes.get(..self.pos).unwrap_or_default()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], JksError> {
        let taken = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end))
            .ok_or(JksError::Truncated {
                offset: self.pos,
                needed: n,
                available: self.remaining(),
            })?;
        self.pos += n;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], JksError> {
        let offset = self.pos;
        self.take(N)?.try_into().map_err(|_| JksError::Malformed {
            offset,
            reason: format!("expected {N} bytes"),
        })
    }

    fn u16(&mut self) -> Result<u16, JksError> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, JksError> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, JksError> {
        self.array().map(u64::from_be_bytes)
    }

    /// Reads a u32 length and that many bytes; returns their file offset too.
    fn u32_prefixed(&mut self) -> Result<(usize, &'a [u8]), JksError> {
        let len = self.u32()?;
        let offset = self.pos;
        let bytes = self.take(usize::try_from(len).unwrap_or(usize::MAX))?;
        Ok((offset, bytes))
    }

    /// Reads a count and rejects it if even minimum-size items could not fit
    /// in what is left, so a corrupt count cannot cause a huge allocation.
    fn count(&mut self, min_item_len: usize, what: &str) -> Result<usize, JksError> {
        let offset = self.pos;
        let count = self.u32()?;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let remaining = self.remaining();
        if count > remaining / min_item_len.max(1) {
            return Err(JksError::Malformed {
                offset,
                reason: format!(
                    "{what} count {count} cannot fit in the remaining {remaining} bytes"
                ),
            });
        }
        Ok(count)
    }

    fn utf(&mut self) -> Result<String, JksError> {
        let len = self.u16()?;
        let offset = self.pos;
        let raw = self.take(usize::from(len))?;
        decode_modified_utf8(raw).map_err(|at| JksError::Malformed {
            offset: offset + at,
            reason: "invalid modified UTF-8 in string".to_owned(),
        })
    }
}

/// Minimal DER reader: single-byte tags and definite lengths are all that
/// `EncryptedPrivateKeyInfo` needs. Offsets are reported relative to the file.
struct Der<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// File offset of `bytes[0]`.
    base: usize,
}

struct Element<'a> {
    tag: u8,
    content: &'a [u8],
    /// File offset of `content`.
    offset: usize,
}

impl<'a> Element<'a> {
    fn reader(&self) -> Der<'a> {
        Der::new(self.content, self.offset)
    }
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8], base: usize) -> Self {
        Der {
            bytes,
            pos: 0,
            base,
        }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn malformed(&self, at: usize, reason: String) -> JksError {
        JksError::Malformed {
            offset: self.base.saturating_add(at),
            reason,
        }
    }

    fn byte(&mut self) -> Result<u8, JksError> {
        let byte = self
            .bytes
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.malformed(self.pos, "DER element ends early".to_owned()))?;
        self.pos += 1;
        Ok(byte)
    }

    fn element(&mut self) -> Result<Element<'a>, JksError> {
        let start = self.pos;
        let tag = self.byte()?;
        if tag & 0x1F == 0x1F {
            return Err(self.malformed(start, "multi-byte DER tags are not supported".to_owned()));
        }
        let first = self.byte()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let len_bytes = first & 0x7F;
            if len_bytes == 0 {
                return Err(self.malformed(start, "indefinite DER length".to_owned()));
            }
            if len_bytes > 4 {
                return Err(self.malformed(start, "DER length is too large".to_owned()));
            }
            let mut len: usize = 0;
            for _ in 0..len_bytes {
                let byte = self.byte()?;
                len = len
                    .checked_mul(256)
                    .and_then(|len| len.checked_add(usize::from(byte)))
                    .ok_or_else(|| self.malformed(start, "DER length is too large".to_owned()))?;
            }
            len
        };
        let content_start = self.pos;
        let content = self
            .pos
            .checked_add(len)
            .and_then(|end| self.bytes.get(self.pos..end))
            .ok_or_else(|| {
                self.malformed(
                    start,
                    format!(
                        "DER element of {len} bytes overruns its container ({} bytes left)",
                        self.bytes.len().saturating_sub(content_start)
                    ),
                )
            })?;
        self.pos = content_start + len;
        Ok(Element {
            tag,
            content,
            offset: self.base.saturating_add(content_start),
        })
    }

    fn expect_tag(&mut self, tag: u8, what: &str) -> Result<Element<'a>, JksError> {
        let start = self.pos;
        let element = self.element()?;
        if element.tag != tag {
            return Err(self.malformed(
                start,
                format!(
                    "expected {what} (DER tag {tag:#04x}), found tag {:#04x}",
                    element.tag
                ),
            ));
        }
        Ok(element)
    }

    fn finish(&self, what: &str) -> Result<(), JksError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.malformed(self.pos, format!("unexpected bytes after {what}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::Path;
    use std::process::Command;
    use std::sync::OnceLock;

    const RSA_ENCRYPTION_OID: &[u8] = &[
        0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01,
    ];
    const EC_PUBLIC_KEY_OID: &[u8] = &[0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
    const STORE_PASSWORD: &str = "apassword";

    /// Keystores made by the real `keytool`, generated once (the JVM is slow
    /// to start) and kept in memory; the files themselves are deleted.
    struct Fixture {
        /// RSA key pair, alias "server", key password = store password.
        rsa: Vec<u8>,
        /// The "server" certificate as exported by keytool (DER).
        rsa_cert: Vec<u8>,
        /// Only that certificate, trusted under alias "ca".
        trust: Vec<u8>,
        /// EC key pair "ec" with key password "keypassword", plus trusted "ca".
        ec: Vec<u8>,
    }

    fn fixture() -> Option<&'static Fixture> {
        static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
        let fixture = FIXTURE.get_or_init(build_fixture).as_ref();
        if fixture.is_none() {
            eprintln!("notice: keytool is not installed; skipping test that needs real JKS files");
        }
        fixture
    }

    fn build_fixture() -> Option<Fixture> {
        if Command::new("keytool").arg("-help").output().is_err() {
            return None;
        }
        let dir = tempfile::tempdir().expect("create temp dir");
        let path = |name: &str| {
            dir.path()
                .join(name)
                .to_str()
                .expect("utf-8 path")
                .to_owned()
        };
        let (rsa, cert, trust, ec) = (
            path("k.jks"),
            path("server.der"),
            path("t.jks"),
            path("ec.jks"),
        );
        let store = ["-storetype", "JKS", "-storepass", STORE_PASSWORD];
        keytool(
            dir.path(),
            &[
                &["-genkeypair", "-keystore", &rsa, "-alias", "server"],
                &store[..],
                &["-keypass", STORE_PASSWORD, "-dname", "CN=localhost"],
                &["-keyalg", "RSA", "-keysize", "2048", "-validity", "2"],
            ]
            .concat(),
        );
        keytool(
            dir.path(),
            &[
                &["-exportcert", "-keystore", &rsa, "-alias", "server"],
                &store[..],
                &["-file", &cert],
            ]
            .concat(),
        );
        keytool(
            dir.path(),
            &[
                &[
                    "-importcert",
                    "-noprompt",
                    "-keystore",
                    &trust,
                    "-alias",
                    "ca",
                ],
                &store[..],
                &["-file", &cert],
            ]
            .concat(),
        );
        keytool(
            dir.path(),
            &[
                &["-genkeypair", "-keystore", &ec, "-alias", "ec"],
                &store[..],
                &["-keypass", "keypassword", "-dname", "CN=ec.localhost"],
                &["-keyalg", "EC", "-validity", "2"],
            ]
            .concat(),
        );
        keytool(
            dir.path(),
            &[
                &["-importcert", "-noprompt", "-keystore", &ec, "-alias", "ca"],
                &store[..],
                &["-file", &cert],
            ]
            .concat(),
        );
        let read = |path: &str| std::fs::read(path).expect("read keytool output");
        Some(Fixture {
            rsa: read(&rsa),
            rsa_cert: read(&cert),
            trust: read(&trust),
            ec: read(&ec),
        })
    }

    fn keytool(dir: &Path, args: &[&str]) {
        let output = Command::new("keytool")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run keytool");
        assert!(
            output.status.success(),
            "keytool {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn keytool_rsa_private_key() {
        let Some(fixture) = fixture() else { return };
        assert!(is_jks(&fixture.rsa));
        let entries = parse(&fixture.rsa, STORE_PASSWORD, None).expect("parse");
        let [JksEntry::PrivateKey {
            alias,
            key_pkcs8,
            chain,
        }] = entries.as_slice()
        else {
            panic!("expected one private key entry, got {entries:?}");
        };
        assert_eq!(alias, "server");
        assert_eq!(key_pkcs8.first(), Some(&DER_SEQUENCE));
        assert!(contains(key_pkcs8, RSA_ENCRYPTION_OID));
        assert_eq!(chain.as_slice(), std::slice::from_ref(&fixture.rsa_cert));

        let explicit = parse(&fixture.rsa, STORE_PASSWORD, Some(STORE_PASSWORD)).expect("parse");
        assert_eq!(explicit, entries);
    }

    #[test]
    fn keytool_trusted_cert_matches_exported_der() {
        let Some(fixture) = fixture() else { return };
        let entries = parse(&fixture.trust, STORE_PASSWORD, None).expect("parse");
        assert_eq!(
            entries,
            [JksEntry::TrustedCert {
                alias: "ca".to_owned(),
                cert: fixture.rsa_cert.clone(),
            }]
        );
    }

    #[test]
    fn keytool_ec_key_with_own_key_password() {
        let Some(fixture) = fixture() else { return };
        let err =
            parse(&fixture.ec, STORE_PASSWORD, None).expect_err("store password must not decrypt");
        assert!(
            matches!(&err, JksError::WrongKeyPassword { alias } if alias == "ec"),
            "{err:?}"
        );
        assert!(err.to_string().contains("\"ec\""), "{err}");

        let entries = parse(&fixture.ec, STORE_PASSWORD, Some("keypassword")).expect("parse");
        assert_eq!(entries.len(), 2, "{entries:?}");
        let key = entries.iter().find_map(|entry| match entry {
            JksEntry::PrivateKey {
                alias,
                key_pkcs8,
                chain,
            } if alias == "ec" => Some((key_pkcs8, chain)),
            _ => None,
        });
        let (key_pkcs8, chain) = key.expect("ec private key entry");
        assert_eq!(key_pkcs8.first(), Some(&DER_SEQUENCE));
        assert!(contains(key_pkcs8, EC_PUBLIC_KEY_OID));
        assert_eq!(chain.len(), 1);
        assert!(entries.contains(&JksEntry::TrustedCert {
            alias: "ca".to_owned(),
            cert: fixture.rsa_cert.clone(),
        }));
    }

    #[test]
    fn keytool_wrong_store_password() {
        let Some(fixture) = fixture() else { return };
        for store in [&fixture.rsa, &fixture.trust, &fixture.ec] {
            let err = parse(store, "wrong", Some(STORE_PASSWORD)).expect_err("wrong password");
            assert!(matches!(err, JksError::IntegrityMismatch), "{err:?}");
        }
    }

    #[test]
    fn keytool_every_truncation_is_an_error() {
        let Some(fixture) = fixture() else { return };
        for store in [&fixture.rsa, &fixture.trust, &fixture.ec] {
            for len in 0..store.len() {
                let prefix = store.get(..len).expect("prefix");
                assert!(
                    parse(prefix, STORE_PASSWORD, Some("keypassword")).is_err(),
                    "prefix of {len} bytes parsed"
                );
            }
        }
    }

    #[test]
    fn keytool_every_flipped_byte_is_an_error() {
        let Some(fixture) = fixture() else { return };
        let mut store = fixture.trust.clone();
        for at in 0..store.len() {
            for mask in [0x01, 0x80] {
                store[at] ^= mask;
                assert!(
                    parse(&store, STORE_PASSWORD, None).is_err(),
                    "flipping {mask:#04x} at byte {at} went unnoticed"
                );
                store[at] ^= mask;
            }
        }
    }

    #[test]
    fn bad_magic_is_not_jks() {
        for bytes in [
            &b""[..],
            b"\xFE\xED\xFE",
            b"\x30\x82\x01\x00",
            b"\xCE\xCE\xCE\xCE\0\0\0\x02",
        ] {
            assert!(!is_jks(bytes));
            assert!(matches!(parse(bytes, "", None), Err(JksError::NotJks)));
        }
        assert!(JksError::NotJks.to_string().contains("0xFEEDFEED"));
    }

    #[test]
    fn unsupported_version() {
        let store = Store::new(3).finish("pw");
        let err = parse(&store, "pw", None).expect_err("version 3");
        assert!(
            matches!(err, JksError::UnsupportedVersion { version: 3 }),
            "{err:?}"
        );
    }

    #[test]
    fn empty_store_with_empty_password() {
        for version in [1, 2] {
            let store = Store::new(version).finish("");
            assert_eq!(parse(&store, "", None).expect("parse"), []);
            assert!(matches!(
                parse(&store, "x", None),
                Err(JksError::IntegrityMismatch)
            ));
        }
    }

    #[test]
    fn synthetic_stores_of_both_versions() {
        let key = der(DER_SEQUENCE, &[0x02, 0x01, 0x00]);
        // Long enough for a partial last keystream block.
        let long_key = der(DER_SEQUENCE, &[0xAB; 300]);
        // NUL, a two-byte, a three-byte and a supplementary character.
        let alias = "a\0é€😀";
        for version in [1, 2] {
            let store = Store::new(version)
                .private_key(alias, &protect(&key, "kp"), &[b"leaf", b"issuer"])
                .private_key("long", &protect(&long_key, "kp"), &[])
                .trusted_cert("ca", b"cert")
                .finish("sp");
            let entries = parse(&store, "sp", Some("kp")).expect("parse");
            assert_eq!(
                entries,
                [
                    JksEntry::PrivateKey {
                        alias: alias.to_owned(),
                        key_pkcs8: key.clone(),
                        chain: vec![b"leaf".to_vec(), b"issuer".to_vec()],
                    },
                    JksEntry::PrivateKey {
                        alias: "long".to_owned(),
                        key_pkcs8: long_key.clone(),
                        chain: vec![],
                    },
                    JksEntry::TrustedCert {
                        alias: "ca".to_owned(),
                        cert: b"cert".to_vec(),
                    },
                ]
            );
            assert!(matches!(
                parse(&store, "sp", None),
                Err(JksError::WrongKeyPassword { .. })
            ));
        }
    }

    #[test]
    fn unknown_protection_algorithm_names_the_oid() {
        // PBEWithMD5AndTripleDES, which JCEKS uses.
        let jceks_oid = [0x2B, 0x06, 0x01, 0x04, 0x01, 0x2A, 0x02, 0x13, 0x01];
        let info = der(
            DER_SEQUENCE,
            &[
                der(
                    DER_SEQUENCE,
                    &[der(DER_OID, &jceks_oid), vec![0x05, 0x00]].concat(),
                ),
                der(DER_OCTET_STRING, &[0; 64]),
            ]
            .concat(),
        );
        let store = Store::new(2).private_key("k", &info, &[]).finish("pw");
        let err = parse(&store, "pw", None).expect_err("unknown OID");
        assert!(
            matches!(&err, JksError::UnsupportedKeyProtection { alias, oid }
                if alias == "k" && oid == "1.3.6.1.4.1.42.2.19.1"),
            "{err:?}"
        );
        assert!(err.to_string().contains("1.3.6.1.4.1.42.2.19.1"), "{err}");
    }

    #[test]
    fn short_protected_key_is_malformed() {
        let info = encrypted_private_key_info(&[0; SALT_LEN + DIGEST_LEN - 1], true);
        let store = Store::new(2).private_key("k", &info, &[]).finish("pw");
        let err = parse(&store, "pw", None).expect_err("short key");
        assert!(matches!(err, JksError::Malformed { .. }), "{err:?}");
    }

    #[test]
    fn absent_algorithm_parameters_are_accepted() {
        let key = der(DER_SEQUENCE, &[]);
        let mut data = protect(&key, "pw");
        // Re-wrap the protected bytes without the NULL parameters.
        let protected = strip_info(&data);
        data = encrypted_private_key_info(&protected, false);
        let store = Store::new(2).private_key("k", &data, &[]).finish("pw");
        let entries = parse(&store, "pw", None).expect("parse");
        assert!(
            matches!(&entries[..], [JksEntry::PrivateKey { key_pkcs8, .. }] if *key_pkcs8 == key)
        );
    }

    #[test]
    fn malformed_key_der_reports_offset() {
        let mut info = protect(&der(DER_SEQUENCE, &[]), "pw");
        info.push(0);
        let store = Store::new(2).private_key("k", &info, &[]).finish("pw");
        let err = parse(&store, "pw", None).expect_err("trailing DER byte");
        let expected = store.len() - DIGEST_LEN - 4 - 1;
        assert!(
            matches!(err, JksError::Malformed { offset, .. } if offset == expected),
            "{err:?}, expected offset {expected}"
        );
        assert!(
            err.to_string().contains(&format!("offset {expected}")),
            "{err}"
        );
    }

    #[test]
    fn hostile_counts_are_rejected_before_allocating() {
        let mut header = Store::new(2).finish("pw");
        header.truncate(8);
        header.extend(u32::MAX.to_be_bytes());
        let err = parse(&header, "pw", None).expect_err("huge entry count");
        assert!(
            matches!(err, JksError::Malformed { offset: 8, .. }),
            "{err:?}"
        );

        let mut store = Store::new(2).private_key("k", &protect(&[], "pw"), &[]);
        let chain_count_at = store.body.len() - 4;
        store.body[chain_count_at..].copy_from_slice(&u32::MAX.to_be_bytes());
        let store = store.finish("pw");
        let err = parse(&store, "pw", None).expect_err("huge chain count");
        assert!(
            matches!(err, JksError::Malformed { offset, .. } if offset == chain_count_at),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_entry_type() {
        let mut store = Store::new(2).trusted_cert("ca", b"cert");
        store.body[12..16].copy_from_slice(&3u32.to_be_bytes());
        let store = store.finish("pw");
        let err = parse(&store, "pw", None).expect_err("entry type 3");
        assert!(
            matches!(err, JksError::UnknownEntryType { offset: 12, tag: 3 }),
            "{err:?}"
        );
    }

    #[test]
    fn non_x509_certificate_type() {
        let mut store = Store::new(2);
        store.entry_header(TAG_TRUSTED_CERT, "ca");
        store.utf("X.510");
        store.bytes(b"cert");
        let store = store.finish("pw");
        let err = parse(&store, "pw", None).expect_err("cert type");
        assert!(
            matches!(&err, JksError::UnsupportedCertType { cert_type, .. } if cert_type == "X.510"),
            "{err:?}"
        );
    }

    #[test]
    fn invalid_modified_utf8_alias() {
        for raw in [
            &[0x80][..],
            &[0xC3],
            &[0xE2, 0x82],
            &[0xE2, 0x28, 0xAC],
            &[0xF0, 0x9F],
        ] {
            let mut store = Store::new(2);
            store.body.extend(TAG_TRUSTED_CERT.to_be_bytes());
            store.body.extend((raw.len() as u16).to_be_bytes());
            store.body.extend(raw);
            store.body.extend(0u64.to_be_bytes());
            store.utf(CERT_TYPE_X509);
            store.bytes(b"cert");
            store.count += 1;
            let store = store.finish("pw");
            let err = parse(&store, "pw", None).expect_err("bad alias");
            assert!(
                matches!(err, JksError::Malformed { .. }),
                "{raw:?}: {err:?}"
            );
        }
    }

    #[test]
    fn oid_rendering() {
        assert_eq!(dotted_oid(KEY_PROTECTOR_OID), "1.3.6.1.4.1.42.2.17.1.1");
        assert_eq!(dotted_oid(&[0x88, 0x37, 0x03]), "2.999.3");
        assert_eq!(dotted_oid(&[0x2B, 0x86]), "<malformed OID 0x2b86>");
        assert_eq!(dotted_oid(&[]), "<malformed OID 0x>");
        assert!(decode_oid(&[0xFF; 20]).is_none());
    }

    #[test]
    fn debug_output_redacts_the_key() {
        let entry = JksEntry::PrivateKey {
            alias: "server".to_owned(),
            key_pkcs8: vec![0x5E, 0xC2, 0xE7],
            chain: vec![vec![1]],
        };
        let debug = format!("{entry:?}");
        assert!(
            debug.contains("server") && debug.contains("3 bytes redacted"),
            "{debug}"
        );
        assert!(!debug.contains("94"), "{debug}");
    }

    /// Writes keystores the way the JDK does, for cases keytool cannot produce.
    struct Store {
        version: u32,
        count: u32,
        body: Vec<u8>,
    }

    impl Store {
        fn new(version: u32) -> Self {
            let mut body = MAGIC.to_vec();
            body.extend(version.to_be_bytes());
            body.extend(0u32.to_be_bytes());
            Store {
                version,
                count: 0,
                body,
            }
        }

        fn utf(&mut self, s: &str) {
            let mut encoded = Vec::new();
            for unit in s.encode_utf16() {
                match unit {
                    0x01..=0x7F => encoded.push(unit as u8),
                    0x00 | 0x80..=0x7FF => {
                        encoded.extend([0xC0 | (unit >> 6) as u8, 0x80 | (unit & 0x3F) as u8])
                    }
                    _ => encoded.extend([
                        0xE0 | (unit >> 12) as u8,
                        0x80 | ((unit >> 6) & 0x3F) as u8,
                        0x80 | (unit & 0x3F) as u8,
                    ]),
                }
            }
            self.body.extend((encoded.len() as u16).to_be_bytes());
            self.body.extend(encoded);
        }

        fn bytes(&mut self, bytes: &[u8]) {
            self.body.extend((bytes.len() as u32).to_be_bytes());
            self.body.extend(bytes);
        }

        fn entry_header(&mut self, tag: u32, alias: &str) {
            self.count += 1;
            self.body.extend(tag.to_be_bytes());
            self.utf(alias);
            self.body.extend(1_700_000_000_000u64.to_be_bytes());
        }

        fn cert(&mut self, cert: &[u8]) {
            if self.version == 2 {
                self.utf(CERT_TYPE_X509);
            }
            self.bytes(cert);
        }

        fn private_key(mut self, alias: &str, info: &[u8], chain: &[&[u8]]) -> Self {
            self.entry_header(TAG_PRIVATE_KEY, alias);
            self.bytes(info);
            self.body.extend((chain.len() as u32).to_be_bytes());
            for cert in chain {
                self.cert(cert);
            }
            self
        }

        fn trusted_cert(mut self, alias: &str, cert: &[u8]) -> Self {
            self.entry_header(TAG_TRUSTED_CERT, alias);
            self.cert(cert);
            self
        }

        fn finish(mut self, password: &str) -> Vec<u8> {
            self.body[8..12].copy_from_slice(&self.count.to_be_bytes());
            let digest = Sha1::new()
                .chain_update(password_bytes(password))
                .chain_update(INTEGRITY_WHITENER)
                .chain_update(&self.body)
                .finalize();
            self.body.extend(digest);
            self.body
        }
    }

    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            len @ 0..=0x7F => out.push(len as u8),
            len @ 0x80..=0xFF => out.extend([0x81, len as u8]),
            len => out.extend([0x82, (len >> 8) as u8, len as u8]),
        }
        out.extend(content);
        out
    }

    fn encrypted_private_key_info(protected: &[u8], null_params: bool) -> Vec<u8> {
        let mut algorithm = der(DER_OID, KEY_PROTECTOR_OID);
        if null_params {
            algorithm.extend([0x05, 0x00]);
        }
        der(
            DER_SEQUENCE,
            &[
                der(DER_SEQUENCE, &algorithm),
                der(DER_OCTET_STRING, protected),
            ]
            .concat(),
        )
    }

    /// Sun's key protector, run forwards.
    fn protect(plaintext: &[u8], password: &str) -> Vec<u8> {
        let password = password_bytes(password);
        let salt: Vec<u8> = (0..SALT_LEN as u8).map(|i| i.wrapping_mul(37)).collect();
        let mut protected = salt.clone();
        let mut digest = Sha1::new()
            .chain_update(&password)
            .chain_update(&salt)
            .finalize();
        for block in plaintext.chunks(DIGEST_LEN) {
            protected.extend(block.iter().zip(digest.iter()).map(|(p, k)| p ^ k));
            digest = Sha1::new()
                .chain_update(&password)
                .chain_update(digest)
                .finalize();
        }
        protected.extend(
            Sha1::new()
                .chain_update(&password)
                .chain_update(plaintext)
                .finalize(),
        );
        encrypted_private_key_info(&protected, true)
    }

    /// The protected bytes inside an `EncryptedPrivateKeyInfo` from `protect`.
    fn strip_info(info: &[u8]) -> Vec<u8> {
        let mut outer = Der::new(info, 0);
        let mut inner = outer.element().expect("outer").reader();
        inner.element().expect("algorithm");
        inner.element().expect("octet string").content.to_vec()
    }
}
