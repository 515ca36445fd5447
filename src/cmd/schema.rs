//! `potato schema` and `potato completions`: text potato generates about itself.

use clap::ValueEnum;

use crate::error::Error;
use crate::inventory::HostFile;

/// The JSON Schema of host files, as committed in docs/host.schema.json.
pub fn host_schema() -> String {
    let schema = schemars::schema_for!(HostFile);
    let mut s = serde_json::to_string_pretty(&schema).expect("schemas serialize");
    s.push('\n');
    s
}

/// Print the JSON Schema of host files (docs/host.schema.json).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Print shell completions.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

pub fn run(_: &Args) -> Result<(), Error> {
    print!("{}", host_schema());
    Ok(())
}

/// The completions of `cmd`, the whole command line.
pub fn completions(a: &CompletionsArgs, mut cmd: clap::Command) -> Result<(), Error> {
    let shell = match a.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "potato", &mut std::io::stdout());
    Ok(())
}
