//! What a manifest's pods ask of the node beyond an ordinary container:
//! privileged containers, host namespaces, host directories and added
//! Linux capabilities. Each is found with its path in the object, so a
//! refusal can name the field.

use serde_json::Value;

use super::manifest::Object;

/// Where an object kind keeps its pod spec, as JSON pointers.
const POD_SPECS: [&str; 3] = [
    "/spec/template/spec",
    "/spec/jobTemplate/spec/template/spec",
    "/spec",
];

/// Every privilege `object`'s pods ask for: (privilege, path).
pub fn pod_privileges(object: &Object) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    for pointer in POD_SPECS {
        // A bare `spec` is a pod spec only for a Pod.
        if pointer == "/spec" && object.kind != "Pod" {
            continue;
        }
        if let Some(spec) = object.body.pointer(pointer) {
            inspect(spec, &pointer[1..].replace('/', "."), &mut found);
        }
    }
    found
}

fn inspect(spec: &Value, at: &str, found: &mut Vec<(&'static str, String)>) {
    for (field, privilege) in [
        ("hostNetwork", "hostNetwork"),
        ("hostPID", "hostPID"),
        ("hostIPC", "hostIPC"),
    ] {
        if spec.get(field) == Some(&Value::Bool(true)) {
            found.push((privilege, format!("{at}.{field}")));
        }
    }
    for (i, volume) in list(spec, "volumes").iter().enumerate() {
        if volume.get("hostPath").is_some() {
            found.push(("hostPath", format!("{at}.volumes[{i}].hostPath")));
        }
    }
    for group in ["initContainers", "containers", "ephemeralContainers"] {
        for (i, container) in list(spec, group).iter().enumerate() {
            let context = format!("{at}.{group}[{i}].securityContext");
            let security = container.get("securityContext");
            if security.and_then(|s| s.get("privileged")) == Some(&Value::Bool(true)) {
                found.push(("privileged", format!("{context}.privileged")));
            }
            let added = security
                .and_then(|s| s.get("capabilities"))
                .and_then(|c| c.get("add"))
                .and_then(Value::as_array);
            if added.is_some_and(|a| !a.is_empty()) {
                found.push(("capabilities", format!("{context}.capabilities.add")));
            }
        }
    }
}

fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::kube::manifest::parse;

    fn privileges(yaml: &str) -> Vec<(&'static str, String)> {
        pod_privileges(&parse(yaml).unwrap()[0])
    }

    #[test]
    fn an_ordinary_pod_asks_for_nothing() {
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    securityContext: {privileged: false, capabilities: {drop: [ALL]}}\n  volumes:\n  - name: v\n    emptyDir: {}\n";
        assert!(privileges(pod).is_empty());
    }

    #[test]
    fn each_privilege_is_found_with_its_path() {
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      hostNetwork: true\n      hostPID: true\n      containers:\n      - name: c\n        image: busybox\n        securityContext: {privileged: true, capabilities: {add: [NET_ADMIN]}}\n      volumes:\n      - name: root\n        hostPath: {path: /}\n";
        let found = privileges(deployment);
        for (privilege, path) in [
            ("hostNetwork", "spec.template.spec.hostNetwork"),
            ("hostPID", "spec.template.spec.hostPID"),
            ("hostPath", "spec.template.spec.volumes[0].hostPath"),
            (
                "privileged",
                "spec.template.spec.containers[0].securityContext.privileged",
            ),
            (
                "capabilities",
                "spec.template.spec.containers[0].securityContext.capabilities.add",
            ),
        ] {
            assert!(
                found.contains(&(privilege, path.to_string())),
                "{privilege} at {path} not in {found:?}"
            );
        }
    }

    #[test]
    fn a_cron_job_pod_and_a_debug_container_are_inspected() {
        let cron = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          hostIPC: true\n          ephemeralContainers:\n          - name: e\n            securityContext: {privileged: true}\n";
        let found = privileges(cron);
        assert_eq!(found.len(), 2, "{found:?}");
        // A ConfigMap's `spec`-less body and a Service's `spec` are no pods.
        let service =
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  hostNetwork: true\n";
        assert!(privileges(service).is_empty());
    }
}
