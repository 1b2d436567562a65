use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    hub::cli::init_tracing();
    match hub::cli::run(hub::cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hub: {err:#}");
            ExitCode::FAILURE
        }
    }
}
