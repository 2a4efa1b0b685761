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
        RunnerInfo::new("python", Command::new("python3").arg("-VV"))
            .alias("py")
            .alias("python3")
            .program("python3")
            .program("uv")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn snippet(dependencies: &[&str], programs: &[&str]) -> Snippet {
        Snippet {
            code: "print(1)".into(),
            dependencies: dependencies.iter().map(|d| d.to_string()).collect(),
            args: vec!["--flag".into()],
            available_programs: programs.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn equal_requirement_sets_share_one_environment() {
        let a = Python::plan(snippet(&["Requests >= 2", "NumPy"], &["python3"])).unwrap();
        let b = Python::plan(snippet(&["numpy", "requests>=2", "numpy"], &["python3"])).unwrap();
        let key = |plan: &RunPlan| plan.environment.as_ref().unwrap().key.clone();
        assert_eq!(key(&a), "numpy\nrequests>=2");
        assert_eq!(key(&a), key(&b));
    }

    #[test]
    fn a_snippet_without_requirements_runs_the_system_python() {
        let plan = Python::plan(snippet(&[], &["python3"])).unwrap();
        assert!(plan.environment.is_none());
        assert_eq!(plan.run.program, "python3");
        assert_eq!(plan.run.args, ["main.py", "--flag"]);
        assert!(plan.fork_server.is_some());
    }

    #[test]
    fn uv_builds_the_environment_when_it_is_available() {
        let with_uv = Python::plan(snippet(&["requests"], &["python3", "uv"])).unwrap();
        let setup = &with_uv.environment.unwrap().setup;
        assert!(setup.iter().all(|step| step.program == "uv"));
        let without = Python::plan(snippet(&["requests"], &["python3"])).unwrap();
        assert_eq!(without.environment.unwrap().setup[0].program, "python3");
        let preload = &without.fork_server.unwrap().args;
        assert_eq!(preload.last().map(String::as_str), Some("requests"));
    }

    #[test]
    fn urls_markers_and_bad_versions_are_refused_by_name() {
        for bad in [
            "git+https://x/y",
            "pkg; python_version<'3'",
            "pkg==",
            "-e .",
            "pkg[extra",
        ] {
            let err = Python::plan(snippet(&[bad], &[])).unwrap_err();
            assert!(
                err.message().contains(bad.trim()),
                "{bad}: {}",
                err.message()
            );
        }
    }
}
