//! The Node.js runner: berth generates `run_node` from it. Dependencies are
//! installed with npm into a `node_modules` cached per dependency set and
//! linked into the workspace, so both `require` and `import` find them.

use berth_sdk::{
    Command, Error, File, Plugin, RunPlan, Runner, RunnerInfo, Snippet, check_dependency_count,
    check_dependency_spec,
};

struct Node;

impl Plugin for Node {
    fn description() -> String {
        "JavaScript snippets on Node.js with npm dependencies (run_node)".into()
    }
}

/// Characters of `name@range` specs: scoped names and semver ranges. No
/// `:` (git+, file:, http:, npm: aliases), no shell characters.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "@/._-~^<>=|*+ ".contains(c)
}

/// Whether `name` is a valid npm package name, scoped or not.
fn valid_name(name: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && !p.starts_with('_')
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._~".contains(c))
    };
    if name.len() > 214 {
        return false;
    }
    match name.strip_prefix('@') {
        Some(scoped) => match scoped.split_once('/') {
            Some((scope, pkg)) => part(scope) && part(pkg),
            None => false,
        },
        None => part(name),
    }
}

/// Check one `name@range` spec and return it trimmed.
fn normalise(spec: &str) -> berth_sdk::Result<String> {
    let spec = spec.trim();
    check_dependency_spec(spec, allowed)?;
    // The version separator is the first `@` after an optional scope.
    let split = spec[1..].find('@').map(|i| i + 1);
    let (name, range) = match split {
        Some(at) => (&spec[..at], Some(&spec[at + 1..])),
        None => (spec, None),
    };
    if !valid_name(name) {
        return Err(Error::invalid_input(format!(
            "dependency `{spec}`: `{name}` is not an npm package name (lowercase, optionally @scope/name)"
        )));
    }
    if name.matches('/').count() > usize::from(name.starts_with('@')) {
        return Err(Error::invalid_input(format!(
            "dependency `{spec}` looks like a path; give a registry package"
        )));
    }
    match range {
        Some(range) if range.trim().is_empty() || range.contains('/') || range.contains('@') => {
            Err(Error::invalid_input(format!(
                "dependency `{spec}` has the range `{range}`; expected a semver range such as ^4.17 or 1.2.x"
            )))
        }
        Some(range) => Ok(format!("{name}@{}", range.trim())),
        None => Ok(name.to_string()),
    }
}

/// Whether the code is an ES module (uses `import`/`export` statements).
fn is_module(code: &str) -> bool {
    code.lines().map(str::trim_start).any(|l| {
        (l.starts_with("import ") && (l.contains(" from ") || l.contains('"') || l.contains('\'')))
            || l.starts_with("import{")
            || l.starts_with("export ")
    })
}

impl Runner for Node {
    fn info() -> RunnerInfo {
        RunnerInfo::new("node", Command::new("node").arg("--version"))
            .alias("javascript")
            .alias("js")
            .program("node")
            .program("npm")
            .program("ln")
    }

    fn plan(snippet: Snippet) -> berth_sdk::Result<RunPlan> {
        check_dependency_count(&snippet.dependencies)?;
        let mut packages = snippet
            .dependencies
            .iter()
            .map(|d| normalise(d))
            .collect::<berth_sdk::Result<Vec<_>>>()?;
        packages.sort();
        packages.dedup();
        let entry = if is_module(&snippet.code) {
            "main.mjs"
        } else {
            "main.js"
        };
        let plan = RunPlan::new(Command::new("node").arg(entry).args(snippet.args))
            .file(File::new(entry, snippet.code));
        if packages.is_empty() {
            return Ok(plan);
        }
        let install = Command::new("npm")
            .args([
                "install",
                "--prefix",
                "{env}",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--loglevel=error",
                "--",
            ])
            .args(packages.iter().cloned())
            .env("npm_config_cache", "{cache}/npm")
            .env("npm_config_update_notifier", "false");
        Ok(plan
            .environment(packages.join("\n"), vec![install])
            .build_step(Command::new("ln").args([
                "-sfn",
                "{env}/node_modules",
                "{work}/node_modules",
            ])))
    }
}

berth_sdk::export_runner!(Node);

#[cfg(test)]
mod tests {
    use super::*;

    fn snippet(code: &str, dependencies: &[&str]) -> Snippet {
        Snippet {
            code: code.into(),
            dependencies: dependencies.iter().map(|d| d.to_string()).collect(),
            args: Vec::new(),
            available_programs: Vec::new(),
        }
    }

    #[test]
    fn an_es_module_is_written_as_mjs() {
        let plan = Node::plan(snippet("import fs from 'fs';", &[])).unwrap();
        assert_eq!(plan.files[0].path, "main.mjs");
        let plan = Node::plan(snippet("console.log(1)", &[])).unwrap();
        assert_eq!(plan.files[0].path, "main.js");
        assert!(plan.environment.is_none());
    }

    #[test]
    fn packages_install_without_scripts_and_link_into_the_workspace() {
        let plan = Node::plan(snippet("x", &["lodash@4", "@types/node"])).unwrap();
        let environment = plan.environment.unwrap();
        assert_eq!(environment.key, "@types/node\nlodash@4");
        let install = &environment.setup[0];
        assert!(install.args.iter().any(|a| a == "--ignore-scripts"));
        let dashes = install.args.iter().position(|a| a == "--").unwrap();
        assert_eq!(&install.args[dashes + 1..], ["@types/node", "lodash@4"]);
        assert_eq!(plan.build[0].program, "ln");
    }

    #[test]
    fn aliases_urls_and_bad_names_are_refused_by_name() {
        for bad in ["npm:lodash@4", "git+https://x", "Lodash", "@scope", "a/b/c"] {
            let err = Node::plan(snippet("x", &[bad])).unwrap_err();
            assert!(err.message().contains(bad), "{bad}: {}", err.message());
        }
    }
}
