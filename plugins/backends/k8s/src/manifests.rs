//! The objects this backend creates, built as JSON with the safe defaults:
//! non-root, every capability dropped, no privilege escalation, a
//! read-only root unless asked otherwise, limits always set, no service
//! account token, and berth's labels and annotations on everything.

use berth_sdk::workloads::Stamp;
use berth_sdk::{Mount, Resources, SandboxSpec, Workload, checks};
use serde_json::{Value, json};

use crate::settings::Settings;

/// Label on everything berth creates (the recommended Kubernetes label).
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The workload's name.
pub const NAME: &str = "app.kubernetes.io/name";
/// `sandbox` or `workload`.
pub const KIND: &str = "berth.dev/kind";
/// The berth deployment that created it (`berth_sdk::instance`).
pub const OWNER: &str = "berth.dev/owner";
/// Set on pods that must have no network; selected by [`deny_network`].
pub const NO_NETWORK: &str = "berth.dev/network";
/// Annotation: unix time after which the reaper removes it.
pub const EXPIRES: &str = "berth.dev/expires-at";
/// Annotation: the time to live it was created with, seconds.
pub const TTL: &str = "berth.dev/ttl-seconds";
/// Prefix of sandbox pod names.
pub const SANDBOX_PREFIX: &str = "berth-sb-";
/// Name of the network policy that isolates `berth.dev/network=none` pods.
pub const DENY_NETWORK: &str = "berth-deny-network";

/// Labels of everything this deployment of berth creates of `kind`.
pub fn selector(kind: &str) -> String {
    format!(
        "{MANAGED_BY}=berth,{OWNER}={},{KIND}={kind}",
        berth_sdk::instance()
    )
}

fn metadata(name: &str, kind: &str, ttl: Option<u64>, stamp: &Stamp, network: bool) -> Value {
    let mut labels = json!({
        MANAGED_BY: "berth",
        OWNER: stamp.owner,
        KIND: kind,
        NAME: name,
    });
    if !network {
        labels[NO_NETWORK] = json!("none");
    }
    let mut annotations = json!({});
    if let Some(ttl) = ttl {
        annotations[TTL] = json!(ttl.to_string());
        annotations[EXPIRES] = json!(stamp.expires_at(Some(ttl)).to_string());
    }
    json!({"name": name, "labels": labels, "annotations": annotations})
}

fn resources(resources: &Resources, settings: &Settings) -> Value {
    let memory = resources
        .memory_mb
        .unwrap_or(settings.default_memory_mb)
        .max(16);
    let cpu = resources
        .cpu_millis
        .unwrap_or(settings.default_cpu_millis)
        .max(10);
    json!({
        "limits": {"memory": format!("{memory}Mi"), "cpu": format!("{cpu}m")},
        "requests": {"memory": format!("{}Mi", (memory / 4).max(16)), "cpu": format!("{}m", (cpu / 10).max(10))},
    })
}

fn security(writable_root: bool) -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": !writable_root,
        "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]},
    })
}

/// `hostPath` volumes and their mounts, each checked against the allowed
/// roots.
fn host_mounts(
    mounts: &[Mount],
    settings: &Settings,
) -> berth_sdk::Result<(Vec<Value>, Vec<Value>)> {
    let mut volumes = Vec::new();
    let mut volume_mounts = Vec::new();
    for (index, mount) in mounts.iter().enumerate() {
        checks::mount(
            mount,
            &settings.allowed_volume_roots,
            "[plugin_config.k8s] allowed_volume_roots",
        )?;
        let name = format!("host-{index}");
        volumes.push(json!({"name": name, "hostPath": {"path": mount.host_path}}));
        volume_mounts.push(
            json!({"name": name, "mountPath": mount.container_path, "readOnly": mount.read_only}),
        );
    }
    Ok((volumes, volume_mounts))
}

fn pod_security(settings: &Settings) -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": settings.run_as_user,
        "runAsGroup": settings.run_as_user,
        "fsGroup": settings.run_as_user,
    })
}

/// A sandbox pod: it idles until the host runs commands in it, with its
/// workspace on an `emptyDir` at `/work`.
pub fn sandbox_pod(
    name: &str,
    image: &str,
    spec: &SandboxSpec,
    settings: &Settings,
    stamp: &Stamp,
) -> berth_sdk::Result<Value> {
    checks::image(image)?;
    let (mut volumes, mut mounts) = host_mounts(&spec.mounts, settings)?;
    volumes.push(json!({"name": "work", "emptyDir": {}}));
    volumes.push(json!({"name": "tmp", "emptyDir": {}}));
    mounts.push(json!({"name": "work", "mountPath": "/work"}));
    mounts.push(json!({"name": "tmp", "mountPath": "/tmp"}));
    let none = Resources {
        memory_mb: None,
        cpu_millis: None,
        pids: None,
    };
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata(name, "sandbox", spec.ttl_seconds, stamp, spec.network),
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "terminationGracePeriodSeconds": 0,
            "securityContext": pod_security(settings),
            "containers": [{
                "name": "sandbox",
                "image": image,
                "imagePullPolicy": settings.image_pull_policy,
                "command": settings.sandbox_command,
                "workingDir": "/work",
                "env": [{"name": "HOME", "value": "/work"}],
                "securityContext": security(false),
                "resources": resources(&none, settings),
                "volumeMounts": mounts,
            }],
            "volumes": volumes,
        }
    }))
}

/// A network policy that denies all traffic to and from pods labelled
/// `berth.dev/network=none` (enforced where the cluster's network plugin
/// supports policies).
pub fn deny_network() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": DENY_NETWORK, "labels": {MANAGED_BY: "berth"}},
        "spec": {
            "podSelector": {"matchLabels": {NO_NETWORK: "none"}},
            "policyTypes": ["Ingress", "Egress"],
        }
    })
}

/// A deployment (and, when it has ports, a service) running `workload`.
pub fn workload_objects(
    workload: &Workload,
    replicas: u32,
    settings: &Settings,
    stamp: &Stamp,
) -> berth_sdk::Result<Vec<Value>> {
    checks::name(&workload.name)?;
    checks::image(&workload.image)?;
    let mut env = Vec::new();
    for (key, value) in &workload.env {
        checks::env_name(key)?;
        env.push(json!({"name": key, "value": value}));
    }
    let (mut volumes, mut mounts) = host_mounts(&workload.mounts, settings)?;
    if !workload.writable_root {
        volumes.push(json!({"name": "tmp", "emptyDir": {}}));
        mounts.push(json!({"name": "tmp", "mountPath": "/tmp"}));
    }
    let mut ports = Vec::new();
    for port in &workload.ports {
        let protocol = match port.protocol.as_str() {
            "" | "tcp" | "TCP" => "TCP",
            "udp" | "UDP" => "UDP",
            other => {
                return Err(berth_sdk::Error::invalid_input(format!(
                    "port protocol `{other}` must be tcp or udp"
                )));
            }
        };
        if port.container_port == 0 {
            return Err(berth_sdk::Error::invalid_input(
                "container port 0 is not a port",
            ));
        }
        ports.push(json!({"containerPort": port.container_port, "protocol": protocol}));
    }
    let mut container = json!({
        "name": "main",
        "image": workload.image,
        "imagePullPolicy": settings.image_pull_policy,
        "env": env,
        "securityContext": security(workload.writable_root),
        "resources": resources(&workload.resources, settings),
        "volumeMounts": mounts,
        "ports": ports.clone(),
    });
    if !workload.command.is_empty() {
        container["command"] = json!(workload.command);
    }
    if !workload.args.is_empty() {
        container["args"] = json!(workload.args);
    }
    if let Some(health) = &workload.health {
        container["readinessProbe"] = json!({"httpGet": {"path": health.path, "port": health.port}, "periodSeconds": 5, "failureThreshold": 3});
        container["livenessProbe"] = json!({"httpGet": {"path": health.path, "port": health.port}, "periodSeconds": 10, "failureThreshold": 6, "initialDelaySeconds": 10});
    }
    let mut meta = metadata(
        &workload.name,
        "workload",
        workload.ttl_seconds,
        stamp,
        workload.network,
    );
    for (key, value) in &workload.labels {
        if key.starts_with("berth.dev/") || key.starts_with("app.kubernetes.io/") {
            return Err(berth_sdk::Error::invalid_input(format!(
                "label `{key}` is reserved"
            )));
        }
        meta["labels"][key] = json!(value);
    }
    let mut template_meta = json!({"labels": meta["labels"].clone()});
    template_meta["labels"][NAME] = json!(workload.name);
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta.clone(),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {NAME: workload.name, OWNER: stamp.owner}},
            "template": {
                "metadata": template_meta,
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": pod_security(settings),
                    "containers": [container],
                    "volumes": volumes,
                }
            }
        }
    });
    let mut objects = vec![deployment];
    if !workload.ports.is_empty() {
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "selector": {NAME: workload.name, OWNER: stamp.owner},
                "ports": ports.iter().map(|p| json!({
                    "name": format!("p{}", p["containerPort"]),
                    "port": p["containerPort"],
                    "targetPort": p["containerPort"],
                    // Server-side apply needs the protocol: it is part of
                    // the key of the ports list.
                    "protocol": p["protocol"],
                })).collect::<Vec<_>>(),
            }
        }));
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_sdk::Port;

    fn stamp() -> Stamp {
        Stamp {
            owner: "0123abcd".into(),
            now: 1_000,
        }
    }

    fn workload(value: Value) -> Workload {
        let args: berth_sdk::workloads::DeployArgs = serde_json::from_value(value).unwrap();
        let port = Port {
            container_port: 8080,
            host_port: None,
            protocol: "tcp".into(),
        };
        args.workload(vec![port]).unwrap()
    }

    #[test]
    fn a_workload_is_a_locked_down_deployment_and_a_service() {
        let w = workload(json!({"name": "web", "image": "nginx", "ttl_seconds": 60}));
        let objects = workload_objects(&w, 2, &Settings::default(), &stamp()).unwrap();
        let [deployment, service] = objects.as_slice() else {
            panic!("expected a deployment and a service: {objects:?}")
        };
        assert_eq!(deployment["kind"], "Deployment");
        assert_eq!(deployment["spec"]["replicas"], 2);
        let labels = &deployment["metadata"]["labels"];
        assert_eq!(labels[OWNER], "0123abcd");
        assert_eq!(labels[NO_NETWORK], "none");
        assert_eq!(deployment["metadata"]["annotations"][EXPIRES], "1060");
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        let container = &pod["containers"][0];
        assert_eq!(
            container["securityContext"]["allowPrivilegeEscalation"],
            false
        );
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(
            container["securityContext"]["capabilities"]["drop"][0],
            "ALL"
        );
        assert_eq!(container["resources"]["limits"]["memory"], "512Mi");
        assert_eq!(service["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(service["spec"]["selector"][OWNER], "0123abcd");
    }

    #[test]
    fn reserved_labels_and_bad_ports_are_refused() {
        let mut w = workload(json!({"name": "web", "image": "nginx"}));
        w.labels = vec![("berth.dev/owner".into(), "someone-else".into())];
        let err = workload_objects(&w, 1, &Settings::default(), &stamp()).unwrap_err();
        assert!(
            err.message().contains("`berth.dev/owner`"),
            "{}",
            err.message()
        );
        let mut w = workload(json!({"name": "web", "image": "nginx"}));
        w.ports[0].protocol = "sctp".into();
        let err = workload_objects(&w, 1, &Settings::default(), &stamp()).unwrap_err();
        assert!(err.message().contains("`sctp`"), "{}", err.message());
    }

    #[test]
    fn a_sandbox_pod_idles_in_a_writable_work_dir_and_mounts_only_allowed_roots() {
        let mut spec = SandboxSpec {
            language: "python".into(),
            image: Some("python:3".into()),
            network: true,
            ttl_seconds: None,
            mounts: Vec::new(),
        };
        let pod = sandbox_pod(
            "berth-sb-1",
            "python:3",
            &spec,
            &Settings::default(),
            &stamp(),
        )
        .unwrap();
        assert_eq!(pod["spec"]["containers"][0]["workingDir"], "/work");
        assert!(pod["metadata"]["labels"].get(NO_NETWORK).is_none());
        assert!(pod["metadata"]["annotations"].get(EXPIRES).is_none());
        spec.mounts.push(Mount {
            host_path: "/".into(),
            container_path: "/host".into(),
            read_only: true,
        });
        let err = sandbox_pod(
            "berth-sb-1",
            "python:3",
            &spec,
            &Settings::default(),
            &stamp(),
        )
        .unwrap_err();
        assert!(
            err.message().contains("allowed_volume_roots"),
            "{}",
            err.message()
        );
    }
}
