//! `corral bench`: a load generator for any ZooKeeper-compatible server
//! (Corral, Apache ZooKeeper), built on `corral-client`.
//!
//! N sessions, each with K requests in flight (K tasks sharing one
//! pipelined session), run one operation for a fixed time after a warm-up;
//! every reply's latency goes into an HdrHistogram. The result is printed as
//! text or as one JSON object ([`report::RunReport`]), which
//! `bench/compare.sh` collects to compare Corral with Apache ZooKeeper.
//!
//! Files, in the order a run goes: [`args`] (the command line), `load`
//! (sessions, the node layout, the timed loop), `fanout` (watch fan-out),
//! `tools` (`fill` and `probe`, the helpers of compare.sh), `procstat`
//! (server CPU and RSS from /proc), [`report`] (histogram summary, text and
//! JSON).

pub mod args;
mod fanout;
mod load;
mod procstat;
pub mod report;
mod tools;

use clap::Parser;

pub use args::{BenchArgs, Op};
pub use report::RunReport;

/// The parent of every node the benchmark creates.
pub const ROOT: &str = "/corral-bench";

/// Runs `corral bench` with its arguments (everything after `bench`).
/// Returns the process exit code: 0 on success, 1 when the run failed (no
/// server, no operation completed), 2 for a bad command line.
pub fn run(args: &[String]) -> i32 {
    let argv = std::iter::once("corral bench".to_string()).chain(args.iter().cloned());
    let args = match BenchArgs::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    if let Err(msg) = args.validate() {
        eprintln!("corral bench: {msg}");
        return 2;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.unwrap_or_else(default_threads))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("corral bench: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let outcome = runtime.block_on(async {
        match args.op {
            Op::WatchFanout => fanout::run(&args).await,
            Op::Fill => tools::fill(&args).await,
            Op::Probe => tools::probe(&args).await,
            _ => load::run(&args).await,
        }
    });
    // Sessions still closing must not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match outcome {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            if report.ok() {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("corral bench: {e}");
            1
        }
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}
