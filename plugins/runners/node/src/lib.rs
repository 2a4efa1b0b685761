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
        RunnerInfo {
            language: "node".into(),
            aliases: vec!["javascript".into(), "js".into()],
            programs: vec!["node".into(), "npm".into(), "ln".into()],
            toolchain_probe: Command::new("node").arg("--version"),
        }
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
