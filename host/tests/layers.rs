//! The host's layers depend one way only: each module of `host/src` may use
//! modules of its own layer or of the layers below it, never above. The
//! order is the one in `lib.rs` and `DESIGN.md`; a `crate::` path that
//! points up fails this test, naming the file, the line and both layers.

use std::path::{Path, PathBuf};

/// The layers, lowest first. A module not listed here fails the test, so a
/// new top-level module must be placed in the order on purpose.
const LAYERS: &[&str] = &[
    "contract",
    "sys",
    "state",
    "capabilities",
    "runtime",
    "runs",
    "host_tools",
    "gateway",
    "app",
    "server",
    "cli",
];

/// One `crate::` path that points to a higher layer.
#[derive(Debug, PartialEq)]
struct Upward {
    line: usize,
    from: String,
    to: String,
}

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

/// The top-level module of every `crate::` path in `source`, with its line.
/// Grouped imports (`use crate::{a::x, b}`) count once per member.
fn crate_paths(source: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (index, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = &rest[..at];
            rest = &rest[at + "crate::".len()..];
            // `$crate::` and `berth_crate::` are other paths.
            if before.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for member in inner.split(',') {
                    let name: String = member
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        found.push((index + 1, name));
                    }
                }
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((index + 1, name));
            }
        }
    }
    found
}

/// The upward paths in `source`, a file of layer `from`.
fn upward(from: &str, source: &str) -> Result<Vec<Upward>, String> {
    let own = rank(from).ok_or_else(|| format!("module `{from}` is in no layer"))?;
    let mut bad = Vec::new();
    for (line, to) in crate_paths(source) {
        let theirs = rank(&to).ok_or_else(|| format!("`crate::{to}` is in no layer"))?;
        if theirs > own {
            bad.push(Upward {
                line,
                from: from.to_string(),
                to,
            });
        }
    }
    Ok(bad)
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading host/src") {
        let path = entry.expect("reading host/src").path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

#[test]
fn no_module_of_the_host_uses_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative.components().next().unwrap().as_os_str();
        let top = top.to_str().unwrap().trim_end_matches(".rs");
        if top == "lib" || top == "main" {
            continue;
        }
        let source = std::fs::read_to_string(&file).unwrap();
        match upward(top, &source) {
            Ok(bad) => problems.extend(bad.into_iter().map(|u| {
                format!(
                    "{}:{}: `{}` uses `crate::{}`, a higher layer",
                    relative.display(),
                    u.line,
                    u.from,
                    u.to
                )
            })),
            Err(err) => problems.push(format!("{}: {err}", relative.display())),
        }
    }
    assert!(
        problems.is_empty(),
        "layers are, lowest first: {}\n{}",
        LAYERS.join(" < "),
        problems.join("\n")
    );
}

#[test]
fn a_planted_upward_import_is_caught() {
    let source = "use crate::contract::error::CallError;\nuse crate::app::host::PluginHost;\n";
    assert_eq!(
        upward("runtime", source).unwrap(),
        vec![Upward {
            line: 2,
            from: "runtime".into(),
            to: "app".into()
        }]
    );
}

#[test]
fn grouped_and_inline_paths_are_checked_too() {
    let source = "use crate::{sys::process, server::transport};\nfn f() { crate::cli::run(); }\n";
    let bad = upward("state", source).unwrap();
    let targets: Vec<&str> = bad.iter().map(|u| u.to.as_str()).collect();
    assert_eq!(targets, ["server", "cli"]);
}

#[test]
fn paths_in_comments_and_macros_are_not_edges() {
    let source = "// see crate::cli for flags\nmacro_rules! m { () => { $crate::x } }\n";
    assert_eq!(upward("contract", source).unwrap(), vec![]);
}

#[test]
fn a_module_outside_every_layer_is_refused() {
    let err = upward("misc", "").unwrap_err();
    assert!(err.contains("misc"), "{err}");
}
