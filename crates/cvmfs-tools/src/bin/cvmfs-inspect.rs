//! `cvmfs-inspect`: read-only inspection of a CernVM-FS repository (see `--help`).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use cvmfs_tools::cli::Cli;
use cvmfs_tools::inspect::{run, InspectError};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("CVMFS_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let result = run(&cli, &mut out);
    let result = result.and_then(|()| out.flush().map_err(InspectError::Output));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(InspectError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cvmfs-inspect: error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: `-joined, each only once.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = e.source();
    }
    text
}
