//! The placeholders a plan's commands use (`{work}`, `{env}`, `{cache}`),
//! and the program check made when they are filled in.

use std::path::Path;

use crate::capabilities::grants::Grants;
use crate::contract::bindings::types::{Command, Error as WitError};
use crate::sys::process;

/// The directories placeholders stand for.
pub struct Places<'a> {
    /// `{work}`: the workspace.
    pub work: &'a Path,
    /// `{env}`: the cached environment, when the plan has one.
    pub env: Option<&'a Path>,
    /// `{cache}`: the language's download cache.
    pub cache: &'a Path,
}

impl Places<'_> {
    /// The program of `command` with placeholders filled in, and whether it
    /// lies inside the workspace or environment (built by the plan's own
    /// steps). Any other program must be granted to the runner.
    pub fn program(&self, command: &Command, grants: &Grants) -> Result<(String, bool), WitError> {
        let program = self.substitute(&command.program);
        let path = Path::new(&program);
        let own = path.is_absolute()
            && !program.contains("..")
            && (path.starts_with(self.work) || self.env.is_some_and(|e| path.starts_with(e)));
        if !own && !grants.allows_program(&command.program) {
            return Err(WitError::Denied(format!(
                "the plan runs `{}`, which the runner is not granted; allow it in berth.toml [policy.<runner>] process",
                command.program
            )));
        }
        Ok((program, own))
    }

    /// `command` with placeholders filled in, after the same program check
    /// as on the host: granted to the runner, or built by its own steps.
    pub fn fill(&self, command: &Command, grants: &Grants) -> Result<Command, WitError> {
        let (program, _) = self.program(command, grants)?;
        if let Some((name, _)) = command
            .env
            .iter()
            .find(|(n, _)| process::is_forbidden_env(n))
        {
            return Err(WitError::InvalidInput(format!(
                "environment variable `{name}` may not be set"
            )));
        }
        Ok(Command {
            program,
            args: command.args.iter().map(|a| self.substitute(a)).collect(),
            env: command
                .env
                .iter()
                .map(|(k, v)| (k.clone(), self.substitute(v)))
                .collect(),
            cwd: command.cwd.clone(),
        })
    }

    pub(super) fn substitute(&self, text: &str) -> String {
        let mut out = text.replace("{work}", &self.work.display().to_string());
        out = out.replace("{cache}", &self.cache.display().to_string());
        if let Some(env) = self.env {
            out = out.replace("{env}", &env.display().to_string());
        }
        out
    }
}

/// A short description of a step for progress messages.
pub fn describe(command: &Command) -> String {
    let mut text = command.program.clone();
    for arg in command.args.iter().take(6) {
        text.push(' ');
        text.push_str(arg);
    }
    if text.len() > 200 {
        text.truncate(200);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_in() {
        let places = Places {
            work: Path::new("/w"),
            env: Some(Path::new("/e")),
            cache: Path::new("/c"),
        };
        assert_eq!(
            places.substitute("{env}/bin/python {work}/x {cache}"),
            "/e/bin/python /w/x /c"
        );
    }
}
