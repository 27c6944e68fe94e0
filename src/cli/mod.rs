//! Command-line front end.
use std::process::ExitCode;
/// Runs the CLI.
pub fn run() -> ExitCode { ExitCode::SUCCESS }
