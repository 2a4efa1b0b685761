//! Load driver for `run_<language>`: per language, a cold run (new data
//! dir: environment built), warm runs (environment reused), and the
//! baseline of building a fresh environment for every call, as the
//! original mirrord MCP server did. All in one run, reported as ratios.
//!
//! `cargo bench -p berth --bench runners [-- python|node|rust]`

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::capabilities::context::{CallSink, Unattended};
use berth::config::Config;
use berth::runtime::plugin_host::PluginHost;
use serde_json::{Value, json};

/// Warm calls per language.
const WARM_RUNS: usize = 15;
/// Fresh-environment baseline runs per language.
const FRESH_RUNS: usize = 3;

struct Language {
    name: &'static str,
    tool: &'static str,
    args: Value,
    fresh: fn(&Path) -> Duration,
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn sh(dir: &Path, script: &str) -> Duration {
    let started = Instant::now();
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .expect("running the baseline");
    assert!(
        out.status.success(),
        "baseline failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

fn fresh_python(cache: &Path) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.py"),
        "import requests; print(requests.__version__)",
    )
    .unwrap();
    sh(
        dir.path(),
        &format!(
            "python3 -m venv venv && PIP_CACHE_DIR={} venv/bin/pip install -q --disable-pip-version-check 'requests>=2' && venv/bin/python main.py",
            cache.join("pip").display()
        ),
    )
}

fn fresh_node(cache: &Path) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.js"),
        "console.log(require('lodash').VERSION)",
    )
    .unwrap();
    sh(
        dir.path(),
        &format!(
            "npm_config_cache={} npm install -s --no-audit --no-fund lodash@4 && node main.js",
            cache.join("npm").display()
        ),
    )
}

fn fresh_rust(cache: &Path) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"fresh\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[dependencies]\nserde_json = \"1\"\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("src/main.rs"),
        "fn main() { println!(\"{}\", serde_json::json!([1])); }",
    )
    .unwrap();
    sh(
        dir.path(),
        &format!("CARGO_HOME={} cargo run -q", cache.join("cargo").display()),
    )
}

fn languages() -> Vec<Language> {
    vec![
        Language {
            name: "python",
            tool: "run_python",
            args: json!({"code": "import requests; print(requests.__version__)", "dependencies": ["requests>=2"]}),
            fresh: fresh_python,
        },
        Language {
            name: "node",
            tool: "run_node",
            args: json!({"code": "console.log(require('lodash').VERSION)", "dependencies": ["lodash@4"]}),
            fresh: fresh_node,
        },
        Language {
            name: "rust",
            tool: "run_rust",
            args: json!({"code": "fn main() { println!(\"{}\", serde_json::json!([1])); }", "dependencies": ["serde_json@1"]}),
            fresh: fresh_rust,
        },
    ]
}

async fn call(host: &PluginHost, tool: &str, args: &Value) -> (Duration, Value) {
    let sink: Arc<dyn CallSink> = Arc::new(Unattended);
    let started = Instant::now();
    let out = host
        .call_tool(tool, args.clone(), sink)
        .await
        .unwrap_or_else(|e| panic!("{tool} failed: {e}"));
    let elapsed = started.elapsed();
    assert!(!out.is_error, "{tool} reported an error: {:?}", out.content);
    let structured: Value = serde_json::from_str(out.structured.as_deref().unwrap()).unwrap();
    (elapsed, structured)
}

fn main() {
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!(
        "{:<8} {:>10} {:>10} {:>12} {:>12} {:>14}",
        "language", "cold ms", "warm p50", "fresh p50", "cold/warm", "fresh/warm"
    );
    for language in languages() {
        if !only.is_empty() && !only.iter().any(|o| o == language.name) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        let host = runtime.block_on(PluginHost::start(config)).unwrap();
        let (cold, first) = runtime.block_on(call(&host, language.tool, &language.args));
        assert_eq!(
            first["cached_env"], false,
            "the cold run found an environment"
        );
        let warm: Vec<Duration> = (0..WARM_RUNS)
            .map(|_| {
                let (elapsed, out) = runtime.block_on(call(&host, language.tool, &language.args));
                assert_eq!(
                    out["cached_env"], true,
                    "a warm run rebuilt its environment"
                );
                elapsed
            })
            .collect();
        let baseline_cache = dir.path().join("baseline-cache");
        // One untimed run fills the baseline's download cache, so it is
        // measured at its best: only the fresh environment is rebuilt.
        (language.fresh)(&baseline_cache);
        let fresh: Vec<Duration> = (0..FRESH_RUNS)
            .map(|_| (language.fresh)(&baseline_cache))
            .collect();
        let (warm, fresh) = (median(warm), median(fresh));
        println!(
            "{:<8} {:>10.0} {:>10.1} {:>12.0} {:>11.1}x {:>13.1}x",
            language.name,
            ms(cold),
            ms(warm),
            ms(fresh),
            ms(cold) / ms(warm),
            ms(fresh) / ms(warm)
        );
    }
}
