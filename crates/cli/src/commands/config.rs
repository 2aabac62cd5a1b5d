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

/// What `reconfig`'s options ask for, once checked as zkCli checks them.
#[derive(Debug, PartialEq, Eq)]
struct ReconfigArgs {
    joining: Option<String>,
    leaving: Option<String>,
    members: Option<String>,
    /// `-v`, hex; `None` (-1 on the wire) when not given.
    from_config: Option<i64>,
    stats: bool,
}

/// `ReconfigCommand.parse`: commons-cli options (several are words, like
/// `-members`), then the checks in zkCli's order. Values are lowercased as
/// zkCli does; `-file` is read as a dynamic config file.
fn reconfig_args(words: &[String]) -> Result<ReconfigArgs, CliError> {
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
    // commons-cli answers the first value of an option given twice.
    let value = |name: &str| given.iter().find(|(n, _)| *n == name).and_then(|(_, v)| *v);
    let has = |name: &str| given.iter().any(|(n, _)| *n == name);
    if !(has("file") || has("members") || has("add") || has("remove")) {
        return Err(usage_error("reconfig"));
    }
    let from_config = match value("v") {
        Some(v) => Some(i64::from_str_radix(v, 16).map_err(|_| {
            CliError::failed("-v must be followed by a long (configuration version)")
        })?),
        None => None,
    };
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
    let mut members = value("members").map(str::to_lowercase);
    if let Some(file) = value("file") {
        // zkCli glues the file name and the reason together, no space.
        let text = std::fs::read_to_string(file).map_err(|e| {
            CliError::failed(format!("Error processing {file}{}", io_reason(file, &e)))
        })?;
        members = Some(
            dynamic_config_members(&text)
                .map_err(|reason| CliError::failed(format!("Error processing {file}{reason}")))?,
        );
    }
    Ok(ReconfigArgs {
        joining: value("add").map(str::to_lowercase),
        leaving: value("remove").map(str::to_lowercase),
        members,
        from_config,
        stats: has("s"),
    })
}

/// The message of Java's `FileNotFoundException` and friends.
fn io_reason(file: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => format!("{file} (No such file or directory)"),
        std::io::ErrorKind::PermissionDenied => format!("{file} (Permission denied)"),
        _ => e.to_string(),
    }
}

/// `QuorumPeerConfig.parseDynamicConfig(file).toString()`, which zkCli
/// sends as the new members for `-file`: every `server.N` line in id
/// order, written back in canonical form (`host:port:port:role`, a bare
/// client port as `0.0.0.0:port`), then `version=` in hex.
fn dynamic_config_members(text: &str) -> Result<String, String> {
    let mut servers: Vec<(u64, String)> = Vec::new();
    let mut version: i64 = 0;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with(['#', '!']) {
            continue;
        }
        let (key, value) = match line.find(['=', ':']) {
            Some(i) => (line[..i].trim(), line[i + 1..].trim()),
            None => (line, ""),
        };
        if let Some(id) = key.strip_prefix("server.") {
            let id: u64 = id
                .parse()
                .map_err(|_| format!("For input string: \"{id}\""))?;
            servers.push((id, canonical_server(value)?));
        } else if key == "version" {
            version = i64::from_str_radix(value, 16)
                .map_err(|_| format!("For input string: \"{value}\""))?;
        }
    }
    servers.sort_by_key(|(id, _)| *id);
    let mut out = String::new();
    for (id, server) in servers {
        out.push_str(&format!("server.{id}={server}\n"));
    }
    out.push_str(&format!("version={version:x}"));
    Ok(out)
}

/// One server's address the way `QuorumServer.toString` writes it.
fn canonical_server(value: &str) -> Result<String, String> {
    let (server, client) = match value.split_once(';') {
        Some((server, client)) => (server.trim(), Some(client.trim())),
        None => (value.trim(), None),
    };
    let parts: Vec<&str> = server.split(':').collect();
    let role = match parts.as_slice() {
        [_, _, _] => "participant",
        [_, _, _, role] if role.eq_ignore_ascii_case("participant") => "participant",
        [_, _, _, role] if role.eq_ignore_ascii_case("observer") => "observer",
        [_, _, _, role] => return Err(format!("Unrecognised peertype: {role}")),
        _ => {
            return Err(format!(
                "{value} does not have the form server_config or server_config;client_config \
                 where server_config is the pipe separated list of host:port:port or \
                 host:port:port:type and client_config is port or host:port"
            ))
        }
    };
    let mut out = format!("{}:{}:{}:{role}", parts[0], parts[1], parts[2]);
    match client {
        Some(client) if client.contains(':') => out.push_str(&format!(";{client}")),
        Some(port) => out.push_str(&format!(";0.0.0.0:{port}")),
        None => {}
    }
    Ok(out)
}

/// `reconfig`: asks the server for the membership change and prints what
/// zkCli prints, "Committed new configuration:" and the new configuration
/// (then its Stat with `-s`); failures as zkCli's wrapper messages.
pub async fn reconfig(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let args = reconfig_args(words)?;
    let client = ctx.client(None).await?;
    let (config, stat) = client
        .reconfig(
            args.joining.as_deref(),
            args.leaving.as_deref(),
            args.members.as_deref(),
            args.from_config,
        )
        .await
        // ZooKeeperAdmin raises reconfig's errors with an empty path, so
        // zkCli prints e.g. "Insufficient permission : " and nothing after.
        .map_err(|e| CliError::failed(format::wrapper_message(&e, Some(""))))?;
    let mut out = format!(
        "Committed new configuration:\n{}\n",
        String::from_utf8_lossy(&config)
    );
    if args.stats {
        out.push_str(&format::stat(&stat));
    }
    out!("{out}");
    Ok(())
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
    fn reconfig_checks_its_arguments_in_zkclis_order() {
        let words = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            reconfig_args(&words("reconfig")).unwrap_err().message,
            super::super::usage_of("reconfig")
        );
        // The usage check comes before the -v check.
        assert_eq!(
            reconfig_args(&words("reconfig -v zz")).unwrap_err().message,
            super::super::usage_of("reconfig")
        );
        assert_eq!(
            reconfig_args(&words("reconfig -remove 3 -v zz"))
                .unwrap_err()
                .message,
            "-v must be followed by a long (configuration version)"
        );
        assert_eq!(
            reconfig_args(&words(
                "reconfig -s -v 1f -remove 3,4 -add SERVER.5=H:1:2;3"
            ))
            .unwrap(),
            ReconfigArgs {
                joining: Some("server.5=h:1:2;3".into()),
                leaving: Some("3,4".into()),
                members: None,
                from_config: Some(0x1f),
                stats: true,
            }
        );
        assert!(reconfig_args(&words("reconfig -file f -add 1"))
            .unwrap_err()
            .message
            .starts_with("Can't use -file or -members"));
        assert!(reconfig_args(&words("reconfig -x 1"))
            .unwrap_err()
            .message
            .contains("Unrecognized option: -x"));
        assert_eq!(
            reconfig_args(&words("reconfig -file /nonexistent/zoo.dyn"))
                .unwrap_err()
                .message,
            "Error processing /nonexistent/zoo.dyn/nonexistent/zoo.dyn (No such file or directory)"
        );
    }

    #[test]
    fn a_dynamic_config_file_becomes_canonical_members() {
        let text = "# members\nserver.2=h2:2888:3888:observer;2182\n\
                    server.1 = h1:2888:3888;127.0.0.1:2181\nversion=100000002\n";
        assert_eq!(
            dynamic_config_members(text).unwrap(),
            "server.1=h1:2888:3888:participant;127.0.0.1:2181\n\
             server.2=h2:2888:3888:observer;0.0.0.0:2182\nversion=100000002"
        );
        assert!(dynamic_config_members("server.1=h1:2888").is_err());
        assert!(dynamic_config_members("server.x=h1:1:2").is_err());
    }
}
