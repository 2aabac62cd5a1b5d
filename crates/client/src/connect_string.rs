//! Parses ZooKeeper connect strings: `host1:port1,host2:port2[/chroot]`
//! (`ConnectStringParser` in the Java client). The port defaults to 2181;
//! IPv6 addresses go in brackets (`[::1]:2181`).

use std::fmt;

use crate::error::Error;
use crate::path::Chroot;

/// ZooKeeper's client port when a host names none.
pub const DEFAULT_PORT: u16 = 2181;

/// One server of a connect string, not yet resolved (resolution happens at
/// each connection attempt, so DNS changes are picked up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// A host name or IP address, without brackets.
    pub host: String,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A parsed connect string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectString {
    /// In the order written; the session task shuffles them.
    pub hosts: Vec<HostPort>,
    pub chroot: Chroot,
}

impl ConnectString {
    /// Parses `input`. At least one host is required; a chroot, if present,
    /// must be a valid path (`/` means none).
    pub fn parse(input: &str) -> Result<ConnectString, Error> {
        let bad = |reason: String| Error::InvalidConnectString {
            input: input.to_owned(),
            reason,
        };
        let (hosts_part, chroot) = match input.find('/') {
            Some(at) => {
                let chroot =
                    Chroot::new(&input[at..]).map_err(|e| bad(format!("bad chroot: {e}")))?;
                (&input[..at], chroot)
            }
            None => (input, Chroot::none()),
        };
        let mut hosts = Vec::new();
        for item in hosts_part.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            hosts.push(parse_host_port(item).map_err(|reason| bad(format!("{item:?}: {reason}")))?);
        }
        if hosts.is_empty() {
            return Err(bad("no host given".into()));
        }
        Ok(ConnectString { hosts, chroot })
    }

    /// The hosts joined back with commas, for messages.
    pub fn hosts_display(&self) -> String {
        self.hosts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn parse_host_port(item: &str) -> Result<HostPort, String> {
    let (host, port) = if let Some(rest) = item.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "missing ] after an IPv6 address".to_owned())?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("unexpected {after:?} after ]")),
            },
        }
    } else {
        match item.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (item, None),
        }
    };
    if host.is_empty() {
        return Err("empty host".into());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("bad port {p:?}"))?,
    };
    Ok(HostPort {
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn several_hosts_and_a_chroot() {
        let cs = ConnectString::parse("h1:2181, h2:2182,h3/app/x").unwrap();
        assert_eq!(
            cs.hosts,
            vec![hp("h1", 2181), hp("h2", 2182), hp("h3", 2181)]
        );
        assert_eq!(cs.chroot.as_str(), Some("/app/x"));
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let cs = ConnectString::parse("[::1]:3000,[fe80::1]").unwrap();
        assert_eq!(cs.hosts, vec![hp("::1", 3000), hp("fe80::1", 2181)]);
        assert_eq!(cs.hosts[0].to_string(), "[::1]:3000");
        assert_eq!(cs.chroot.as_str(), None);
    }

    #[test]
    fn a_slash_alone_is_no_chroot() {
        let cs = ConnectString::parse("127.0.0.1:1234/").unwrap();
        assert_eq!(cs.chroot.as_str(), None);
    }

    #[test]
    fn malformed_strings_are_rejected() {
        for bad in [
            "", "/app", "h:", "h:0", "h:99999", "h:x", "[::1", "[::1]x", "h/app/", "h//a",
        ] {
            assert!(ConnectString::parse(bad).is_err(), "{bad:?}");
        }
    }
}
