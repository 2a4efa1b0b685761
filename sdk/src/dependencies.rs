//! Checks every runner makes on the dependencies a snippet declares,
//! before parsing them in its ecosystem's syntax.

use crate::{Error, Result};

/// Most dependencies a plan accepts; more is refused as absurd.
pub const MAX_DEPENDENCIES: usize = 128;

/// Common checks for one dependency spec before a runner parses it: not
/// empty, at most 256 bytes, not an option (`-e`, `--index-url`), and made
/// only of characters `allowed` accepts. The error names the spec and the
/// first bad character.
///
/// ```
/// let ok = berth_sdk::check_dependency_spec("requests>=2", |c| c.is_ascii_alphanumeric() || "<>=.".contains(c));
/// assert!(ok.is_ok());
/// let err = berth_sdk::check_dependency_spec("--index-url", |c| c.is_ascii_alphanumeric()).unwrap_err();
/// assert!(err.message().contains("--index-url"));
/// ```
pub fn check_dependency_spec(spec: &str, allowed: impl Fn(char) -> bool) -> Result<()> {
    if spec.is_empty() {
        return Err(Error::invalid_input("a dependency spec is empty"));
    }
    if spec.len() > 256 {
        return Err(Error::invalid_input(format!(
            "dependency spec `{}…` is {} bytes; at most 256 allowed",
            spec.chars().take(40).collect::<String>(),
            spec.len()
        )));
    }
    if spec.starts_with('-') {
        return Err(Error::invalid_input(format!(
            "dependency spec `{spec}` looks like an option; give a package, not installer flags"
        )));
    }
    if let Some(bad) = spec.chars().find(|c| !allowed(*c)) {
        return Err(Error::invalid_input(format!(
            "dependency spec `{spec}` contains `{}`, which is not allowed in this ecosystem's specs (no URLs, paths, shell characters or whitespace)",
            bad.escape_default()
        )));
    }
    Ok(())
}

/// Refuse more than [`MAX_DEPENDENCIES`] dependencies.
///
/// ```
/// assert!(berth_sdk::check_dependency_count(&["a".to_string()]).is_ok());
/// ```
pub fn check_dependency_count(dependencies: &[String]) -> Result<()> {
    if dependencies.len() > MAX_DEPENDENCIES {
        return Err(Error::invalid_input(format!(
            "{} dependencies given; at most {MAX_DEPENDENCIES} allowed",
            dependencies.len()
        )));
    }
    Ok(())
}
