//! The `kube` capability's grant: which contexts, namespaces, verbs and
//! kinds a plugin may act on.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::capabilities::unit::{self, Capability};

/// The `kube` capability. Absent in a manifest or a policy means no
/// Kubernetes access at all.
pub struct Kube;

impl Capability for Kube {
    type Request = Option<KubeAccess>;
    type Allow = Option<KubeAccess>;
    type Grant = Option<KubeAccess>;

    /// What a plugin asks for, except pod privileges: letting applied
    /// pods reach the node is the operator's call alone.
    fn allow_requested(request: &Option<KubeAccess>) -> Option<KubeAccess> {
        request.clone().map(|access| KubeAccess {
            pod_privileges: BTreeSet::new(),
            ..access
        })
    }

    fn union(a: &Option<KubeAccess>, b: &Option<KubeAccess>) -> Option<KubeAccess> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.union(b)),
            (a, b) => a.clone().or_else(|| b.clone()),
        }
    }

    fn grant(request: &Option<KubeAccess>, allow: &Option<KubeAccess>) -> Option<KubeAccess> {
        match (request, allow) {
            (Some(wanted), Some(allowed)) => Some(wanted.intersect(allowed)),
            _ => None,
        }
    }

    fn refused(request: &Option<KubeAccess>, grant: &Option<KubeAccess>) -> Vec<String> {
        match (request, grant) {
            (None, _) => Vec::new(),
            (Some(_), None) => vec!["kube".to_string()],
            (Some(wanted), Some(granted)) => granted.refused(wanted),
        }
    }
}

/// Kubernetes access: which contexts, namespaces, verbs and kinds. Each
/// set holds names or `"*"` for any. The context berth is configured with
/// needs no entry in `contexts`; other kubeconfig contexts do.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KubeAccess {
    /// Kubeconfig contexts besides the configured one.
    pub contexts: BTreeSet<String>,
    /// Namespaces.
    pub namespaces: BTreeSet<String>,
    /// Verbs: `apply`, `get`, `list`, `delete`, `scale`, `wait`, `logs`,
    /// `exec`, `port-forward`.
    pub verbs: BTreeSet<String>,
    /// Kinds, as in manifests: `Pod`, `Deployment`, `Service`, ...
    pub kinds: BTreeSet<String>,
    /// What applied pods may ask of the node beyond an ordinary container:
    /// `privileged`, `hostPath`, `hostNetwork`, `hostPID`, `hostIPC`,
    /// `capabilities` (added Linux capabilities). None by default.
    pub pod_privileges: BTreeSet<String>,
}

/// Items of `wanted` that `allowed` allows, where `"*"` in either stands
/// for anything the other names.
fn intersect_sets(wanted: &BTreeSet<String>, allowed: &BTreeSet<String>) -> BTreeSet<String> {
    if allowed.contains("*") {
        wanted.clone()
    } else if wanted.contains("*") {
        allowed.clone()
    } else {
        wanted.intersection(allowed).cloned().collect()
    }
}

impl KubeAccess {
    /// Everything either allows.
    pub fn union(&self, other: &KubeAccess) -> KubeAccess {
        let both = |a: &BTreeSet<String>, b: &BTreeSet<String>| a.union(b).cloned().collect();
        KubeAccess {
            contexts: both(&self.contexts, &other.contexts),
            namespaces: both(&self.namespaces, &other.namespaces),
            verbs: both(&self.verbs, &other.verbs),
            kinds: both(&self.kinds, &other.kinds),
            pod_privileges: both(&self.pod_privileges, &other.pod_privileges),
        }
    }

    /// What is both wanted and allowed.
    pub fn intersect(&self, allowed: &KubeAccess) -> KubeAccess {
        KubeAccess {
            contexts: intersect_sets(&self.contexts, &allowed.contexts),
            namespaces: intersect_sets(&self.namespaces, &allowed.namespaces),
            verbs: intersect_sets(&self.verbs, &allowed.verbs),
            kinds: intersect_sets(&self.kinds, &allowed.kinds),
            pod_privileges: intersect_sets(&self.pod_privileges, &allowed.pod_privileges),
        }
    }

    /// Wanted items this grant lacks, for the load report.
    pub fn refused(&self, wanted: &KubeAccess) -> Vec<String> {
        let mut refused = Vec::new();
        for (field, want, have) in [
            ("context", &wanted.contexts, &self.contexts),
            ("namespace", &wanted.namespaces, &self.namespaces),
            ("verb", &wanted.verbs, &self.verbs),
            ("kind", &wanted.kinds, &self.kinds),
            (
                "pod_privilege",
                &wanted.pod_privileges,
                &self.pod_privileges,
            ),
        ] {
            refused.extend(
                want.iter()
                    .filter(|item| !unit::names(have, item))
                    .map(|item| format!("kube:{field}:{item}")),
            );
        }
        refused
    }

    /// Why `verb` through `context` (when not the configured one) is
    /// refused, or `None` when it is allowed; checked before anything else
    /// is known about the action.
    pub fn verb_refusal(&self, verb: &str, context: Option<&str>) -> Option<String> {
        if !unit::names(&self.verbs, verb) {
            return Some(format!("the kube verb `{verb}`"));
        }
        if let Some(context) = context
            && !unit::names(&self.contexts, context)
        {
            return Some(format!("the kube context `{context}`"));
        }
        None
    }

    /// Why a pod that asks for `privilege` (at `path` of the manifest) is
    /// refused, or `None` when the grant allows it.
    pub fn pod_privilege_refusal(&self, privilege: &str, path: &str) -> Option<String> {
        (!unit::names(&self.pod_privileges, privilege)).then(|| {
            format!("the pod privilege `{privilege}` (kube.pod_privileges), asked for at {path}")
        })
    }

    /// Why `verb` on `kind` in `namespace` (through `context`, when not the
    /// configured one) is refused, or `None` when it is allowed.
    pub fn refusal(
        &self,
        verb: &str,
        context: Option<&str>,
        namespace: &str,
        kind: &str,
    ) -> Option<String> {
        if let Some(refused) = self.verb_refusal(verb, context) {
            return Some(refused);
        }
        if !unit::names(&self.namespaces, namespace) {
            return Some(format!("the namespace `{namespace}`"));
        }
        if !unit::names(&self.kinds, kind) {
            return Some(format!("the kind `{kind}`"));
        }
        None
    }
}
