//! Thin entry point: parse flags, start logging, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use ecp_inventory::cli::Cli;
use ecp_inventory::error::{chain_message, exit_code};
use ecp_inventory::telemetry::{self, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(
        cli.log_format.unwrap_or_else(LogFormat::detect),
        &cli.log_level,
    );
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ecp_inventory::cli::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // The whole chain, once, on one line: no backtrace for expected errors.
            eprintln!("error: {}", chain_message(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}
