//! ACLs: the permission check every request makes, the `fixupACL` rules a
//! create/setACL goes through, the digest and ip schemes, and the intern
//! table that lets thousands of nodes share one ACL list (ZooKeeper's
//! `ReferenceCountedACLCache`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use corral_proto::{Acl, ErrorCode, Id};
use sha1::{Digest as _, Sha1};

/// ZooKeeper's `checkACL`: may a connection holding `auth` do an operation
/// needing any of the bits in `perm` on a node whose ACL is `acl`?
///
/// An empty ACL allows everything; a `super` id allows everything; otherwise
/// an entry with one of the bits allows when it is `world:anyone`, or the
/// connection holds an id of its scheme that the scheme matches (digest:
/// exact string; ip: address under the entry's mask). Other schemes have no
/// provider and never match.
pub fn check_acl(acl: &[Acl], auth: &[Id], perm: i32) -> bool {
    if acl.is_empty() || auth.iter().any(|id| id.scheme == "super") {
        return true;
    }
    acl.iter()
        .filter(|entry| entry.perms & perm != 0)
        .any(|entry| {
            if entry.id.scheme == "world" && entry.id.id == "anyone" {
                return true;
            }
            auth.iter()
                .filter(|id| id.scheme == entry.id.scheme)
                .any(|id| match entry.id.scheme.as_str() {
                    "digest" | "sasl" | "x509" => id.id == entry.id.id,
                    "ip" => ip_matches(&id.id, &entry.id.id),
                    _ => false,
                })
        })
}

/// ZooKeeper's `fixupACL`, run on create and setACL before the ACL is stored:
/// removes duplicates (first occurrence wins), rejects an empty list, keeps
/// `world` only as `world:anyone`, expands `auth` into one entry per
/// authenticated id of the request (digest counts; ip and super do not), and
/// requires digest/ip ids to be well formed. Any failure is InvalidACL.
/// `providers`: the optional providers registered (sasl, x509), whose ids
/// count too.
pub(crate) fn fixup_acl(
    acl: &[Acl],
    auth: &[Id],
    providers: Providers,
) -> Result<Vec<Acl>, ErrorCode> {
    let mut seen = HashSet::with_capacity(acl.len());
    let unique: Vec<&Acl> = acl.iter().filter(|entry| seen.insert(*entry)).collect();
    if unique.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut fixed = Vec::with_capacity(unique.len());
    for entry in unique {
        let id = &entry.id;
        if id.scheme == "world" && id.id == "anyone" {
            fixed.push(entry.clone());
        } else if id.scheme == "auth" {
            let before = fixed.len();
            fixed.extend(
                auth.iter()
                    .filter(|held| is_authenticated_scheme(&held.scheme, providers))
                    .map(|held| Acl {
                        perms: entry.perms,
                        id: held.clone(),
                    }),
            );
            if fixed.len() == before {
                return Err(ErrorCode::InvalidAcl);
            }
        } else if is_valid_id(id, providers) {
            fixed.push(entry.clone());
        } else {
            return Err(ErrorCode::InvalidAcl);
        }
    }
    Ok(fixed)
}

/// The authentication providers a server has beyond ZooKeeper's default two
/// (ip, digest): they decide which ACL schemes are valid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Providers {
    pub sasl: bool,
    pub x509: bool,
}

/// Schemes whose provider says `isAuthenticated()`: of the two providers a
/// default server registers (ip, digest), only digest; sasl and x509 when
/// registered.
fn is_authenticated_scheme(scheme: &str, providers: Providers) -> bool {
    match scheme {
        "digest" => true,
        "sasl" => providers.sasl,
        "x509" => providers.x509,
        _ => false,
    }
}

/// The registered providers' `isValid` for an ACL id.
fn is_valid_id(id: &Id, providers: Providers) -> bool {
    match id.scheme.as_str() {
        // SASLAuthenticationProvider: a Kerberos principal's syntax
        // (`name[/host]@REALM`), or a plain name without `@`.
        "sasl" if providers.sasl => is_kerberos_name(&id.id),
        // X509AuthenticationProvider: whatever `X500Principal` parses.
        "x509" if providers.x509 => is_distinguished_name(&id.id),
        // Java `split(":")` drops trailing empty parts: `bob:` is one part.
        "digest" => java_split_len(&id.id, ':') == 2,
        "ip" => parse_ip_acl(&id.id).is_some(),
        _ => false,
    }
}

/// Roughly what Java's `X500Principal` accepts: empty, or `type=value`
/// attributes separated by unescaped `,` or `+`, each with a type.
fn is_distinguished_name(name: &str) -> bool {
    if name.is_empty() {
        return true;
    }
    let mut parts = Vec::new();
    let (mut current, mut escaped) = (String::new(), false);
    for c in name.chars() {
        match c {
            _ if escaped => {
                current.push(c);
                escaped = false;
            }
            '\\' => {
                current.push(c);
                escaped = true;
            }
            ',' | '+' => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    !escaped
        && parts
            .iter()
            .all(|p| p.split_once('=').is_some_and(|(t, _)| !t.trim().is_empty()))
}

/// Whether Hadoop's `KerberosName` accepts `name`: no `@`, or exactly
/// `primary[/instance]@REALM` with no further `/` or `@`.
fn is_kerberos_name(name: &str) -> bool {
    match name.split_once('@') {
        None => true,
        Some((principal, realm)) => {
            !realm.contains(['@', '/'])
                && principal.split('/').count() <= 2
                && !principal.contains('@')
        }
    }
}

/// The length of Java's `s.split(String.valueOf(sep))`, which drops trailing
/// empty strings.
fn java_split_len(s: &str, sep: char) -> usize {
    let parts: Vec<&str> = s.split(sep).collect();
    let trailing_empty = parts
        .iter()
        .rev()
        .take_while(|part| part.is_empty())
        .count();
    parts.len() - trailing_empty
}

/// `IPAuthenticationProvider.matches`: both addresses masked to the entry's
/// bits. IPv4 only, as in 3.8 (an IPv6 connection never matches).
fn ip_matches(address: &str, acl_expr: &str) -> bool {
    let Some((acl_addr, bits)) = parse_ip_acl(acl_expr) else {
        return false;
    };
    let Some(addr) = parse_ipv4(address) else {
        return false;
    };
    mask(addr, bits) == mask(acl_addr, bits)
}

/// `a.b.c.d` or `a.b.c.d/bits` with bits in 0..=32.
fn parse_ip_acl(expr: &str) -> Option<(u32, u32)> {
    let mut parts = expr.splitn(2, '/');
    let addr = parse_ipv4(parts.next()?)?;
    let bits = match parts.next() {
        None => 32,
        Some(bits) => u32::try_from(bits.parse::<i32>().ok()?)
            .ok()
            .filter(|b| *b <= 32)?,
    };
    Some((addr, bits))
}

/// Four dot-separated `Integer.parseInt` values in 0..=255.
fn parse_ipv4(addr: &str) -> Option<u32> {
    let mut octets = [0u8; 4];
    let mut parts = addr.split('.');
    for octet in &mut octets {
        let value = parts.next()?.parse::<i32>().ok()?;
        *octet = u8::try_from(value).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(u32::from_be_bytes(octets))
}

fn mask(addr: u32, bits: u32) -> u32 {
    if bits == 0 {
        0
    } else {
        addr & (u32::MAX << (32 - bits))
    }
}

/// The digest scheme's id for a `user:password` credential: `user:` +
/// base64(sha1(whole credential)), standard padded base64, exactly as
/// `DigestAuthenticationProvider.generateDigest`.
/// `digest_id("bob:secret") == "bob:fyVmFCwVbTJYrznoSu1koqYEYF0="`.
pub fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or_default();
    let hash = Sha1::digest(user_password.as_bytes());
    format!("{user}:{}", STANDARD.encode(hash))
}

/// What getACL shows a caller without ADMIN: every digest id with its hash
/// replaced, as Java's `id.replaceAll(":.*", ":x")` (`.` stops at line
/// terminators).
pub(crate) fn mask_digest_ids(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|entry| {
            if entry.id.scheme == "digest" {
                Acl {
                    perms: entry.perms,
                    id: Id::new("digest", mask_after_colon(&entry.id.id)),
                }
            } else {
                entry.clone()
            }
        })
        .collect()
}

fn mask_after_colon(id: &str) -> String {
    let is_line_terminator =
        |c: char| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}');
    let mut masked = String::with_capacity(id.len());
    let mut chars = id.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' {
            masked.push_str(":x");
            while chars.next_if(|next| !is_line_terminator(*next)).is_some() {}
        } else {
            masked.push(c);
        }
    }
    masked
}

/// Interned ACL lists with reference counts: every node holding an equal
/// list holds the same `Arc`. A list leaves the table when its last node
/// goes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct AclTable {
    refs: HashMap<Arc<Vec<Acl>>, u64>,
}

impl AclTable {
    /// Counts one more node using `acl` and returns the shared copy.
    pub(crate) fn acquire(&mut self, acl: &Arc<Vec<Acl>>) -> Arc<Vec<Acl>> {
        match self.refs.entry(Arc::clone(acl)) {
            std::collections::hash_map::Entry::Occupied(mut entry) => {
                *entry.get_mut() += 1;
                Arc::clone(entry.key())
            }
            std::collections::hash_map::Entry::Vacant(entry) => {
                let shared = Arc::clone(entry.key());
                entry.insert(1);
                shared
            }
        }
    }

    /// Counts `uses` more nodes using `acl` (a loaded snapshot counts its
    /// nodes per list first: one table lookup per list, not per node). For a
    /// table that does not hold an equal list yet, so that the nodes may
    /// share `acl` itself.
    pub(crate) fn acquire_many(&mut self, acl: &Arc<Vec<Acl>>, uses: u64) {
        debug_assert!(
            !self.refs.contains_key::<Vec<Acl>>(acl),
            "acquire_many of a list already interned"
        );
        *self.refs.entry(Arc::clone(acl)).or_insert(0) += uses;
    }

    /// Counts one node fewer using `acl`.
    pub(crate) fn release(&mut self, acl: &Arc<Vec<Acl>>) {
        let list: &Vec<Acl> = acl;
        if let Some(count) = self.refs.get_mut(list) {
            *count -= 1;
            if *count == 0 {
                self.refs.remove(list);
            }
        } else {
            debug_assert!(false, "released an ACL that is not interned: {acl:?}");
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.refs.len()
    }

    pub(crate) fn lists(&self) -> impl Iterator<Item = &Arc<Vec<Acl>>> {
        self.refs.keys()
    }

    pub(crate) fn ref_count(&self, acl: &[Acl]) -> u64 {
        self.refs
            .iter()
            .find(|(list, _)| list.as_slice() == acl)
            .map_or(0, |(_, count)| *count)
    }
}

#[cfg(test)]
mod tests {
    use corral_proto::perms;

    use super::*;

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }

    #[test]
    fn digest_of_bob_secret_matches_zookeeper() {
        assert_eq!(digest_id("bob:secret"), "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=");
    }

    #[test]
    fn digest_hashes_the_whole_credential_and_keeps_the_user_part() {
        let id = digest_id("super:a:b");
        assert!(id.starts_with("super:"));
        assert_ne!(id, digest_id("super:a"));
    }

    #[test]
    fn empty_acl_allows_everything_and_super_bypasses() {
        assert!(check_acl(&[], &[], perms::ADMIN));
        let locked = [acl(perms::READ, "digest", "bob:h")];
        assert!(!check_acl(
            &locked,
            &[Id::new("ip", "127.0.0.1")],
            perms::READ
        ));
        assert!(check_acl(&locked, &[Id::new("super", "")], perms::ADMIN));
    }

    #[test]
    fn an_entry_needs_one_of_the_requested_bits() {
        let node = [acl(perms::READ, "world", "anyone")];
        assert!(check_acl(&node, &[], perms::READ));
        assert!(!check_acl(&node, &[], perms::WRITE));
        assert!(check_acl(&node, &[], perms::READ | perms::ADMIN));
    }

    #[test]
    fn digest_matches_by_exact_string() {
        let node = [acl(
            perms::ALL,
            "digest",
            "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=",
        )];
        assert!(check_acl(
            &node,
            &[Id::new("digest", "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=")],
            perms::READ
        ));
        assert!(!check_acl(
            &node,
            &[Id::new("digest", "bob:x")],
            perms::READ
        ));
        assert!(!check_acl(
            &node,
            &[Id::new("ip", "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=")],
            perms::READ
        ));
    }

    #[test]
    fn ip_entries_match_under_their_mask() {
        let node = [acl(perms::ALL, "ip", "10.1.0.0/16")];
        assert!(check_acl(&node, &[Id::new("ip", "10.1.2.3")], perms::READ));
        assert!(!check_acl(&node, &[Id::new("ip", "10.2.2.3")], perms::READ));
        assert!(!check_acl(
            &node,
            &[Id::new("ip", "0:0:0:0:0:0:0:1")],
            perms::READ
        ));
        let exact = [acl(perms::ALL, "ip", "127.0.0.1")];
        assert!(check_acl(
            &exact,
            &[Id::new("ip", "127.0.0.1")],
            perms::READ
        ));
        assert!(!check_acl(
            &exact,
            &[Id::new("ip", "127.0.0.2")],
            perms::READ
        ));
        let everyone = [acl(perms::ALL, "ip", "1.2.3.4/0")];
        assert!(check_acl(
            &everyone,
            &[Id::new("ip", "200.1.1.1")],
            perms::READ
        ));
        let odd_bits = [acl(perms::ALL, "ip", "192.168.1.128/25")];
        assert!(check_acl(
            &odd_bits,
            &[Id::new("ip", "192.168.1.200")],
            perms::READ
        ));
        assert!(!check_acl(
            &odd_bits,
            &[Id::new("ip", "192.168.1.100")],
            perms::READ
        ));
    }

    #[test]
    fn fixup_removes_duplicates_and_rejects_empty_lists() {
        let anyone = acl(perms::ALL, "world", "anyone");
        assert_eq!(
            fixup_acl(&[anyone.clone(), anyone.clone()], &[], Providers::default()),
            Ok(vec![anyone])
        );
        assert_eq!(
            fixup_acl(&[], &[], Providers::default()),
            Err(ErrorCode::InvalidAcl)
        );
    }

    #[test]
    fn fixup_accepts_world_only_as_anyone() {
        assert_eq!(
            fixup_acl(
                &[acl(perms::ALL, "world", "foo")],
                &[],
                Providers::default()
            ),
            Err(ErrorCode::InvalidAcl)
        );
    }

    #[test]
    fn fixup_expands_auth_to_digest_ids_only() {
        let auth = [
            Id::new("ip", "127.0.0.1"),
            Id::new("digest", "bob:h"),
            Id::new("super", ""),
        ];
        assert_eq!(
            fixup_acl(&[acl(perms::READ, "auth", "")], &auth, Providers::default()),
            Ok(vec![acl(perms::READ, "digest", "bob:h")])
        );
        assert_eq!(
            fixup_acl(
                &[acl(perms::READ, "auth", "")],
                &[Id::new("ip", "127.0.0.1")],
                Providers::default()
            ),
            Err(ErrorCode::InvalidAcl)
        );
    }

    const SASL: Providers = Providers {
        sasl: true,
        x509: false,
    };

    #[test]
    fn with_tls_x509_ids_are_valid_and_auth_expands_to_them() {
        let x509 = Providers {
            sasl: false,
            x509: true,
        };
        let auth = [
            Id::new("ip", "127.0.0.1"),
            Id::new("x509", "CN=app,O=Acme\\, Inc.,C=US"),
        ];
        assert_eq!(
            fixup_acl(&[acl(perms::ALL, "auth", "")], &auth, x509),
            Ok(vec![acl(perms::ALL, "x509", "CN=app,O=Acme\\, Inc.,C=US")])
        );
        for (id, valid) in [
            ("CN=app", true),
            ("CN=app,OU=a+OU=b,C=US", true),
            ("", true),
            ("app", false),
            ("CN=app,", false),
            ("=app", false),
        ] {
            let result = fixup_acl(&[acl(perms::ALL, "x509", id)], &[], x509);
            assert_eq!(result.is_ok(), valid, "x509:{id}");
        }
        assert!(fixup_acl(
            &[acl(perms::ALL, "x509", "CN=app")],
            &[],
            Providers::default()
        )
        .is_err());
        let locked = [acl(perms::READ, "x509", "CN=app")];
        assert!(check_acl(
            &locked,
            &[Id::new("x509", "CN=app")],
            perms::READ
        ));
        assert!(!check_acl(
            &locked,
            &[Id::new("x509", "CN=other")],
            perms::READ
        ));
    }

    #[test]
    fn with_the_sasl_provider_sasl_ids_are_valid_and_auth_expands_to_them() {
        let auth = [Id::new("ip", "127.0.0.1"), Id::new("sasl", "jaasuser")];
        assert_eq!(
            fixup_acl(&[acl(perms::ALL, "auth", "")], &auth, SASL),
            Ok(vec![acl(perms::ALL, "sasl", "jaasuser")])
        );
        assert_eq!(
            fixup_acl(&[acl(perms::ALL, "auth", "")], &auth, Providers::default()),
            Err(ErrorCode::InvalidAcl),
            "without the provider, sasl ids are not authenticated ones"
        );
        for (id, valid) in [
            ("bob", true),
            ("zookeeper/host@EXAMPLE.COM", true),
            ("bob@EXAMPLE.COM", true),
            ("a/b/c@R", false),
            ("bob@R@S", false),
        ] {
            let result = fixup_acl(&[acl(perms::ALL, "sasl", id)], &[], SASL);
            assert_eq!(result.is_ok(), valid, "sasl:{id}");
        }
        let locked = [acl(perms::READ, "sasl", "jaasuser")];
        assert!(check_acl(&locked, &auth, perms::READ));
        assert!(!check_acl(
            &locked,
            &[Id::new("sasl", "other")],
            perms::READ
        ));
    }

    #[test]
    fn fixup_validates_digest_and_ip_ids() {
        let table = [
            ("digest", "bob:hash", true),
            ("digest", ":hash", true),
            ("digest", "bob:hash:", true),
            ("digest", "bob", false),
            ("digest", "bob:", false),
            ("digest", "a::b", false),
            ("digest", "a:b:c", false),
            ("ip", "127.0.0.1", true),
            ("ip", "10.0.0.0/8", true),
            ("ip", "10.0.0.0/0", true),
            ("ip", "10.0.0.0/32", true),
            ("ip", "10.0.0.0/33", false),
            ("ip", "10.0.0.0/-1", false),
            ("ip", "10.0.0.0/", false),
            ("ip", "10.0.0", false),
            ("ip", "10.0.0.256", false),
            ("ip", "::1", false),
            ("ip", "0:0:0:0:0:0:0:1", false),
            ("sasl", "bob", false),
            ("super", "", false),
        ];
        for (scheme, id, valid) in table {
            let result = fixup_acl(&[acl(perms::ALL, scheme, id)], &[], Providers::default());
            assert_eq!(result.is_ok(), valid, "{scheme}:{id}");
        }
    }

    #[test]
    fn get_acl_masking_hides_digest_hashes() {
        let masked = mask_digest_ids(&[
            acl(1, "digest", "bob:abc"),
            acl(1, "ip", "1.2.3.4"),
            acl(1, "digest", "a:b\nc:d"),
        ]);
        assert_eq!(
            masked,
            vec![
                acl(1, "digest", "bob:x"),
                acl(1, "ip", "1.2.3.4"),
                acl(1, "digest", "a:x\nc:x")
            ]
        );
    }

    #[test]
    fn the_intern_table_shares_equal_lists_and_counts_users() {
        let mut table = AclTable::default();
        let first = table.acquire(&Arc::new(Acl::open_unsafe()));
        let second = table.acquire(&Arc::new(Acl::open_unsafe()));
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(table.ref_count(&Acl::open_unsafe()), 2);
        table.release(&first);
        table.release(&second);
        assert_eq!(table.len(), 0);
    }
}
