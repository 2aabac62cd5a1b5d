//! The ensemble configuration and the shell's version: config, reconfig,
//! version.

use corral_client::client::CONFIG_NODE;

use super::{parse, usage_error, CliError, CmdResult, Ctx};
use crate::format;
use crate::getopt::{Opt, Spec};
use crate::watches::Watch;

const CONFIG: Spec = Spec::new(&[
    Opt::flag('c', "client connection string"),
    Opt::flag('w', "watch"),
    Opt::flag('s', "stats"),
]);

pub async fn config(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let p = parse(&CONFIG, words)?;
    let client = ctx.client(Some(CONFIG_NODE)).await?;
    // `get_config` sets no watch; `-w` reads the node with a data watch
    // instead, which only reaches /zookeeper/config without a chroot.
    let read = if p.has('w') && client.chroot().is_none() {
        match client.get_data_watch(CONFIG_NODE).await {
            Ok((data, stat, w)) => {
                ctx.watch(Watch::Once(w)).await;
                Ok((data, stat))
            }
            Err(e) => Err(e),
        }
    } else {
        client.get_config().await
    };
    let (data, stat) =
        read.map_err(|e| CliError::failed(format::wrapper_message(&e, Some(CONFIG_NODE))))?;
    let text = String::from_utf8_lossy(&data);
    let mut out = if p.has('c') {
        client_config(&text)
    } else {
        text.into_owned()
    };
    out.push('\n');
    if p.has('s') {
        out.push_str(&format::stat(&stat));
    }
    out!("{out}");
    Ok(())
}

/// `ConfigUtils.getClientConfigStr`: `version host:port,host:port` from the
/// `server.N=…;clientAddress` lines (a bare client port means 0.0.0.0).
fn client_config(config: &str) -> String {
    let mut version = "";
    let mut servers: Vec<(&str, &str)> = Vec::new();
    for line in config.lines().map(str::trim) {
        if line.is_empty() || line.starts_with(['#', '!']) {
            continue;
        }
        let Some((key, value)) = line.split_once(['=', ':']) else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "version" {
            version = value;
        } else if key.starts_with("server.") {
            servers.push((key, value));
        }
    }
    // Java walks a Hashtable; servers come out here in id order.
    servers.sort_by_key(|(key, _)| {
        key.trim_start_matches("server.")
            .parse::<u64>()
            .unwrap_or(u64::MAX)
    });
    let addresses: Vec<String> = servers
        .iter()
        .map(|(_, value)| match value.split_once(';') {
            Some((_, client)) if client.contains(':') => client.trim().to_owned(),
            Some((_, port)) => format!("0.0.0.0:{}", port.trim()),
            None => String::new(),
        })
        .collect();
    format!("{version} {}", addresses.join(","))
}

/// Options of `reconfig`, several of them words (`-members`).
const RECONFIG_OPTIONS: &[(&str, bool)] = &[
    ("s", false),
    ("v", true),
    ("file", true),
    ("members", true),
    ("add", true),
    ("remove", true),
];

/// Checks the arguments as zkCli does, then reports that reconfiguration is
/// unavailable: Corral answers ReconfigDisabled, and the Rust client has no
/// reconfig call, so the answer is given here without asking.
pub fn reconfig(words: &[String]) -> CmdResult {
    let mut given: Vec<(&str, Option<&str>)> = Vec::new();
    let mut rest = words.iter().skip(1);
    while let Some(word) = rest.next() {
        let Some(name) = word.strip_prefix("--").or_else(|| word.strip_prefix('-')) else {
            continue;
        };
        let Some(&(name, takes_value)) = RECONFIG_OPTIONS.iter().find(|(n, _)| *n == name) else {
            return Err(CliError::failed(format!(
                "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: {word}"
            )));
        };
        let value = if takes_value {
            match rest.next() {
                Some(v) => Some(v.as_str()),
                None => {
                    return Err(CliError::failed(format!(
                        "org.apache.commons.cli.MissingArgumentException: Missing argument for option: {name}"
                    )))
                }
            }
        } else {
            None
        };
        given.push((name, value));
    }
    let has = |name: &str| given.iter().any(|(n, _)| *n == name);
    if let Some((_, Some(v))) = given.iter().find(|(n, _)| *n == "v") {
        if i64::from_str_radix(v, 16).is_err() {
            return Err(CliError::failed(
                "-v must be followed by a long (configuration version)",
            ));
        }
    }
    if (has("file") || has("members")) && (has("add") || has("remove")) {
        return Err(CliError::failed(
            "Can't use -file or -members together with -add or -remove (mixing incremental and \
             non-incremental modes is not allowed)",
        ));
    }
    if has("file") && has("members") {
        return Err(CliError::failed(
            "Can't use -file and -members together (conflicting non-incremental modes)",
        ));
    }
    if !(has("file") || has("members") || has("add") || has("remove")) {
        return Err(usage_error("reconfig"));
    }
    Err(CliError::failed("KeeperErrorCode = Reconfig is disabled"))
}

/// `version`: the Java CLI prints its build; this is Corral's.
pub fn version() {
    outln!(
        "ZooKeeper CLI version: corral-cli {} (zkCli 3.8 compatible)",
        env!("CARGO_PKG_VERSION")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_config_lists_client_addresses() {
        let config = "server.2=h2:2888:3888:participant;0.0.0.0:2182\n\
                      server.1=h1:2888:3888:participant;2181\nversion=100000000\n";
        assert_eq!(client_config(config), "100000000 0.0.0.0:2181,0.0.0.0:2182");
        assert_eq!(client_config(""), " ");
    }

    #[test]
    fn reconfig_checks_its_arguments() {
        let words = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            reconfig(&words("reconfig")).unwrap_err().message,
            super::super::usage_of("reconfig")
        );
        assert_eq!(
            reconfig(&words("reconfig -remove 3")).unwrap_err().message,
            "KeeperErrorCode = Reconfig is disabled"
        );
        assert!(reconfig(&words("reconfig -file f -add 1"))
            .unwrap_err()
            .message
            .starts_with("Can't use -file or -members"));
        assert!(reconfig(&words("reconfig -x 1"))
            .unwrap_err()
            .message
            .contains("Unrecognized option: -x"));
    }
}
