//! A fourth language for berth, added without touching the host: berth
//! generates `run_perl` from this runner. Dependencies are CPAN module
//! names (`JSON::PP`, `Text::CSV`), installed with `cpanm` into a cached
//! local library when the host has cpanm.

use berth_sdk::{
    Command, Error, File, Plugin, RunPlan, Runner, RunnerInfo, Snippet, check_dependency_count,
    check_dependency_spec,
};

struct Perl;

impl Plugin for Perl {
    fn description() -> String {
        "Perl snippets (run_perl)".into()
    }
}

/// CPAN module names: `Foo::Bar`, optionally `Foo::Bar@1.2`.
fn module(spec: &str) -> berth_sdk::Result<String> {
    check_dependency_spec(spec, |c| c.is_ascii_alphanumeric() || ":_@.".contains(c))?;
    let name = spec.split('@').next().unwrap_or_default();
    let valid = name
        .split("::")
        .all(|part| !part.is_empty() && part.starts_with(|c: char| c.is_ascii_alphabetic()));
    if !valid {
        return Err(Error::invalid_input(format!(
            "dependency `{spec}` is not a CPAN module name such as Text::CSV"
        )));
    }
    Ok(spec.to_string())
}

impl Runner for Perl {
    fn info() -> RunnerInfo {
        RunnerInfo::new("perl", Command::new("perl").args(["-e", "print $^V"]))
            .alias("pl")
            .program("perl")
            .program("cpanm")
    }

    fn plan(snippet: Snippet) -> berth_sdk::Result<RunPlan> {
        check_dependency_count(&snippet.dependencies)?;
        let mut modules = snippet
            .dependencies
            .iter()
            .map(|d| module(d))
            .collect::<berth_sdk::Result<Vec<_>>>()?;
        modules.sort();
        modules.dedup();
        let file = File::new("main.pl", snippet.code);
        if modules.is_empty() {
            return Ok(
                RunPlan::new(Command::new("perl").arg("main.pl").args(snippet.args)).file(file),
            );
        }
        if !snippet.available_programs.iter().any(|p| p == "cpanm") {
            return Err(Error::unavailable(
                "CPAN dependencies need cpanm on the host (apt install cpanminus) and granted to this runner",
            ));
        }
        let install = Command::new("cpanm")
            .args(["--quiet", "--notest", "--local-lib", "{env}"])
            .args(modules.iter().cloned());
        Ok(RunPlan::new(
            Command::new("perl")
                .args(["-I{env}/lib/perl5", "main.pl"])
                .args(snippet.args),
        )
        .file(file)
        .environment(modules.join("\n"), vec![install]))
    }
}

berth_sdk::export_runner!(Perl);
