//! The `apr-qa` binary: argument parsing and exit codes only; the library decides.

mod cli;

fn main() -> std::process::ExitCode {
    // A closed stdout (`apr-qa inspect M | head`) ends the process quietly, as for other Unix
    // tools, instead of a panic in `println!`.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts has no
    // memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    cli::run()
}
