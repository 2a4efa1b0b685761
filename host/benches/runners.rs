//! Load driver for `run_<language>`: per language, a cold run (new data
//! dir: environment built), warm runs (environment reused, through the
//! runner's fork server when it offers one), warm runs with fork servers
//! turned off, both again with isolation turned off (`[runs] isolate`),
//! and the baseline of building a fresh environment for every call, as the
//! original mirrord MCP server did. All in one run, reported as ratios.
//!
//! `cargo bench -p berth --bench runners [-- python|node|rust]`

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::app::config::Config;
use berth::app::host::PluginHost;
use berth::contract::sink::{CallSink, Unattended};
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
    /// Whether its runner offers a fork server.
    forks: bool,
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
            forks: true,
        },
        Language {
            name: "node",
            tool: "run_node",
            args: json!({"code": "console.log(require('lodash').VERSION)", "dependencies": ["lodash@4"]}),
            fresh: fresh_node,
            forks: false,
        },
        Language {
            name: "rust",
            tool: "run_rust",
            args: json!({"code": "fn main() { println!(\"{}\", serde_json::json!([1])); }", "dependencies": ["serde_json@1"]}),
            fresh: fresh_rust,
            forks: false,
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

/// Median of warm calls on `host`, after waiting (when the runner
/// `forks`) until its fork server serves them; every timed call must be
/// served the way `forked` says.
fn warm_runs(
    runtime: &tokio::runtime::Runtime,
    host: &PluginHost,
    language: &Language,
    forked: bool,
) -> Duration {
    if forked {
        let served = (0..100).any(|_| {
            let (_, out) = runtime.block_on(call(host, language.tool, &language.args));
            std::thread::sleep(Duration::from_millis(50));
            out["forked"] == true
        });
        assert!(served, "the fork server never served a run");
    }
    let samples = (0..WARM_RUNS)
        .map(|_| {
            let (elapsed, out) = runtime.block_on(call(host, language.tool, &language.args));
            assert_eq!(
                out["cached_env"], true,
                "a warm run rebuilt its environment"
            );
            assert_eq!(out["forked"], forked, "{out}");
            elapsed
        })
        .collect();
    median(samples)
}

fn start(
    runtime: &tokio::runtime::Runtime,
    data: &Path,
    fork_servers: usize,
    isolate: bool,
) -> Arc<PluginHost> {
    let mut config = Config {
        data_dir: data.to_path_buf(),
        ..Config::default()
    };
    config.runs.fork_servers = fork_servers;
    config.runs.isolate = isolate;
    let host = runtime.block_on(PluginHost::start(config)).unwrap();
    host.keep_warm().unwrap();
    host
}

fn main() {
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!(
        "{:<8} {:>9} {:>9} {:>14} {:>10} {:>10} {:>11} {:>13} {:>9} {:>9} {:>13} {:>16}",
        "language",
        "cold ms",
        "warm p50",
        "no-fork p50",
        "fresh p50",
        "cold/warm",
        "fresh/warm",
        "no-fork/warm",
        "bare p50",
        "iso/bare",
        "no-fork bare",
        "no-fork iso/bare"
    );
    for language in languages() {
        if !only.is_empty() && !only.iter().any(|o| o == language.name) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let host = start(&runtime, &data, 8, true);
        let (cold, first) = runtime.block_on(call(&host, language.tool, &language.args));
        assert_eq!(
            first["cached_env"], false,
            "the cold run found an environment"
        );
        let warm = warm_runs(&runtime, &host, &language, language.forks);
        drop(host);
        // The same data dir: the environment is cached, only fork servers are off.
        let no_fork = warm_runs(&runtime, &start(&runtime, &data, 0, true), &language, false);
        let host = start(&runtime, &data, 8, false);
        let bare = warm_runs(&runtime, &host, &language, language.forks);
        drop(host);
        let no_fork_bare = warm_runs(
            &runtime,
            &start(&runtime, &data, 0, false),
            &language,
            false,
        );
        let baseline_cache = dir.path().join("baseline-cache");
        // One untimed run fills the baseline's download cache, so it is
        // measured at its best: only the fresh environment is rebuilt.
        (language.fresh)(&baseline_cache);
        let fresh = median(
            (0..FRESH_RUNS)
                .map(|_| (language.fresh)(&baseline_cache))
                .collect(),
        );
        println!(
            "{:<8} {:>9.0} {:>9.1} {:>14.1} {:>10.0} {:>9.1}x {:>10.1}x {:>12.1}x {:>9.1} {:>8.2}x {:>13.1} {:>15.2}x",
            language.name,
            ms(cold),
            ms(warm),
            ms(no_fork),
            ms(fresh),
            ms(cold) / ms(warm),
            ms(fresh) / ms(warm),
            ms(no_fork) / ms(warm),
            ms(bare),
            ms(warm) / ms(bare),
            ms(no_fork_bare),
            ms(no_fork) / ms(no_fork_bare)
        );
    }
}
