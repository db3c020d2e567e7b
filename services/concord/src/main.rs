//! The `concord` binary: parses arguments and hands over to the library
//! code that does the work. It owns no logic of its own.

/// glibc malloc showed up as ~15% of the append path (arena contention
/// between the writer thread and the runtime); mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod logcmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "concord",
    version,
    about = "Concord: coordination backend for cross-border police operations"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Inspect a service's event log on disk (the service must be stopped).
    Log {
        #[command(subcommand)]
        command: LogCmd,
    },
    /// Measure this machine: prints figures, asserts nothing.
    Bench {
        #[command(subcommand)]
        command: BenchCmd,
    },
}

#[derive(Subcommand)]
enum LogCmd {
    /// Walk the whole hash chain; exit 1 and name the first bad seq if it breaks.
    Verify {
        /// The log directory, e.g. data/operations
        dir: PathBuf,
    },
    /// Print events as JSON Lines, one envelope per line, exactly as stored.
    Export {
        dir: PathBuf,
        /// First seq to print
        #[arg(long, default_value_t = 1)]
        from: u64,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Durable appends with 1, 8, 64 and 256 concurrent appenders, then
    /// sequential read + hash verification.
    Log(bench::LogBenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Log { command } => match command {
            LogCmd::Verify { dir } => logcmd::verify(&dir),
            LogCmd::Export { dir, from } => logcmd::export(&dir, from),
        },
        Cmd::Bench { command } => match command {
            BenchCmd::Log(args) => bench::log(args).map(|()| ExitCode::SUCCESS),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
