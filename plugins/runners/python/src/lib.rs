//! The Python runner: berth generates `run_python` from it. Snippets with
//! dependencies run in a virtualenv cached per dependency set, built with
//! `uv` when the host has it and with `venv` + `pip` otherwise.

use berth_sdk::{
    Command, Error, File, Plugin, RunPlan, Runner, RunnerInfo, Snippet, check_dependency_count,
    check_dependency_spec,
};

struct Python;

/// The fork server (see the WIT's `run-plan`): an interpreter that imports
/// the environment's packages once and forks for every run.
const FORK_SERVER: &str = include_str!("fork_server.py");

/// The project name at the start of a normalised requirement.
fn project_name(requirement: &str) -> &str {
    let end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(requirement.len());
    &requirement[..end]
}

impl Plugin for Python {
    fn description() -> String {
        "Python snippets with pip dependencies in cached virtualenvs (run_python)".into()
    }
}

/// Characters a pip requirement may use here: a name, extras in brackets,
/// and version specifiers. No URLs (`:`/`/`), direct references (`@`),
/// environment markers (`;`) or shell characters.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-[],<>=!~*+ ".contains(c)
}

/// Check one requirement and return it normalised: spaces removed and the
/// project name lowercased with runs of `-_.` as one `-` (PEP 503), so that
/// equal sets share one environment.
fn normalise(spec: &str) -> berth_sdk::Result<String> {
    check_dependency_spec(spec.trim(), allowed)?;
    let compact: String = spec.chars().filter(|c| *c != ' ').collect();
    let name_end = compact
        .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
        .unwrap_or(compact.len());
    let (name, rest) = compact.split_at(name_end);
    if name.is_empty()
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(Error::invalid_input(format!(
            "dependency `{spec}` does not start with a project name (letters, digits, `._-`)"
        )));
    }
    let rest = match rest.strip_prefix('[') {
        Some(after) => {
            let close = after.find(']').ok_or_else(|| {
                Error::invalid_input(format!(
                    "dependency `{spec}` has an unclosed `[` extras list"
                ))
            })?;
            &after[close + 1..]
        }
        None => rest,
    };
    if !rest.is_empty() {
        for clause in rest.split(',') {
            let version = ["===", "~=", "==", "!=", "<=", ">=", "<", ">"]
                .iter()
                .find_map(|op| clause.strip_prefix(op));
            match version {
                Some(v) if !v.is_empty() && !v.contains(['<', '>', '=', '!', '~', '[', ']']) => {}
                _ => {
                    return Err(Error::invalid_input(format!(
                        "dependency `{spec}` has the version clause `{clause}`; expected an operator (==, >=, <=, ~=, !=, <, >) and a version"
                    )));
                }
            }
        }
    }
    let mut normal = String::new();
    let mut last_sep = false;
    for c in name.chars() {
        if "._-".contains(c) {
            if !last_sep {
                normal.push('-');
            }
            last_sep = true;
        } else {
            normal.push(c.to_ascii_lowercase());
            last_sep = false;
        }
    }
    Ok(format!("{normal}{}", &compact[name_end..]))
}

impl Runner for Python {
    fn info() -> RunnerInfo {
        RunnerInfo {
            language: "python".into(),
            aliases: vec!["py".into(), "python3".into()],
            programs: vec!["python3".into(), "uv".into()],
            toolchain_probe: Command::new("python3").arg("-VV"),
        }
    }

    fn plan(snippet: Snippet) -> berth_sdk::Result<RunPlan> {
        check_dependency_count(&snippet.dependencies)?;
        let mut requirements = snippet
            .dependencies
            .iter()
            .map(|d| normalise(d))
            .collect::<berth_sdk::Result<Vec<_>>>()?;
        requirements.sort();
        requirements.dedup();
        let file = File::new("main.py", snippet.code);
        let quiet = |c: Command| {
            c.env("PYTHONDONTWRITEBYTECODE", "1")
                .env("PYTHONUNBUFFERED", "1")
        };
        // The fork server runs with the run step's own variables, so that a
        // forked interpreter starts exactly as a fresh one would.
        let fork_server = |python: &str, preload: &[String]| {
            quiet(
                Command::new(python)
                    .args(["-c", FORK_SERVER])
                    .args(preload.iter().map(|r| project_name(r).to_string())),
            )
        };
        if requirements.is_empty() {
            return Ok(RunPlan::new(quiet(
                Command::new("python3").arg("main.py").args(snippet.args),
            ))
            .file(file)
            .fork_server(fork_server("python3", &[])));
        }
        let setup = if snippet.available_programs.iter().any(|p| p == "uv") {
            vec![
                Command::new("uv")
                    .args(["venv", "--quiet", "--python", "python3", "{env}"])
                    .env("UV_CACHE_DIR", "{cache}/uv"),
                Command::new("uv")
                    .args(["pip", "install", "--quiet", "--python", "{env}/bin/python"])
                    .args(requirements.iter().cloned())
                    .env("UV_CACHE_DIR", "{cache}/uv"),
            ]
        } else {
            vec![
                Command::new("python3").args(["-m", "venv", "{env}"]),
                Command::new("{env}/bin/python")
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "--no-input",
                    ])
                    .args(requirements.iter().cloned())
                    .env("PIP_CACHE_DIR", "{cache}/pip"),
            ]
        };
        Ok(RunPlan::new(quiet(
            Command::new("{env}/bin/python")
                .arg("main.py")
                .args(snippet.args),
        ))
        .file(file)
        .fork_server(fork_server("{env}/bin/python", &requirements))
        .environment(requirements.join("\n"), setup))
    }
}

berth_sdk::export_runner!(Python);
