//! Builds the plugins workspace (`../plugins`) for wasm32-wasip2 into its own
//! target dir and embeds the bundled ones (everything outside `fixtures/`).
//! Test fixtures are left on disk; their location is exported to the
//! crate's tests as `BERTH_PLUGIN_ARTIFACTS`.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "plugin";

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("host/ has a parent")
        .to_path_buf();
    let plugins = root.join("plugins");
    for watched in ["plugins", "sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let target_dir = plugin_target_dir();
    let artifacts = target_dir.join(TARGET).join(PROFILE);
    check_wasm_target();
    build_plugins(&plugins, &target_dir);
    println!(
        "cargo:rustc-env=BERTH_PLUGIN_ARTIFACTS={}",
        artifacts.display()
    );
    println!("cargo:rustc-env=BERTH_PLUGIN_SOURCES={}", plugins.display());
    write_bundled(&plugins, &artifacts);
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo did not set {name}"))
}

/// `<outer target>/wasm-plugins`: fixed, outside OUT_DIR (which differs per
/// profile and for clippy) and never the outer target dir itself, whose lock
/// the outer cargo holds.
fn plugin_target_dir() -> PathBuf {
    let out_dir = PathBuf::from(env("OUT_DIR"));
    // OUT_DIR = <target>/<profile>/build/<pkg>-<hash>/out
    let target = out_dir
        .ancestors()
        .nth(4)
        .expect("OUT_DIR is inside the target dir");
    target.join("wasm-plugins")
}

fn check_wasm_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .expect("running rustc --print sysroot");
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if !Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .is_dir()
    {
        panic!(
            "\n\nberth's plugins need the {TARGET} target, which is not installed.\nFix: rustup target add {TARGET}   (offline: ../shared/toolchain/install)\n\n"
        );
    }
}

fn build_plugins(plugins: &Path, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--workspace",
            "--locked",
            "--target",
            TARGET,
            "--profile",
            PROFILE,
        ])
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    // The outer build's settings must not leak into the guest build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MANIFEST_PATH",
    ] {
        command.env_remove(var);
    }
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_PROFILE_")
        {
            command.env_remove(key);
        }
    }
    let output = command
        .output()
        .expect("running cargo for the plugins workspace");
    if !output.status.success() {
        panic!(
            "building the plugins workspace failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Plugin crates to embed: `plugins/{runners,backends,templates}/*`.
fn bundled_crates(plugins: &Path) -> Vec<(String, PathBuf)> {
    let mut crates = Vec::new();
    for group in ["runners", "backends", "templates"] {
        let Ok(entries) = std::fs::read_dir(plugins.join(group)) else {
            continue;
        };
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("Cargo.toml").is_file())
            .collect();
        dirs.sort();
        for dir in dirs {
            let cargo_toml =
                std::fs::read_to_string(dir.join("Cargo.toml")).expect("reading plugin Cargo.toml");
            let name = cargo_toml
                .lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix("name = ")
                        .map(|v| v.trim_matches('"').to_string())
                })
                .expect("plugin Cargo.toml has a name");
            crates.push((name, dir));
        }
    }
    crates
}

fn write_bundled(plugins: &Path, artifacts: &Path) {
    let mut code = String::from(
        "/// Plugins compiled into this binary.\npub static BUNDLED: &[Bundled] = &[\n",
    );
    for (name, dir) in bundled_crates(plugins) {
        let wasm = artifacts.join(format!("{}.wasm", name.replace('-', "_")));
        let manifest = dir.join("plugin.toml");
        code.push_str(&format!(
            "    Bundled {{ manifest: include_str!({:?}), wasm: include_bytes!({:?}) }},\n",
            manifest.display().to_string(),
            wasm.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(env("OUT_DIR")).join("bundled.rs");
    std::fs::write(out, code).expect("writing bundled.rs");
}
