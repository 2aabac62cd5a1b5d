//! `corral cli`: a zkCli.sh-compatible shell (placeholder until the shell lands).

/// Runs the shell with zkCli-style arguments (`-server host:port[,…][/chroot]`,
/// then an optional one-shot command). Returns the process exit code.
pub fn run(args: &[String]) -> i32 {
    let _ = args;
    eprintln!("corral cli: not implemented yet");
    2
}
