//! `berth secrets set | list | rm`: the operator's side of the file
//! provider. Values come from stdin and are never echoed or printed.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::Context;

use crate::app::config::Config;
use crate::state::secrets::{MAX_VALUE_BYTES, SecretStore, check_name};

/// Keep the value read from stdin as secret `name`. On a terminal the
/// typing is not echoed; from a pipe the whole input is the value, less one
/// trailing newline.
pub fn set(config: &Config, name: &str) -> anyhow::Result<ExitCode> {
    let store = SecretStore::new(&config.data_dir, config.secrets.clone());
    // The name is checked before anything is read, so a typo costs no
    // typing of the value.
    check_name(name)?;
    let value = if std::io::stdin().is_terminal() {
        read_hidden(&format!("value of secret `{name}` (not shown): "))?
    } else {
        let mut bytes = Vec::new();
        std::io::stdin()
            .take(MAX_VALUE_BYTES as u64 + 2)
            .read_to_end(&mut bytes)
            .context("reading the secret's value from stdin")?;
        let mut value =
            String::from_utf8(bytes).context("the secret's value on stdin is not UTF-8")?;
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
        value
    };
    store.set(name, &value)?;
    eprintln!("secret `{name}` set in {}", store.file_path().display());
    Ok(ExitCode::SUCCESS)
}

/// One line from the terminal with echo turned off, restored afterwards
/// whatever happens.
fn read_hidden(prompt: &str) -> anyhow::Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("reading the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    eprint!("{prompt}");
    tcsetattr(&stdin, OptionalActions::Flush, &quiet).context("turning off echo")?;
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    let restored = tcsetattr(&stdin, OptionalActions::Flush, &saved);
    eprintln!();
    read.context("reading the secret's value")?;
    restored.context("restoring the terminal's echo")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Print the secrets' names and providers; never their values.
pub fn list(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let store = SecretStore::new(&config.data_dir, config.secrets.clone());
    let listed = store.list()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
    } else if listed.is_empty() {
        println!("no secrets set; add one with `berth secrets set NAME` (value on stdin)");
    } else {
        for entry in listed {
            println!("{:<40} {}", entry.name, entry.provider);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Remove secret `name` from the file provider.
pub fn remove(config: &Config, name: &str) -> anyhow::Result<ExitCode> {
    let store = SecretStore::new(&config.data_dir, config.secrets.clone());
    if store.remove(name)? {
        eprintln!("secret `{name}` removed");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "secret `{name}` is not in {}; nothing removed",
            store.file_path().display()
        );
        Ok(ExitCode::FAILURE)
    }
}
