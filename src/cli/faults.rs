//! `apr-qa faults`: the fault-injection catalogue (and, with `--matrix`, the kill matrix).

use apr_qa::fault::Fault;

use super::{Failure, EXIT_OK};

#[derive(clap::Args)]
pub struct FaultsArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn faults_cmd(a: FaultsArgs) -> Result<u8, Failure> {
    if a.json {
        let list: Vec<serde_json::Value> = Fault::ALL
            .iter()
            .map(|f| serde_json::json!({ "name": f.name(), "description": f.description() }))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&list).map_err(Failure::bad_input)?
        );
    } else {
        for f in Fault::ALL {
            println!("{:<22} {}", f.name(), f.description());
        }
    }
    Ok(EXIT_OK)
}
