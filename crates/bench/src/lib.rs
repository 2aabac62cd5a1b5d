//! `corral bench` (placeholder until the benchmark lands).

/// Runs `corral bench` with its arguments (after `bench`). Returns the exit code.
pub fn run(args: &[String]) -> i32 {
    let _ = args;
    eprintln!("corral bench: not implemented yet");
    2
}
