//! `apr-qa hunt`: generated blocks, tensors and models against the reference paths.

use super::Failure;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_a: Args) -> Result<u8, Failure> {
    Err(Failure::bad_input(anyhow::anyhow!("not implemented yet")))
}
