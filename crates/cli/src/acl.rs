//! ACL strings as zkCli reads them (`AclParser`):
//! `scheme:id:perms[,scheme:id:perms…]`, e.g. `world:anyone:cdrwa`,
//! `digest:bob:hash=:rw`, `ip:10.0.0.0/8:r`. Like zkCli it reports bad
//! entries and unknown permission letters on stderr and keeps going.

use corral_client::{perms, Acl, Id};

/// Parses `text`; entries that don't have the form `scheme:id:perm` are
/// reported and skipped (an all-bad string gives an empty list).
pub fn parse(text: &str) -> Vec<Acl> {
    let mut acl = Vec::new();
    for entry in java_split(text, ',') {
        let (Some(first), Some(last)) = (entry.find(':'), entry.rfind(':')) else {
            errln!("{entry} does not have the form scheme:id:perm");
            continue;
        };
        if first == last {
            errln!("{entry} does not have the form scheme:id:perm");
            continue;
        }
        acl.push(Acl {
            perms: perms_from(&entry[last + 1..]),
            id: Id::new(&entry[..first], &entry[first + 1..last]),
        });
    }
    acl
}

/// `String.split` with a one-character pattern: trailing empty pieces are
/// dropped, except that an empty string splits into one empty piece.
fn java_split(text: &str, sep: char) -> Vec<&str> {
    let mut pieces: Vec<&str> = text.split(sep).collect();
    if !text.is_empty() {
        while pieces.last().is_some_and(|p| p.is_empty()) {
            pieces.pop();
        }
    }
    pieces
}

/// `getPermFromString`: letters `rwcda`; others are reported and ignored.
fn perms_from(letters: &str) -> i32 {
    letters.chars().fold(0, |bits, c| {
        bits | match c {
            'r' => perms::READ,
            'w' => perms::WRITE,
            'c' => perms::CREATE,
            'd' => perms::DELETE,
            'a' => perms::ADMIN,
            other => {
                errln!("Unknown perm type: {other}");
                0
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_split_on_the_first_and_last_colon() {
        let acl = parse("digest:bob:fyVmFCwVbTJYrznoSu1koqYEYF0=:cdrwa,ip:10.0.0.0/8:r");
        assert_eq!(acl.len(), 2);
        assert_eq!(
            acl[0].id,
            Id::new("digest", "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=")
        );
        assert_eq!(acl[0].perms, perms::ALL);
        assert_eq!(acl[1].id, Id::new("ip", "10.0.0.0/8"));
        assert_eq!(acl[1].perms, perms::READ);
        assert_eq!(parse("auth::cdrwa")[0].id, Id::new("auth", ""));
        assert!(parse("worldanyone").is_empty());
        assert!(parse("world:anyone").is_empty());
        assert_eq!(parse("world:anyone:rz")[0].perms, perms::READ);
        assert_eq!(java_split("a,,b,,", ','), vec!["a", "", "b"]);
        assert_eq!(java_split("", ','), vec![""]);
    }
}
