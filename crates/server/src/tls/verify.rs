//! Client certificates checked against the trust store, as Java's trust
//! manager checks them for ZooKeeper: the chain must lead, through the
//! intermediates the client sent, to a certificate of the trust store, each
//! link signed by the next and within its validity period.
//!
//! Why not webpki's verifier: it accepts only X.509 v3 certificates, and
//! ZooKeeper deployments and test harnesses (kazoo's among them) issue v1
//! client certificates, which Java accepts. The cryptography is still
//! rustls's (its provider's signature algorithms); only the certificate
//! fields are read here, with a small DER reader.

use std::ops::Range;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

/// The longest chain followed from a client certificate to the trust store.
const CHAIN_DEPTH_MAX: usize = 8;

pub struct TrustStoreVerifier {
    anchors: Vec<Cert>,
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for TrustStoreVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStoreVerifier")
            .field("anchors", &self.anchors.len())
            .field("mandatory", &self.mandatory)
            .finish()
    }
}

impl TrustStoreVerifier {
    /// `mandatory`: a client without a certificate is refused (`ssl.clientAuth=need`).
    pub fn new(
        anchors: Vec<CertificateDer<'static>>,
        mandatory: bool,
        provider: Arc<CryptoProvider>,
    ) -> Result<TrustStoreVerifier, String> {
        let anchors = anchors
            .iter()
            .enumerate()
            .map(|(i, der)| {
                Cert::parse(der).map_err(|e| format!("certificate {} cannot be read: {e}", i + 1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustStoreVerifier {
            anchors,
            mandatory,
            provider,
        })
    }

    /// Whether `issuer`'s key made `cert`'s signature.
    fn signed_by(&self, cert: &Cert, issuer: &Cert) -> bool {
        self.provider
            .signature_verification_algorithms
            .all
            .iter()
            .filter(|alg| {
                alg.signature_alg_id().as_ref() == cert.field(&cert.sig_alg)
                    && alg.public_key_alg_id().as_ref() == issuer.field(&issuer.spki_alg)
            })
            .any(|alg| {
                alg.verify_signature(
                    issuer.field(&issuer.spki_key),
                    cert.field(&cert.tbs),
                    cert.field(&cert.signature),
                )
                .is_ok()
            })
    }

    /// The signature of the handshake, made with the client certificate's key.
    fn verify_handshake(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let cert = Cert::parse(cert)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let algs: &[&dyn SignatureVerificationAlgorithm] = self
            .provider
            .signature_verification_algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algs)| *algs)
            .ok_or_else(|| {
                Error::General(format!("unsupported signature scheme {:?}", dss.scheme))
            })?;
        let valid = algs
            .iter()
            .filter(|alg| alg.public_key_alg_id().as_ref() == cert.field(&cert.spki_alg))
            .any(|alg| {
                alg.verify_signature(cert.field(&cert.spki_key), message, dss.signature())
                    .is_ok()
            });
        if valid {
            Ok(HandshakeSignatureValid::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::BadSignature))
        }
    }
}

impl ClientCertVerifier for TrustStoreVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: a client then offers whatever certificate it has (Java's
        // key managers would otherwise pick by issuer name).
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let bad = |_| Error::InvalidCertificate(CertificateError::BadEncoding);
        let leaf = Cert::parse(end_entity).map_err(bad)?;
        let intermediates: Vec<Cert> = intermediates
            .iter()
            .filter_map(|c| Cert::parse(c).ok())
            .collect();
        let mut current = &leaf;
        for _ in 0..CHAIN_DEPTH_MAX {
            if now < current.not_before {
                return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
            }
            if now > current.not_after {
                return Err(Error::InvalidCertificate(CertificateError::Expired));
            }
            if self.anchors.iter().any(|a| a.der == current.der) {
                return Ok(ClientCertVerified::assertion());
            }
            let issued_by = |candidate: &&Cert| {
                candidate.field(&candidate.subject) == current.field(&current.issuer)
                    && self.signed_by(current, candidate)
            };
            if self.anchors.iter().any(|a| issued_by(&a)) {
                return Ok(ClientCertVerified::assertion());
            }
            match intermediates
                .iter()
                .filter(|c| c.der != current.der)
                .find(issued_by)
            {
                Some(next) => current = next,
                None => return Err(Error::InvalidCertificate(CertificateError::UnknownIssuer)),
            }
        }
        Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.verify_handshake(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        // TLS 1.3 forbids PKCS#1 v1.5 signatures in CertificateVerify.
        if matches!(
            dss.scheme,
            SignatureScheme::RSA_PKCS1_SHA256
                | SignatureScheme::RSA_PKCS1_SHA384
                | SignatureScheme::RSA_PKCS1_SHA512
                | SignatureScheme::RSA_PKCS1_SHA1
        ) {
            return Err(Error::General(format!(
                "{:?} is not allowed in TLS 1.3",
                dss.scheme
            )));
        }
        self.verify_handshake(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The fields of an X.509 certificate (any version) that chain checks need,
/// as ranges into its DER.
struct Cert {
    der: Vec<u8>,
    /// The whole TBSCertificate, which the signature covers.
    tbs: Range<usize>,
    /// Contents of the signatureAlgorithm AlgorithmIdentifier.
    sig_alg: Range<usize>,
    /// The signature bits.
    signature: Range<usize>,
    /// The issuer and subject Names, whole.
    issuer: Range<usize>,
    subject: Range<usize>,
    not_before: i64,
    not_after: i64,
    /// The whole subjectPublicKeyInfo; the contents of its AlgorithmIdentifier,
    /// and its key bits.
    spki: Range<usize>,
    spki_alg: Range<usize>,
    spki_key: Range<usize>,
}

/// A certificate's subject as Java's `X500Principal.getName()` writes it
/// (RFC 2253), which is ZooKeeper's x509 client id.
pub fn subject_name(cert: &CertificateDer<'_>) -> Result<String, &'static str> {
    let cert = Cert::parse(cert)?;
    super::dn::rfc2253(&cert.der, cert.subject.clone())
}

/// The subjectPublicKeyInfo (DER) of a certificate of any version.
pub fn subject_public_key_info(cert: &CertificateDer<'_>) -> Result<Vec<u8>, &'static str> {
    let cert = Cert::parse(cert)?;
    Ok(cert.field(&cert.spki).to_vec())
}

const SEQUENCE: u8 = 0x30;
const BIT_STRING: u8 = 0x03;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const VERSION_TAG: u8 = 0xA0;

impl Cert {
    fn field(&self, range: &Range<usize>) -> &[u8] {
        self.der.get(range.clone()).unwrap_or_default()
    }

    fn parse(der: &[u8]) -> Result<Cert, &'static str> {
        let der = der.to_vec();
        let mut top = Reader::new(&der, 0..der.len());
        let cert = top.expect(SEQUENCE, "certificate")?;
        let mut cert = Reader::new(&der, cert.content);
        let tbs = cert.expect(SEQUENCE, "tbsCertificate")?;
        let sig_alg = cert.expect(SEQUENCE, "signatureAlgorithm")?.content;
        let signature = bits(&der, cert.expect(BIT_STRING, "signature")?.content)?;

        let mut fields = Reader::new(&der, tbs.content.clone());
        let first = fields.next()?;
        if first.tag == VERSION_TAG {
            fields.next()?; // serialNumber
        }
        fields.expect(SEQUENCE, "signature")?;
        let issuer = fields.expect(SEQUENCE, "issuer")?.whole;
        let validity = fields.expect(SEQUENCE, "validity")?;
        let mut validity = Reader::new(&der, validity.content);
        let not_before = time(&der, validity.next()?)?;
        let not_after = time(&der, validity.next()?)?;
        let subject = fields.expect(SEQUENCE, "subject")?.whole;
        let spki_tlv = fields.expect(SEQUENCE, "subjectPublicKeyInfo")?;
        let spki = spki_tlv.whole.clone();
        let mut spki_reader = Reader::new(&der, spki_tlv.content);
        let spki_alg = spki_reader.expect(SEQUENCE, "algorithm")?.content;
        let spki_key = bits(
            &der,
            spki_reader.expect(BIT_STRING, "subjectPublicKey")?.content,
        )?;
        Ok(Cert {
            tbs: tbs.whole,
            sig_alg,
            signature,
            issuer,
            subject,
            not_before,
            not_after,
            spki,
            spki_alg,
            spki_key,
            der,
        })
    }
}

/// A BIT STRING's bits (whole bytes only, as keys and signatures are).
fn bits(der: &[u8], content: Range<usize>) -> Result<Range<usize>, &'static str> {
    match der.get(content.start) {
        Some(0) => Ok(content.start + 1..content.end),
        _ => Err("bit string with unused bits"),
    }
}

/// UTCTime or GeneralizedTime (`…Z`) as seconds since the Unix epoch.
fn time(der: &[u8], tlv: Tlv) -> Result<i64, &'static str> {
    let text = der.get(tlv.content).ok_or("time out of bounds")?;
    let text = std::str::from_utf8(text).map_err(|_| "time is not ASCII")?;
    let digits = text.strip_suffix('Z').ok_or("time not in UTC")?;
    let (year, rest) = match (tlv.tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy: i64 = digits[..2].parse().map_err(|_| "bad year")?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (digits[..4].parse().map_err(|_| "bad year")?, &digits[4..]),
        _ => return Err("unsupported time format"),
    };
    let num = |r: Range<usize>| -> Result<i64, &'static str> {
        rest.get(r).and_then(|s| s.parse().ok()).ok_or("bad time")
    };
    let (month, day) = (num(0..2)?, num(2..4)?);
    let (hour, minute, second) = (num(4..6)?, num(6..8)?, num(8..10)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err("bad date");
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One DER element: its tag, the range of the whole element, and of its contents.
pub(super) struct Tlv {
    pub(super) tag: u8,
    pub(super) whole: Range<usize>,
    pub(super) content: Range<usize>,
}

/// Reads consecutive DER elements within a range of a buffer.
pub(super) struct Reader<'a> {
    der: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    /// Nothing left to read.
    pub(super) fn is_done(&self) -> bool {
        self.pos >= self.end
    }

    pub(super) fn new(der: &'a [u8], range: Range<usize>) -> Reader<'a> {
        Reader {
            der,
            pos: range.start,
            end: range.end.min(der.len()),
        }
    }

    fn byte(&mut self) -> Result<u8, &'static str> {
        if self.pos >= self.end {
            return Err("truncated");
        }
        let b = self.der[self.pos];
        self.pos += 1;
        Ok(b)
    }

    pub(super) fn next(&mut self) -> Result<Tlv, &'static str> {
        let start = self.pos;
        let tag = self.byte()?;
        if tag & 0x1F == 0x1F {
            return Err("multi-byte tags are not used in certificates");
        }
        let first = self.byte()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7F);
            if n == 0 || n > 4 {
                return Err("unsupported length");
            }
            let mut len = 0usize;
            for _ in 0..n {
                len = (len << 8) | usize::from(self.byte()?);
            }
            len
        };
        let content_start = self.pos;
        let content_end = content_start.checked_add(len).ok_or("length overflow")?;
        if content_end > self.end {
            return Err("truncated");
        }
        self.pos = content_end;
        Ok(Tlv {
            tag,
            whole: start..content_end,
            content: content_start..content_end,
        })
    }

    pub(super) fn expect(&mut self, tag: u8, what: &'static str) -> Result<Tlv, &'static str> {
        let tlv = self.next()?;
        if tlv.tag != tag {
            return Err(what);
        }
        Ok(tlv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_count_days_from_the_epoch() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 22), 20_779);
    }

    #[test]
    fn malformed_certificates_are_errors_not_panics() {
        for input in [
            &[][..],
            &[0x30],
            &[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF],
            &[0x30, 0x03, 1, 2],
        ] {
            assert!(Cert::parse(input).is_err());
        }
    }
}
