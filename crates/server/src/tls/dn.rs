//! Distinguished names as Java's `X500Principal.getName()` writes them (RFC
//! 2253): ZooKeeper's X509AuthenticationProvider names a TLS client by its
//! certificate's subject in this form (`x509:CN=app,OU=ops,O=Acme,C=US`), and
//! ACLs must match it character for character.
//!
//! RDNs come last-encoded first, values of a multi-valued RDN joined by `+`;
//! the RFC's keywords for its nine attribute types, the dotted OID with the
//! value's DER in hex (`1.2.840.113549.1.9.1=#160f…`) for any other.

use std::fmt::Write as _;
use std::ops::Range;

use super::jks::decode_oid;
use super::verify::Reader;

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// RFC 2253's keywords, by OID.
const KEYWORDS: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// The Name (a SEQUENCE of RDN SETs) at `name` in `der`, in RFC 2253 form.
pub fn rfc2253(der: &[u8], name: Range<usize>) -> Result<String, &'static str> {
    let mut outer = Reader::new(der, name);
    let seq = outer.expect(SEQUENCE, "name")?;
    let mut rdns = Vec::new();
    let mut reader = Reader::new(der, seq.content);
    while !reader.is_done() {
        let set = reader.next()?;
        if set.tag != SET {
            return Err("relative distinguished name");
        }
        let mut values = Vec::new();
        let mut avas = Reader::new(der, set.content);
        while !avas.is_done() {
            let ava = avas.next()?;
            if ava.tag != SEQUENCE {
                return Err("attribute type and value");
            }
            let mut parts = Reader::new(der, ava.content);
            let oid = parts.expect(OID, "attribute type")?;
            let value = parts.next()?;
            let oid = der
                .get(oid.content)
                .and_then(decode_oid)
                .ok_or("malformed OID")?;
            let keyword = KEYWORDS.iter().find(|(o, _)| *o == oid).map(|(_, k)| *k);
            let text = match (
                keyword,
                decode_string(der, value.tag, value.content.clone()),
            ) {
                (Some(keyword), Some(text)) => format!("{keyword}={}", escape(&text)),
                (keyword, _) => {
                    let whole = der.get(value.whole).ok_or("truncated")?;
                    let mut hex = String::with_capacity(whole.len() * 2);
                    for b in whole {
                        let _ = write!(hex, "{b:02x}");
                    }
                    format!("{}=#{hex}", keyword.unwrap_or(&oid))
                }
            };
            values.push(text);
        }
        rdns.push(values.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// The text of a directory string (UTF8, Printable, IA5, Teletex as Latin-1,
/// BMP, Universal); `None` for other types.
fn decode_string(der: &[u8], tag: u8, content: Range<usize>) -> Option<String> {
    let bytes = der.get(content)?;
    match tag {
        0x0C | 0x13 | 0x16 => String::from_utf8(bytes.to_vec()).ok(),
        0x14 => Some(bytes.iter().map(|b| char::from(*b)).collect()),
        0x1E => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        0x1C => bytes
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => None,
    }
}

/// RFC 2253 escaping as Java applies it: the special characters anywhere,
/// a leading `#` or space and a trailing space.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = ",=+<>#;\"\\".contains(c);
        let edge_space = c == ' ' && (i == 0 || i == last);
        if special || edge_space {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ava(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        let mut inner = vec![OID, oid.len() as u8];
        inner.extend_from_slice(oid);
        inner.push(tag);
        inner.push(value.len() as u8);
        inner.extend_from_slice(value);
        let mut out = vec![SEQUENCE, inner.len() as u8];
        out.extend(inner);
        out
    }

    fn rdn(avas: &[Vec<u8>]) -> Vec<u8> {
        let inner: Vec<u8> = avas.concat();
        let mut out = vec![SET, inner.len() as u8];
        out.extend(inner);
        out
    }

    fn name(rdns: &[Vec<u8>]) -> Vec<u8> {
        let inner: Vec<u8> = rdns.concat();
        let mut out = vec![SEQUENCE, inner.len() as u8];
        out.extend(inner);
        out
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const C: &[u8] = &[0x55, 0x04, 0x06];
    const O: &[u8] = &[0x55, 0x04, 0x0A];
    const OU: &[u8] = &[0x55, 0x04, 0x0B];
    const EMAIL: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01];

    #[test]
    fn most_specific_first_with_keywords_escapes_and_hex_for_others() {
        let der = name(&[
            rdn(&[ava(C, 0x13, b"US")]),
            rdn(&[ava(O, 0x0C, b"Acme, Inc.")]),
            rdn(&[ava(OU, 0x0C, b"ops"), ava(OU, 0x0C, b"dev")]),
            rdn(&[ava(CN, 0x0C, b"app")]),
            rdn(&[ava(EMAIL, 0x16, b"a@b")]),
        ]);
        assert_eq!(
            rfc2253(&der, 0..der.len()).unwrap(),
            "1.2.840.113549.1.9.1=#1603614062,CN=app,OU=ops+OU=dev,O=Acme\\, Inc.,C=US"
        );
    }

    #[test]
    fn leading_hash_and_edge_spaces_are_escaped() {
        assert_eq!(escape("#x"), "\\#x");
        assert_eq!(escape(" a b "), "\\ a b\\ ");
        assert_eq!(escape("a=b+c"), "a\\=b\\+c");
    }

    #[test]
    fn malformed_names_are_errors_not_panics() {
        let der = name(&[rdn(&[ava(CN, 0x0C, b"app")])]);
        for cut in 0..der.len() {
            let _ = rfc2253(&der[..cut], 0..cut);
        }
        assert!(rfc2253(&[0x30, 0x02, 0x04, 0x00], 0..4).is_err());
        let bad_oid = name(&[rdn(&[ava(&[0x2A, 0x86], 0x0C, b"x")])]);
        assert_eq!(
            rfc2253(&bad_oid, 0..bad_oid.len()).unwrap_err(),
            "malformed OID"
        );
    }
}
