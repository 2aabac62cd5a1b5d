//! ACL helpers: the well-known ACL lists of `ZooDefs.Ids` and digest
//! identities as `DigestAuthenticationProvider` computes them.
//!
//! `Acl` itself is `corral_proto`'s; [`AclExt`] adds the lists it lacks, so
//! `Acl::open_unsafe()`, `Acl::read_unsafe()` and `Acl::creator_all()` all
//! work once `AclExt` is in scope (it is in the crate root's exports).

use base64::Engine as _;
use corral_proto::{perms, Acl, Id};
use sha1::{Digest as _, Sha1};

/// The ACL lists of `ZooDefs.Ids` that `corral_proto::Acl` does not have
/// (it already has `Acl::open_unsafe()`).
pub trait AclExt {
    /// `world:anyone` with READ only (`READ_ACL_UNSAFE`).
    fn read_unsafe() -> Vec<Acl>;
    /// Every permission for the identities the creating connection has
    /// authenticated as (`CREATOR_ALL_ACL`, the `auth` scheme). The server
    /// answers InvalidAcl when the connection has no authenticated identity.
    fn creator_all() -> Vec<Acl>;
}

impl AclExt for Acl {
    fn read_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: perms::READ,
            id: Id::anyone(),
        }]
    }

    fn creator_all() -> Vec<Acl> {
        vec![Acl {
            perms: perms::ALL,
            id: Id::new("auth", ""),
        }]
    }
}

/// The digest id for `user` and `password`: `user:base64(sha1("user:password"))`,
/// what the server records after `add_auth("digest", b"user:password")`.
pub fn digest_id(user: &str, password: &str) -> Id {
    let hash = Sha1::digest(format!("{user}:{password}").as_bytes());
    let encoded = base64::engine::general_purpose::STANDARD.encode(hash);
    Id::new("digest", format!("{user}:{encoded}"))
}

/// An ACL entry granting `perms` (see [`corral_proto::perms`]) to the digest
/// identity of `user` / `password`.
pub fn digest_acl(user: &str, password: &str, perms: i32) -> Acl {
    Acl {
        perms,
        id: digest_id(user, password),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_zookeepers_generate_digest() {
        // Observed on ZooKeeper 3.8: bob:secret → bob:fyVmFCwVbTJYrznoSu1koqYEYF0=
        assert_eq!(
            digest_id("bob", "secret"),
            Id::new("digest", "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=")
        );
        assert_eq!(
            digest_acl("super", "su-pw", perms::ALL).id.id,
            "super:hOlT89HEpwJu2c0asxrUJLQeP6c="
        );
    }

    #[test]
    fn well_known_lists() {
        assert_eq!(Acl::read_unsafe()[0].perms, perms::READ);
        assert_eq!(Acl::creator_all()[0].id, Id::new("auth", ""));
        assert_eq!(Acl::open_unsafe()[0].id, Id::anyone());
    }
}
