//! The `apr-qa` binary: argument parsing and exit codes only; the library decides.

fn main() -> std::process::ExitCode {
    apr_qa_cli::run()
}

#[path = "cli/mod.rs"]
mod apr_qa_cli;
