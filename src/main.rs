//! The `apr-qa` binary: argument parsing and exit codes only; the library decides.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
