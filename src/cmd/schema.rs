//! `potato schema` and `potato completions`: text potato generates about itself.

use clap::CommandFactory;

use crate::cli::{Cli, Shell};
use crate::error::Error;
use crate::inventory::HostFile;

/// The JSON Schema of host files, as committed in docs/host.schema.json.
pub fn host_schema() -> String {
    let schema = schemars::schema_for!(HostFile);
    let mut s = serde_json::to_string_pretty(&schema).expect("schemas serialize");
    s.push('\n');
    s
}

pub fn run() -> Result<(), Error> {
    print!("{}", host_schema());
    Ok(())
}

pub fn completions(shell: Shell) {
    let mut cmd = Cli::command();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "potato", &mut std::io::stdout());
}
