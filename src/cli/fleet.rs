//! `apr-qa ticket`, `apr-qa merge`, `apr-qa playbook import`.

use super::Failure;

#[derive(clap::Args)]
pub struct TicketArgs {}

#[derive(clap::Args)]
pub struct MergeArgs {}

#[derive(clap::Args)]
pub struct ImportArgs {}

pub fn run_ticket(_a: TicketArgs) -> Result<u8, Failure> {
    Err(Failure::bad_input(anyhow::anyhow!("not implemented yet")))
}

pub fn run_merge(_a: MergeArgs) -> Result<u8, Failure> {
    Err(Failure::bad_input(anyhow::anyhow!("not implemented yet")))
}

pub fn run_import(_a: ImportArgs) -> Result<u8, Failure> {
    Err(Failure::bad_input(anyhow::anyhow!("not implemented yet")))
}
