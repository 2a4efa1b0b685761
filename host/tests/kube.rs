//! The kube capability and the bundled k8s backend and templates against a
//! real Kubernetes API server (`../shared/testenv/k8s/up`), through the
//! Python MCP client: kubectl-style round trips, logs and exec, snippets in
//! pods, a service template reached through a port-forward, the TTL reaper,
//! refused grants and bad input that leave nothing behind.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Sandbox, call, drive, first_text, host_env_job, python};
use serde_json::{Value, json};

/// Whether the test cluster is up; prints why not. Gated on
/// `BERTH_K8S_STATE` so that no other cluster is touched by accident.
fn cluster_ready() -> bool {
    let ok = std::env::var_os("BERTH_K8S_STATE").is_some()
        && std::env::var_os("KUBECONFIG").is_some()
        && kubectl(&["get", "--raw", "/readyz"]).is_some();
    if !ok {
        let reason =
            "SKIPPED: no test cluster (run ../shared/testenv/k8s/up and export what it prints)";
        if std::env::var_os("CI").is_some() {
            panic!("{reason}; CI must provide it");
        }
        eprintln!("{reason}");
    }
    ok
}

/// kubectl's stdout when it succeeds.
fn kubectl(args: &[&str]) -> Option<String> {
    let out = Command::new("kubectl").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn exists(kind: &str, name: &str) -> bool {
    kubectl(&["get", kind, name, "--ignore-not-found", "-o", "name"])
        .is_some_and(|o| !o.trim().is_empty())
}

const BASE_CONFIG: &str = "[plugin_config.k8s]\nnamespace = \"default\"\nimage_pull_policy = \"Never\"\nallowed_volume_roots = [\"/usr\"]\n\n[runs.sandbox_images.python]\nimage = \"localhost/host-runtime:latest\"\nmounts = [\"/usr:/usr:ro\"]\n";

/// The bundled k8s backend's own grant plus `hostPath`, which only the
/// operator can give: sandboxes here mount the host's `/usr`.
const HOST_PATH_POLICY: &str = "[policy.k8s]\nstate = true\n[policy.k8s.kube]\nnamespaces = [\"*\"]\nverbs = [\"*\"]\nkinds = [\"*\"]\npod_privileges = [\"hostPath\"]\n";

/// A sandbox with the bundled plugins and `extra` config; without a
/// `[policy.k8s]` of its own it gets [`HOST_PATH_POLICY`].
fn k8s_sandbox(extra: &str) -> Sandbox {
    let sandbox = Sandbox::with_bundled();
    let policy = if extra.contains("[policy.k8s]") {
        ""
    } else {
        HOST_PATH_POLICY
    };
    sandbox.write_config(&format!("{BASE_CONFIG}{policy}{extra}"));
    sandbox
}

fn structured(outcome: &Value) -> &Value {
    &outcome["result"]["structuredContent"]
}

/// A name unique to this test run.
fn unique(base: &str) -> String {
    format!("{base}-{}", std::process::id())
}

#[test]
fn kubectl_actions_round_trip_against_the_api_server() {
    let Some(py) = python() else { return };
    if !cluster_ready() {
        return;
    }
    let sandbox = k8s_sandbox("");
    let pod = unique("talker");
    let config = unique("settings");
    let manifests = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {config}, labels: {{suite: kube-{pid}}}}}\ndata: {{mode: fast}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, labels: {{suite: kube-{pid}}}}}\nspec:\n  containers:\n  - name: c\n    image: localhost/busybox:latest\n    imagePullPolicy: Never\n    command: [sh, -c, 'echo started; sleep 3600']\n",
        pid = std::process::id()
    );
    let results = drive(
        &py,
        host_env_job(
            &sandbox,
            None,
            &[],
            json!([
                call("k8s_apply", json!({"manifests": manifests})),
                call(
                    "k8s_get",
                    json!({"api_version": "v1", "kind": "ConfigMap", "name": config})
                ),
                call(
                    "k8s_objects",
                    json!({"api_version": "v1", "kind": "ConfigMap", "label_selector": format!("suite=kube-{}", std::process::id())})
                ),
            ]),
        ),
    );
    assert_eq!(results[0]["result"]["isError"], false, "{}", results[0]);
    assert_eq!(
        structured(&results[0])["items"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        structured(&results[1])["data"]["mode"],
        "fast",
        "{}",
        results[1]
    );
    let listed = &structured(&results[2])["items"];
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["metadata"]["name"], config.as_str());

    assert!(
        kubectl(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "--timeout=90s"
        ])
        .is_some(),
        "the pod did not start"
    );
    let results = drive(
        &py,
        host_env_job(
            &sandbox,
            None,
            &[],
            json!([
                call("k8s_pod_logs", json!({"pod": pod, "tail": 5})),
                call(
                    "k8s_exec",
                    json!({"pod": pod, "command": ["sh", "-c", "echo out; echo err >&2; exit 7"]})
                ),
                call(
                    "k8s_exec",
                    json!({"pod": pod, "command": ["head", "-c", "5"], "stdin": "hello"})
                ),
                call(
                    "k8s_delete_object",
                    json!({"api_version": "v1", "kind": "Pod", "name": pod})
                ),
                call(
                    "k8s_delete_object",
                    json!({"api_version": "v1", "kind": "ConfigMap", "name": config})
                ),
                call(
                    "k8s_get",
                    json!({"api_version": "v1", "kind": "ConfigMap", "name": config})
                ),
            ]),
        ),
    );
    assert!(
        first_text(&results[0]).contains("started"),
        "{}",
        results[0]
    );
    let exec = structured(&results[1]);
    assert_eq!(exec["exit_code"], 7, "{exec}");
    assert_eq!(exec["stdout"], "out\n");
    assert_eq!(exec["stderr"], "err\n");
    assert_eq!(structured(&results[2])["stdout"], "hello", "{}", results[2]);
    assert!(
        first_text(&results[3]).contains("deleted"),
        "{}",
        results[3]
    );
    let gone = first_text(&results[5]);
    assert!(
        gone.starts_with("not-found:") && gone.contains("NotFound"),
        "{gone}"
    );
}

#[test]
fn a_workload_deploys_scales_logs_and_is_deleted() {
    let Some(py) = python() else { return };
    if !cluster_ready() {
        return;
    }
    let sandbox = k8s_sandbox("");
    let name = unique("worker");
    let results = drive(
        &py,
        host_env_job(
            &sandbox,
            None,
            &[],
            json!([
                call(
                    "k8s_deploy",
                    json!({"name": name, "image": "localhost/busybox:latest",
                    "command": ["sh", "-c", "echo working; sleep 3600"], "memory_mb": 64, "cpu_millis": 200})
                ),
                call("k8s_scale", json!({"name": name, "replicas": 2})),
                call("k8s_list", json!({})),
                call("k8s_logs", json!({"name": name, "tail": 5})),
            ]),
        ),
    );
    assert_eq!(
        structured(&results[0])["phase"],
        "running",
        "{}",
        results[0]
    );
    assert_eq!(results[1]["result"]["isError"], false, "{}", results[1]);
    assert!(first_text(&results[2]).contains(&name), "{}", results[2]);
    assert!(
        first_text(&results[3]).contains("working"),
        "{}",
        results[3]
    );

    let deployment: Value = serde_json::from_str(
        &kubectl(&["get", "deployment", &name, "-o", "json"]).expect("the deployment exists"),
    )
    .unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "berth"
    );
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["resources"]["limits"]["memory"], "64Mi");
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"][0],
        "ALL"
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );

    let results = drive(
        &py,
        host_env_job(
            &sandbox,
            None,
            &[],
            json!([
                call("k8s_delete", json!({"name": name})),
                call("k8s_status", json!({"name": name}))
            ]),
        ),
    );
    assert_eq!(results[0]["result"]["isError"], false, "{}", results[0]);
    assert!(
        first_text(&results[1]).starts_with("not-found:"),
        "{}",
        results[1]
    );
    assert!(!exists("deployment", &name));
}

#[test]
fn a_snippet_runs_in_a_pod_and_its_pod_is_removed() {
    let Some(py) = python() else { return };
    if !cluster_ready() {
        return;
    }
    let sandbox = k8s_sandbox("");
    let code = "import os, sys\nprint(os.getuid())\nprint(sys.stdin.read())";
    let results = drive(
        &py,
        host_env_job(
            &sandbox,
            None,
            &[],
            json!([call(
                "run_python",
                json!({"code": code, "sandbox": "k8s", "stdin": "from the client"})
            )]),
        ),
    );
    let s = structured(&results[0]);
    assert_eq!(s["exit_code"], 0, "{}", results[0]);
    assert_eq!(s["stdout"], "65534\nfrom the client\n");
    let left =
        kubectl(&["get", "pods", "-l", "berth.dev/kind=sandbox", "-o", "name"]).unwrap_or_default();
    let ours: Vec<&str> = left.lines().filter(|l| !l.is_empty()).collect();
    // Other tests' sandboxes may be running; none may be left by this run,
    // whose pod was deleted before the call returned.
    for pod in ours {
        let owner = kubectl(&[
            "get",
            pod,
            "-o",
            "jsonpath={.metadata.labels.berth\\.dev/owner}",
        ])
        .unwrap_or_default();
        assert_ne!(owner, owner_of(&sandbox), "sandbox {pod} was left behind");
    }
}

/// The owner label berth puts on objects for `sandbox`'s data dir.
fn owner_of(sandbox: &Sandbox) -> String {
    use sha2::{Digest, Sha256};
    let root = sandbox.data().join("work");
    let root = root.canonicalize().unwrap_or(root);
    hex::encode(&Sha256::digest(root.as_os_str().as_encoded_bytes())[..6])
}

#[test]
fn a_service_template_is_reachable_through_its_port_forward_and_stops() {
    let Some(py) = python() else { return };
    if !cluster_ready() {
        return;
    }
    let sandbox = k8s_sandbox("");
    let name = unique("echo");
    let results = drive(
        &py,
        host_env_job(
            &sandbox,
            None,
            &[],
            json!([
                call("list_templates", json!({})),
                call(
                    "deploy_template",
                    json!({"template": "echo", "backend": "k8s", "name": name,
                    "params": {"image": "localhost/busybox:latest", "text": "hello through the forward"}})
                ),
            ]),
        ),
    );
    let templates: Vec<&str> = structured(&results[0])["templates"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for wanted in ["nginx", "echo", "fastapi", "npx", "uvx"] {
        assert!(
            templates.contains(&wanted),
            "{wanted} missing from {templates:?}"
        );
    }
    let status = structured(&results[1]);
    assert_eq!(status["phase"], "running", "{}", results[1]);
    let endpoint = status["endpoints"][0]
        .as_str()
        .expect("a forwarded endpoint");
    assert!(endpoint.starts_with("127.0.0.1:"), "{endpoint}");
    // The forward belongs to the berth process that opened it, which has
    // exited; so the endpoint is checked through one berth session.
    let results = drive(
        &py,
        host_env_job(
            &sandbox,
            None,
            &[],
            json!([
                call("deploy_template", json!({"template": "echo", "backend": "k8s", "name": name,
                    "params": {"image": "localhost/busybox:latest", "text": "hello through the forward"}})),
                {"op": "http_get", "from_result": 0},
                call("stop_template", json!({"backend": "k8s", "name": name})),
                call("template_status", json!({"backend": "k8s", "name": name})),
            ]),
        ),
    );
    assert_eq!(
        results[1]["body"], "hello through the forward\n",
        "{}",
        results[1]
    );
    assert_eq!(results[2]["result"]["isError"], false, "{}", results[2]);
    assert!(
        first_text(&results[3]).starts_with("not-found:"),
        "{}",
        results[3]
    );
    assert!(!exists("deployment", &name) && !exists("service", &name));
}

#[test]
fn workloads_past_their_ttl_are_reaped() {
    let Some(py) = python() else { return };
    if !cluster_ready() {
        return;
    }
    let sandbox = k8s_sandbox("");
    let name = unique("shortlived");
    let results = drive(
        &py,
        host_env_job(
            &sandbox,
            None,
            &[],
            json!([call(
                "k8s_deploy",
                json!({"name": name, "image": "localhost/busybox:latest", "command": ["sleep", "3600"], "ttl_seconds": 1})
            )]),
        ),
    );
    assert_eq!(
        structured(&results[0])["phase"],
        "running",
        "{}",
        results[0]
    );
    assert!(exists("deployment", &name));
    std::thread::sleep(std::time::Duration::from_secs(2));
    // The reaper runs when berth starts (and every minute after).
    let results = drive(
        &py,
        host_env_job(&sandbox, None, &[], json!([call("k8s_list", json!({}))])),
    );
    assert!(!first_text(&results[0]).contains(&name), "{}", results[0]);
    assert!(
        !exists("deployment", &name),
        "the expired workload is still there"
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_leaves_nothing_behind() {
    let Some(py) = python() else { return };
    if !cluster_ready() {
        return;
    }
    let sandbox = k8s_sandbox(
        "[policy.k8s]\nstate = true\n[policy.k8s.kube]\nnamespaces = [\"default\"]\nverbs = [\"apply\", \"get\", \"list\", \"delete\", \"wait\", \"scale\", \"logs\", \"exec\", \"port-forward\"]\nkinds = [\"*\"]\n",
    );
    let first = unique("first");
    let unknown_kind = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {first}}}\n---\napiVersion: apps/v1\nkind: Pod\nmetadata: {{name: g}}\n"
    );
    let other_namespace = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {first}}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x, namespace: kube-system}}\n"
    );
    let rejected_by_server = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {first}}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: broken}}\nspec: {{replicas: -3}}\n"
    );
    // Pods that reach into the node, refused without a pod_privileges grant.
    let host_root = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {first}}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {first}}}\nspec:\n  containers: [{{name: c, image: localhost/busybox:latest}}]\n  volumes: [{{name: root, hostPath: {{path: /}}}}]\n"
    );
    let privileged = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {first}}}\nspec:\n  selector: {{matchLabels: {{app: x}}}}\n  template:\n    metadata: {{labels: {{app: x}}}}\n    spec:\n      hostPID: true\n      containers: [{{name: c, image: localhost/busybox:latest, securityContext: {{privileged: true}}}}]\n"
    );
    let results = drive(
        &py,
        host_env_job(
            &sandbox,
            None,
            &[],
            json!([
                call("k8s_apply", json!({"manifests": "kind: [unclosed"})),
                call("k8s_apply", json!({"manifests": unknown_kind})),
                call("k8s_apply", json!({"manifests": other_namespace})),
                call(
                    "k8s_apply",
                    json!({"manifests": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_A_Label}\n"})
                ),
                call(
                    "k8s_deploy",
                    json!({"name": "Bad_Name", "image": "localhost/busybox:latest"})
                ),
                call("k8s_apply", json!({"manifests": rejected_by_server})),
                call(
                    "k8s_deploy",
                    json!({"name": unique("badimage"), "image": "busybox; rm -rf /"})
                ),
                call("k8s_apply", json!({"manifests": host_root})),
                call("k8s_apply", json!({"manifests": privileged})),
            ]),
        ),
    );
    let texts: Vec<String> = results.iter().map(first_text).collect();
    assert!(
        texts[0].starts_with("invalid-input:") && texts[0].contains("not valid YAML"),
        "{}",
        texts[0]
    );
    assert!(
        texts[1].starts_with("invalid-input:") && texts[1].contains("no kind `Pod` in `apps/v1`"),
        "{}",
        texts[1]
    );
    assert!(
        texts[2].starts_with("denied:") && texts[2].contains("namespace `kube-system`"),
        "{}",
        texts[2]
    );
    assert!(
        texts[3].starts_with("invalid-input:") && texts[3].contains("`Not_A_Label`"),
        "{}",
        texts[3]
    );
    assert!(
        texts[4].starts_with("invalid-input:") && texts[4].contains("`Bad_Name`"),
        "{}",
        texts[4]
    );
    assert!(
        texts[5].starts_with("invalid-input:") && texts[5].contains("Invalid"),
        "{}",
        texts[5]
    );
    assert!(
        texts[6].starts_with("invalid-input:") && texts[6].contains("image"),
        "{}",
        texts[6]
    );
    assert!(
        texts[7].starts_with("denied:")
            && texts[7].contains("pod privilege `hostPath`")
            && texts[7].contains("spec.volumes[0].hostPath"),
        "{}",
        texts[7]
    );
    assert!(
        texts[8].starts_with("denied:") && texts[8].contains("spec.template.spec.hostPID"),
        "{}",
        texts[8]
    );
    assert!(
        !exists("configmap", &first),
        "a rejected apply left {first} behind"
    );
    assert!(!exists("deployment", "broken"));
    assert!(!exists("pod", &first) && !exists("deployment", &first));
}

#[test]
fn the_bundled_backend_works_in_its_own_namespace_by_default() {
    let Some(py) = python() else { return };
    if !cluster_ready() {
        return;
    }
    // What an operator does once, as deploy/berth.yaml says.
    if kubectl(&["get", "namespace", "berth", "-o", "name"]).is_none() {
        kubectl(&["create", "namespace", "berth"]).expect("creating namespace berth");
    }
    let sandbox = Sandbox::with_bundled();
    sandbox.write_config("[plugin_config.k8s]\nimage_pull_policy = \"Never\"\n");
    let name = unique("scoped");
    let config_map = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n");
    let elsewhere = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: default}}\n"
    );
    let results = drive(
        &py,
        host_env_job(
            &sandbox,
            None,
            &[],
            json!([
                call("k8s_apply", json!({"manifests": config_map})),
                call("k8s_apply", json!({"manifests": elsewhere})),
                call(
                    "k8s_objects",
                    json!({"api_version": "v1", "kind": "Pod", "namespace": "kube-system"})
                ),
            ]),
        ),
    );
    let texts: Vec<String> = results.iter().map(first_text).collect();
    let landed = kubectl(&["get", "configmap", &name, "-n", "berth", "-o", "name"]);
    let _ = kubectl(&["delete", "configmap", &name, "-n", "berth"]);
    assert_eq!(results[0]["result"]["isError"], false, "{}", texts[0]);
    assert!(
        landed.is_some_and(|l| l.contains(&name)),
        "not applied in namespace berth"
    );
    for (text, namespace) in [(&texts[1], "default"), (&texts[2], "kube-system")] {
        assert!(
            text.starts_with("denied:") && text.contains(&format!("namespace `{namespace}`")),
            "{text}"
        );
    }
    assert!(
        !exists("configmap", &name),
        "applied outside namespace berth"
    );
}

#[test]
fn a_missing_mirrord_target_is_reported_before_mirrord_starts() {
    let Some(py) = python() else { return };
    if !cluster_ready() {
        return;
    }
    let sandbox = k8s_sandbox("");
    // The stand-in would accept this target; the cluster has no such
    // deployment, so berth must refuse before running mirrord at all.
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins/mirrord");
    std::fs::copy(script, dir.path().join("mirrord")).unwrap();
    std::fs::write(
        dir.path().join("mirrord.targets"),
        "default deployment/ghost\n",
    )
    .unwrap();
    let results = drive(
        &py,
        host_env_job(
            &sandbox,
            Some(dir.path()),
            &[],
            json!([call(
                "run_python",
                json!({"code": "print(1)", "deployment": "ghost"})
            )]),
        ),
    );
    let text = first_text(&results[0]);
    assert!(
        text.starts_with("not-found:")
            && text.contains("deployment `ghost`")
            && text.contains("mirrord was not started"),
        "{text}"
    );
}

#[test]
fn refused_grants_send_no_request() {
    let Some(py) = python() else { return };
    // A listener stands in for the API server and counts connections.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    let sandbox = k8s_sandbox(&format!(
        "[kube]\nkubeconfig = \"{kubeconfig}\"\n\n[policy.k8s]\nstate = true\n[policy.k8s.kube]\nnamespaces = [\"team-a\"]\nverbs = [\"get\"]\nkinds = [\"ConfigMap\"]\n",
        kubeconfig = fake_kubeconfig(&address).display()
    ));
    let results = drive(
        &py,
        host_env_job(
            &sandbox,
            None,
            &[],
            json!([
                call(
                    "k8s_apply",
                    json!({"manifests": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n", "namespace": "team-a"})
                ),
                call(
                    "k8s_get",
                    json!({"api_version": "v1", "kind": "ConfigMap", "name": "a", "namespace": "default"})
                ),
                call(
                    "k8s_get",
                    json!({"api_version": "v1", "kind": "Secret", "name": "a", "namespace": "team-a"})
                ),
                call(
                    "k8s_exec",
                    json!({"pod": "p", "command": ["true"], "namespace": "team-a"})
                ),
            ]),
        ),
    );
    let texts: Vec<String> = results.iter().map(first_text).collect();
    assert!(
        texts[0].starts_with("denied:") && texts[0].contains("verb `apply`"),
        "{}",
        texts[0]
    );
    assert!(
        texts[1].starts_with("denied:") && texts[1].contains("namespace `default`"),
        "{}",
        texts[1]
    );
    assert!(
        texts[2].starts_with("denied:") && texts[2].contains("kind `Secret`"),
        "{}",
        texts[2]
    );
    assert!(
        texts[3].starts_with("denied:") && texts[3].contains("verb `exec`"),
        "{}",
        texts[3]
    );
    let mut connections = 0;
    while listener.accept().is_ok() {
        connections += 1;
    }
    assert_eq!(connections, 0, "a refused action reached the API server");
}

/// A kubeconfig whose cluster is `address`, with a dummy token.
fn fake_kubeconfig(address: &std::net::SocketAddr) -> std::path::PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"https://{address}\", insecure-skip-tls-verify: true}}\nusers:\n- name: fake\n  user: {{token: not-a-token}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake, namespace: team-a}}\ncurrent-context: fake\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn the_in_cluster_manifests_are_accepted_by_the_api_server_and_berth() {
    if !cluster_ready() {
        return;
    }
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/berth.yaml");
    let out = Command::new("kubectl")
        .args(["apply", "--dry-run=server", "-n", "default", "-f"])
        .arg(&manifests)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the API server rejected deploy/berth.yaml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let applied = String::from_utf8_lossy(&out.stdout);
    for object in [
        "serviceaccount/berth",
        "role.rbac.authorization.k8s.io/berth",
        "rolebinding.rbac.authorization.k8s.io/berth",
        "deployment.apps/berth",
        "service/berth",
    ] {
        assert!(applied.contains(object), "{object} missing from: {applied}");
    }
    // The berth.toml the ConfigMap carries is one berth accepts.
    let text = std::fs::read_to_string(&manifests).unwrap();
    let toml: String = text
        .split("berth.toml: |\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let sandbox = Sandbox::with_bundled();
    sandbox.write_config(&toml.replace("data_dir = \"/data\"", ""));
    let out = sandbox.run(&["plugins", "list"]);
    assert!(
        out.status.success(),
        "berth refused the in-cluster berth.toml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
