//! `berth plugin new KIND NAME`: a plugin crate that builds and loads as is.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::runtime::manifest::Manifest;
use crate::runtime::world::{API_VERSION, World};

const TOOLS_LIB: &str = r#"//! A berth tools plugin.

use berth_sdk::{Plugin, ToolOutput, ToolSpec, Toolbox};

/// Arguments of `{tool}`.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct GreetArgs {
    /// Who to greet.
    name: String,
}

struct {ty};

impl Plugin for {ty} {
    fn description() -> String {
        "{name}: a berth tools plugin".into()
    }

    fn toolbox() -> Toolbox {
        Toolbox::new().tool(ToolSpec::new("{tool}", "Greet someone by name").read_only(), |args: GreetArgs| {
            Ok(ToolOutput::text(format!("Hello, {}!", args.name)))
        })
    }
}

berth_sdk::export_tools!({ty});
"#;

const RUNNER_LIB: &str = r#"//! A berth language runner: berth generates `run_{lang}` from it.

use berth_sdk::{Command, Error, File, Plugin, RunPlan, Runner, RunnerInfo, Snippet};

struct {ty};

impl Plugin for {ty} {
    fn description() -> String {
        "{name}: runs POSIX shell snippets".into()
    }
}

impl Runner for {ty} {
    fn info() -> RunnerInfo {
        RunnerInfo::new("{lang}", Command::new("sh").args(["-c", "echo posix-sh"]))
            .program("sh")
    }

    fn plan(snippet: Snippet) -> berth_sdk::Result<RunPlan> {
        if !snippet.dependencies.is_empty() {
            return Err(Error::invalid_input("this runner takes no dependencies"));
        }
        Ok(RunPlan::new(Command::new("sh").arg("main.sh").args(snippet.args))
            .file(File::new("main.sh", snippet.code)))
    }
}

berth_sdk::export_runner!({ty});
"#;

const BACKEND_LIB: &str = r#"//! A berth sandbox backend. Every operation defaults to "unavailable";
//! implement the ones your platform supports.

use berth_sdk::{Backend, Plugin};

struct {ty};

impl Plugin for {ty} {
    fn description() -> String {
        "{name}: a berth backend".into()
    }
}

impl Backend for {ty} {}

berth_sdk::export_backend!({ty});
"#;

const TEMPLATE_LIB: &str = r##"//! A berth template plugin.

use berth_sdk::{Error, Plugin, Resources, Template, TemplateInfo, Workload};

struct {ty};

impl Plugin for {ty} {
    fn description() -> String {
        "{name}: berth templates".into()
    }
}

impl Template for {ty} {
    fn templates() -> Vec<TemplateInfo> {
        vec![TemplateInfo {
            name: "hello".into(),
            description: "Prints a greeting and exits".into(),
            params_schema: r#"{"type":"object","properties":{"greeting":{"type":"string"}}}"#.into(),
            is_mcp_server: false,
        }]
    }

    fn render(name: String, params: serde_json::Value) -> berth_sdk::Result<Workload> {
        if name != "hello" {
            return Err(Error::not_found(format!("template `{name}`")));
        }
        let greeting = params.get("greeting").and_then(|g| g.as_str()).unwrap_or("hello");
        Ok(Workload {
            name: "hello".into(),
            image: "busybox:latest".into(),
            command: vec!["echo".into()],
            args: vec![greeting.into()],
            env: vec![],
            ports: vec![],
            resources: Resources { memory_mb: Some(32), cpu_millis: Some(100), pids: Some(16) },
            health: None,
            mcp: None,
            network: false,
            writable_root: false,
            mounts: vec![],
            ttl_seconds: Some(3600),
            labels: vec![],
        })
    }
}

berth_sdk::export_template!({ty});
"##;

fn camel(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect::<String>()
}

fn default_sdk() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    path.join("Cargo.toml")
        .is_file()
        .then(|| path.canonicalize().unwrap_or(path))
}

/// Write the crate `dir/name`.
pub fn create(kind: &str, name: &str, dir: &Path, sdk: Option<&Path>) -> anyhow::Result<()> {
    let world: World = serde_json::from_value(serde_json::Value::String(kind.to_string()))
        .map_err(|_| {
            anyhow::anyhow!(
                "unknown plugin kind `{kind}`: expected tools, runner, backend or template"
            )
        })?;
    let manifest = format!(
        "name = \"{name}\"\nversion = \"0.1.0\"\nkind = \"{kind}\"\napi = \"^{}.{}\"\ndescription = \"{name}\"\n{}",
        API_VERSION.major,
        API_VERSION.minor,
        if world == World::Runner {
            "\n[capabilities]\nprocess = [\"sh\"]\n"
        } else {
            ""
        }
    );
    Manifest::parse(&manifest).map_err(|e| anyhow::anyhow!("{e}"))?;
    let root = dir.join(name);
    if root.exists() {
        anyhow::bail!(
            "{} already exists; choose another name or directory",
            root.display()
        );
    }
    let sdk_dep = match sdk.map(Path::to_path_buf).or_else(default_sdk) {
        Some(path) => format!("berth-sdk = {{ path = {:?} }}", path.display().to_string()),
        None => format!("berth-sdk = \"{}\"", env!("CARGO_PKG_VERSION")),
    };
    let ty = camel(name);
    let template = match world {
        World::Tools => TOOLS_LIB,
        World::Runner => RUNNER_LIB,
        World::Backend => BACKEND_LIB,
        World::Template => TEMPLATE_LIB,
    };
    let lib = template
        .replace("{ty}", &ty)
        .replace("{name}", name)
        .replace("{tool}", &name.replace('-', "_"))
        .replace("{lang}", &name.replace('-', "_"));
    let cargo = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\n{sdk_dep}\nserde = {{ version = \"1\", features = [\"derive\"] }}\nserde_json = \"1\"\nschemars = \"1\"\n\n# A standalone crate, not part of any enclosing workspace.\n[workspace]\n\n[profile.release]\nopt-level = \"s\"\nlto = true\nstrip = true\n"
    );
    let readme = format!(
        "# {name}\n\nA berth {kind} plugin.\n\n```sh\ncargo build --release --target wasm32-wasip2\nmkdir -p ~/.berth/plugins/{name}\ncp target/wasm32-wasip2/release/{}.wasm ~/.berth/plugins/{name}/plugin.wasm\ncp plugin.toml ~/.berth/plugins/{name}/\nberth --plugin-dir ~/.berth/plugins plugins list\n```\n",
        name.replace('-', "_")
    );
    std::fs::create_dir_all(root.join("src"))
        .with_context(|| format!("creating {}", root.display()))?;
    for (file, contents) in [
        ("Cargo.toml", cargo),
        ("plugin.toml", manifest),
        ("src/lib.rs", lib),
        ("README.md", readme),
    ] {
        std::fs::write(root.join(file), contents).with_context(|| format!("writing {file}"))?;
    }
    eprintln!(
        "created {} ({kind} plugin); build it with: cd {} && cargo build --release --target wasm32-wasip2",
        root.display(),
        root.display()
    );
    Ok(())
}
