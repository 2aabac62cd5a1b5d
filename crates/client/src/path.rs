//! Paths on the client side: ZooKeeper's path rules (`PathUtils`), checked
//! before anything is sent, and the chroot that prefixes every path on the
//! way out and is stripped from every path on the way back (created paths,
//! watch events, ephemerals, multi results).

use crate::error::Error;

/// Checks `path` the way the Java client does before sending
/// (`PathUtils.validatePath`). For a sequential create, pass the path with a
/// digit appended, as ZooKeeper does, so that `/p/` is accepted there.
pub(crate) fn validate_path(path: &str) -> Result<(), Error> {
    let invalid = |reason| {
        Err(Error::InvalidPath {
            path: path.to_owned(),
            reason,
        })
    };
    if path.is_empty() {
        return invalid("path must not be empty");
    }
    if !path.starts_with('/') {
        return invalid("path must start with /");
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return invalid("path must not end with /");
    }
    for component in path[1..].split('/') {
        if component.is_empty() {
            return invalid("empty path component (//)");
        }
        if component == "." || component == ".." {
            return invalid("relative path component (. or ..)");
        }
        for c in component.chars() {
            let forbidden = match c {
                '\0' => true,
                '\u{1}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
                '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{ffff}' => true,
                // Outside the BMP: a surrogate pair in Java, which ZooKeeper
                // rejects (U+D800..U+DFFF cannot occur in a Rust str).
                c if u32::from(c) > 0xFFFF => true,
                _ => false,
            };
            if forbidden {
                return invalid("forbidden character");
            }
        }
    }
    Ok(())
}

/// The chroot of a connect string (`host:port/app`): a path every request
/// path is placed under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chroot {
    /// `None` for no chroot; otherwise a valid path other than `/`.
    prefix: Option<String>,
}

impl Chroot {
    /// A chroot at `prefix`; `/` means none.
    pub(crate) fn new(prefix: &str) -> Result<Chroot, Error> {
        validate_path(prefix)?;
        Ok(Chroot {
            prefix: (prefix != "/").then(|| prefix.to_owned()),
        })
    }

    /// No chroot.
    pub(crate) fn none() -> Chroot {
        Chroot::default()
    }

    /// The chroot path, `None` when there is none.
    pub fn as_str(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// The server path for a client path: `/` becomes the chroot itself.
    pub(crate) fn to_server(&self, path: &str) -> String {
        match &self.prefix {
            None => path.to_owned(),
            Some(prefix) if path == "/" => prefix.clone(),
            Some(prefix) => format!("{prefix}{path}"),
        }
    }

    /// The client path for a server path. A path outside the chroot (which
    /// a server should never send) is returned unchanged.
    pub(crate) fn to_client(&self, path: &str) -> String {
        self.strip(path).unwrap_or_else(|| path.to_owned())
    }

    /// The client path for a server path, `None` when it lies outside the
    /// chroot.
    pub(crate) fn strip(&self, path: &str) -> Option<String> {
        let Some(prefix) = &self.prefix else {
            return Some(path.to_owned());
        };
        match path.strip_prefix(prefix.as_str()) {
            Some("") => Some("/".to_owned()),
            Some(rest) if rest.starts_with('/') => Some(rest.to_owned()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zookeeper_path_rules_are_enforced() {
        for ok in ["/", "/a", "/a/b", "/...", "/.a", "/a.", "/a b", "/é"] {
            assert_eq!(validate_path(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "",
            "a",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/a/..",
            "/a\0",
            "/a\u{1}",
            "/\u{7f}",
            "/\u{e000}",
            "/\u{fff0}",
            "/😀",
        ] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn chroot_prefixes_outgoing_paths_and_strips_incoming_ones() {
        let c = Chroot::new("/app").unwrap();
        assert_eq!(c.to_server("/"), "/app");
        assert_eq!(c.to_server("/x/y"), "/app/x/y");
        assert_eq!(c.to_client("/app"), "/");
        assert_eq!(c.to_client("/app/x/y"), "/x/y");
        assert_eq!(c.to_client("/application"), "/application");
        assert_eq!(c.to_client("/other"), "/other");
        assert_eq!(c.strip("/application"), None);
        assert_eq!(c.strip("/app/x"), Some("/x".to_owned()));
    }

    #[test]
    fn a_root_chroot_is_no_chroot() {
        let c = Chroot::new("/").unwrap();
        assert_eq!(c.as_str(), None);
        assert_eq!(c.to_server("/a"), "/a");
        assert_eq!(c.to_client("/a"), "/a");
        assert!(Chroot::new("/app/").is_err());
    }
}
