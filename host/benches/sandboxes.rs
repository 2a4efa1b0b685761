//! Load driver for sandboxed `run_python` on podman, all in one run: bare
//! `podman run --rm` of the same image and snippet (the baseline), a bare
//! `podman exec` into a running container (what a run that execs into a
//! pooled sandbox could not beat), then berth with a sandbox created per
//! run (cold) and taken from the warm pool (warm). Reported as medians and
//! ratios to the baseline.
//!
//! Needs root podman with `localhost/host-runtime` (see
//! `../shared/testenv/podman/setup`); says so and exits when it is absent.
//!
//! `cargo bench -p berth --bench sandboxes`

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::app::config::Config;
use berth::app::host::PluginHost;
use berth::contract::sink::{CallSink, Unattended};
use serde_json::{Value, json};

/// Timed runs per case.
const RUNS: usize = 15;
const IMAGE: &str = "localhost/host-runtime:latest";
const SNIPPET: &str = "print(6 * 7)";

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn podman(args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = Command::new("podman")
        .args(args)
        .output()
        .expect("running podman");
    assert!(
        out.status.success(),
        "podman {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

/// Median wall time of `podman run --rm` running the snippet.
fn bare_run() -> Duration {
    let args = [
        "run",
        "--rm",
        "--pull=never",
        "--network=none",
        "-v",
        "/usr:/usr:ro",
        IMAGE,
        "python3",
        "-c",
        SNIPPET,
    ];
    podman(&args);
    median((0..RUNS).map(|_| podman(&args)).collect())
}

/// Median wall time of `podman exec` running the snippet in a container
/// that is already up.
fn bare_exec() -> Duration {
    let name = format!("berth-bench-exec-{}", std::process::id());
    podman(&[
        "run",
        "-d",
        "--rm",
        "--pull=never",
        "--network=none",
        "-v",
        "/usr:/usr:ro",
        "--name",
        &name,
        IMAGE,
        "sleep",
        "600",
    ]);
    let args = ["exec", &name, "python3", "-c", SNIPPET];
    let samples = (0..RUNS).map(|_| podman(&args)).collect();
    podman(&["rm", "-f", "-t", "0", &name]);
    median(samples)
}

fn config(dir: &std::path::Path, pool: usize) -> Config {
    let path = dir.join("berth.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = \"data\"\n[runs.sandbox_images.python]\nimage = \"{IMAGE}\"\nmounts = [\"/usr:/usr:ro\"]\npool = {{ podman = {pool} }}\n\n[plugin_config.podman]\nallowed_volume_roots = [\"/usr\"]\n"
        ),
    )
    .unwrap();
    Config::from_file(&path).unwrap()
}

async fn run(host: &PluginHost) -> (Duration, Value) {
    let sink: Arc<dyn CallSink> = Arc::new(Unattended);
    let started = Instant::now();
    let out = host
        .call_tool(
            "run_python",
            json!({"code": SNIPPET, "sandbox": "podman"}),
            sink,
        )
        .await
        .unwrap_or_else(|e| panic!("run_python failed: {e}"));
    let elapsed = started.elapsed();
    assert!(
        !out.is_error,
        "run_python reported an error: {:?}",
        out.content
    );
    let structured: Value = serde_json::from_str(out.structured.as_deref().unwrap()).unwrap();
    assert_eq!(structured["stdout"], "42\n", "{structured}");
    (elapsed, structured)
}

/// Median of sandboxed runs; with a pool, each run starts once the pool
/// holds a ready sandbox, and must be served from it.
async fn berth_runs(pool: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let host = PluginHost::start(config(dir.path(), pool)).await.unwrap();
    host.keep_warm().unwrap();
    let pools = host.runs().sandbox_pools.clone();
    let mut samples = Vec::new();
    for _ in 0..=RUNS {
        while pool > 0 && pools.ready_count() < pool {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (elapsed, out) = run(&host).await;
        assert_eq!(out["sandbox"]["pooled"], pool > 0, "{out}");
        samples.push(elapsed);
    }
    host.shutdown().await;
    // The first run also paid for compiling and loading the plugins.
    median(samples.split_off(1))
}

fn main() {
    let ready = Command::new("podman")
        .args(["image", "exists", IMAGE])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        println!(
            "SKIPPED: podman with {IMAGE} is not available (run ../shared/testenv/podman/setup)"
        );
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let baseline = bare_run();
    let exec = bare_exec();
    let cold = runtime.block_on(berth_runs(0));
    let warm = runtime.block_on(berth_runs(2));
    println!("{:<40} {:>10} {:>14}", "case", "p50 ms", "vs podman run");
    for (case, d) in [
        ("bare podman run --rm (baseline)", baseline),
        ("bare podman exec, running container", exec),
        ("berth run_python sandbox, cold", cold),
        ("berth run_python sandbox, warm pool", warm),
    ] {
        println!("{case:<40} {:>10.1} {:>13.2}x", ms(d), ms(d) / ms(baseline));
    }
}
