//! The Rust runner: berth generates `run_rust` from it. Each snippet is a
//! small cargo package; its dependencies are compiled once per dependency
//! set into a shared target dir (the cached environment), so later runs
//! compile only the snippet itself.

use berth_sdk::{
    Command, Error, File, Plugin, RunPlan, Runner, RunnerInfo, Snippet, check_dependency_count,
    check_dependency_spec,
};
use serde::Deserialize;
use serde_json::json;

struct Rust;

impl Plugin for Rust {
    fn description() -> String {
        "Rust snippets with crates.io dependencies (run_rust)".into()
    }
}

/// One crate to depend on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Crate {
    name: String,
    version: String,
    features: Vec<String>,
}

/// Characters of `name@version[feature,...]` specs.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "@._-^~<>=*,[]/+ ".contains(c)
}

fn valid_ident(s: &str, extra: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || extra.contains(c))
}

/// Parse a `cargo add` style spec: `serde_json`, `serde_json@1`,
/// `tokio@1[full,macros]`.
fn parse(spec: &str) -> berth_sdk::Result<Crate> {
    let spec = spec.trim();
    check_dependency_spec(spec, allowed)?;
    let (head, features) = match spec.split_once('[') {
        Some((head, rest)) => {
            let list = rest.strip_suffix(']').ok_or_else(|| {
                Error::invalid_input(format!(
                    "dependency `{spec}`: the feature list must end the spec with `]`"
                ))
            })?;
            let features: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(String::from)
                .collect();
            if let Some(bad) = features.iter().find(|f| !valid_ident(f, "/+")) {
                return Err(Error::invalid_input(format!(
                    "dependency `{spec}`: `{bad}` is not a feature name"
                )));
            }
            (head, features)
        }
        None => (spec, Vec::new()),
    };
    let (name, version) = match head.split_once('@') {
        Some((name, version)) => (name.trim(), version.trim()),
        None => (head.trim(), "*"),
    };
    if !valid_ident(name, "") {
        return Err(Error::invalid_input(format!(
            "dependency `{spec}`: `{name}` is not a crate name (letters, digits, `_`, `-`)"
        )));
    }
    if version.is_empty()
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".^~<>=*, +-".contains(c))
    {
        return Err(Error::invalid_input(format!(
            "dependency `{spec}`: `{version}` is not a version requirement such as 1, ^1.2 or =0.4.3"
        )));
    }
    let mut features = features;
    features.sort();
    features.dedup();
    Ok(Crate {
        name: name.to_string(),
        version: version.to_string(),
        features,
    })
}

/// A crate as the host passes it: a `cargo add` style spec, or the JSON
/// text of a `{name, version, features}` object (see the dependency schema
/// in `info`). Both go through the same checks.
fn dependency(item: &str) -> berth_sdk::Result<Crate> {
    if !item.trim_start().starts_with('{') {
        return parse(item);
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Object {
        name: String,
        version: Option<String>,
        #[serde(default)]
        features: Vec<String>,
    }
    let object: Object = serde_json::from_str(item).map_err(|e| {
        Error::invalid_input(format!(
            "dependency `{item}` is not a {{name, version, features}} object: {e}"
        ))
    })?;
    let mut spec = object.name;
    if let Some(version) = object.version {
        spec.push('@');
        spec.push_str(&version);
    }
    if !object.features.is_empty() {
        spec.push('[');
        spec.push_str(&object.features.join(","));
        spec.push(']');
    }
    parse(&spec)
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A `Cargo.toml` for package `name` with `crates`.
fn manifest(name: &str, crates: &[Crate]) -> String {
    let mut toml = format!(
        "[package]\nname = {}\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\n",
        quote(name)
    );
    for c in crates {
        let features = c
            .features
            .iter()
            .map(|f| quote(f))
            .collect::<Vec<_>>()
            .join(", ");
        toml.push_str(&format!(
            "{} = {{ version = {}, features = [{features}] }}\n",
            quote(&c.name),
            quote(&c.version)
        ));
    }
    // Workspace root of its own, so a parent Cargo.toml is never picked up.
    toml.push_str("\n[workspace]\n");
    toml
}

/// FNV-1a, for a package name that differs per snippet: runs with the same
/// dependencies share one target dir, and must not overwrite each other's
/// binary.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

impl Runner for Rust {
    fn info() -> RunnerInfo {
        RunnerInfo::new("rust", Command::new("cargo").arg("--version"))
            .alias("rs")
            .program("cargo")
            .dependency_schema(json!({"oneOf": [
                {
                    "type": "string", "minLength": 1, "maxLength": 256,
                    "description": "`name`, `name@version` or `name@version[feature,...]`, as `cargo add` takes it"
                },
                {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "version": {"type": "string", "description": "A version requirement; any when absent."},
                        "features": {"type": "array", "items": {"type": "string"}}
                    },
                    "required": ["name"],
                    "additionalProperties": false
                }
            ]}))
    }

    fn plan(snippet: Snippet) -> berth_sdk::Result<RunPlan> {
        check_dependency_count(&snippet.dependencies)?;
        let mut crates = snippet
            .dependencies
            .iter()
            .map(|d| dependency(d))
            .collect::<berth_sdk::Result<Vec<_>>>()?;
        crates.sort();
        crates.dedup();
        let key = crates
            .iter()
            .map(|c| format!("{}@{}[{}]", c.name, c.version, c.features.join(",")))
            .collect::<Vec<_>>()
            .join("\n");
        let package = format!("snippet_{:016x}", fnv1a(&[&key, &snippet.code]));
        let cargo = |args: &[&str], dir: &str| {
            Command::new("cargo")
                .args(args.iter().copied())
                .cwd(dir)
                .env("CARGO_TARGET_DIR", "{env}/target")
                .env("CARGO_HOME", "{cache}/cargo")
                .env("CARGO_TERM_COLOR", "never")
        };
        let key = if key.is_empty() {
            "(no crates)".into()
        } else {
            key
        };
        Ok(
            RunPlan::new(
                Command::new(format!("{{env}}/target/debug/{package}")).args(snippet.args),
            )
            .file(File::new("Cargo.toml", manifest(&package, &crates)))
            .file(File::new("src/main.rs", snippet.code))
            // A package with the same dependencies and an empty main:
            // building it compiles the dependencies into the shared
            // target dir without depending on the snippet compiling.
            .file(File::new(
                "deps/Cargo.toml",
                manifest("berth_deps", &crates),
            ))
            .file(File::new("deps/src/main.rs", "fn main() {}\n"))
            .environment(key, vec![cargo(&["build", "--quiet"], "deps")])
            .build_step(cargo(&["build", "--quiet", "--offline"], ".")),
        )
    }
}

berth_sdk::export_runner!(Rust);

#[cfg(test)]
mod tests {
    use super::*;

    fn snippet(dependencies: &[&str]) -> Snippet {
        Snippet {
            code: "fn main() {}".into(),
            dependencies: dependencies.iter().map(|d| d.to_string()).collect(),
            args: Vec::new(),
            available_programs: Vec::new(),
        }
    }

    #[test]
    fn a_spec_and_its_object_form_are_the_same_crate() {
        let spec = dependency("tokio@1[macros,full]").unwrap();
        let object =
            dependency(r#"{"name": "tokio", "version": "1", "features": ["full", "macros"]}"#)
                .unwrap();
        assert_eq!(spec, object);
        assert_eq!(dependency("serde").unwrap().version, "*");
    }

    #[test]
    fn bad_objects_and_specs_are_refused_by_name() {
        let err = dependency(r#"{"name": "tokio", "git": "https://x"}"#).unwrap_err();
        assert!(err.message().contains("git"), "{}", err.message());
        let err = dependency(r#"{"name": "to kio"}"#).unwrap_err();
        assert!(err.message().contains("to kio"), "{}", err.message());
        let err = dependency("serde@1[derive").unwrap_err();
        assert!(
            err.message().contains("serde@1[derive"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn dependencies_are_compiled_once_per_set_in_a_shared_target_dir() {
        let plan = Rust::plan(snippet(&["serde_json@1", "anyhow"])).unwrap();
        let environment = plan.environment.unwrap();
        assert_eq!(environment.key, "anyhow@*[]\nserde_json@1[]");
        let build_deps = &environment.setup[0];
        assert_eq!(build_deps.cwd.as_deref(), Some("deps"));
        assert!(
            build_deps
                .env
                .contains(&("CARGO_TARGET_DIR".into(), "{env}/target".into()))
        );
        assert!(plan.build[0].args.iter().any(|a| a == "--offline"));
        let manifest = &plan.files[0];
        let text = String::from_utf8(manifest.contents.clone()).unwrap();
        assert!(
            text.contains(r#""serde_json" = { version = "1", features = [] }"#),
            "{text}"
        );
        assert!(text.ends_with("[workspace]\n"));
    }

    #[test]
    fn the_declared_schema_accepts_both_forms() {
        let info = Rust::info();
        let schema: serde_json::Value =
            serde_json::from_str(info.dependency_schema.as_deref().unwrap()).unwrap();
        assert_eq!(schema["oneOf"][0]["type"], "string");
        assert_eq!(schema["oneOf"][1]["required"], json!(["name"]));
    }
}
