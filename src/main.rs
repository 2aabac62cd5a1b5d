//! `corral`: the one binary. `corral server [zoo.cfg]` runs a server;
//! `corral status` asks a server for its mode.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc rather than glibc's malloc: measured on the write path
/// (`corral bench`, 32 sessions × 8 in flight, fresh server, two A/B rounds):
/// setData +10–15 % ops/s and −10 % server CPU per op, create/delete +8–20 %,
/// the same RSS with 1M znodes. (mimalloc: +9 % RSS with 1M znodes, +50 % after
/// a restart.)
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "corral",
    version,
    about = "A ZooKeeper-compatible coordination service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a server. Without a zoo.cfg: standalone on 127.0.0.1:2181 with data in ./corral-data.
    Server {
        /// A ZooKeeper zoo.cfg file.
        config: Option<PathBuf>,
    },
    /// A zkCli.sh-compatible shell: `corral cli -server host:port[,host:port][/chroot] [command args…]`.
    #[command(disable_help_flag = true)]
    Cli {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Load generator and comparison with Apache ZooKeeper (`corral bench --help`).
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print a server's mode, zxid and counters (the `srvr` four-letter word).
    Status {
        /// host:port of the server's client port.
        #[arg(default_value = "127.0.0.1:2181")]
        server: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs what it does; the tools only warn (a shell's stderr
    // is for the user, as zkCli's is).
    let default_level = match cli.command {
        Command::Server { .. } => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CORRAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Server { config } => run_server(config),
        Command::Cli { args } => exit_code(corral_cli::run(&args)),
        Command::Bench { args } => exit_code(corral_bench::run(&args)),
        Command::Status { server } => match corral_server::fourlw::query(&server, "srvr") {
            Ok(text) => {
                print!("{text}");
                // The epoch is the zxid's high half (the Raft term).
                if let Some(zxid) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Zxid: 0x"))
                    .and_then(|hex| i64::from_str_radix(hex.trim(), 16).ok())
                {
                    println!("Epoch: {}", zxid >> 32);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot reach {server}: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run_server(config: Option<PathBuf>) -> ExitCode {
    use corral_server::config::{jvm_properties, ServerConfig};
    // zkServer.sh hands these to ZooKeeper's JVM; the ZooKeeper settings in
    // them (SASL's JAAS file, superUser, authProvider…) apply here too.
    let flags = ["JVMFLAGS", "SERVER_JVMFLAGS"]
        .map(|v| std::env::var(v).unwrap_or_default())
        .join(" ");
    let jvm = jvm_properties(&flags);
    let loaded = match config {
        Some(path) => ServerConfig::load_with(&path, &jvm),
        None => ServerConfig::from_jvm_properties(&jvm),
    };
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("corral: {e}");
            return ExitCode::from(2);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    // tokio reads TOKIO_WORKER_THREADS itself; otherwise leave a core to the
    // threads that are not tokio's: the log writer (group commit, fdatasync)
    // and the snapshot builder. On the 2-core machine of docs/PERFORMANCE.md
    // one worker instead of two cut CPU per request by 10-20 % and halved
    // the p99 of reads at 32 sessions (fewer cross-thread wake-ups), with the
    // same or higher throughput.
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder.worker_threads(cores.saturating_sub(1).max(1));
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("corral: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(corral_server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("corral: {e}");
            ExitCode::FAILURE
        }
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
