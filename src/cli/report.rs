//! `apr-qa report`: HTML dashboard, JUnit XML and markdown from evidence files.

use super::Failure;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_a: Args) -> Result<u8, Failure> {
    Err(Failure::bad_input(anyhow::anyhow!("not implemented yet")))
}
