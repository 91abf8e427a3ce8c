//! `divqat`: the command-line program. Each subcommand lives in `cli/<name>.rs`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the cause chain joined, no backtrace, no panic.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
