//! zkCli's commands: the table (names and usage strings, as `usage()` lists
//! them), the error type, and dispatch of the commands that talk to the
//! server (`CliCommand`s). The shell's own commands (`history`, `redo`,
//! `connect`, `close`, `quit`, `printwatches`) live in `shell.rs`.
//!
//! Output goes where zkCli sends it: results on stdout, errors and a few
//! notices (`Created /a`) on stderr.

mod access;
mod config;
mod nodes;
mod quota;
mod walk;
mod watch;

use corral_client::{Client, Error};

use crate::format;
use crate::getopt::{self, Parsed, Spec};
use crate::paths;
use crate::session::Session;
use crate::watches::{Watch, Watches};

/// A command that failed: its message goes to stderr and, in one-shot mode,
/// its exit code to the shell (zkCli: 1, or 127 for an unknown command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub message: String,
    pub exit_code: i32,
}

impl CliError {
    pub fn failed(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            exit_code: 1,
        }
    }

    pub fn not_found(command: &str) -> CliError {
        CliError {
            message: format!("Command not found: Command not found {command}"),
            exit_code: 127,
        }
    }
}

pub type CmdResult = Result<(), CliError>;

/// `usage()`'s first line.
pub const USAGE_HEADER: &str =
    "ZooKeeper -server host:port -client-configuration properties-file cmd args";

/// Every command zkCli 3.8 knows, with its usage string, in `usage()`'s
/// order (Java's case-sensitive sort).
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "addWatch",
        "[-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE",
    ),
    ("addauth", "scheme auth"),
    ("close", ""),
    ("config", "[-c] [-w] [-s]"),
    ("connect", "host:port"),
    ("create", "[-s] [-e] [-c] [-t ttl] path [data] [acl]"),
    ("delete", "[-v version] path"),
    ("deleteall", "path [-b batch size]"),
    ("delquota", "[-n|-b|-N|-B] path"),
    ("get", "[-s] [-w] path"),
    ("getAcl", "[-s] path"),
    ("getAllChildrenNumber", "path"),
    ("getEphemerals", "path"),
    ("history", ""),
    ("listquota", "path"),
    ("ls", "[-s] [-w] [-R] path"),
    ("printwatches", "on|off"),
    ("quit", ""),
    (
        "reconfig",
        "[-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]",
    ),
    ("redo", "cmdno"),
    ("removewatches", "path [-c|-d|-a] [-l]"),
    ("set", "[-s] [-v version] path data"),
    ("setAcl", "[-s] [-v version] [-R] path acl"),
    ("setquota", "-n|-b|-N|-B val path"),
    ("stat", "[-w] path"),
    ("sync", "path"),
    ("version", ""),
    ("whoami", ""),
];

pub fn is_command(name: &str) -> bool {
    COMMANDS.iter().any(|(n, _)| *n == name)
}

/// zkCli's `usage()` text (it goes to stderr).
pub fn usage() -> String {
    let mut text = String::from(USAGE_HEADER);
    for (name, args) in COMMANDS {
        text.push_str(&format!("\n\t{name} {args}"));
    }
    text
}

/// `CliCommand.getUsageStr()`: `name options`.
pub fn usage_of(name: &str) -> String {
    let args = COMMANDS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, a)| *a);
    format!("{name} {args}")
}

/// What a command works with.
pub struct Ctx<'a> {
    pub session: &'a Session,
    pub watches: &'a Watches,
}

impl Ctx<'_> {
    /// The client, once connected. A failed connection reads as
    /// ConnectionLoss on `path`, like the Java client's queued requests.
    async fn client(&self, path: Option<&str>) -> Result<Client, CliError> {
        self.session
            .client()
            .await
            .map_err(|e| CliError::failed(format::wrapper_message(&e, path)))
    }

    async fn watch(&self, watch: Watch) {
        self.watches.add(watch).await;
    }

    /// Lets the watcher print the events a request fired before the
    /// command prints its own result.
    async fn settle(&self) {
        self.watches.settle().await;
    }
}

/// Runs a server command (`words[0]` is its name, known to be one of them).
pub async fn run(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let Some(name) = words.first() else {
        return Ok(());
    };
    match name.as_str() {
        "create" => nodes::create(ctx, words).await,
        "ls" => nodes::ls(ctx, words).await,
        "get" => nodes::get(ctx, words).await,
        "set" => nodes::set(ctx, words).await,
        "stat" => nodes::stat(ctx, words).await,
        "delete" => nodes::delete(ctx, words).await,
        "deleteall" => nodes::delete_all(ctx, words).await,
        "sync" => nodes::sync(ctx, words).await,
        "getAllChildrenNumber" => nodes::all_children_number(ctx, words).await,
        "getEphemerals" => nodes::ephemerals(ctx, words).await,
        "getAcl" => access::get_acl(ctx, words).await,
        "setAcl" => access::set_acl(ctx, words).await,
        "addauth" => access::add_auth(ctx, words).await,
        "whoami" => access::who_am_i(ctx).await,
        "addWatch" => watch::add_watch(ctx, words).await,
        "removewatches" => watch::remove_watches(ctx, words).await,
        "config" => config::config(ctx, words).await,
        "reconfig" => config::reconfig(ctx, words).await,
        "version" => {
            config::version();
            Ok(())
        }
        "setquota" => quota::set_quota(ctx, words).await,
        "listquota" => quota::list_quota(ctx, words).await,
        "delquota" => quota::del_quota(ctx, words).await,
        // The shell's own commands never get here.
        _ => Ok(()),
    }
}

/// Parses a command's options; a bad option fails like commons-cli.
fn parse(spec: &Spec, words: &[String]) -> Result<Parsed, CliError> {
    getopt::parse(spec, words).map_err(CliError::failed)
}

/// The usage error of `name` (`CliParseException(getUsageStr())`).
fn usage_error(name: &str) -> CliError {
    CliError::failed(usage_of(name))
}

/// Checks a path the way the Java client does before sending a request.
fn check_path(path: &str) -> CmdResult {
    paths::validate(path).map_err(CliError::failed)
}

/// `CliWrapperException` for a request on `path` that failed.
fn wrap(err: &Error, path: &str) -> CliError {
    CliError::failed(format::wrapper_message(err, Some(path)))
}

/// `Integer.parseInt` of an option value; zkCli dies with Java's
/// NumberFormatException here, the shell reports it.
fn parse_version(text: &str) -> Result<i32, CliError> {
    crate::options::java_parse_int(text).ok_or_else(|| {
        CliError::failed(format!(
            "java.lang.NumberFormatException: For input string: \"{text}\""
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_javas_sort_order() {
        let names: Vec<&str> = COMMANDS.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert!(usage().starts_with(USAGE_HEADER));
        assert!(usage().contains("\n\tclose \n"));
        assert_eq!(usage_of("ls"), "ls [-s] [-w] [-R] path");
    }
}
