//! `corral cli`: a zkCli.sh-compatible shell, interactive or one-shot.
//!
//! `corral cli -server host:port[,host:port…][/chroot] [-timeout ms] [-r]
//! [command args…]` takes zkCli 3.8's options, commands, flags and output,
//! so scripts written against `zkCli.sh` keep working.
//!
//! Files, in the order a typed line travels: [`options`] (the shell's
//! options, splitting a line into words), `shell` (the loop and the shell's
//! own commands), `commands` (one file per group of server commands, with
//! `getopt` for their options, `paths` for path checks, `acl` for ACL
//! strings), `session` (the connection and its state events), `watches`
//! (printing watch events), `format` and `javadate` (text as Java prints
//! it), `completion` (tab completion).
//!
//! Everything asynchronous runs on a runtime with one worker thread: the
//! client's session task, the watch printer and the connection task. The
//! main thread reads lines and waits for each command. One worker makes
//! a notification that fires several watches reach the printer as one
//! group (see `watches`).

/// `print!` to stdout, ignoring write errors: a reader that went away
/// (`corral cli … | head`) ends the output, not the shell.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `println!` to stdout, ignoring write errors (see `out!`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `eprintln!`, ignoring write errors (see `out!`).
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

pub mod options;

mod acl;
mod commands;
mod completion;
mod format;
mod getopt;
mod javadate;
mod paths;
mod session;
mod shell;
mod watches;

use std::time::Duration;

use options::MainOptions;

/// How long the runtime gets to wind down after the last command.
const SHUTDOWN_WAIT: Duration = Duration::from_millis(200);

/// Runs the shell with zkCli-style arguments (`-server host:port[,…][/chroot]`,
/// then an optional one-shot command). Returns the process exit code: for a
/// one-shot command zkCli's (0, 1 on failure, 127 for an unknown command);
/// interactively, that of the last command.
pub fn run(args: &[String]) -> i32 {
    let options = match MainOptions::parse(args) {
        Ok(options) => options,
        Err(message) => {
            errln!("{message}");
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("corral-cli")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            errln!("corral cli: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let mut shell = shell::Shell::new(runtime.handle().clone(), &options);
    let code = match options.command.clone() {
        Some(words) => shell.one_shot(words),
        None => shell.interactive(),
    };
    drop(shell);
    runtime.shutdown_timeout(SHUTDOWN_WAIT);
    code
}
